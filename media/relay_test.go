package media

import (
	"bytes"
	"errors"
	"fmt"
	"math/rand/v2"
	"net"
	"net/netip"
	"strings"
	"testing"
	"time"

	"github.com/tonevault/tonevault/dtmf"
)

func TestConfigValidate(t *testing.T) {
	for _, tc := range []struct {
		name string
		mut  func(*Config)
		want string // "" means valid
	}{
		{"default", func(*Config) {}, ""},
		{"ephemeral", func(c *Config) { c.PortMin, c.PortMax = 0, 0 }, ""},
		{"no bind ip", func(c *Config) { c.BindIP = netip.Addr{} }, "bind_ip"},
		{"unspecified bind ip", func(c *Config) { c.BindIP = netip.IPv4Unspecified() }, "bind_ip"},
		{"odd port min", func(c *Config) { c.PortMin = 20001 }, "even"},
		{"range too small", func(c *Config) { c.PortMin, c.PortMax = 20000, 20002 }, "too small"},
		{"range above 65535", func(c *Config) { c.PortMax = 70000 }, "outside"},
		{"look-ahead too short", func(c *Config) { c.LookAhead = 5 * time.Millisecond }, "look-ahead"},
		{"bad mask mode", func(c *Config) { c.MaskMode = 9 }, "mask mode"},
		{"bad policy", func(c *Config) { c.Policy = 7 }, "policy"},
		{"negative timeout", func(c *Config) { c.MediaTimeout = -time.Second }, "media_timeout"},
		{"negative max", func(c *Config) { c.MaxDuration = -time.Second }, "max_duration"},
		{"ring threads niced", func(c *Config) { c.RingPriority = 5 }, ""},
		{"ring nice below -20", func(c *Config) { c.RingPriority = -21 }, "ring_priority"},
		{"ring nice above 19", func(c *Config) { c.RingScheduling, c.RingPriority = SchedOther, 20 }, "ring_priority"},
		{"fifo without a priority", func(c *Config) { c.RingScheduling = SchedFIFO }, "ring_priority"},
		{"rr above 99", func(c *Config) { c.RingScheduling, c.RingPriority = SchedRR, 100 }, "ring_priority"},
		{"unknown scheduling", func(c *Config) { c.RingScheduling, c.RingPriority = "deadline", 1 }, "ring_scheduling"},
		{"ring scheduling on goroutines", func(c *Config) { c.IO, c.RingPriority = IOGoroutines, 5 }, "media.io"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			c := DefaultConfig()
			tc.mut(&c)
			err := c.Validate()
			switch {
			case tc.want == "" && err != nil:
				t.Fatalf("unexpected error %v", err)
			case tc.want != "" && (err == nil || !strings.Contains(err.Error(), tc.want)):
				t.Fatalf("error %v, want one mentioning %q", err, tc.want)
			}
			r, err2 := NewRelay(c, Options{})
			if (err2 == nil) != (err == nil) {
				t.Fatalf("NewRelay disagrees with Validate: %v", err2)
			}
			if r != nil {
				r.Close()
			}
		})
	}
}

func TestDefaultConfigMatchesDesign(t *testing.T) {
	c := DefaultConfig()
	if c.BindIP != loopback || c.PortMin != 20000 || c.PortMax != 29999 || c.LookAhead != dtmf.DefaultLookAhead ||
		c.MaskMode != dtmf.MaskTone || c.Policy != Always || c.MediaTimeout != time.Minute || c.MaxDuration != 0 {
		t.Fatalf("%+v", c)
	}
}

func TestLocalPorts(t *testing.T) {
	e := newEnv(t, nil)
	for _, leg := range []Leg{Carrier, Platform} {
		a := e.sess.Local(leg)
		if a.Addr() != loopback || a.Port()%2 != 0 {
			t.Errorf("%v local %v: want 127.0.0.1 and an even port", leg, a)
		}
	}
	if e.sess.Local(Carrier) == e.sess.Local(Platform) {
		t.Error("legs share a port")
	}
}

func TestLatchingAndSpoof(t *testing.T) {
	e := newEnv(t, nil)
	// The carrier is behind a NAT: it signalled one port and sends from
	// another on the same IP. It is latched and answered there.
	nat := listen(t)
	g := e.exchange(nat, Carrier, rtpPkt(0, 1, 0, 1, true, make([]byte, 160)))
	if g.seq != 1 {
		t.Fatal("first packet from the signalled IP was not relayed")
	}
	back := []byte("platform audio, any bytes")
	e.send(e.platform, Platform, back)
	if r, err := recv(nat, 2*time.Second); err != nil || !bytes.Equal(r.raw, back) {
		t.Fatalf("platform→carrier did not go to the latched source: %v", err)
	}
	expectNothing(t, e.carrier)

	// Another port on the same IP is a spoof once latched; so is another
	// IP (127.0.0.2 is loopback too on Linux).
	spoof := listen(t)
	e.send(spoof, Carrier, rtpPkt(0, 2, 160, 1, false, make([]byte, 160)))
	expectNothing(t, e.platform)
	if other, err := net.ListenUDP("udp", &net.UDPAddr{IP: net.IPv4(127, 0, 0, 2)}); err == nil {
		defer other.Close()
		e.send(other, Carrier, rtpPkt(0, 3, 320, 1, false, make([]byte, 160)))
		expectNothing(t, e.platform)
	}
	if n := e.metric(toPlatform, dropForeign); n < 1 {
		t.Errorf("foreign drops counted %v", n)
	}
	// The exact signalled address takes the latch back.
	if g := e.toPlatform(rtpPkt(0, 4, 480, 1, false, make([]byte, 160))); g.seq != 4 {
		t.Fatal("signalled address not accepted")
	}
	// Platform packets from a stranger are dropped too.
	e.send(spoof, Platform, back)
	expectNothing(t, e.carrier)
}

func TestMalformedDropped(t *testing.T) {
	e := newEnv(t, nil)
	good := rtpPkt(0, 1, 0, 1, false, make([]byte, 160))
	withByte0 := func(b0 byte, tail ...byte) []byte {
		p := append([]byte(nil), good...)
		p[0] = b0
		return append(p[:12], tail...)
	}
	for _, tc := range []struct {
		name string
		pkt  []byte
		o    outcome
	}{
		{"empty", []byte{}, dropShort},
		{"short header", good[:7], dropShort},
		{"version 1", withByte0(1<<6, good[12:]...), dropVersion},
		{"version 0 (STUN-like)", withByte0(0, good[12:]...), dropVersion},
		{"oversize", append(append([]byte(nil), good...), make([]byte, 1400)...), dropOversize},
		{"csrc count beyond packet", withByte0(0x8f, 1, 2, 3, 4), dropCSRC},
		{"extension header cut", withByte0(0x90, 0xbe), dropExtension},
		{"extension length beyond packet", withByte0(0x90, 0xbe, 0xde, 0, 9, 1, 2, 3, 4), dropExtension},
		{"padding count zero", withByte0(0xa0, 1, 2, 0), dropPadding},
		{"padding beyond payload", withByte0(0xa0, 1, 2, 200), dropPadding},
	} {
		t.Run(tc.name, func(t *testing.T) {
			before := e.metric(toPlatform, tc.o)
			e.send(e.carrier, Carrier, tc.pkt)
			expectNothing(t, e.platform)
			if n := e.metric(toPlatform, tc.o); n != before+1 {
				t.Errorf("counter %s/%s = %v, want %v", tc.o.action(), tc.o.reason(), n, before+1)
			}
		})
	}
	// The session still works.
	if g := e.toPlatform(good); g.seq != 1 {
		t.Fatal("relay stopped after malformed packets")
	}
	// Each kind of uninspectable packet is reported once for the call,
	// however often it came.
	want := "[call-1:bad_csrc_count call-1:bad_extension call-1:bad_padding call-1:bad_version call-1:oversize call-1:short_header]"
	deadline := time.Now().Add(5 * time.Second)
	for fmt.Sprint(e.failClosed()) != want && time.Now().Before(deadline) {
		time.Sleep(10 * time.Millisecond)
	}
	if got := fmt.Sprint(e.failClosed()); got != want {
		t.Errorf("FailClosed reports %s, want %s", got, want)
	}
}

func TestPlatformToCarrierUnchanged(t *testing.T) {
	e := newEnv(t, nil)
	for _, pkt := range [][]byte{
		rtpPkt(0, 9, 99, 0x1234, true, bytes.Repeat([]byte{0x55}, 160)),
		rtpPkt(101, 10, 99, 0x1234, true, eventPayload('5', false, 160)), // not the carrier's direction: no masking
		{0xde, 0xad},
		bytes.Repeat([]byte{0x80}, MaxPacket),
	} {
		g := e.exchange(e.platform, Platform, pkt)
		if !bytes.Equal(g.raw, pkt) {
			t.Fatalf("platform→carrier changed %d bytes", len(pkt))
		}
	}
}

func TestRTCPRelayedBothWays(t *testing.T) {
	e := newEnv(t, nil)
	rtcp := func(l Leg) netip.AddrPort {
		a := e.sess.Local(l)
		return netip.AddrPortFrom(a.Addr(), a.Port()+1)
	}
	cR, pR := listen(t), listen(t)
	// RTCP from the peers' own RTCP sockets; the relay learns them by IP.
	if err := e.sess.SetRemote(Carrier, Stream{Addr: addrOf(e.carrier), RTCP: addrOf(cR), PayloadTypes: g711PTs}); err != nil {
		t.Fatal(err)
	}
	if err := e.sess.SetRemote(Platform, Stream{Addr: addrOf(e.platform), RTCP: addrOf(pR), PayloadTypes: g711PTs}); err != nil {
		t.Fatal(err)
	}
	sr := []byte{0x80, 200, 0, 6, 1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 13, 14, 15, 16, 17, 18, 19, 20, 21, 22, 23, 24}
	cR.WriteToUDPAddrPort(sr, rtcp(Carrier))
	if g, err := recv(pR, 2*time.Second); err != nil || !bytes.Equal(g.raw, sr) {
		t.Fatalf("carrier RTCP not relayed unchanged: %v", err)
	}
	rr := []byte{0x81, 201, 0, 7, 9, 9, 9, 9}
	pR.WriteToUDPAddrPort(rr, rtcp(Platform))
	if g, err := recv(cR, 2*time.Second); err != nil || !bytes.Equal(g.raw, rr) {
		t.Fatalf("platform RTCP not relayed unchanged: %v", err)
	}
}

func TestHoldStopsSending(t *testing.T) {
	e := newEnv(t, nil)
	// The platform puts the customer on hold with a=sendonly: it plays
	// music, the carrier's audio goes nowhere.
	e.setRemote(Platform, e.platform, "sendonly")
	e.send(e.carrier, Carrier, rtpPkt(0, 1, 0, 1, false, make([]byte, 160)))
	expectNothing(t, e.platform)
	if e.metric(toPlatform, dropHold) != 1 {
		t.Error("hold drop not counted")
	}
	if g := e.exchange(e.platform, Platform, []byte("music on hold")); string(g.raw) != "music on hold" {
		t.Fatal("music on hold not relayed")
	}
	e.setRemote(Platform, e.platform, "sendrecv")
	if g := e.toPlatform(rtpPkt(0, 2, 160, 1, false, make([]byte, 160))); g.seq != 2 {
		t.Fatal("resume did not restore the path")
	}
}

func TestSetRemoteErrors(t *testing.T) {
	e := newEnv(t, nil)
	for _, tc := range []struct {
		leg Leg
		st  Stream
	}{
		{Leg(5), Stream{}},
		{Carrier, Stream{Direction: "sideways"}},
		{Carrier, Stream{Addr: netip.MustParseAddrPort("[::1]:4000")}},
		{Carrier, Stream{PayloadTypes: []PayloadType{{PT: 200}}}},
		{Carrier, Stream{PTime: -time.Millisecond}},
	} {
		if err := e.sess.SetRemote(tc.leg, tc.st); err == nil {
			t.Errorf("SetRemote(%v, %+v) accepted", tc.leg, tc.st)
		}
	}
}

// randomRange picks a small port range unlikely to be used by anyone else.
func randomRange(pairs int) (int, int) {
	min := 40000 + 2*rand.IntN(9000)
	return min, min + 2*pairs - 1
}

func TestPortExhaustionAndReuse(t *testing.T) {
	var r *Relay
	var first *Session
	for try := 0; ; try++ {
		lo, hi := randomRange(2) // one call's worth
		var err error
		r, err = NewRelay(func() Config { c := testConfig(); c.PortMin, c.PortMax = lo, hi; return c }(), Options{})
		if err != nil {
			t.Fatal(err)
		}
		if first, err = r.Open("a"); err == nil {
			break
		}
		r.Close()
		if try == 10 {
			t.Fatalf("no free range: %v", err)
		}
	}
	defer r.Close()
	ports := []uint16{first.Local(Carrier).Port(), first.Local(Platform).Port()}
	_, err := r.Open("b")
	if !errors.Is(err, ErrPortsExhausted) {
		t.Fatalf("second call: %v, want ErrPortsExhausted", err)
	}
	if !strings.Contains(err.Error(), "in use") {
		t.Errorf("error does not say why: %v", err)
	}
	first.Close()
	first.Close() // idempotent
	again, err := r.Open("c")
	if err != nil {
		t.Fatalf("ports not released on Close: %v", err)
	}
	for _, p := range []uint16{again.Local(Carrier).Port(), again.Local(Platform).Port()} {
		if p != ports[0] && p != ports[1] {
			t.Errorf("port %d not from the range", p)
		}
	}
}

func TestMediaTimeout(t *testing.T) {
	e := newEnv(t, func(c *Config) { c.MediaTimeout = 100 * time.Millisecond })
	e.toPlatform(rtpPkt(0, 1, 0, 1, false, make([]byte, 160)))
	select {
	case <-e.sess.Done():
	case <-time.After(10 * time.Second):
		t.Fatal("no media timeout")
	}
	if !errors.Is(e.sess.Err(), ErrMediaTimeout) {
		t.Fatalf("Err %v", e.sess.Err())
	}
}

func TestMediaTimeoutSuspendedOnMutualHold(t *testing.T) {
	e := newEnv(t, func(c *Config) { c.MediaTimeout = 50 * time.Millisecond })
	e.setRemote(Carrier, e.carrier, "inactive")
	e.setRemote(Platform, e.platform, "inactive")
	select {
	case <-e.sess.Done():
		t.Fatalf("timed out on hold: %v", e.sess.Err())
	case <-time.After(400 * time.Millisecond):
	}
	// Resume: the clock restarts, and silence now ends the call.
	e.setRemote(Platform, e.platform, "sendrecv")
	select {
	case <-e.sess.Done():
	case <-time.After(10 * time.Second):
		t.Fatal("no timeout after resume")
	}
}

func TestNoTimeoutBeforeAnswer(t *testing.T) {
	cfg := testConfig()
	cfg.MediaTimeout = 50 * time.Millisecond
	r, err := NewRelay(cfg, Options{})
	if err != nil {
		t.Fatal(err)
	}
	defer r.Close()
	s, err := r.Open("ringing")
	if err != nil {
		t.Fatal(err)
	}
	s.SetRemote(Carrier, Stream{Addr: netip.MustParseAddrPort("127.0.0.1:9"), PayloadTypes: g711PTs})
	select {
	case <-s.Done():
		t.Fatal("timed out while the platform was still ringing")
	case <-time.After(300 * time.Millisecond):
	}
	s.Close()
	select {
	case <-s.Done():
	default:
		t.Fatal("Close did not close Done")
	}
	if s.Err() != nil {
		t.Fatalf("Err after Close %v", s.Err())
	}
}

func TestMaxDuration(t *testing.T) {
	e := newEnv(t, func(c *Config) { c.MaxDuration = 50 * time.Millisecond })
	select {
	case <-e.sess.Done():
	case <-time.After(10 * time.Second):
		t.Fatal("max duration not enforced")
	}
	if !errors.Is(e.sess.Err(), ErrMaxDuration) {
		t.Fatalf("Err %v", e.sess.Err())
	}
}

func TestCodecByName(t *testing.T) {
	for _, tc := range []struct {
		name string
		rate int
		want Codec
	}{
		{"PCMU", 8000, PCMU}, {"pcma", 0, PCMA}, {"telephone-event", 8000, TelephoneEvent},
		{"CN", 8000, ComfortNoise}, {"telephone-event", 48000, CodecUnknown}, {"opus", 48000, CodecUnknown},
	} {
		if got := CodecByName(tc.name, tc.rate); got != tc.want {
			t.Errorf("CodecByName(%q, %d) = %v, want %v", tc.name, tc.rate, got, tc.want)
		}
	}
}

func TestPTClashIsUnknown(t *testing.T) {
	e := newEnv(t, nil)
	// The legs disagree on PT 101: fail closed.
	if err := e.sess.SetRemote(Platform, Stream{Addr: addrOf(e.platform), PayloadTypes: []PayloadType{{PT: 0, Name: "PCMU"}, {PT: 101, Name: "opus", Rate: 48000}}}); err != nil {
		t.Fatal(err)
	}
	g := e.toPlatform(rtpPkt(101, 1, 0, 1, false, eventPayload('1', false, 160)))
	if g.pt != 0 || e.metric(toPlatform, replaceUnknown) != 1 {
		t.Fatalf("clashing PT relayed as pt %d", g.pt)
	}
}
