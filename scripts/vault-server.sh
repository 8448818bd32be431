#!/usr/bin/env bash
# vault-server.sh — build, cache and start HashiCorp Vault's server for
# ToneVault's tests and local runs.
#
# Usage: scripts/vault-server.sh build            build if needed, print the binary path
#        scripts/vault-server.sh path             print the cached binary path (exit 1 if not built)
#        scripts/vault-server.sh dev [HOST:PORT]  exec a dev server (default 127.0.0.1:8200)
#
# Vault's server is not packaged by Debian, so it is built from the Go module
# proxy as the nested module test/vaultserver/server (its own go.mod, so none
# of Vault's ~500 dependencies reach the gateway's go.mod). The binary is
# cached outside the work tree, keyed by the sha256 of that module's go.sum:
#   ${XDG_CACHE_HOME:-$HOME/.cache}/tonevault/vault-<sha256>/vault
# A cold build downloads modules (a minute or two) and compiles (the rest of
# about 10 minutes on 2 cores), with a progress line every 30 s; a warm one
# returns at once. While another run builds it, this one says so and waits.
# Vault's server code is BUSL-licensed: this is a build tool for tests and
# local runs, never shipped.
#
# Environment: GO (default go), TONEVAULT_VAULT_CACHE (cache root override),
# TONEVAULT_DEV_ROOT_TOKEN (dev root token, default "tonevault-dev-root").
set -euo pipefail

root=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
mod="$root/test/vaultserver/server"
GO=${GO:-go}
cache_root=${TONEVAULT_VAULT_CACHE:-${XDG_CACHE_HOME:-$HOME/.cache}/tonevault}

# elapsed prints the time since $1 (a value of $SECONDS) as 1m05s.
elapsed() {
	local d=$((SECONDS - $1))
	printf '%dm%02ds' $((d / 60)) $((d % 60))
}

# progress runs a command and, while it runs, prints "vault-server: still
# WHAT (TIME so far; ...)" every 30 s on stderr, TIME counted from SINCE (a
# value of $SECONDS), so that a long silent step does not look hung. It
# returns the command's status.
progress() { # since what command...
	local start=$1 what=$2 pid rc=0 i
	shift 2
	"$@" &
	pid=$!
	while kill -0 "$pid" 2>/dev/null; do
		for ((i = 0; i < 30; i++)); do
			kill -0 "$pid" 2>/dev/null || break
			sleep 1
		done
		if kill -0 "$pid" 2>/dev/null; then
			echo "vault-server: still $what ($(elapsed "$start") so far; a cold build takes about 10 minutes on 2 cores)" >&2
		fi
	done
	wait "$pid" || rc=$?
	return "$rc"
}

binary_path() {
	local sum
	sum=$(sha256sum "$mod/go.sum" | cut -d' ' -f1)
	echo "$cache_root/vault-$sum/vault"
}

build() {
	local bin dir start
	bin=$(binary_path)
	if [[ -x $bin ]]; then
		echo "vault-server: cached $bin" >&2
		echo "$bin"
		return 0
	fi
	if ! command -v "$GO" >/dev/null 2>&1; then
		echo "vault-server: '$GO' not found; Go is needed to build Vault's server" >&2
		return 1
	fi
	dir=$(dirname "$bin")
	mkdir -p "$dir"
	# One build at a time (go test runs packages in parallel, and each may
	# ask for the server): the others wait and then find it cached.
	if command -v flock >/dev/null 2>&1; then
		exec 9>"$dir/.lock"
		if ! flock -n 9; then
			echo "vault-server: another run is building Vault's server into $dir; waiting for it" >&2
			progress "$SECONDS" "waiting for the other build" flock 9
		fi
		if [[ -x $bin ]]; then
			echo "vault-server: cached $bin (built by a concurrent run)" >&2
			echo "$bin"
			return 0
		fi
	fi
	# Build to a temporary name and rename: an interrupted build never
	# leaves a half-written binary under the cached name.
	# tmp is global: the EXIT trap runs after build's locals are gone.
	tmp=$(mktemp "$dir/vault.tmp.XXXXXX")
	trap 'rm -f "$tmp"' EXIT
	start=$SECONDS
	echo "vault-server: building Vault's server (v1.21.1) into $dir, once: later runs use it at once" >&2
	echo "vault-server: about 10 minutes on 2 cores: a minute or two of module downloads, then compiling" >&2
	echo "vault-server: downloading modules..." >&2
	progress "$start" "downloading modules" bash -c 'cd "$1" && "$2" mod download >&2' _ "$mod" "$GO"
	echo "vault-server: downloaded in $(elapsed "$start"); compiling (-tags minimal)..." >&2
	# -mod=readonly: go.mod and go.sum are committed complete and are never
	# rewritten here (no go mod tidy in CI).
	progress "$start" "compiling" bash -c 'cd "$1" && CGO_ENABLED=0 "$2" build -mod=readonly -tags minimal -trimpath -ldflags="-s -w" -o "$3" . >&2' _ "$mod" "$GO" "$tmp"
	if [[ $(binary_path) != "$bin" ]]; then
		echo "vault-server: $mod/go.sum changed during the build; commit it complete" >&2
		return 1
	fi
	chmod 0755 "$tmp"
	mv -f "$tmp" "$bin"
	trap - EXIT
	echo "vault-server: built $bin in $(elapsed "$start")" >&2
	echo "$bin"
}

case "${1:-}" in
build)
	build
	;;
path)
	bin=$(binary_path)
	if [[ ! -x $bin ]]; then
		echo "vault-server: not built yet; run: scripts/vault-server.sh build" >&2
		exit 1
	fi
	echo "$bin"
	;;
dev)
	addr=${2:-127.0.0.1:8200}
	token=${TONEVAULT_DEV_ROOT_TOKEN:-tonevault-dev-root}
	bin=$(build)
	cat >&2 <<EOF
vault-server: dev server on http://$addr (in-memory storage, lost on exit)
  export VAULT_ADDR=http://$addr
  export VAULT_TOKEN=$token
EOF
	# The root token goes to Vault in its environment, not its arguments,
	# which every user of the machine can read (ps).
	unset TONEVAULT_DEV_ROOT_TOKEN
	VAULT_DEV_ROOT_TOKEN_ID=$token exec "$bin" server -dev -dev-listen-address="$addr" -dev-no-store-token
	;;
-h | --help | "")
	sed -n '2,21p' "$0" | sed 's/^# \{0,1\}//'
	[[ -n ${1:-} ]]
	;;
*)
	echo "vault-server: unknown command '$1' (build, path, dev)" >&2
	exit 2
	;;
esac
