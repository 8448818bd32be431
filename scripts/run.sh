#!/usr/bin/env bash
# run.sh — run the whole gateway locally, on loopback, with its embedded
# defaults: a Vault dev server, the acquirer simulator, a SIPp agent that
# answers calls, a webhook receiver (tonevault webhook-echo) and
# `tonevault serve`; then print, step by step, the commands that take a
# test payment. `make run` calls it. Ctrl-C stops every one of them.
#
# Usage: scripts/run.sh [bin/tonevault]
#
# State (audit trail, Vault AppRole login, the store with the reversal
# queue, webhook secret, the demo call's keypad pipe, logs) goes to .run/
# in the repository; delete it for a fresh start.
set -euo pipefail

root=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
tv=$(realpath "${1:-$root/bin/tonevault}")
state="$root/.run"
mkdir -p "$state/logs"
cd "$state"

name=run
. "$root/scripts/procs.sh"

# Everything on the default ports must be free: a second `make run`, or a
# stray process, would take calls or payments meant for this one.
for p in 5060 5070 5090 8080 8099 8200 8583; do
	if (exec 3<>"/dev/tcp/127.0.0.1/$p") 2>/dev/null; then
		fail "127.0.0.1:$p is already in use (another make run?); stop it first"
	fi
done
for c in curl jq; do
	command -v "$c" >/dev/null || fail "$c not found: run scripts/install-deps.sh sip"
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

if "$root/scripts/vault-server.sh" path >/dev/null 2>&1; then
	step "Vault server"
else
	step "Vault server: built once from the Go module proxy, about 10 minutes on 2 cores (progress every 30 s), then cached"
fi
"$root/scripts/vault-server.sh" build >/dev/null
# The dev server's root token: new each run, and given to two processes
# only, in their environment: the Vault dev server and the one-off
# `vault setup` below. Every other process starts without it (and
# without any VAULT_TOKEN from the calling shell): serve logs in to Vault
# with the AppRole that setup creates, and nothing else needs Vault.
root_token=$(head -c 24 /dev/urandom | base64 | tr -d '/+=')
unset TONEVAULT_DEV_ROOT_TOKEN VAULT_TOKEN VAULT_DEV_ROOT_TOKEN_ID
TONEVAULT_DEV_ROOT_TOKEN=$root_token bg "$root/scripts/vault-server.sh" dev 127.0.0.1:8200 >logs/vault.log 2>&1
vault_pid=${pids[-1]}
wait_port 127.0.0.1 8200 "Vault" logs/vault.log
for _ in $(seq 1 50); do
	curl -fsS http://127.0.0.1:8200/v1/sys/health >/dev/null 2>&1 && break
	sleep 0.2
done
echo "Vault dev server on http://127.0.0.1:8200 (in memory: tokens are gone when it stops)"

step "Vault: mounts, keys, least-privilege policy and the gateway's AppRole login"
VAULT_TOKEN=$root_token "$tv" vault setup --out "$state/vault" >"$state/vault.yaml"

step "Acquirer simulator (ISO 8583) on 127.0.0.1:8583"
bg "$tv" psp-sim --listen 127.0.0.1:8583 >logs/psp-sim.log 2>&1
wait_port 127.0.0.1 8583 "psp-sim" logs/psp-sim.log

step "Agent: SIPp answering calls on sip:agent@127.0.0.1:5090 (echoes the audio it gets)"
command -v sipp >/dev/null || fail "sipp not found: run scripts/install-deps.sh sip"
bg sipp -sn uas -i 127.0.0.1 -p 5090 -mi 127.0.0.1 -rtp_echo -nostdin >logs/agent-sipp.log 2>&1

step "Webhook receiver: tonevault webhook-echo on http://127.0.0.1:8099/ (the events print here)"
# serve signs the webhooks with this secret and webhook-echo checks them
# with it. Kept across runs, like the rest of .run/.
if [[ ! -s webhook.secret ]]; then
	(umask 077 && head -c 32 /dev/urandom | base64 -w0 >webhook.secret)
fi
# tee -i: Ctrl-C must not end the pipe before webhook-echo's last line.
bg "$tv" webhook-echo --listen 127.0.0.1:8099 --secret-file "$state/webhook.secret" \
	> >(tee -i -a logs/webhook-echo.log) 2>&1
wait_port 127.0.0.1 8099 "webhook-echo" logs/webhook-echo.log

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
  webhook:
    url: http://127.0.0.1:8099/
    secret_file: $state/webhook.secret
audit:
  path: $state/audit.jsonl
psp:
  state_dir: $state/psp
sip:
  # Ctrl-C gives the calls in progress this long to end before BYE.
  drain_timeout: 3s
store:
  sqlite:
    path: $state/tonevault.db
EOF

step "Gateway: tonevault serve"
bg "$tv" serve --config tonevault.yaml >logs/serve.out 2>logs/serve.log
wait_port 127.0.0.1 8080 "tonevault serve" logs/serve.log

# Make sure: no process but Vault's has the root token in its environment.
for pid in "${pids[@]}"; do
	[[ $pid == "$vault_pid" ]] && continue
	if tr '\0' '\n' <"/proc/$pid/environ" 2>/dev/null | grep -qF "$root_token"; then
		fail "process $pid ($(tr '\0' ' ' <"/proc/$pid/cmdline")) has the Vault root token in its environment"
	fi
done

# The demo customer's keypad: `tonevault call --keypad` types each line
# written to this named pipe. A pipe keeps nothing on disk; anything else
# at that name (a file someone wrote keys to) goes.
rm -f "$state/keypad"
mkfifo -m 0600 "$state/keypad"

# The walkthrough: pasted into bash in order, each block works as it
# stands. @TV@, @KEY@ and @STATE@ are filled in below; shell variables
# (KEY, API, CALL, PAY) carry each answer to the next step.
walkthrough=$(
	cat <<'WALKTHROUGH'

ToneVault is running on loopback. Logs: .run/logs/; audit trail: .run/audit.jsonl.

  customer side (SIP)  127.0.0.1:5060   agent side 127.0.0.1:5070 → sip:agent@127.0.0.1:5090 (SIPp)
  API and widget       http://127.0.0.1:8080 (API key for this run: @KEY@)
  webhooks             signed with .run/webhook.secret, checked by webhook-echo: they print here
  Vault                http://127.0.0.1:8200   psp-sim 127.0.0.1:8583

Take a test payment: paste each block into bash, in order.

In a second terminal, be the customer. The call stays on the line, types what
step 4 writes to its keypad, and hangs up 10 minutes after the last keys (or on Ctrl-C):

  @TV@ call --header 'X-Interaction-ID: demo-1' --keypad @STATE@/keypad --dtmf rfc4733

In a third terminal, be the agent and the CRM:

  1. Find the call by the header it carries, as a CRM does:

       KEY=@KEY@ API=http://127.0.0.1:8080
       CALL=$(curl -sS -H "Authorization: Bearer $KEY" "$API/v1/calls?correlation=X-Interaction-ID:demo-1&state=answered" | jq -r '.calls[-1].id // empty')
       echo "call ${CALL:?not found: is the call in the second terminal up?}"

  2. Start a payment of £19.99 on it:

       PAY=$(curl -sS -H "Authorization: Bearer $KEY" -H 'Content-Type: application/json' -H "Idempotency-Key: $CALL-$RANDOM" \
             -d '{"amount":1999,"currency":"GBP","merchant_reference":"order-1","description":"demo"}' \
             "$API/v1/calls/$CALL/payments" | jq -r '.id // ("not started: " + (.detail // .title) + "\n" | halt_error)')
       echo "payment ${PAY:?not started}"

  3. Follow it live, in the background (the stream ends when the payment does):

       curl -sSN -H "Authorization: Bearer $KEY" "$API/v1/payments/$PAY/events" | jq --unbuffered -Rr 'select(startswith("data: ")) | .[6:] | fromjson
         | "  [\(.state)] " + ([.fields[] | .name + " " + .masked + (if .valid then " ✓" elif .error then " (" + .error + ")" else "" end)] | join(", "))
         + (if .result then " → " + .result.outcome + " " + (.result.auth_code // .result.reason // "") else "" end)' &

  4. Be the customer again: type the card number, expiry (MMYY) and security code, each ended by #.
     psp-sim approves 4111111111111111 and declines 4000000000000002 (tonevault psp-sim --help has the rest):

       echo '4111111111111111#1230#737#' > @STATE@/keypad

     Step 3 prints each key as it arrives, masked, until [complete] (about 10 s).
     If echo hangs, the call has ended: Ctrl-C, and place it again in the second terminal.

  5. Submit: Vault tokenizes the card and psp-sim authorizes it:

       curl -sS -X POST -H "Authorization: Bearer $KEY" "$API/v1/payments/$PAY/submit" | jq '{state, reason, result}'

  6. The outcome as the CRM reads it (its signed webhook has printed in the first terminal):

       curl -sS -H "Authorization: Bearer $KEY" "$API/v1/payments/$PAY" | jq '{state, card: .fields[0].masked, result}'

  Instead of curl for steps 2, 3 and 5, the agent widget (place the call again first if it ended, and redo step 1):

       TOKEN=$(curl -sS -H "Authorization: Bearer $KEY" -H 'Content-Type: application/json' -d "{\"call_id\":\"$CALL\"}" "$API/v1/widget-tokens" | jq -r .token)
       echo "$API/widget/?call=$CALL&token=$TOKEN"    # open it in a browser, press Take payment, then do step 4

After Ctrl-C here, check the audit trail:

  @TV@ audit verify --hmac-key-file @STATE@/audit.jsonl.devkey --key-id dev --anchor-file @STATE@/audit.jsonl.anchor @STATE@/audit.jsonl

Ctrl-C stops everything.
WALKTHROUGH
)
walkthrough=${walkthrough//@TV@/$tv}
walkthrough=${walkthrough//@KEY@/$api_key}
walkthrough=${walkthrough//@STATE@/$state}
printf '%s\n\n' "$walkthrough"

# Stay up until Ctrl-C or until one of them dies.
wait -n "${pids[@]}" || true
echo "run: a process stopped; see .run/logs/" >&2
