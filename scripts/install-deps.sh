#!/usr/bin/env bash
# install-deps.sh — install the Debian packages ToneVault's tests need.
#
# Usage: scripts/install-deps.sh [group...]     (default group: dtmf)
#        scripts/install-deps.sh --list [group...]  print the packages only
#
# Groups:
#   dtmf     reference DTMF detectors and the talk-off corpus
#            (multimon-ng, SpanDSP, sox, espeak-ng, Asterisk sounds, a C compiler)
#   sip      SIP peers and captures (SIPp, baresip, tshark), and curl and
#            jq for the commands make run prints
#   browser  headless Chromium for the agent widget's end-to-end tests
#   store    PostgreSQL, which the store's tests start as their own server
#            (the gateway's default database, SQLite, needs nothing)
#   memory   gdb, whose gcore dumps a running gateway for the test that
#            searches its memory for card data
#   rtpengine  Debian's rtpengine-daemon, the relay make bench-rtpengine
#            compares with (the daemon only, run in userspace: not the
#            metapackage, which builds a kernel module). Not in all.
#   cluster  Kamailio, the SIP load balancer in front of a cluster's
#            nodes (test/cluster and make cluster start it as their own
#            process; the package's system service is not used)
#   all      every group but rtpengine
#
# Idempotent and fast when everything is present: it only asks dpkg what is
# installed, and runs `apt-get update` (once) and `apt-get install` only for
# what is missing. Uses sudo when not root and sudo exists. Exits non-zero
# with a clear message when it cannot install.
set -euo pipefail

group_packages() {
	case "$1" in
	dtmf) echo "multimon-ng libspandsp-dev sox espeak-ng asterisk-moh-opsound-wav asterisk-core-sounds-en-wav gcc pkg-config" ;;
	sip) echo "sip-tester baresip tshark curl jq" ;;
	browser) echo "chromium" ;;
	store) echo "postgresql" ;;
	memory) echo "gdb" ;;
	rtpengine) echo "rtpengine-daemon" ;;
	cluster) echo "kamailio" ;;
	all) echo "$(group_packages dtmf) $(group_packages sip) $(group_packages browser) $(group_packages store) $(group_packages memory) $(group_packages cluster)" ;;
	*)
		echo "install-deps: unknown group '$1' (known: dtmf sip browser store memory cluster rtpengine all)" >&2
		return 1
		;;
	esac
}

list_only=0
groups=()
for arg in "$@"; do
	case "$arg" in
	--list) list_only=1 ;;
	-h | --help)
		sed -n '2,23p' "$0" | sed 's/^# \{0,1\}//'
		exit 0
		;;
	*) groups+=("$arg") ;;
	esac
done
if [[ ${#groups[@]} -eq 0 ]]; then
	groups=(dtmf)
fi

wanted=()
for g in "${groups[@]}"; do
	pkgs=$(group_packages "$g") || exit 2
	for p in $pkgs; do
		wanted+=("$p")
	done
done

if [[ $list_only -eq 1 ]]; then
	printf '%s\n' "${wanted[@]}" | awk '!seen[$0]++'
	exit 0
fi

installed() {
	dpkg-query -W -f='${Status}' "$1" 2>/dev/null | grep -q 'install ok installed'
}

missing=()
for p in "${wanted[@]}"; do
	if ! command -v dpkg-query >/dev/null 2>&1 || ! installed "$p"; then
		# skip duplicates
		dup=0
		for m in "${missing[@]+"${missing[@]}"}"; do
			[[ $m == "$p" ]] && dup=1
		done
		[[ $dup -eq 0 ]] && missing+=("$p")
	fi
done

if [[ ${#missing[@]} -eq 0 ]]; then
	echo "install-deps: all present (${groups[*]})"
	exit 0
fi

echo "install-deps: installing for ${groups[*]}: ${missing[*]}"

if ! command -v apt-get >/dev/null 2>&1; then
	echo "install-deps: apt-get not found; install these packages by hand: ${missing[*]}" >&2
	exit 1
fi

as_root=()
if [[ $(id -u) -ne 0 ]]; then
	if command -v sudo >/dev/null 2>&1; then
		as_root=(sudo -E)
	else
		echo "install-deps: not root and sudo is not available; run as root or install: ${missing[*]}" >&2
		exit 1
	fi
fi

export DEBIAN_FRONTEND=noninteractive
apt_opts=(-y -q --no-install-recommends -o Dpkg::Options::=--force-confdef -o Dpkg::Options::=--force-confold)

if ! "${as_root[@]}" apt-get update -q; then
	echo "install-deps: apt-get update failed; cannot install: ${missing[*]}" >&2
	exit 1
fi
# apt and dpkg hold locks, and a concurrent apt run (another test suite, an
# unattended upgrade) can make one attempt fail: wait for the lock, then try
# once more before giving up.
apt_opts+=(-o DPkg::Lock::Timeout=120)
if ! "${as_root[@]}" apt-get install "${apt_opts[@]}" "${missing[@]}"; then
	echo "install-deps: apt-get install failed; retrying once" >&2
	sleep 5
	"${as_root[@]}" dpkg --configure -a || true
	if ! "${as_root[@]}" apt-get install "${apt_opts[@]}" "${missing[@]}"; then
		echo "install-deps: apt-get install failed for: ${missing[*]}" >&2
		exit 1
	fi
fi

# Verify: a package name that apt resolved to something else, or a failed
# post-install script, must not pass silently.
still=()
for p in "${missing[@]}"; do
	installed "$p" || still+=("$p")
done
if [[ ${#still[@]} -gt 0 ]]; then
	echo "install-deps: still missing after install: ${still[*]}" >&2
	exit 1
fi
echo "install-deps: installed ${missing[*]}"
