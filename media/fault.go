package media

import (
	"fmt"
	"net"
	"os"
	"sync/atomic"

	"go.uber.org/zap"

	"github.com/tonevault/tonevault/internal/panics"
)

// Faults (DESIGN.md invariant 8): a panic while relaying one call's
// packets ends that call and no other. The packet that panicked is
// dropped, and so is every later packet of the session: the masker's
// state can no longer be trusted, and audio it has not masked never
// leaves. Done closes with ErrFault and package sip ends the call (BYE
// on both legs, a call.failed record). A ring that fails ends its own
// sessions the same way, with ErrRingFailed (uring_linux.go).

// testFault, when set, is called on every carrier audio packet with the
// session locked, just before the masker runs: a panic in it is a panic
// in the masker. Only tests set it (export_test.go); nothing reaches it
// from configuration or the network.
var testFault atomic.Pointer[func(callID string)]

// runTestFault is the hook's call site.
func runTestFault(callID string) {
	if h := testFault.Load(); h != nil {
		(*h)(callID)
	}
}

// recoverFault, deferred, turns a panic in the session's handling into
// the end of the session (ErrFault), logged with where it happened.
func (s *Session) recoverFault(where string) {
	if v := recover(); v != nil {
		s.fault(where, v)
	}
}

// fault ends the session after a panic: every packet of it is dropped
// from now on, and Done closes with ErrFault.
func (s *Session) fault(where string, v any) {
	if s.faulted.CompareAndSwap(false, true) {
		s.r.m.faults[faultSession].Inc()
		s.r.log.Error("media: panic relaying a call; its packets are dropped and the call ended",
			append([]zap.Field{zap.String("call_id", s.callID), zap.String("where", where)}, panics.Fields(v)...)...)
	}
	s.finish(ErrFault)
}

// ringFailed ends a session whose ring failed: nothing relays it any
// more, and Done closes with ErrRingFailed.
func (s *Session) ringFailed() {
	s.faulted.Store(true)
	s.finish(ErrRingFailed)
}

// dropFaulted counts a packet of a faulted session, dropped.
func (s *Session) dropFaulted(leg Leg) {
	d := toPlatform
	if leg == Platform {
		d = toCarrier
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	s.count(d, dropFault)
}

// adopt turns the session's bare descriptors (made for io_uring) into
// *net.UDPConn for the goroutine engine: for a session opened just as the
// last ring failed. Each descriptor is duplicated into Go's poller and
// the original closed; the ports stay bound throughout.
func (s *Session) adopt() error {
	for i := range s.pairs {
		for _, sk := range []*sock{&s.pairs[i].rtp, &s.pairs[i].rtcp} {
			if !sk.raw {
				continue
			}
			f := os.NewFile(uintptr(sk.fd), "rtp")
			pc, err := net.FilePacketConn(f)
			f.Close()
			*sk = sock{} // closed: never closed again
			if err != nil {
				return fmt.Errorf("media: socket for the goroutine engine: %w", err)
			}
			c, ok := pc.(*net.UDPConn)
			if !ok {
				pc.Close()
				return fmt.Errorf("media: socket for the goroutine engine: %T is not UDP", pc)
			}
			sk.conn = c
		}
	}
	return nil
}
