package seeder

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"os"
	"path"
	"path/filepath"
	"strings"
	"time"

	"github.com/caddy-p2p/caddy-p2p/manifest"
)

// ErrTooLarge reports a manifest or segment larger than a source accepts.
var ErrTooLarge = errors.New("response too large")

// DefaultMaxObjectSize caps a manifest or segment a source reads.
const DefaultMaxObjectSize = 64 << 20

// FileSource reads manifests and segments from local files: the path of a
// URL, less StripPrefix, names a file under Root. It is what an origin that
// serves its media with file_server uses.
type FileSource struct {
	// Root is the directory the URL paths are resolved in.
	Root string
	// StripPrefix is removed from the URL path first, if present.
	StripPrefix string
	// MaxSize caps a file read; 0 means DefaultMaxObjectSize.
	MaxSize int64
}

// Fetch implements manifest.Fetcher.
func (f FileSource) Fetch(ctx context.Context, rawURL string, r *manifest.ByteRange) ([]byte, string, error) {
	u, err := url.Parse(rawURL)
	if err != nil {
		return nil, "", fmt.Errorf("file source: %w", err)
	}
	p := path.Clean("/" + u.Path)
	if f.StripPrefix != "" {
		p = path.Clean("/" + strings.TrimPrefix(p, f.StripPrefix))
	}
	// path.Clean of a rooted path cannot climb above the root.
	name := filepath.Join(f.Root, filepath.FromSlash(p))
	file, err := os.Open(name)
	if err != nil {
		return nil, "", fmt.Errorf("file source: %w", err)
	}
	defer file.Close()
	st, err := file.Stat()
	if err != nil {
		return nil, "", fmt.Errorf("file source: %w", err)
	}
	if st.IsDir() {
		return nil, "", fmt.Errorf("file source: %s is a directory", name)
	}
	limit := f.MaxSize
	if limit <= 0 {
		limit = DefaultMaxObjectSize
	}
	off, n := int64(0), st.Size()
	if r != nil {
		if r.Start < 0 || r.End < r.Start || r.End >= st.Size() {
			return nil, "", fmt.Errorf("file source: range %d-%d outside %s (%d bytes)", r.Start, r.End, name, st.Size())
		}
		off, n = r.Start, r.Len()
	}
	if n > limit {
		return nil, "", fmt.Errorf("file source: %s: %d bytes: %w", name, n, ErrTooLarge)
	}
	buf := make([]byte, n)
	if _, err := file.ReadAt(buf, off); err != nil && !errors.Is(err, io.EOF) {
		return nil, "", fmt.Errorf("file source: %w", err)
	}
	return buf, rawURL, ctx.Err()
}

// HTTPSource fetches manifests and segments over HTTP(S) by their URLs: from
// the origin itself or from the CDN in front of it. Its client keeps
// connections alive between fetches.
type HTTPSource struct {
	// Client does the requests; nil means a client with DefaultHTTPTimeout.
	Client *http.Client
	// Header is added to every request (authorization, a user agent).
	Header http.Header
	// MaxSize caps a response body; 0 means DefaultMaxObjectSize.
	MaxSize int64
}

// UserAgent is the User-Agent of an HTTPSource's requests unless its
// Header names another, so the origin can tell the seeder's fetches from
// viewers' (p2p_manifest does not count them as viewer traffic).
const UserAgent = "caddy-p2p-seeder/1"

// DefaultHTTPTimeout bounds one HTTP fetch of an HTTPSource without its own
// client.
const DefaultHTTPTimeout = 10 * time.Second

// NewHTTPClient returns a client for an HTTPSource: keep-alive with a pool
// sized for a seeder's parallel segment fetches, and the given overall
// timeout per request.
func NewHTTPClient(timeout time.Duration) *http.Client {
	t := http.DefaultTransport.(*http.Transport).Clone()
	t.MaxIdleConnsPerHost = 16
	t.ResponseHeaderTimeout = timeout
	return &http.Client{Transport: t, Timeout: timeout}
}

// Fetch implements manifest.Fetcher.
func (h HTTPSource) Fetch(ctx context.Context, rawURL string, r *manifest.ByteRange) ([]byte, string, error) {
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, rawURL, nil)
	if err != nil {
		return nil, "", fmt.Errorf("http source: %w", err)
	}
	for k, vs := range h.Header {
		for _, v := range vs {
			req.Header.Add(k, v)
		}
	}
	if req.Header.Get("User-Agent") == "" {
		req.Header.Set("User-Agent", UserAgent)
	}
	if r != nil {
		req.Header.Set("Range", fmt.Sprintf("bytes=%d-%d", r.Start, r.End))
	}
	client := h.Client
	if client == nil {
		client = NewHTTPClient(DefaultHTTPTimeout)
	}
	resp, err := client.Do(req)
	if err != nil {
		return nil, "", fmt.Errorf("http source: %w", err)
	}
	defer resp.Body.Close()
	switch {
	case r == nil && resp.StatusCode == http.StatusOK:
	case r != nil && resp.StatusCode == http.StatusPartialContent:
	default:
		// Drain a little so the connection can be reused.
		_, _ = io.CopyN(io.Discard, resp.Body, 4<<10)
		return nil, "", fmt.Errorf("http source: GET %s: %s", rawURL, resp.Status)
	}
	limit := h.MaxSize
	if limit <= 0 {
		limit = DefaultMaxObjectSize
	}
	if resp.ContentLength > limit {
		return nil, "", fmt.Errorf("http source: GET %s: %d bytes: %w", rawURL, resp.ContentLength, ErrTooLarge)
	}
	body, err := io.ReadAll(io.LimitReader(resp.Body, limit+1))
	if err != nil {
		return nil, "", fmt.Errorf("http source: GET %s: %w", rawURL, err)
	}
	if int64(len(body)) > limit {
		return nil, "", fmt.Errorf("http source: GET %s: over %d bytes: %w", rawURL, limit, ErrTooLarge)
	}
	if r != nil && int64(len(body)) != r.Len() {
		return nil, "", fmt.Errorf("http source: GET %s: range %d-%d gave %d bytes", rawURL, r.Start, r.End, len(body))
	}
	return body, resp.Request.URL.String(), nil
}
