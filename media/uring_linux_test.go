package media

import (
	"fmt"
	"net"
	"net/netip"
	"runtime"
	"testing"

	"go.uber.org/zap"
)

// TestRingCount: a ring per P, at most 4.
func TestRingCount(t *testing.T) {
	probe, err := newUringEngine(ringSched{}, zap.NewNop(), testMetrics(t))
	if err != nil {
		t.Skipf("io_uring unavailable here: %v", err)
	}
	probe.close()
	defer runtime.GOMAXPROCS(runtime.GOMAXPROCS(0))
	for _, tc := range []struct{ procs, rings int }{{1, 1}, {2, 2}, {3, 3}, {5, 4}, {16, 4}} {
		runtime.GOMAXPROCS(tc.procs)
		e, err := newUringEngine(ringSched{}, zap.NewNop(), testMetrics(t))
		if err != nil {
			t.Fatal(err)
		}
		if n := len(e.(*uringEngine).rings); n != tc.rings {
			t.Errorf("GOMAXPROCS %d: %d rings, want %d", tc.procs, n, tc.rings)
		}
		e.close()
	}
}

// TestRingsFillInOrder: sessions go to the first ring until it holds
// perRing, so that the other rings' threads sleep (see uringEngine);
// when every ring is full, to the least loaded.
func TestRingsFillInOrder(t *testing.T) {
	e := &uringEngine{rings: []*ring{{}, {}, {}}, perRing: perRing}
	for _, tc := range []struct {
		loads []int32
		want  int
	}{
		{[]int32{0, 0, 0}, 0},
		{[]int32{perRing - 1, 0, 0}, 0},
		{[]int32{perRing, 0, 0}, 1},
		{[]int32{perRing, perRing + 3, 7}, 2},
		{[]int32{perRing + 2, perRing + 1, perRing + 5}, 1},
		{[]int32{3, perRing, 0}, 0}, // the first ring again once calls ended there
	} {
		for i, n := range tc.loads {
			e.rings[i].load.Store(n)
		}
		if got := e.pick(); got != e.rings[tc.want] {
			t.Errorf("loads %v: picked another ring than %d", tc.loads, tc.want)
		}
	}
}

// TestRingLoadFollowsSessions: the count pick reads rises with Open and
// falls with Close.
func TestRingLoadFollowsSessions(t *testing.T) {
	r, err := NewRelay(testConfig(), Options{})
	if err != nil {
		t.Fatal(err)
	}
	defer r.Close()
	e, ok := r.io.(*uringEngine)
	if !ok {
		t.Skipf("relay on %s", r.IO())
	}
	total := func() (n int32) {
		for _, rg := range e.rings {
			n += rg.load.Load()
		}
		return n
	}
	var open []*Session
	for range 3 {
		s, err := r.Open("load")
		if err != nil {
			t.Fatal(err)
		}
		open = append(open, s)
	}
	if n := e.rings[0].load.Load(); n != 3 {
		t.Errorf("first ring holds %d sessions, want 3", n)
	}
	for _, s := range open {
		s.Close()
	}
	if n := total(); n != 0 {
		t.Errorf("%d sessions counted on the rings after every Close", n)
	}
}

// TestRingFixedFiles: a ring's sockets go through its table of fixed
// files, a slot freed by one call serves the next, and a closed call's
// ports can be bound again: the table lets go of a socket before it is
// closed.
func TestRingFixedFiles(t *testing.T) {
	e := newRingEnv(t, 1, perRing)
	if ringOf(e.sess).nFixed == 0 {
		t.Skip("this kernel refuses a table of fixed files")
	}
	for round := range 3 {
		for seq := range uint16(3) {
			e.toPlatform(rtpPkt(0, seq, uint32(seq)*160, 0xCA11, false, make([]byte, 160)))
			e.exchange(e.platform, Platform, rtpPkt(0, seq, uint32(seq)*160, 0xA6E7, false, make([]byte, 160)))
		}
		ports := []netip.AddrPort{e.sess.Local(Carrier), e.sess.Local(Platform)}
		e.sess.Close()
		for _, p := range ports {
			for _, port := range []uint16{p.Port(), p.Port() + 1} { // RTP and RTCP
				c, err := net.ListenUDP("udp", net.UDPAddrFromAddrPort(netip.AddrPortFrom(p.Addr(), port)))
				if err != nil {
					t.Fatalf("round %d: port %d still held after Close: %v", round, port, err)
				}
				c.Close()
			}
		}
		var err error
		if e.sess, err = e.relay.Open(fmt.Sprintf("call-%d", round+2)); err != nil {
			t.Fatal(err)
		}
		e.setRemote(Carrier, e.carrier, "sendrecv")
		e.setRemote(Platform, e.platform, "sendrecv")
	}
}
