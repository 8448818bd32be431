#!/usr/bin/env bash
# The SIP call-rate benchmark (BENCHMARKS.md): tonevault serve on its
# default loopback ports with a SIPp agent behind it, and a SIPp customer
# placing CALLS calls at RATE per second, each held HOLD_MS (no RTP: this
# measures signalling and the relay's port set-up and teardown).
#
#   scripts/sipp-rate.sh bin/tonevault [RATE] [CALLS] [HOLD_MS]
#
# Prints SIPp's final statistics and the gateway's call counters; exits 1
# when any call failed.
set -euo pipefail

bin=${1:?usage: sipp-rate.sh path/to/tonevault [rate] [calls] [hold_ms]}
rate=${2:-300}
calls=${3:-18000}
hold=${4:-1000}
command -v sipp >/dev/null || { echo "sipp-rate: sipp not found (make deps installs Debian's sip-tester)" >&2; exit 2; }

dir=$(mktemp -d)
pids=()
keep=
cleanup() {
	for p in "${pids[@]}"; do kill "$p" 2>/dev/null || true; done
	wait 2>/dev/null || true
	if [ -n "$keep" ]; then
		echo "sipp-rate: logs kept in $dir" >&2
	else
		rm -rf "$dir"
	fi
}
trap cleanup EXIT

# One SIPp is one source: lift the per-source limits (sip.limits) to the
# rate asked for, and the call caps to twice the calls held at once.
held=$((rate * hold / 1000 * 2 + 100))
max_calls=$((held > 500 ? held : 500))
cat >"$dir/tonevault.yaml" <<EOF
sip:
  limits:
    requests_per_second: $((rate * 2))
    burst: $((rate * 2))
    max_calls: $max_calls
    max_calls_per_source: $max_calls
http:
  listen: 127.0.0.1:18080
log:
  level: warn
audit:
  path: $dir/audit.jsonl
EOF

"$bin" serve --config "$dir/tonevault.yaml" >"$dir/serve.log" 2>&1 &
pids+=($!)
for _ in $(seq 100); do
	curl -fs http://127.0.0.1:18080/readyz >/dev/null 2>&1 && break
	sleep 0.1
done
curl -fs http://127.0.0.1:18080/readyz >/dev/null || { echo "sipp-rate: gateway not ready" >&2; cat "$dir/serve.log" >&2; exit 1; }

sipp -sn uas -i 127.0.0.1 -p 5090 -mi 127.0.0.1 -nostdin >"$dir/uas.out" 2>&1 &
uas=$!
pids+=("$uas")
sleep 0.5
if ! kill -0 "$uas" 2>/dev/null; then
	echo "sipp-rate: the SIPp agent did not start (is 127.0.0.1:5090 in use?):" >&2
	tail -5 "$dir/uas.out" >&2
	exit 1
fi

echo "sipp-rate: $calls calls at $rate/s, each held $hold ms" >&2
set +e
(cd "$dir" && sipp -sn uac 127.0.0.1:5060 -i 127.0.0.1 -p 15061 -mi 127.0.0.1 \
	-r "$rate" -d "$hold" -m "$calls" -nostdin -trace_stat -fd 1 -trace_err \
	>"$dir/uac.out" 2>&1)
code=$?
set -e
# SIPp's last statistics row: elapsed time, rate and totals.
stat=$(ls "$dir"/*_.csv 2>/dev/null | head -1)
if [ -n "$stat" ]; then
	python3 - "$stat" <<'PY'
import csv, sys
rows = list(csv.reader(open(sys.argv[1]), delimiter=';'))
h, last = rows[0], rows[-1]
v = dict(zip(h, last))
def get(k): return v.get(k, '?')
# Per-second rows: the rate at which calls were created while SIPp was
# creating them (the last row's cumulative rate also counts the final
# calls' hold time).
per = [float(dict(zip(h, r))['CallRate(P)']) for r in rows[2:]]
busy = [x for x in per if x > 0][1:-1]  # whole seconds only
print(f"elapsed {get('ElapsedTime(C)')}  calls created {get('TotalCallCreated')}  "
      f"successful {get('SuccessfulCall(C)')}  failed {get('FailedCall(C)')}")
if busy:
    print(f"calls created per second over {len(busy)} whole seconds: "
          f"min {min(busy):.0f}, mean {sum(busy)/len(busy):.1f}, max {max(busy):.0f}; "
          f"overall {get('CallRate(C)')} calls/s including the last calls' hold")
PY
fi
curl -fs http://127.0.0.1:18080/metrics | grep -E '^tonevault_sip_calls_total' || true
if [ "$code" -ne 0 ]; then
	keep=1
	echo "sipp-rate: SIPp exited $code (some calls failed); its errors:" >&2
	cat "$dir"/*_errors.log 2>/dev/null | tail -20 >&2 || true
	exit 1
fi
