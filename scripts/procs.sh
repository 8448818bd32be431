# procs.sh — sourced by run.sh and cluster.sh, after they set $name (how
# their messages start): step and fail, and the processes of the stack.
#
# Each process runs in its own session (bg), out of the terminal's reach:
# Ctrl-C reaches the sourcing script alone, which stops them in reverse
# order of start. Were they to get it too, the SIPp agent would be gone
# before serve's BYE to it, and serve would wait out its shutdown timeout.

step() { printf '\n\033[1m==> %s\033[0m\n' "$*"; }
fail() {
	echo "$name: $*" >&2
	exit 1
}

pids=()
bg() { # command... (started in the background; its pid joins pids)
	setsid "$@" &
	pids+=($!)
}
cleanup() {
	trap - INT TERM HUP EXIT
	if ((${#pids[@]})); then
		echo
		echo "$name: stopping ${#pids[@]} processes"
		# The last started first: serve ends its calls with BYE and
		# checkpoints its audit trail before what it talks to goes.
		for ((i = ${#pids[@]} - 1; i >= 0; i--)); do
			kill -TERM "${pids[$i]}" 2>/dev/null || true
			wait "${pids[$i]}" 2>/dev/null || true
		done
	fi
}
trap 'cleanup; exit 130' INT TERM HUP
trap cleanup EXIT
