#!/usr/bin/env bash
# cluster.sh — ToneVault as a cluster on loopback: PostgreSQL, a 3-node
# Vault HA cluster (integrated storage), three `tonevault serve` nodes,
# Kamailio in front of them (configs/kamailio), the acquirer simulator, a
# SIPp agent and a webhook receiver; then print how to use it.
# `make cluster` calls it. Every process is this script's own, not a
# system service; Ctrl-C stops them all.
#
# Usage: scripts/cluster.sh [bin/tonevault]
#
# State goes to .cluster/ in the repository: PostgreSQL's data (kept
# across runs), the nodes' audit trails, certificates and logs. Vault is
# made anew each run (its root token and unseal key live in .cluster/vault
# for the run only).
#
#   Kamailio (SIP entry)   127.0.0.1:5060 UDP
#   nodes gw1 gw2 gw3      carrier 127.0.0.1:5161-5163, platform 5171-5173,
#                          API http://127.0.0.1:8081-8083, peers (mTLS) 9441-9443
#   Vault                  http://127.0.0.1:8200, 8210, 8220
#   PostgreSQL             127.0.0.1:15432, database tonevault
#   psp-sim 127.0.0.1:8583, SIPp agent 127.0.0.1:5090, webhook-echo 127.0.0.1:8099
set -euo pipefail

root=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
tv=$(realpath "${1:-$root/bin/tonevault}")
state="$root/.cluster"
mkdir -p "$state/logs"
cd "$state"

name=cluster
. "$root/scripts/procs.sh"

for p in 5060 5090 8081 8082 8083 8099 8200 8201 8210 8211 8220 8221 8583 9441 9442 9443 15432; do
	if (exec 3<>"/dev/tcp/127.0.0.1/$p") 2>/dev/null; then
		fail "127.0.0.1:$p is already in use (another make cluster or make run?); stop it first"
	fi
done
rm -f keypad
mkfifo -m 0600 keypad
for c in curl jq kamailio sipp; do
	command -v "$c" >/dev/null || fail "$c not found: run scripts/install-deps.sh sip cluster"
done
pgbin=$(ls -d /usr/lib/postgresql/*/bin 2>/dev/null | sort -V | tail -1)
[[ -x $pgbin/postgres ]] || fail "PostgreSQL not found: run scripts/install-deps.sh store"

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

step "PostgreSQL on 127.0.0.1:15432 (data in .cluster/pg, kept across runs)"
# PostgreSQL refuses to run as root: as root it runs as Debian's postgres user.
as_pg=()
if [[ $(id -u) -eq 0 ]]; then
	as_pg=(runuser -u postgres --)
fi
if [[ ! -s pg/PG_VERSION ]]; then
	mkdir -p pg
	[[ ${#as_pg[@]} -eq 0 ]] || chown postgres: pg
	"${as_pg[@]}" "$pgbin/initdb" -D "$state/pg" -U tonevault --auth=trust -E UTF8 >logs/initdb.log 2>&1 ||
		{ tail -20 logs/initdb.log >&2; fail "initdb failed"; }
fi
bg "${as_pg[@]}" "$pgbin/postgres" -D "$state/pg" -p 15432 -c listen_addresses=127.0.0.1 -c unix_socket_directories= \
	-c max_connections=100 >logs/postgres.log 2>&1
wait_port 127.0.0.1 15432 PostgreSQL logs/postgres.log
for _ in $(seq 1 50); do
	"$pgbin/pg_isready" -q -h 127.0.0.1 -p 15432 && break
	sleep 0.2
done
"$pgbin/psql" -h 127.0.0.1 -p 15432 -U tonevault -d postgres -Atc "SELECT 1 FROM pg_database WHERE datname='tonevault'" | grep -q 1 ||
	"$pgbin/createdb" -h 127.0.0.1 -p 15432 -U tonevault tonevault

if "$root/scripts/vault-server.sh" path >/dev/null 2>&1; then
	step "Vault: three servers, integrated storage (Raft)"
else
	step "Vault: built once from the Go module proxy, about 10 minutes on 2 cores, then cached"
fi
vault=$("$root/scripts/vault-server.sh" build)
rm -rf vault && mkdir -m 0700 vault
unset VAULT_TOKEN VAULT_ADDR
for i in 1 2 3; do
	port=$((8200 + (i - 1) * 10))
	mkdir -p "vault/$i"
	join=""
	[[ $i -gt 1 ]] && join=$'  retry_join {\n    leader_api_addr = "http://127.0.0.1:8200"\n  }'
	cat >"vault/vault-$i.hcl" <<EOF
storage "raft" {
  path    = "$state/vault/$i"
  node_id = "vault-$i"
  performance_multiplier = 5
$join
}
listener "tcp" {
  address         = "127.0.0.1:$port"
  cluster_address = "127.0.0.1:$((port + 1))"
  tls_disable     = true
}
api_addr      = "http://127.0.0.1:$port"
cluster_addr  = "http://127.0.0.1:$((port + 1))"
disable_mlock = true
ui            = false
EOF
	bg env -u VAULT_TOKEN HOME="$state/vault" VAULT_LOG_LEVEL=warn "$vault" server -config="vault/vault-$i.hcl" >"logs/vault-$i.log" 2>&1
	wait_port 127.0.0.1 "$port" "Vault $i" "logs/vault-$i.log"
done
init=$(curl -fsS -X PUT -d '{"secret_shares":1,"secret_threshold":1}' http://127.0.0.1:8200/v1/sys/init) || fail "vault init failed"
(umask 077 && echo "$init" >vault/init.json)
unseal_key=$(jq -r '.keys[0]' <<<"$init")
root_token=$(jq -r '.root_token' <<<"$init")
unseal() { curl -fsS -X PUT -d "{\"key\":\"$unseal_key\"}" "http://127.0.0.1:$1/v1/sys/unseal" | jq -r .sealed; }
[[ $(unseal 8200) == false ]] || fail "vault 1 did not unseal"
for _ in $(seq 1 100); do
	[[ $(curl -s -o /dev/null -w '%{http_code}' http://127.0.0.1:8200/v1/sys/health) == 200 ]] && break
	sleep 0.2
done
# A joined node votes once autopilot has seen it healthy this long.
curl -fsS -X POST -H "X-Vault-Token: $root_token" -d '{"server_stabilization_time":"1s"}' \
	http://127.0.0.1:8200/v1/sys/storage/raft/autopilot/configuration >/dev/null
for port in 8210 8220; do
	for _ in $(seq 1 100); do
		[[ $(unseal "$port" 2>/dev/null) == false ]] && break
		sleep 0.3
	done
done
for _ in $(seq 1 100); do
	voters=$(curl -fsS -H "X-Vault-Token: $root_token" http://127.0.0.1:8200/v1/sys/storage/raft/configuration 2>/dev/null |
		jq '[.data.config.servers[] | select(.voter)] | length' 2>/dev/null || echo 0)
	[[ $voters == 3 ]] && break
	sleep 0.3
done
[[ $voters == 3 ]] || fail "the Vault cluster has $voters voters, not 3 (logs in .cluster/logs/vault-*.log)"
echo "Vault HA: http://127.0.0.1:8200 (active), 8210 and 8220 (standbys)"
printf 'vault:\n  address: http://127.0.0.1:8200\n' >vault/setup.yaml
VAULT_TOKEN=$root_token "$tv" vault setup --config vault/setup.yaml --out "$state/vault/approle" >vault/gateway.yaml

step "Acquirer simulator, SIPp agent (sip:agent@127.0.0.1:5090), webhook receiver"
bg "$tv" psp-sim --listen 127.0.0.1:8583 >logs/psp-sim.log 2>&1
wait_port 127.0.0.1 8583 psp-sim logs/psp-sim.log
bg sipp -sn uas -i 127.0.0.1 -p 5090 -mi 127.0.0.1 -rtp_echo -nostdin >logs/agent-sipp.log 2>&1
if [[ ! -s webhook.secret ]]; then
	(umask 077 && head -c 32 /dev/urandom | base64 -w0 >webhook.secret)
fi
if [[ ! -s widget.secret ]]; then
	(umask 077 && head -c 32 /dev/urandom | base64 -w0 >widget.secret)
fi
bg "$tv" webhook-echo --listen 127.0.0.1:8099 --secret-file "$state/webhook.secret" \
	> >(tee -i -a logs/webhook-echo.log) 2>&1
wait_port 127.0.0.1 8099 webhook-echo logs/webhook-echo.log

step "Three gateway nodes: gw1, gw2, gw3"
key_out=$("$tv" api-key --name demo)
api_key=$(awk '/^  tvk_/ {print $1; exit}' <<<"$key_out")
api_hash=$(awk -F'"' '/hash:/ {print $2; exit}' <<<"$key_out")
[[ -n $api_key && -n $api_hash ]] || fail "could not create an API key"
"$tv" cluster-certs --dir "$state/certs" gw1 gw2 gw3 >/dev/null
role_id=$(cat vault/approle/role-id)
for i in 1 2 3; do
	peers=""
	for j in 1 2 3; do
		[[ $j == "$i" ]] || peers+="    - {name: gw$j, addr: 127.0.0.1:944$j}"$'\n'
	done
	cat >"gw$i.yaml" <<EOF
# Written by scripts/cluster.sh, on top of the embedded default.
sip:
  trunks:
    carrier:
      listen: 127.0.0.1:516$i
    platform:
      listen: 127.0.0.1:517$i
  drain_timeout: 3s
  limits:                           # behind Kamailio, every call comes from its address
    max_calls: 500
    max_calls_per_source: 500
    requests_per_second: 500
    burst: 1000
media:
  port_min: $((20000 + (i - 1) * 3334))
  port_max: $((20000 + i * 3334 - 3))
http:
  listen: 127.0.0.1:808$i
audit:
  path: $state/gw$i-audit.jsonl
api:
  keys:
    - name: demo
      hash: "$api_hash"
  widget_secret_file: $state/widget.secret
  webhook:
    url: http://127.0.0.1:8099/
    secret_file: $state/webhook.secret
vault:
  address: http://127.0.0.1:8200
  addresses: [http://127.0.0.1:8200, http://127.0.0.1:8210, http://127.0.0.1:8220]
  auth:
    method: approle
    role_id: $role_id
    secret_id_file: $state/vault/approle/secret-id
  retries: 10                       # with backoff 500ms: rides out an election (5-10 s)
  backoff: 500ms
psp:
  state_dir: ""
store:
  driver: postgres
  postgres:
    url: postgres://tonevault@127.0.0.1:15432/tonevault?sslmode=disable
cluster:
  node: gw$i
  listen: 127.0.0.1:944$i
  peers:
$peers  cert_file: $state/certs/gw$i.pem
  key_file: $state/certs/gw$i.key
  ca_file: $state/certs/ca.pem
EOF
	bg "$tv" serve --config "gw$i.yaml" >"logs/gw$i.out" 2>"logs/gw$i.log"
done
for i in 1 2 3; do
	wait_port 127.0.0.1 "808$i" "gw$i" "logs/gw$i.log"
done

step "Kamailio on 127.0.0.1:5060, dispatching to the three nodes"
printf '1 sip:127.0.0.1:5161\n1 sip:127.0.0.1:5162\n1 sip:127.0.0.1:5163\n' >dispatcher.list
mkdir -p kamailio
bg kamailio -f "$root/configs/kamailio/kamailio.cfg" -DD -E -e -l udp:127.0.0.1:5060 \
	-Y "$state/kamailio" -P "$state/kamailio/kamailio.pid" -w "$state/kamailio" -m 64 -M 8 \
	-A "DS_LIST=\"$state/dispatcher.list\"" -A DS_PING_INTERVAL=1 >logs/kamailio.log 2>&1
sleep 2
kill -0 "${pids[-1]}" 2>/dev/null || { tail -20 logs/kamailio.log >&2; fail "kamailio did not start"; }

# No process but Vault's and setup's had the root token.
for pid in "${pids[@]}"; do
	if tr '\0' '\n' <"/proc/$pid/environ" 2>/dev/null | grep -qF "$root_token"; then
		fail "process $pid has the Vault root token in its environment"
	fi
done

cat <<EOF

ToneVault is running as a cluster on loopback. Logs: .cluster/logs/.

  SIP entry (Kamailio)  127.0.0.1:5060 → gw1 127.0.0.1:5161, gw2 :5162, gw3 :5163 (Call-ID hash, OPTIONS probes every 1 s)
  API, any node         http://127.0.0.1:8081 (gw1), :8082 (gw2), :8083 (gw3); API key for this run: $api_key
  PostgreSQL            postgres://tonevault@127.0.0.1:15432/tonevault
  Vault HA              http://127.0.0.1:8200, :8210, :8220   psp-sim 127.0.0.1:8583   webhooks print here

Take a payment through the cluster (paste each block into bash, in another terminal):

  # The customer, through Kamailio; the node that takes the call is in its id (c-gwN-...):
  $tv call --header 'X-Interaction-ID: demo-1' --keypad $state/keypad sip:pay@127.0.0.1:5060 2>/dev/null &
  sleep 2
  # The CRM talks to any node: find the call on gw2, start the payment on gw3, submit on gw1.
  KEY=$api_key
  CALL=\$(curl -sS -H "Authorization: Bearer \$KEY" "http://127.0.0.1:8082/v1/calls?correlation=X-Interaction-ID:demo-1&state=answered" | jq -r '.calls[-1].id')
  PAY=\$(curl -sS -H "Authorization: Bearer \$KEY" -H 'Content-Type: application/json' -H "Idempotency-Key: \$CALL" \\
       -d '{"amount":1999,"currency":"GBP"}' "http://127.0.0.1:8083/v1/calls/\$CALL/payments" | jq -r .id)
  echo "call \$CALL payment \$PAY"
  echo '4111111111111111#1230#737#' > $state/keypad; sleep 12
  curl -sS -X POST -H "Authorization: Bearer \$KEY" "http://127.0.0.1:8081/v1/payments/\$PAY/submit" | jq '{state, result}'

  # 200 calls through Kamailio, spread over the nodes:
  sipp -sn uac 127.0.0.1:5060 -i 127.0.0.1 -p 15999 -r 50 -m 200 -d 3000 -nostdin
  curl -sS -H "Authorization: Bearer \$KEY" http://127.0.0.1:8081/v1/calls | jq -r '.calls[].id' | cut -d- -f2 | sort | uniq -c

  # Kill a node: Kamailio stops sending it calls within a probe interval; a survivor ends its live
  # payments (failed, gateway_restarted) after cluster.dead_after and reverses what it had in flight:
  kill -9 \$(pgrep -f 'tonevault serve --config gw2.yaml')

  # Kill the active Vault node: the nodes follow the new one:
  kill -9 \$(pgrep -f 'vault-1.hcl')

Ctrl-C stops everything.

EOF

wait -n "${pids[@]}" || true
echo "cluster: a process stopped; see .cluster/logs/" >&2
