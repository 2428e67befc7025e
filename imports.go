// Package caddyp2p plugs the caddy-p2p modules into Caddy. Building Caddy
// with this module (xcaddy build --with github.com/caddy-p2p/caddy-p2p)
// imports it, which registers every module of the caddymodule package.
package caddyp2p

import (
	_ "github.com/caddy-p2p/caddy-p2p/caddymodule"
)
