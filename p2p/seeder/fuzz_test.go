package seeder

import (
	"context"
	"os"
	"path/filepath"
	"testing"
)

// FuzzTrackerMessage feeds arbitrary tracker messages to the tracker
// client: whatever a hostile tracker sends, it must not panic.
func FuzzTrackerMessage(f *testing.F) {
	for _, s := range []string{
		`{"action":"announce","interval":120,"info_hash":"tBBwJ0eaWm83RZGsvsTu","complete":1,"incomplete":0}`,
		`{"action":"announce","offer":{"type":"offer","sdp":"v=0\r\n"},"offer_id":"\u00a5\u0007abc","peer_id":"-PM0203-asj3uA7gyGY6","info_hash":"tBBwJ0eaWm83RZGsvsTu"}`,
		`{"action":"announce","answer":{"type":"answer","sdp":"v=0"},"offer_id":"x","peer_id":"p","info_hash":"i"}`,
		`{"action":"announce","failure reason":"nope","info_hash":"x"}`,
		`{"action":"scrape","files":{}}`,
		`{"action":"announce","interval":-1e308,"incomplete":1e400}`,
		`[1,2,3]`, `null`, ``,
	} {
		f.Add([]byte(s))
	}
	api, err := NewAPI(WebRTCConfig{})
	if err != nil {
		f.Fatal(err)
	}
	s, err := New(Config{API: api, Source: FileSource{Root: f.TempDir()}})
	if err != nil {
		f.Fatal(err)
	}
	defer s.Close()
	tc := newTrackerClient(s, "ws://tracker.invalid/")
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	ts := &trackerSession{ctx: ctx, cancel: cancel, out: make(chan []byte, 16), jobs: make(chan announceJob, 16), sem: make(chan struct{}, 1)}
	f.Fuzz(func(t *testing.T, data []byte) {
		tc.handle(ts, data)
		if tc.interval < minAnnounceInterval {
			t.Fatalf("interval %v below the floor", tc.interval)
		}
	})
}

// FuzzFileSourcePath: no URL makes FileSource read outside its root.
func FuzzFileSourcePath(f *testing.F) {
	for _, s := range []string{
		"http://x/media/seg.ts", "http://x/media/../secret", "http://x/..%2fsecret", "http://x/media/%2e%2e/%2e%2e/secret",
		"http://x//secret", "http://x/media/./../../secret", `http://x/media\..\secret`, "file:///etc/passwd", "/../secret",
	} {
		f.Add(s)
	}
	parent := f.TempDir()
	root := filepath.Join(parent, "root")
	if err := os.MkdirAll(filepath.Join(root, "media"), 0o755); err != nil {
		f.Fatal(err)
	}
	os.WriteFile(filepath.Join(root, "media", "seg.ts"), []byte("inside"), 0o644)
	os.WriteFile(filepath.Join(parent, "secret"), []byte("SECRET"), 0o644)
	src := FileSource{Root: root, StripPrefix: "/media"}
	f.Fuzz(func(t *testing.T, u string) {
		data, _, err := src.Fetch(context.Background(), u, nil)
		if err == nil && string(data) == "SECRET" {
			t.Fatalf("%q read a file outside the root", u)
		}
	})
}
