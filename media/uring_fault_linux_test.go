package media

import (
	"bytes"
	"errors"
	"os"
	"testing"

	"github.com/prometheus/client_golang/prometheus"
	"go.uber.org/zap"
	"golang.org/x/sys/unix"
)

// newRingEnv is newEnv on an io_uring engine of n rings taking perRing
// sessions each before the next; it skips where io_uring is refused and
// in the goroutine engine's child run.
func newRingEnv(t *testing.T, n int, per int32) *env {
	t.Helper()
	if io := os.Getenv(envMediaIO); io == IOGoroutines {
		t.Skip("the goroutine engine's run")
	}
	reg := prometheus.NewRegistry()
	m, err := newMetrics(reg)
	if err != nil {
		t.Fatal(err)
	}
	eng, err := newUringEngineN(n, ringSched{}, zap.NewNop(), m)
	if err != nil {
		t.Skipf("io_uring unavailable here: %v", err)
	}
	eng.perRing = per
	cfg := testConfig()
	cfg.IO = IOGoroutines // replaced below by eng
	e := &env{t: t, reg: reg, sink: &sink{}}
	r, err := NewRelay(cfg, Options{Digits: e.sink})
	if err != nil {
		t.Fatal(err)
	}
	r.io, r.m = eng, m
	e.relay = r
	t.Cleanup(func() { r.Close() })
	if e.sess, err = r.Open("call-1"); err != nil {
		t.Fatal(err)
	}
	e.carrier, e.platform = listen(t), listen(t)
	e.setRemote(Carrier, e.carrier, "sendrecv")
	e.setRemote(Platform, e.platform, "sendrecv")
	return e
}

func ringOf(s *Session) *ring { r, _ := s.ring.(*ring); return r }

// failRing makes target's next io_uring_enter fail with errno, or panic
// when errno is 0, until the test ends.
func failRing(t *testing.T, target *ring, errno unix.Errno) {
	t.Helper()
	f := func(r *ring) unix.Errno {
		if r != target {
			return 0
		}
		if errno == 0 {
			panic("test fault on the ring's thread")
		}
		return errno
	}
	testRingFault.Store(&f)
	t.Cleanup(func() { testRingFault.Store(nil) })
}

// TestRingFailureEndsItsSessions: a ring whose io_uring_enter fails, or
// whose thread panics outside any session's packet handling, ends the
// sessions on it (ErrRingFailed) and no others; it is retired, new
// sessions go to the ring left, and once none is left to goroutines.
// Every session still closes (no Close hangs on a dead ring).
func TestRingFailureEndsItsSessions(t *testing.T) {
	for _, tc := range []struct {
		name  string
		errno unix.Errno
	}{{"io_uring_enter fails", unix.EFAULT}, {"panic on the ring thread", 0}} {
		t.Run(tc.name, func(t *testing.T) {
			e := newRingEnv(t, 2, 2)
			calls := []*env{e, e.another(t, "call-2"), e.another(t, "call-3"), e.another(t, "call-4")}
			eng := e.relay.io.(*uringEngine)
			bad, good := eng.rings[0], eng.rings[1]
			for i, c := range calls {
				if want := eng.rings[i/2]; ringOf(c.sess) != want {
					t.Fatalf("%s on another ring than %d", c.sess.CallID(), i/2)
				}
			}
			seqs, tss := []uint16{1, 1, 1, 1}, []uint32{0, 0, 0, 0}
			for i, c := range calls {
				c.masksDigits(t, "3", &seqs[i], &tss[i])
			}

			failRing(t, bad, tc.errno)
			// Wake the ring: a packet to one of its sessions.
			if _, ok := calls[0].toPlatformMaybe(rtpPkt(0, seqs[0], tss[0], 0xCA11, false, make([]byte, 160))); ok {
				t.Error("a packet went through the failing ring")
			}
			for _, c := range calls[:2] {
				if err := waitDone(t, c.sess); !errors.Is(err, ErrRingFailed) || !errors.Is(err, ErrFault) {
					t.Fatalf("%s: Err = %v, want ErrRingFailed", c.sess.CallID(), err)
				}
				if _, ok := c.toPlatformMaybe(rtpPkt(0, 500, 500*160, 0xCA11, false, make([]byte, 160))); ok {
					t.Errorf("%s relayed a packet after its ring failed", c.sess.CallID())
				}
			}
			if !bad.retired.Load() || good.retired.Load() {
				t.Fatalf("retired: failed ring %v, other %v", bad.retired.Load(), good.retired.Load())
			}
			if n := faultCount(t, e.reg, "ring"); n != 1 {
				t.Errorf("tonevault_media_faults_total{scope=ring} = %v, want 1", n)
			}
			// The other ring's calls go on.
			for i, c := range calls[2:] {
				c.masksDigits(t, "85", &seqs[2+i], &tss[2+i])
				if c.sess.Err() != nil {
					t.Errorf("%s ended: %v", c.sess.CallID(), c.sess.Err())
				}
			}
			// A new call goes to the ring left, and relays.
			n := e.another(t, "call-5")
			if ringOf(n.sess) != good {
				t.Fatal("new call not on the ring left")
			}
			var seq uint16
			var ts uint32
			n.masksDigits(t, "9", &seq, &ts)
			for _, c := range calls[:2] {
				c.sess.Close()
			}
			if bad.load.Load() != 0 {
				t.Errorf("failed ring's load %d after its sessions closed", bad.load.Load())
			}

			// The last ring fails too: its calls end, and new calls are
			// relayed by goroutines.
			failRing(t, good, tc.errno)
			calls[2].toPlatformMaybe(rtpPkt(0, seqs[2], tss[2], 0xCA11, false, make([]byte, 160)))
			for _, c := range []*env{calls[2], calls[3], n} {
				if err := waitDone(t, c.sess); !errors.Is(err, ErrRingFailed) {
					t.Fatalf("%s: Err = %v, want ErrRingFailed", c.sess.CallID(), err)
				}
			}
			if e.relay.io.raw() {
				t.Fatal("engine still asks for ring sockets with no ring left")
			}
			last := e.another(t, "call-6")
			if last.sess.ring != nil || last.sess.pairs[Carrier].rtp.conn == nil {
				t.Fatal("call opened with no ring left is not on goroutines")
			}
			seq, ts = 0, 0
			last.masksDigits(t, "0", &seq, &ts)
		})
	}
}

// TestSessionMovesToGoroutines: a session whose sockets were made for a
// ring that failed before it started is taken over by goroutines
// (adopt), on the same ports.
func TestSessionMovesToGoroutines(t *testing.T) {
	e := newRingEnv(t, 1, 500)
	eng := e.relay.io.(*uringEngine)
	failRing(t, eng.rings[0], unix.EFAULT)
	e.toPlatformMaybe(rtpPkt(0, 1, 160, 1, false, make([]byte, 160)))
	waitDone(t, e.sess)
	// Sockets made as if a ring were left, as when the last one fails
	// between a session's ports and its start.
	e.relay.ports.raw = func() bool { return true }
	n := e.another(t, "call-2")
	if n.sess.ring != nil || n.sess.pairs[Carrier].rtp.raw || n.sess.pairs[Carrier].rtp.conn == nil {
		t.Fatal("session not moved to goroutines")
	}
	var seq uint16
	var ts uint32
	n.masksDigits(t, "12", &seq, &ts) // sent to the ports the session advertises
}

// TestRingFailureWithFork: a ring that fails under a recording call ends
// the call as any other (ErrRingFailed); the fork's Close and the
// session's return, and every port comes back. A fork on the session
// that was moved to the ring left records there.
func TestRingFailureWithFork(t *testing.T) {
	e := newRingEnv(t, 2, 1)
	sinks := newSRS(t)
	rec := e.record(sinks)
	if !rec.onRing {
		t.Fatal("the fork of a session on a ring is not on the ring")
	}
	e.toPlatform(rtpPkt(0, 1, 160, 1, false, make([]byte, 160)))
	if _, err := recv(sinks.customer, wait); err != nil {
		t.Fatal(err)
	}
	other := e.another(t, "call-2")
	if ringOf(other.sess) == ringOf(e.sess) {
		t.Fatal("both calls on one ring")
	}
	failRing(t, ringOf(e.sess), unix.EFAULT)
	e.send(e.carrier, Carrier, rtpPkt(0, 2, 320, 1, false, make([]byte, 160)))
	if err := waitDone(t, e.sess); !errors.Is(err, ErrRingFailed) {
		t.Fatalf("Err %v, want ErrRingFailed", err)
	}
	rec.Close()
	e.sess.Close()

	// The call on the other ring records on.
	orec := other.record(sinks)
	if !orec.onRing {
		t.Fatal("the other call's fork is not on its ring")
	}
	g := other.toPlatform(rtpPkt(0, 1, 160, 2, false, make([]byte, 160)))
	f, err := recv(sinks.customer, wait)
	if err != nil || !bytes.Equal(f.raw, g.raw) {
		t.Fatalf("the other ring's fork: % x (%v), want % x", f.raw, err, g.raw)
	}
	other.sess.Close()
	if n := e.relay.ports.inUse(); n != 0 {
		t.Errorf("%d pairs in use after both calls closed", n)
	}
}
