package caddymodule

import (
	"context"
	"math"
	"net/http"
	"time"

	"github.com/caddyserver/caddy/v2"
	"github.com/caddyserver/caddy/v2/caddyconfig/caddyfile"
	"github.com/dustin/go-humanize"

	"github.com/caddy-p2p/caddy-p2p/manifest"
	"github.com/caddy-p2p/caddy-p2p/p2p/seeder"
)

func init() {
	caddy.RegisterModule(&FileSegmentSource{})
	caddy.RegisterModule(&HTTPSegmentSource{})
}

// SegmentSource is the interface of modules in the p2p.sources namespace:
// where the seeder reads manifests and segments, given their URLs.
// Third-party modules can add sources (object storage, a packager's API).
type SegmentSource interface {
	manifest.Fetcher
}

// FileSegmentSource reads manifests and segments from local files: the URL
// path names a file under Root, as file_server would serve it.
type FileSegmentSource struct {
	// Root is the directory, like file_server's root.
	Root string `json:"root,omitempty"`
	// StripPrefix is removed from URL paths first.
	StripPrefix string `json:"strip_prefix,omitempty"`
	// MaxSize caps one file, in bytes. Default: 64 MiB.
	MaxSize int64 `json:"max_size,omitempty"`

	src seeder.FileSource
}

// CaddyModule returns the Caddy module information.
func (*FileSegmentSource) CaddyModule() caddy.ModuleInfo {
	return caddy.ModuleInfo{ID: "p2p.sources.file", New: func() caddy.Module { return new(FileSegmentSource) }}
}

// Provision sets up the source.
func (f *FileSegmentSource) Provision(caddy.Context) error {
	root := f.Root
	if root == "" {
		root = "."
	}
	f.src = seeder.FileSource{Root: root, StripPrefix: f.StripPrefix, MaxSize: f.MaxSize}
	return nil
}

// Fetch implements manifest.Fetcher.
func (f *FileSegmentSource) Fetch(ctx context.Context, url string, r *manifest.ByteRange) ([]byte, string, error) {
	return f.src.Fetch(ctx, url, r)
}

// UnmarshalCaddyfile sets up the source from Caddyfile tokens:
//
//	source file [<root>] {
//	    root <dir>
//	    strip_prefix <prefix>
//	    max_size <size>
//	}
func (f *FileSegmentSource) UnmarshalCaddyfile(d *caddyfile.Dispenser) error {
	d.Next() // the module name
	if d.NextArg() {
		f.Root = d.Val()
	}
	for d.NextBlock(0) {
		switch d.Val() {
		case "root":
			if !d.AllArgs(&f.Root) {
				return d.ArgErr()
			}
		case "strip_prefix":
			if !d.AllArgs(&f.StripPrefix) {
				return d.ArgErr()
			}
		case "max_size":
			n, err := parseSize(d)
			if err != nil {
				return err
			}
			f.MaxSize = n
		default:
			return d.Errf("unknown file source option %q", d.Val())
		}
	}
	return nil
}

// HTTPSegmentSource fetches manifests and segments by their URLs, from the
// origin or from a CDN, over kept-alive connections.
type HTTPSegmentSource struct {
	// Timeout bounds one fetch. Default: 10s.
	Timeout caddy.Duration `json:"timeout,omitempty"`
	// Headers are added to every request.
	Headers http.Header `json:"headers,omitempty"`
	// MaxSize caps one response body, in bytes. Default: 64 MiB.
	MaxSize int64 `json:"max_size,omitempty"`

	src seeder.HTTPSource
}

// CaddyModule returns the Caddy module information.
func (*HTTPSegmentSource) CaddyModule() caddy.ModuleInfo {
	return caddy.ModuleInfo{ID: "p2p.sources.http", New: func() caddy.Module { return new(HTTPSegmentSource) }}
}

// Provision sets up the HTTP client.
func (h *HTTPSegmentSource) Provision(caddy.Context) error {
	timeout := time.Duration(h.Timeout)
	if timeout <= 0 {
		timeout = seeder.DefaultHTTPTimeout
	}
	h.src = seeder.HTTPSource{Client: seeder.NewHTTPClient(timeout), Header: h.Headers, MaxSize: h.MaxSize}
	return nil
}

// Cleanup closes idle connections.
func (h *HTTPSegmentSource) Cleanup() error {
	if h.src.Client != nil {
		h.src.Client.CloseIdleConnections()
	}
	return nil
}

// Fetch implements manifest.Fetcher.
func (h *HTTPSegmentSource) Fetch(ctx context.Context, url string, r *manifest.ByteRange) ([]byte, string, error) {
	return h.src.Fetch(ctx, url, r)
}

// UnmarshalCaddyfile sets up the source from Caddyfile tokens:
//
//	source http {
//	    timeout <duration>
//	    header <name> <value>
//	    max_size <size>
//	}
func (h *HTTPSegmentSource) UnmarshalCaddyfile(d *caddyfile.Dispenser) error {
	d.Next() // the module name
	for d.NextBlock(0) {
		switch d.Val() {
		case "timeout":
			if !d.NextArg() {
				return d.ArgErr()
			}
			dur, err := caddy.ParseDuration(d.Val())
			if err != nil {
				return d.Errf("timeout: %v", err)
			}
			h.Timeout = caddy.Duration(dur)
		case "header":
			var name, value string
			if !d.AllArgs(&name, &value) {
				return d.ArgErr()
			}
			if h.Headers == nil {
				h.Headers = http.Header{}
			}
			h.Headers.Add(name, value)
		case "max_size":
			n, err := parseSize(d)
			if err != nil {
				return err
			}
			h.MaxSize = n
		default:
			return d.Errf("unknown http source option %q", d.Val())
		}
	}
	return nil
}

// parseSize reads one size argument such as 256MiB.
func parseSize(d *caddyfile.Dispenser) (int64, error) {
	if !d.NextArg() {
		return 0, d.ArgErr()
	}
	n, err := humanize.ParseBytes(d.Val())
	if err != nil {
		return 0, d.Errf("invalid size %q: %v", d.Val(), err)
	}
	if n > math.MaxInt64 {
		return 0, d.Errf("size %q is too large", d.Val())
	}
	return int64(n), nil
}

// Interface guards.
var (
	_ SegmentSource         = (*FileSegmentSource)(nil)
	_ SegmentSource         = (*HTTPSegmentSource)(nil)
	_ caddy.Provisioner     = (*FileSegmentSource)(nil)
	_ caddy.Provisioner     = (*HTTPSegmentSource)(nil)
	_ caddy.CleanerUpper    = (*HTTPSegmentSource)(nil)
	_ caddyfile.Unmarshaler = (*FileSegmentSource)(nil)
	_ caddyfile.Unmarshaler = (*HTTPSegmentSource)(nil)
)
