package manifest

import (
	"bytes"
	"context"
	"errors"
	"fmt"
)

// Fetcher retrieves manifests and segment indexes. Fetch returns the body of
// url (only the bytes in r when r is not nil) and the URL after redirects.
type Fetcher interface {
	Fetch(ctx context.Context, url string, r *ByteRange) (body []byte, finalURL string, err error)
}

// FetcherFunc adapts a function to Fetcher.
type FetcherFunc func(ctx context.Context, url string, r *ByteRange) ([]byte, string, error)

// Fetch calls f.
func (f FetcherFunc) Fetch(ctx context.Context, url string, r *ByteRange) ([]byte, string, error) {
	return f(ctx, url, r)
}

// Load fetches and parses the manifest at manifestURL and everything needed
// to number its segments: for HLS every media playlist (video streams before
// audio streams, as shaka loads them), for DASH the segment index of every
// SegmentBase representation. The format is detected from the body: an MPD
// starts with an XML element, a playlist with #EXTM3U.
func Load(ctx context.Context, manifestURL string, f Fetcher, opts *Options) (*Presentation, error) {
	body, final, err := f.Fetch(ctx, manifestURL, nil)
	if err != nil {
		return nil, fmt.Errorf("manifest: fetching %s: %w", manifestURL, err)
	}
	if final == "" {
		final = manifestURL
	}
	if looksLikeMPD(body) {
		p, err := ParseDASH(final, body, opts)
		if err != nil {
			return nil, err
		}
		for _, s := range p.Streams {
			if s.Index == nil || s.Loaded {
				continue
			}
			data, _, err := f.Fetch(ctx, s.Index.URL, s.Index.ByteRange)
			if err != nil {
				return nil, fmt.Errorf("manifest: fetching the segment index of representation %q: %w", s.RepresentationID, err)
			}
			if err := s.ApplySegmentIndex(data); err != nil {
				return nil, err
			}
		}
		return p, nil
	}
	p, err := ParseHLS(final, body, opts)
	if err != nil {
		return nil, err
	}
	var errs []error
	for _, audio := range []bool{false, true} {
		for _, s := range p.Streams {
			if s.Loaded || s.shakaAudio != audio {
				continue
			}
			b, u, err := f.Fetch(ctx, s.URL, nil)
			if err != nil {
				errs = append(errs, fmt.Errorf("manifest: fetching media playlist %s: %w", s.URL, err))
				continue
			}
			if err := p.LoadMediaPlaylist(s, u, b); err != nil {
				errs = append(errs, err)
			}
		}
	}
	if len(errs) > 0 {
		return p, errors.Join(errs...)
	}
	return p, nil
}

// looksLikeMPD reports whether body starts (after white space and a byte
// order mark) with '<'.
func looksLikeMPD(body []byte) bool {
	body = bytes.TrimPrefix(body, []byte("\xef\xbb\xbf"))
	body = bytes.TrimLeft(body, " \t\r\n")
	return len(body) > 0 && body[0] == '<'
}
