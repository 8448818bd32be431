package media

import (
	"encoding/binary"
	"errors"
	"go.uber.org/zap"
	"net"
	"net/netip"
	"os"
	"os/exec"
	"runtime"
	"strings"
	"sync"
	"testing"
	"time"
)

// TestEngine checks which engine the package's tests run on: io_uring on
// Linux unless the kernel refuses it, or what TONEVAULT_MEDIA_IO says.
func TestEngine(t *testing.T) {
	r, err := NewRelay(testConfig(), Options{})
	if err != nil {
		t.Fatal(err)
	}
	defer r.Close()
	want := os.Getenv(envMediaIO)
	switch {
	case want != "" && want != IOAuto:
	case runtime.GOOS != "linux":
		want = IOGoroutines
	default:
		e, err := newUringEngine(ringSched{}, zap.NewNop(), testMetrics(t))
		if err != nil {
			t.Skipf("io_uring unavailable here (%v): the tests run on goroutines", err)
		}
		e.close()
		want = IOUring
	}
	if r.IO() != want {
		t.Errorf("relay runs on %s, want %s", r.IO(), want)
	}
}

// TestGoroutineEngine runs this package's tests again, in a child test
// binary, on the goroutine engine: both engines must pass every test.
func TestGoroutineEngine(t *testing.T) {
	if os.Getenv(envMediaIO) != "" {
		t.Skip("already the child run")
	}
	if testing.Short() {
		t.Skip("short")
	}
	args := []string{"-test.count=1", "-test.skip=^(TestGoroutineEngine)$"}
	if testing.Verbose() {
		args = append(args, "-test.v")
	}
	cmd := exec.Command(os.Args[0], args...)
	cmd.Env = append(os.Environ(), envMediaIO+"="+IOGoroutines)
	out, err := cmd.CombinedOutput()
	if err != nil {
		t.Fatalf("tests on the goroutine engine: %v\n%s", err, out)
	}
	if !strings.Contains(string(out), "PASS") {
		t.Fatalf("no PASS from the child run:\n%s", out)
	}
}

func TestConfigIO(t *testing.T) {
	for _, tc := range []struct {
		io string
		ok bool
	}{{"", true}, {IOAuto, true}, {IOUring, true}, {IOGoroutines, true}, {"epoll", false}} {
		c := testConfig()
		c.IO = tc.io
		if err := c.Validate(); (err == nil) != tc.ok {
			t.Errorf("io %q: %v", tc.io, err)
		}
	}
}

// TestChurnUnderTraffic opens and closes sessions while packets flood
// them from both sides, on either engine: Close must return, nothing may
// crash or race (go test -race), ports must come back, and the sessions
// still open at the end must still relay.
func TestChurnUnderTraffic(t *testing.T) {
	r, err := NewRelay(testConfig(), Options{})
	if err != nil {
		t.Fatal(err)
	}
	defer r.Close()
	carrier, platform := listen(t), listen(t)
	ca, pa := addrOf(carrier), addrOf(platform)
	open := func() *Session {
		s, err := r.Open("churn")
		if err != nil {
			t.Fatal(err)
		}
		if err := s.SetRemote(Carrier, Stream{Addr: ca, PayloadTypes: g711PTs}); err != nil {
			t.Fatal(err)
		}
		if err := s.SetRemote(Platform, Stream{Addr: pa, PayloadTypes: g711PTs}); err != nil {
			t.Fatal(err)
		}
		return s
	}
	live := make([]*Session, 20)
	for i := range live {
		live[i] = open()
	}
	// Drain both peers so their buffers never fill.
	var wg sync.WaitGroup
	for _, c := range []*net.UDPConn{carrier, platform} {
		wg.Add(1)
		go func() {
			defer wg.Done()
			b := make([]byte, recvBuf)
			for {
				if _, _, err := c.ReadFromUDPAddrPort(b); errors.Is(err, net.ErrClosed) {
					return
				}
			}
		}()
	}
	pkt := rtpPkt(0, 1, 160, 7, false, make([]byte, 160))
	stop := make(chan struct{})
	var senders sync.WaitGroup
	var mu sync.Mutex
	targets := func() []netip.AddrPort {
		mu.Lock()
		defer mu.Unlock()
		var a []netip.AddrPort
		for _, s := range live {
			a = append(a, s.Local(Carrier), s.Local(Platform))
		}
		return a
	}
	senders.Add(1)
	go func() {
		defer senders.Done()
		for seq := uint16(0); ; seq++ {
			select {
			case <-stop:
				return
			default:
			}
			binary.BigEndian.PutUint16(pkt[2:], seq)
			for _, a := range targets() {
				carrier.WriteToUDPAddrPort(pkt, a)
				platform.WriteToUDPAddrPort(pkt, netip.AddrPortFrom(a.Addr(), a.Port()+1)) // RTCP too
			}
			time.Sleep(time.Millisecond)
		}
	}()
	for round := range 200 {
		i := round % len(live)
		mu.Lock()
		old := live[i]
		mu.Unlock()
		closed := make(chan Stats, 1)
		go func() { closed <- old.Close() }()
		select {
		case <-closed:
		case <-time.After(5 * time.Second):
			t.Fatalf("round %d: Close did not return under traffic", round)
		}
		s := open()
		mu.Lock()
		live[i] = s
		mu.Unlock()
	}
	close(stop)
	senders.Wait()
	// Let the relay drain what is queued: a stale packet from the old
	// peers' IP would latch a leg again (any port of the signalled IP is
	// accepted before latching, for NATs).
	time.Sleep(300 * time.Millisecond)

	// The survivors still relay, lock-step.
	for _, s := range live[:3] {
		c, p := listen(t), listen(t)
		if err := s.SetRemote(Carrier, Stream{Addr: addrOf(c), PayloadTypes: g711PTs}); err != nil {
			t.Fatal(err)
		}
		if err := s.SetRemote(Platform, Stream{Addr: addrOf(p), PayloadTypes: g711PTs}); err != nil {
			t.Fatal(err)
		}
		if _, err := p.WriteToUDPAddrPort(pkt, s.Local(Platform)); err != nil {
			t.Fatal(err)
		}
		if _, err := recv(c, 2*time.Second); err != nil {
			t.Fatalf("a session open through the churn no longer relays: %v", err)
		}
	}
	for _, s := range live {
		s.Close()
	}
	carrier.Close()
	platform.Close()
	wg.Wait()
	if used := r.ports.inUse(); used != 0 {
		t.Errorf("%d port pairs still in use after every session closed", used)
	}
}

// TestMorePacketsThanBuffers relays three times as many packets as the
// io_uring engine has receive buffers on a ring: each buffer must go back
// to the kernel once its packet is handled, or receiving stops at the
// 4097th.
func TestMorePacketsThanBuffers(t *testing.T) {
	e := newEnv(t, nil)
	const total, burst = 3 * 4096, 64
	pkt := rtpPkt(0, 0, 0, 9, false, make([]byte, 160))
	for sent := 0; sent < total; sent += burst {
		for k := range burst {
			binary.BigEndian.PutUint16(pkt[2:], uint16(sent+k))
			e.send(e.platform, Platform, pkt)
		}
		for k := range burst {
			if _, err := recv(e.carrier, 2*time.Second); err != nil {
				t.Fatalf("packet %d of %d not relayed: %v", sent+k+1, total, err)
			}
		}
	}
}

// TestOversizeBeyondReceiveBuffer: a datagram longer than the receive
// buffer (cut to it by the kernel) is still dropped as oversize, never
// relayed as the valid-looking packet its first bytes make.
func TestOversizeBeyondReceiveBuffer(t *testing.T) {
	e := newEnv(t, nil)
	good := rtpPkt(0, 1, 0, 1, false, make([]byte, 160))
	huge := append(append([]byte(nil), good...), make([]byte, 4000)...)
	for _, c := range []struct {
		from *net.UDPConn
		leg  Leg
		to   *net.UDPConn
		dir  direction
	}{{e.carrier, Carrier, e.platform, toPlatform}, {e.platform, Platform, e.carrier, toCarrier}} {
		before := e.metric(c.dir, dropOversize)
		e.send(c.from, c.leg, huge)
		expectNothing(t, c.to)
		if n := e.metric(c.dir, dropOversize); n != before+1 {
			t.Errorf("%v: oversize counter %v, want %v", c.leg, n, before+1)
		}
	}
	if g := e.toPlatform(good); g.seq != 1 {
		t.Fatal("relay stopped after oversize packets")
	}
}
