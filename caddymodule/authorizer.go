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
	hashes, err := parseInfoHashes(d, "allow_list")
	a.InfoHashes = append(a.InfoHashes, hashes...)
	return err
}

// parseInfoHashes reads an authorizer's info_hashes, given as arguments
// and as info_hash lines in its block:
//
//	<module> <info_hash...> {
//	    info_hash <info_hash...>
//	}
func parseInfoHashes(d *caddyfile.Dispenser, module string) ([]string, error) {
	d.Next() // the module name
	hashes := d.RemainingArgs()
	for nesting := d.Nesting(); d.NextBlock(nesting); {
		switch d.Val() {
		case "info_hash":
			args := d.RemainingArgs()
			if len(args) == 0 {
				return nil, d.ArgErr()
			}
			hashes = append(hashes, args...)
		default:
			return nil, d.Errf("unrecognized %s option %q", module, d.Val())
		}
	}
	return hashes, nil
}

// Interface guards.
var (
	_ caddy.Provisioner     = (*AllowListAuthorizer)(nil)
	_ tracker.Authorizer    = (*AllowListAuthorizer)(nil)
	_ caddyfile.Unmarshaler = (*AllowListAuthorizer)(nil)
)
