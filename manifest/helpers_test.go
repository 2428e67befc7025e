package manifest

import (
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	"github.com/caddy-p2p/caddy-p2p/p2p"
)

// dirFetcher serves the files under dir for URLs under prefix.
type dirFetcher struct {
	prefix, dir string
	// redirect maps a URL to the URL it is served from.
	redirect map[string]string
}

func (f dirFetcher) Fetch(_ context.Context, u string, r *ByteRange) ([]byte, string, error) {
	final := u
	if to, ok := f.redirect[u]; ok {
		final = to
	}
	rel, ok := strings.CutPrefix(final, f.prefix)
	if !ok {
		return nil, "", fmt.Errorf("no file for %s", u)
	}
	b, err := os.ReadFile(filepath.Join(f.dir, filepath.FromSlash(rel)))
	if err != nil {
		return nil, "", err
	}
	if r != nil {
		if r.End >= int64(len(b)) {
			return nil, "", errors.New("range beyond the file")
		}
		b = b[r.Start : r.End+1]
	}
	return b, final, nil
}

func readTestdata(t testing.TB, name string) []byte {
	t.Helper()
	b, err := os.ReadFile(filepath.Join("testdata", filepath.FromSlash(name)))
	if err != nil {
		t.Fatal(err)
	}
	return b
}

func ids(segs []*Segment, c Client) []int64 {
	out := make([]int64, len(segs))
	for i, s := range segs {
		out[i] = s.ExternalID[c]
	}
	return out
}

func urls(segs []*Segment) []string {
	out := make([]string, len(segs))
	for i, s := range segs {
		out[i] = s.URL
	}
	return out
}

func seq(from, n int64) []int64 {
	out := make([]int64, n)
	for i := range out {
		out[i] = from + int64(i)
	}
	return out
}

func wantIDs(t *testing.T, what string, segs []*Segment, c Client, want []int64) {
	t.Helper()
	if got := ids(segs, c); !slices.Equal(got, want) {
		t.Errorf("%s %s ids = %v, want %v", what, c, got, want)
	}
}

// wantSwarm checks a stream's identity for one client.
func wantSwarm(t *testing.T, s *Stream, c Client, typ p2p.StreamType, index, swarm string, infoHash p2p.InfoHash) {
	t.Helper()
	id := s.Swarms[c]
	if id.Type != typ || id.Index != index || id.Swarm != swarm {
		t.Errorf("%s %s: identity %+v, want type %s index %s swarm %s", s.URL+s.RepresentationID, c, id, typ, index, swarm)
	}
	if infoHash != "" && id.InfoHash != infoHash {
		t.Errorf("%s %s: info_hash %s, want %s", s.URL+s.RepresentationID, c, id.InfoHash, infoHash)
	}
	if want := c.Generation().InfoHash(swarm); id.InfoHash != want {
		t.Errorf("%s %s: info_hash %s, want %s (hash of the swarm)", s.URL+s.RepresentationID, c, id.InfoHash, want)
	}
}
