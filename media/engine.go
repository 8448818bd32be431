package media

import (
	"errors"
	"fmt"

	"go.uber.org/zap"
)

// How the relay moves packets (Config.IO, media.io in the YAML).
const (
	// IOAuto is io_uring where the kernel allows it, else goroutines.
	IOAuto = "auto"
	// IOUring runs every socket through a few io_uring rings, one
	// thread each: receives and sends are batched across calls, one
	// syscall per batch instead of two or three per packet.
	IOUring = "io_uring"
	// IOGoroutines reads each socket in its own goroutine through Go's
	// poller: portable, and more CPU per packet than io_uring
	// (BENCHMARKS.md).
	IOGoroutines = "goroutines"
)

// The rings' threads' scheduling policies (Config.RingScheduling,
// media.ring_scheduling in the YAML).
const (
	// SchedOther is the kernel's default policy; RingPriority is a nice
	// value, -20 (most CPU) to 19, 0 by default.
	SchedOther = "other"
	// SchedFIFO and SchedRR are real-time: a ring thread woken by a
	// packet runs before any thread of the default policy, and
	// RingPriority (1 to 99) orders it among real-time threads. A ring
	// thread blocks whenever it has nothing to relay, and the kernel
	// keeps 5 % of each CPU for other threads (kernel.sched_rt_runtime_us).
	SchedFIFO = "fifo"
	SchedRR   = "rr"
)

// ringSched is a ring thread's scheduling, as configured.
type ringSched struct {
	sched string
	prio  int
}

func (s ringSched) policy() string {
	if s.sched == "" {
		return SchedOther
	}
	return s.sched
}

func (s ringSched) isDefault() bool { return s.policy() == SchedOther && s.prio == 0 }

func (s ringSched) validate() error {
	switch s.policy() {
	case SchedOther:
		if s.prio < -20 || s.prio > 19 {
			return fmt.Errorf("media.ring_priority: %d: with ring_scheduling %s it is a nice value, -20 to 19", s.prio, SchedOther)
		}
	case SchedFIFO, SchedRR:
		if s.prio < 1 || s.prio > 99 {
			return fmt.Errorf("media.ring_priority: %d: with ring_scheduling %s it is a real-time priority, 1 to 99", s.prio, s.sched)
		}
	default:
		return fmt.Errorf("media.ring_scheduling: %q: want %s, %s or %s", s.sched, SchedOther, SchedFIFO, SchedRR)
	}
	return nil
}

// errRingSched is a ring thread refused its configured scheduling.
var errRingSched = errors.New("media: the io_uring ring thread's scheduling was refused")

// ioEngine moves packets between a session's sockets and its packet
// functions (carrierPacket, platformPacket, rtcpPacket).
type ioEngine interface {
	name() string
	// raw says whether the sockets of the next session should be bare
	// descriptors rather than *net.UDPConn (see sock). It may change:
	// once every io_uring ring has failed, new sessions go to goroutines.
	raw() bool
	start(s *Session)
	// stop returns once no packet of s is being handled or will be; the
	// caller closes the sockets afterwards.
	stop(s *Session)
	// startFork readies a recording fork of a started session for
	// sending; stopFork returns once no send of it is in flight, and the
	// caller closes its sockets afterwards.
	startFork(r *Recording) error
	stopFork(r *Recording)
	close()
}

func newEngine(mode string, sc ringSched, log *zap.Logger, m *metrics) (ioEngine, error) {
	switch mode {
	case IOGoroutines:
		return loopsEngine{}, nil
	case IOUring:
		return newUringEngine(sc, log, m)
	case "", IOAuto:
		e, err := newUringEngine(sc, log, m)
		if errors.Is(err, errRingSched) {
			// Asked for and refused: relaying on goroutines instead
			// would drop the setting without a word.
			return nil, err
		}
		if err != nil {
			// Seccomp (Docker's default profile), kernel.io_uring_disabled
			// or an old kernel: the goroutines carry the same traffic at
			// a higher CPU cost.
			if !sc.isDefault() {
				log.Warn("media: io_uring unavailable, relaying with goroutines; media.ring_scheduling and media.ring_priority are not applied", zap.Error(err))
			} else {
				log.Info("media: io_uring unavailable, relaying with goroutines", zap.Error(err))
			}
			return loopsEngine{}, nil
		}
		return e, nil
	}
	return nil, fmt.Errorf("media: io %q: want %s, %s or %s", mode, IOAuto, IOUring, IOGoroutines)
}

// loopsEngine reads each of a session's four sockets in its own
// goroutine.
type loopsEngine struct{}

func (loopsEngine) name() string { return IOGoroutines }
func (loopsEngine) raw() bool    { return false }
func (loopsEngine) close()       {}

// A fork's sends go from the loops' goroutines, its sockets are never
// read: nothing to start, and a send racing its Close fails on the
// closed conn.
func (loopsEngine) startFork(*Recording) error { return nil }
func (loopsEngine) stopFork(*Recording)        {}

func (loopsEngine) start(s *Session) {
	s.wg.Add(4)
	for _, leg := range []Leg{Carrier, Platform} {
		go s.loop(leg, false)
		go s.loop(leg, true)
	}
}

func (loopsEngine) stop(s *Session) {
	for _, p := range s.pairs {
		p.rtp.shut()
		p.rtcp.shut()
	}
	s.wg.Wait()
}
