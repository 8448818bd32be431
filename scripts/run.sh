#!/usr/bin/env bash
# run.sh — run the whole gateway locally, on loopback, with its embedded
# defaults: a Vault dev server, the acquirer simulator, a SIPp agent that
# answers calls, and `tonevault serve`. `make run` calls it. Ctrl-C stops
# every one of them.
#
# Usage: scripts/run.sh [bin/tonevault]
#
# State (audit trail, Vault AppRole login, PSP queue, logs) goes to .run/
# in the repository; delete it for a fresh start.
set -euo pipefail

root=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
tv=$(realpath "${1:-$root/bin/tonevault}")
state="$root/.run"
mkdir -p "$state/logs"
cd "$state"

step() { printf '\n\033[1m==> %s\033[0m\n' "$*"; }
fail() {
	echo "run: $*" >&2
	exit 1
}

pids=()
cleanup() {
	trap - INT TERM EXIT
	if ((${#pids[@]})); then
		echo
		echo "run: stopping ${#pids[@]} processes"
		# serve first (it ends its calls with BYE and checkpoints the audit
		# trail), then the rest.
		for ((i = ${#pids[@]} - 1; i >= 0; i--)); do
			kill -TERM "${pids[$i]}" 2>/dev/null || true
			wait "${pids[$i]}" 2>/dev/null || true
		done
	fi
}
trap 'cleanup; exit 130' INT TERM
trap cleanup EXIT

# Everything on the default ports must be free: a second `make run`, or a
# stray process, would take calls or payments meant for this one.
for p in 5060 5070 5090 8080 8200 8583; do
	if (exec 3<>"/dev/tcp/127.0.0.1/$p") 2>/dev/null; then
		fail "127.0.0.1:$p is already in use (another make run?); stop it first"
	fi
done

wait_port() { # host port name log
	for _ in $(seq 1 150); do
		if (exec 3<>"/dev/tcp/$1/$2") 2>/dev/null; then
			return 0
		fi
		sleep 0.2
	done
	tail -20 "$4" >&2 || true
	fail "$3 did not start on $1:$2 (log above: $4)"
}

step "Vault server (built from the Go module proxy on first use: several minutes, then cached)"
"$root/scripts/vault-server.sh" build >/dev/null
export TONEVAULT_DEV_ROOT_TOKEN=tonevault-dev-root
"$root/scripts/vault-server.sh" dev 127.0.0.1:8200 >logs/vault.log 2>&1 &
pids+=($!)
wait_port 127.0.0.1 8200 "Vault" logs/vault.log
for _ in $(seq 1 50); do
	curl -fsS http://127.0.0.1:8200/v1/sys/health >/dev/null 2>&1 && break
	sleep 0.2
done
echo "Vault dev server on http://127.0.0.1:8200 (in memory: tokens are gone when it stops)"

step "Vault: mounts, keys, least-privilege policy and the gateway's AppRole login"
VAULT_TOKEN=$TONEVAULT_DEV_ROOT_TOKEN "$tv" vault setup --out "$state/vault" >"$state/vault.yaml"

step "Acquirer simulator (ISO 8583) on 127.0.0.1:8583"
"$tv" psp-sim --listen 127.0.0.1:8583 >logs/psp-sim.log 2>&1 &
pids+=($!)
wait_port 127.0.0.1 8583 "psp-sim" logs/psp-sim.log

step "Agent: SIPp answering calls on sip:agent@127.0.0.1:5090 (echoes the audio it gets)"
command -v sipp >/dev/null || fail "sipp not found: run scripts/install-deps.sh sip"
sipp -sn uas -i 127.0.0.1 -p 5090 -mi 127.0.0.1 -rtp_echo -nostdin >logs/agent-sipp.log 2>&1 &
pids+=($!)

step "An API key for this run"
key_out=$("$tv" api-key --name demo)
api_key=$(awk '/^  tvk_/ {print $1; exit}' <<<"$key_out")
api_hash=$(awk -F'"' '/hash:/ {print $2; exit}' <<<"$key_out")
[[ -n $api_key && -n $api_hash ]] || fail "could not create an API key"

cat >tonevault.yaml <<EOF
# Written by scripts/run.sh for this run, on top of the embedded default.
$(cat vault.yaml)
api:
  keys:
    - name: demo
      hash: "$api_hash"
audit:
  path: $state/audit.jsonl
psp:
  state_dir: $state/psp
EOF

step "Gateway: tonevault serve"
"$tv" serve --config tonevault.yaml >logs/serve.out 2>logs/serve.log &
pids+=($!)
wait_port 127.0.0.1 8080 "tonevault serve" logs/serve.log

cat <<EOF

ToneVault is running on loopback (logs in .run/logs/, audit trail .run/audit.jsonl).

  customer side (SIP)   127.0.0.1:5060      agent side  127.0.0.1:5070 → sip:agent@127.0.0.1:5090 (SIPp)
  API + widget          http://127.0.0.1:8080   (API key for this run: $api_key)
  Vault                 http://127.0.0.1:8200   psp-sim 127.0.0.1:8583

Take a test payment, in a second terminal:

  1. Place a call as the customer; it waits 25 s (for step 2), then types the card on the keypad:
       echo '4111111111111111#1230#737#' | $tv call --digits - --dtmf rfc4733 --delay 25s --wait 30s

  2. As the agent, start the payment. Either open the widget:
       KEY=$api_key
       CALL=\$(curl -s -H "Authorization: Bearer \$KEY" http://127.0.0.1:8080/v1/calls?state=answered | sed -n 's/.*"id":"\\(c-[a-z0-9]*\\)".*/\\1/p' | head -1)
       TOKEN=\$(curl -s -H "Authorization: Bearer \$KEY" -H 'Content-Type: application/json' -d "{\\"call_id\\":\\"\$CALL\\"}" http://127.0.0.1:8080/v1/widget-tokens | sed -n 's/.*"token":"\\([^"]*\\)".*/\\1/p')
       xdg-open "http://127.0.0.1:8080/widget/?call=\$CALL&token=\$TOKEN"     # or paste it in a browser
     and press "Take payment"; or use the API directly:
       curl -s -H "Authorization: Bearer \$KEY" -H 'Content-Type: application/json' -H 'Idempotency-Key: demo-1' \\
            -d '{"amount":1999,"currency":"GBP","merchant_reference":"order-1","description":"demo"}' \\
            http://127.0.0.1:8080/v1/calls/\$CALL/payments

  3. Watch the fields fill (masked), then submit (widget button, or POST /v1/payments/{id}/submit):
     psp-sim approves 4111111111111111; 4000000000000002 is declined (see: $tv psp-sim --help).

  4. After Ctrl-C, check the audit trail:
       $tv audit verify --hmac-key-file .run/audit.jsonl.devkey --key-id dev .run/audit.jsonl

Ctrl-C stops everything.
EOF

# Stay up until Ctrl-C or until one of them dies.
wait -n "${pids[@]}" || true
echo "run: a process stopped; see .run/logs/" >&2
