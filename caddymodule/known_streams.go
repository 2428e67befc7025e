package caddymodule

import (
	"context"
	"errors"
	"fmt"

	"github.com/caddyserver/caddy/v2"
	"github.com/caddyserver/caddy/v2/caddyconfig/caddyfile"

	"github.com/caddy-p2p/caddy-p2p/p2p"
	"github.com/caddy-p2p/caddy-p2p/p2p/seeder"
	"github.com/caddy-p2p/caddy-p2p/tracker"
)

func init() {
	caddy.RegisterModule(&KnownStreamsAuthorizer{})
}

// KnownStreamsAuthorizer makes the tracker private to the origin's
// streams: it accepts the info_hashes of the swarms the p2p app's seeder
// is in (every stream configured or discovered by p2p_manifest) plus any
// listed here, and refuses the rest with a failure reason.
type KnownStreamsAuthorizer struct {
	// InfoHashes are accepted in addition to the seeder's swarms.
	InfoHashes []string `json:"info_hashes,omitempty"`

	app   *App
	extra map[string]struct{}
}

// CaddyModule returns the Caddy module information.
func (*KnownStreamsAuthorizer) CaddyModule() caddy.ModuleInfo {
	return caddy.ModuleInfo{
		ID:  "p2p.tracker.authorizers.known_streams",
		New: func() caddy.Module { return new(KnownStreamsAuthorizer) },
	}
}

// Provision finds the p2p app of this config.
func (k *KnownStreamsAuthorizer) Provision(ctx caddy.Context) error {
	v, err := ctx.AppIfConfigured("p2p")
	if err != nil {
		return fmt.Errorf("known_streams: needs the p2p app (global option p2p): %w", err)
	}
	k.app = v.(*App)
	k.extra = make(map[string]struct{}, len(k.InfoHashes))
	for _, ih := range k.InfoHashes {
		if n := len([]rune(ih)); n != 20 {
			return fmt.Errorf("known_streams: info_hash %q has %d characters, want 20", ih, n)
		}
		k.extra[ih] = struct{}{}
	}
	return nil
}

var errUnknownStream = errors.New("not a stream of this origin")

// Authorize implements tracker.Authorizer.
func (k *KnownStreamsAuthorizer) Authorize(_ context.Context, req tracker.AuthRequest) error {
	if _, ok := k.extra[req.InfoHash]; ok {
		return nil
	}
	if s := k.seeder(); s != nil && s.HasSwarm(p2p.InfoHash(req.InfoHash)) {
		return nil
	}
	return errUnknownStream
}

// seeder returns the seeder whose swarms are accepted: that of this
// config's app, or, when that app does not run (its config failed to start,
// or is being unloaded and its sockets are not handed over yet), that of
// the newest app that runs.
func (k *KnownStreamsAuthorizer) seeder() *seeder.Seeder {
	if s := k.app.Seeder(); s != nil {
		return s
	}
	if a := k.app.gens.newest.Load(); a != nil {
		return a.Seeder()
	}
	return nil
}

// UnmarshalCaddyfile reads:
//
//	authorizer known_streams [<info_hash...>] {
//	    info_hash <info_hash...>
//	}
func (k *KnownStreamsAuthorizer) UnmarshalCaddyfile(d *caddyfile.Dispenser) error {
	hashes, err := parseInfoHashes(d, "known_streams")
	k.InfoHashes = append(k.InfoHashes, hashes...)
	return err
}

// Interface guards.
var (
	_ tracker.Authorizer    = (*KnownStreamsAuthorizer)(nil)
	_ caddy.Provisioner     = (*KnownStreamsAuthorizer)(nil)
	_ caddyfile.Unmarshaler = (*KnownStreamsAuthorizer)(nil)
)
