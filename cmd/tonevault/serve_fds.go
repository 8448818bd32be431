package main

import (
	"fmt"
	"os"

	"github.com/tonevault/tonevault/sip"
)

// The file descriptor budget. serve raises RLIMIT_NOFILE's soft limit to
// the hard limit at start, then splits it:
//
//	HTTP connections = limit − in use at start − headroom − sip.limits.max_calls × sip.FilesPerCall
//
// "In use at start" is what serve holds once its SIP, media and audit
// sockets and files are open; the headroom covers what it opens later
// (Vault and acquirer connections, webhook deliveries, the PSP queue's
// files); each call may take sip.FilesPerCall (6: RTP and RTCP on both
// legs, and a TCP connection per leg). So however many clients connect,
// the HTTP side cannot take the descriptors that calls need: past its
// share, new HTTP clients wait in the listen backlog, holding none.
// http.max_conns can only lower the HTTP share. A limit too low to leave
// minHTTPConns is a configuration error.
const (
	fdHeadroom   = 64
	minHTTPConns = 16
)

// fdBudget is the split of the descriptor limit.
type fdBudget struct {
	limit, inUse, calls, http int
}

func (b fdBudget) String() string {
	return fmt.Sprintf("limit %d = %d in use at start + %d headroom + %d for calls + %d for HTTP", b.limit, b.inUse, fdHeadroom, b.calls, b.http)
}

// splitFDs computes the budget; an error says what to change.
func splitFDs(limit, inUse, maxCalls int) (fdBudget, error) {
	b := fdBudget{limit: limit, inUse: inUse, calls: maxCalls * sip.FilesPerCall}
	b.http = limit - inUse - fdHeadroom - b.calls
	if b.http < minHTTPConns {
		return b, fmt.Errorf("the file descriptor limit (RLIMIT_NOFILE) is %d: with %d in use, %d of headroom and %d for sip.limits.max_calls %d (%d each), "+
			"%d would be left for HTTP connections, fewer than %d; raise the hard limit (ulimit -Hn, systemd LimitNOFILE=) or lower sip.limits.max_calls",
			limit, inUse, fdHeadroom, b.calls, maxCalls, sip.FilesPerCall, max(b.http, 0), minHTTPConns)
	}
	return b, nil
}

// openFDs counts the process's open descriptors (Linux /proc; elsewhere
// an estimate).
func openFDs() int {
	if es, err := os.ReadDir("/proc/self/fd"); err == nil {
		return len(es)
	}
	return 32
}
