#!/usr/bin/env bash
# Runs every test of caddy-p2p. It installs what a fresh machine lacks
# (Debian packages, npm packages), so it is also what CI runs.
#
#   bash testdata/test.sh
#
# Environment:
#   FUZZTIME   time per fuzz target (default 10s; 0 skips fuzzing beyond the seed corpus)
#   SKIP_XCADDY=1  skip the xcaddy build (the repo-local build always runs)
set -euo pipefail
cd "$(dirname "$0")/.."
root=$PWD
FUZZTIME="${FUZZTIME:-10s}"

step() { printf '\n=== %s (%s)\n' "$*" "$(date +%H:%M:%S)"; }

step "system packages"
need=()
command -v chromium >/dev/null || need+=(chromium)
command -v unshare >/dev/null || need+=(util-linux)
command -v ip >/dev/null || need+=(iproute2)
if ((${#need[@]})); then
	export DEBIAN_FRONTEND=noninteractive
	apt-get update -qq
	apt-get install -y -qq "${need[@]}" >/dev/null
fi
chromium --version

step "go modules"
go mod download
go mod verify >/dev/null

step "gofmt and go vet"
unformatted=$(gofmt -l $(git ls-files '*.go' 2>/dev/null || find . -name '*.go' -not -path './node_modules/*'))
if [ -n "$unformatted" ]; then
	echo "gofmt needed on: $unformatted" >&2
	exit 1
fi
# ./... skips testdata/: its Go tools are named.
go vet ./... ./testdata/idcheck

step "go test (unit, integration, fuzz seed corpora)"
# -p 1: the Caddy integration tests bind fixed ports.
go test -race -count=1 -p 1 ./... ./testdata/idcheck

if [ "$FUZZTIME" != "0" ]; then
	step "fuzzing, $FUZZTIME per target"
	for pkg in $(go list ./...); do
		dir=$(go list -f '{{.Dir}}' "$pkg")
		for target in $(grep -ho '^func Fuzz[A-Za-z0-9_]*' "$dir"/*_test.go 2>/dev/null | sed 's/^func //' | sort -u); do
			echo "--- $pkg $target"
			log=$(mktemp)
			if go test -run '^$' -fuzz "^${target}\$" -fuzztime "$FUZZTIME" -fuzzminimizetime 2s "$pkg" >"$log" 2>&1; then
				tail -1 "$log"
			else
				tail -40 "$log"
				# A failing input is a real bug: fail. Anything else is the
				# fuzzing engine itself failing (seen once at the deadline,
				# with no input); report it without failing the run.
				if grep -q 'Failing input written to' "$log"; then
					echo "fuzz: $target found a failing input (above); it is now in the package's testdata/fuzz" >&2
					exit 1
				fi
				echo "fuzz: $target: the fuzzing engine failed without a failing input (output above)" >&2
			fi
			rm -f "$log"
		done
	done
fi

step "repo-local build: go build ./xcaddy/caddy"
go build -o bin/caddy ./xcaddy/caddy
bin/caddy list-modules | grep -E '^(http.handlers.p2p_|admin.api.p2p|p2p\.)'

if [ "${SKIP_XCADDY:-}" != "1" ]; then
	step "xcaddy build"
	xcaddy/build.sh dist/caddy
fi

step "browser and Node tests (Chromium, real P2P Media Loader, network namespace)"
export CADDY_BIN="$root/bin/caddy"
(cd testdata/browser && bash install.sh && npm test)

step "tracker load benchmark, quick mode (checks the bench command works; figures are in the README)"
go run ./tracker/trackerbench -quick -ours "$root/bin/caddy" -btt testdata/bench

step "seeder upload benchmark, quick mode (checks the bench command works; figures are in the README)"
go run ./p2p/uploadbench -quick

step "tracker relay latency at 2,000 announces/s (informational: a target miss does not fail)"
go run ./tracker/trackerbench -trackers ours -peers 5000 -swarms 100 -rate 2000 -duration 20s -ours "$root/bin/caddy" |
	grep -E 'relay p(50|99)|cores|per 1k|per idle peer|PASS|MISS' || true

step "all tests passed"
