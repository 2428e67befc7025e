//go:build unix

package tracker

import (
	"io"
	"net"
	"testing"
	"time"
)

// TestWriteNonBlocking checks the direct write path: it ignores a write
// deadline left behind by an earlier blocking write (that once dropped
// thousands of healthy sockets under load), and on a full socket it returns
// what fitted, without an error and without waiting.
func TestWriteNonBlocking(t *testing.T) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	client, err := net.Dial("tcp", ln.Addr().String())
	if err != nil {
		t.Fatal(err)
	}
	defer client.Close()
	server, err := ln.Accept()
	if err != nil {
		t.Fatal(err)
	}
	defer server.Close()
	rc, err := server.(*net.TCPConn).SyscallConn()
	if err != nil {
		t.Fatal(err)
	}

	server.SetWriteDeadline(time.Now().Add(-time.Second))
	if n, err := writeNonBlocking(rc, []byte("hello")); n != 5 || err != nil {
		t.Fatalf("write after a passed deadline: n=%d err=%v", n, err)
	}
	got := make([]byte, 5)
	client.SetReadDeadline(time.Now().Add(3 * time.Second))
	if _, err := io.ReadFull(client, got); err != nil || string(got) != "hello" {
		t.Fatalf("read %q: %v", got, err)
	}

	// The client stops reading: the socket fills and writes come back short.
	big := make([]byte, 1<<20)
	start := time.Now()
	total := 0
	for i := 0; ; i++ {
		n, err := writeNonBlocking(rc, big)
		if err != nil {
			t.Fatalf("write %d: %v", i, err)
		}
		total += n
		if n < len(big) {
			break
		}
		if i > 256 {
			t.Fatalf("256 MiB written to a socket nobody reads")
		}
	}
	if d := time.Since(start); d > 5*time.Second {
		t.Fatalf("filling the socket took %s: a write waited", d)
	}
	if n, err := writeNonBlocking(rc, big); n != 0 || err != nil {
		t.Fatalf("write to a full socket: n=%d err=%v, want 0 and no error", n, err)
	}
	t.Logf("socket full after %d bytes", total)

	// A socket the peer closed reports an error, not a silent success.
	client.Close()
	time.Sleep(50 * time.Millisecond)
	var werr error
	for i := 0; i < 100 && werr == nil; i++ {
		_, werr = writeNonBlocking(rc, []byte("x"))
		time.Sleep(10 * time.Millisecond)
	}
	if werr == nil {
		t.Fatal("writes to a closed peer kept succeeding")
	}
}
