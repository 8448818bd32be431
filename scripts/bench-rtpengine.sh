#!/usr/bin/env bash
# bench-rtpengine.sh — ToneVault's relay side by side with rtpengine.
#
# Usage: scripts/bench-rtpengine.sh TONEVAULT_BINARY [CALLS...]   (default calls: 50 500 1000)
#   RUNS=3 DURATION=10s    runs per configuration and length of each
#
# For each call count, RUNS rounds; each round runs, one after the other
# through the same generator (tonevault load): ToneVault's relay on its
# default engine and on goroutines, the batched floor, and rtpengine
# (userspace, started by tonevault load) in its pass and mask profiles.
# Rounds interleave the configurations, so that a burst of other work on
# this shared machine lands on all of them alike. Each line gives the
# 1-minute load average before the run; the summary gives min–max of the
# relay's CPU per packet and its ratio to the batched floor of the same
# round. BENCHMARKS.md has the figures.
set -euo pipefail

bin=${1:?usage: $0 TONEVAULT_BINARY [CALLS...]}
shift
calls=("$@")
[[ ${#calls[@]} -gt 0 ]] || calls=(50 500 1000)
runs=${RUNS:-3}
duration=${DURATION:-10s}
command -v rtpengine >/dev/null || {
	echo "bench-rtpengine: rtpengine not found: run scripts/install-deps.sh rtpengine" >&2
	exit 1
}

configs=(
	"tonevault|--relay tonevault"
	"goroutines|--relay tonevault --io goroutines"
	"batched|--relay batched"
	"rtpengine-pass|--relay rtpengine --rtpengine-profile pass"
	"rtpengine-mask|--relay rtpengine --rtpengine-profile mask"
)

out=$(mktemp)
trap 'rm -f "$out"' EXIT
printf '%-15s %5s %3s %6s %9s %9s %9s %-26s %-26s %s\n' relay calls run load µs/pkt loss_c2p loss_p2c "c→p p50/p99/p99.9" "p→c p50/p99/p99.9" "sender lag"
for n in "${calls[@]}"; do
	for ((r = 1; r <= runs; r++)); do
		for c in "${configs[@]}"; do
			name=${c%%|*}
			# shellcheck disable=SC2086
			args=(${c#*|})
			load=$(cut -d' ' -f1 /proc/loadavg)
			res=$("$bin" load --calls "$n" --duration "$duration" "${args[@]}" 2>&1) || {
				echo "bench-rtpengine: $name at $n calls failed:" >&2
				echo "$res" >&2
				exit 1
			}
			cpu=$(grep 'relay CPU per packet' <<<"$res" | grep -o '[0-9.]* µs' | head -1 | cut -d' ' -f1)
			mapfile -t loss < <(grep ' loss ' <<<"$res" | grep -o '[0-9.]*%')
			# The relay's own delay where the relay holds audio (ToneVault's
			# look-ahead); else the stamped audio's delay.
			c2p=$(grep "of which the relay's own" <<<"$res" | head -1 | sed 's/.*own *//; s/ (.*//' || true)
			[[ -n $c2p ]] || c2p=$(grep 'carrier→platform latency' <<<"$res" | sed 's/.*p99.9 *//; s/ (.*//')
			p2c=$(grep 'platform→carrier latency' <<<"$res" | sed 's/.*p99.9 *//; s/ (.*//')
			lag=$(grep 'worst lag' <<<"$res" | awk '{print $4}')
			printf '%-15s %5s %3s %6s %9s %9s %9s %-26s %-26s %s\n' "$name" "$n" "$r" "$load" "$cpu" "${loss[0]}" "${loss[1]}" "${c2p// /}" "${p2c// /}" "$lag" | tee -a "$out"
		done
	done
done

echo
echo "Summary: relay CPU per packet, min–max over the runs, and its ratio to the batched floor of the same round"
awk '
{ key = $1 " " $2; cpu[key] = cpu[key] " " $5; if ($1 == "batched") floor[$2 " " $3] = $5; row[NR] = $0 }
END {
	for (i = 1; i <= NR; i++) {
		split(row[i], f, " ")
		if (floor[f[2] " " f[3]] > 0) ratio[f[1] " " f[2]] = ratio[f[1] " " f[2]] " " f[5] / floor[f[2] " " f[3]]
		if (!(f[1] " " f[2] in seen)) { seen[f[1] " " f[2]] = 1; order[++n] = f[1] " " f[2] }
	}
	printf "%-15s %5s %17s %15s\n", "relay", "calls", "µs/pkt", "× batched"
	for (i = 1; i <= n; i++) {
		k = order[i]; split(k, f, " ")
		printf "%-15s %5s %17s %15s\n", f[1], f[2], span(cpu[k], "%.1f"), span(ratio[k], "%.2f")
	}
}
function span(list, fmt,   a, m, lo, hi, j) {
	m = split(list, a, " "); lo = hi = a[1] + 0
	for (j = 2; j <= m; j++) { if (a[j] + 0 < lo) lo = a[j] + 0; if (a[j] + 0 > hi) hi = a[j] + 0 }
	return sprintf(fmt "–" fmt, lo, hi)
}' "$out"
