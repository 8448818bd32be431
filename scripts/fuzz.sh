#!/usr/bin/env bash
# fuzz.sh — run every fuzz target in the module for a while each, so a new
# Fuzz function is fuzzed without anyone listing it. `make fuzz` (20 s
# each) and `make fuzz-long` (10 min each) call it.
#
# Usage: scripts/fuzz.sh DURATION [PACKAGE...]   (default: ./...)
# A failing input is kept under the package's testdata/fuzz, as go test
# does; the summary at the end names every target that failed.
set -uo pipefail

dur=${1:?usage: fuzz.sh DURATION [PACKAGE...]}
shift
pkgs=("${@:-./...}")
go=${GO:-go}
failed=()
n=0
while read -r pkg; do
	targets=$("$go" test -list '^Fuzz' "$pkg" 2>/dev/null | grep '^Fuzz' || true)
	for t in $targets; do
		n=$((n + 1))
		echo "== $pkg $t ($dur)"
		if ! "$go" test "$pkg" -run '^$' -fuzz "^$t\$" -fuzztime "$dur"; then
			failed+=("$pkg $t")
		fi
	done
done < <("$go" list "${pkgs[@]}")
echo "fuzz: $n targets, ${#failed[@]} failed"
for f in "${failed[@]}"; do echo "  FAILED $f"; done
((${#failed[@]} == 0))
