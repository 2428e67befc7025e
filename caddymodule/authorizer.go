package caddymodule

import (
	"context"
	"errors"
	"fmt"

	"github.com/caddyserver/caddy/v2"
	"github.com/caddyserver/caddy/v2/caddyconfig/caddyfile"

	"github.com/caddy-p2p/caddy-p2p/tracker"
)

func init() {
	caddy.RegisterModule(&AllowListAuthorizer{})
}

// AllowListAuthorizer is a tracker authorizer that accepts only the listed
// info_hashes. It is the simplest member of the p2p.tracker.authorizers
// namespace; other modules in that namespace implement tracker.Authorizer.
type AllowListAuthorizer struct {
	// InfoHashes are the accepted swarms, each the 20-character info_hash
	// as it appears on the wire (for P2P Media Loader, 20 base64
	// characters).
	InfoHashes []string `json:"info_hashes,omitempty"`

	set map[string]struct{}
}

// CaddyModule returns the Caddy module information.
func (*AllowListAuthorizer) CaddyModule() caddy.ModuleInfo {
	return caddy.ModuleInfo{
		ID:  "p2p.tracker.authorizers.allow_list",
		New: func() caddy.Module { return new(AllowListAuthorizer) },
	}
}

// Provision builds the lookup set.
func (a *AllowListAuthorizer) Provision(caddy.Context) error {
	a.set = make(map[string]struct{}, len(a.InfoHashes))
	for _, ih := range a.InfoHashes {
		if n := len([]rune(ih)); n != 20 {
			return fmt.Errorf("allow_list: info_hash %q has %d characters, want 20", ih, n)
		}
		a.set[ih] = struct{}{}
	}
	return nil
}

var errNotListed = errors.New("unknown info_hash")

// Authorize implements tracker.Authorizer.
func (a *AllowListAuthorizer) Authorize(_ context.Context, req tracker.AuthRequest) error {
	if _, ok := a.set[req.InfoHash]; ok {
		return nil
	}
	return errNotListed
}

// UnmarshalCaddyfile reads:
//
//	authorizer allow_list <info_hash...> {
//	    info_hash <info_hash...>
//	}
func (a *AllowListAuthorizer) UnmarshalCaddyfile(d *caddyfile.Dispenser) error {
	d.Next() // the module name
	a.InfoHashes = append(a.InfoHashes, d.RemainingArgs()...)
	for nesting := d.Nesting(); d.NextBlock(nesting); {
		switch d.Val() {
		case "info_hash":
			args := d.RemainingArgs()
			if len(args) == 0 {
				return d.ArgErr()
			}
			a.InfoHashes = append(a.InfoHashes, args...)
		default:
			return d.Errf("unrecognized allow_list option %q", d.Val())
		}
	}
	return nil
}

// Interface guards.
var (
	_ caddy.Provisioner     = (*AllowListAuthorizer)(nil)
	_ tracker.Authorizer    = (*AllowListAuthorizer)(nil)
	_ caddyfile.Unmarshaler = (*AllowListAuthorizer)(nil)
)
