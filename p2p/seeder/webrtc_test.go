package seeder

import (
	"net"
	"runtime"
	"sync/atomic"
	"testing"
)

// TestYieldingConnLetsOthersRun: a goroutine that sends a burst through
// the seeder's UDP socket lets a runnable goroutine in within a yield or
// two (yieldEvery packets each), on a single processor. A plain socket would run the whole burst
// first (a UDP send does not block, and 64 sends end long before the
// runtime's 10 ms preemption).
func TestYieldingConnLetsOthersRun(t *testing.T) {
	defer runtime.GOMAXPROCS(runtime.GOMAXPROCS(1))
	recv, err := net.ListenUDP("udp4", &net.UDPAddr{IP: net.IPv4(127, 0, 0, 1)})
	if err != nil {
		t.Fatal(err)
	}
	defer recv.Close()
	if err := recv.SetReadBuffer(1 << 20); err != nil {
		t.Fatal(err)
	}
	send, err := net.ListenUDP("udp4", &net.UDPAddr{IP: net.IPv4(127, 0, 0, 1)})
	if err != nil {
		t.Fatal(err)
	}
	defer send.Close()
	c := &yieldingConn{UDPConn: send}
	to := recv.LocalAddr().(*net.UDPAddr).AddrPort()

	const burst = 64
	var sent atomic.Int64
	seenAt := make(chan int64, 1)
	start := make(chan struct{})
	go func() {
		<-start
		seenAt <- sent.Load()
	}()
	runtime.Gosched() // let the goroutine block on start
	close(start)      // it is runnable now, but this goroutine keeps the processor
	pkt := make([]byte, 1200)
	for range burst {
		if _, err := c.WriteToAddrPort(pkt, to); err != nil {
			t.Fatal(err)
		}
		sent.Add(1)
	}
	// Within two yields: at one yield in 61 the scheduler takes the
	// global run queue first (its fairness check), where the yielding
	// goroutine itself waits.
	if at := <-seenAt; at > 2*yieldEvery {
		t.Errorf("the other goroutine ran after %d of %d sends, want within %d", at, burst, 2*yieldEvery)
	}
	// The packets arrived: the wrapper sends what it is given.
	buf := make([]byte, 2000)
	if n, _, err := recv.ReadFromUDPAddrPort(buf); err != nil || n != len(pkt) {
		t.Fatalf("read %d bytes, %v", n, err)
	}
}
