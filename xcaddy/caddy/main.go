// Command caddy is Caddy with the standard modules and the caddy-p2p modules,
// built from this repository without xcaddy: go build -o caddy ./xcaddy/caddy.
package main

import (
	caddycmd "github.com/caddyserver/caddy/v2/cmd"

	_ "github.com/caddyserver/caddy/v2/modules/standard"

	_ "github.com/caddy-p2p/caddy-p2p/caddymodule"
)

func main() {
	caddycmd.Main()
}
