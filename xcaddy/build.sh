#!/usr/bin/env bash
# Builds Caddy with the caddy-p2p modules using xcaddy (pinned as a Go tool
# in go.mod), the way a user would for a custom Caddy:
#
#   xcaddy/build.sh [output]        # default output: dist/caddy
#
# CADDY_VERSION overrides the Caddy version (default: the one in go.mod).
# The plain repo-local build is `go build -o bin/caddy ./xcaddy/caddy`.
set -euo pipefail
cd "$(dirname "$0")/.."
out="${1:-dist/caddy}"
case "$out" in /*) ;; *) out="$PWD/$out" ;; esac
mkdir -p "$(dirname "$out")"
version="${CADDY_VERSION:-$(go list -m -f '{{.Version}}' github.com/caddyserver/caddy/v2)}"
# The module proxy here answers 400 (not 404) for our unpublished module, so
# Go never falls back to the local replacement unless the zero
# pseudo-version is named explicitly (caddy-notes §5).
go tool xcaddy build "$version" \
	--output "$out" \
	--with "github.com/caddy-p2p/caddy-p2p@v0.0.0-00010101000000-000000000000=$PWD"
"$out" list-modules | grep -q '^http.handlers.p2p_tracker$' || {
	echo "xcaddy build lacks http.handlers.p2p_tracker" >&2
	exit 1
}
echo "built $out ($("$out" version))"
