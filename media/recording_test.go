package media

import (
	"bytes"
	"errors"
	"fmt"
	"math"
	"net"
	"net/netip"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/tonevault/tonevault/dtmf"
	"github.com/tonevault/tonevault/media/sdes"
	"github.com/tonevault/tonevault/test/refdetect"
)

// The tests of the recording fork run on both engines: the child run of
// TestGoroutineEngine repeats them on goroutines.

// wait is how long a packet the relay sends may take to arrive.
const wait = 2 * time.Second

// srs is a recording server's two receiving sockets.
type srs struct{ customer, agent *net.UDPConn }

func newSRS(t *testing.T) srs { return srs{listen(t), listen(t)} }

func (r srs) streams() (Stream, Stream) {
	return Stream{Addr: addrOf(r.customer), Direction: "recvonly"}, Stream{Addr: addrOf(r.agent), Direction: "recvonly"}
}

// record opens e's fork toward sinks.
func (e *env) record(sinks srs) *Recording {
	e.t.Helper()
	rec, err := e.sess.Record()
	if err != nil {
		e.t.Fatal(err)
	}
	c, a := sinks.streams()
	if err := rec.SetRemote(c, a); err != nil {
		e.t.Fatal(err)
	}
	return rec
}

// forkCount reads one series of tonevault_recording_packets_total.
func forkCount(t *testing.T, reg *prometheus.Registry, stream, result string) float64 {
	t.Helper()
	return gauge(t, reg, "tonevault_recording_packets_total", map[string]string{"stream": stream, "result": result})
}

// gauge reads the series of name with labels from reg, counter or gauge.
func gauge(t testing.TB, reg *prometheus.Registry, name string, labels map[string]string) float64 {
	t.Helper()
	mfs, err := reg.Gather()
	if err != nil {
		t.Fatal(err)
	}
	for _, mf := range mfs {
		if mf.GetName() != name {
			continue
		}
	next:
		for _, m := range mf.Metric {
			for _, lp := range m.Label {
				if labels[lp.GetName()] != lp.GetValue() {
					continue next
				}
			}
			if m.Gauge != nil {
				return m.Gauge.GetValue()
			}
			return m.Counter.GetValue()
		}
	}
	return 0
}

// TestRecordingCustomerStreamMasked: what the fork's customer stream
// carries is, packet for packet and byte for byte, what the platform
// got: masked. In-band presses and RFC 4733 events from the carrier
// leave no digit in it for any detector, though the input carries them
// (the control), and the audio around them is there. An event packet the
// relay drops toward the platform (the sender's audio covers its slot)
// is not recorded either.
func TestRecordingCustomerStreamMasked(t *testing.T) {
	const inband = "159#"
	e := newEnv(t, nil)
	sinks := newSRS(t)
	e.record(sinks)

	// 300 ms of a 440 Hz note (not DTMF), then the presses.
	pcm := toneSignal(inband, 300, 80, 80, -8)
	for i := range 2400 {
		pcm[i] = int16(3000 * math.Sin(2*math.Pi*440*float64(i)/dtmf.SampleRate))
	}
	if in := detectAll(t, pcm); in["dtmf"] != inband || in["aggressive"] == "" {
		t.Fatalf("control: the input's digits are %v, want %q", in, inband)
	}

	var platform, fork []got
	step := func(pkt []byte) {
		t.Helper()
		g, ok := e.toPlatformMaybe(pkt)
		if !ok {
			// Dropped toward the platform: nothing for the recorder.
			expectNothing(t, sinks.customer)
			return
		}
		platform = append(platform, g)
		f, err := recv(sinks.customer, wait)
		if err != nil {
			t.Fatalf("platform got seq %d, the recorder nothing: %v", g.seq, err)
		}
		fork = append(fork, f)
	}
	const ssrc = 0xF00D
	seq, ts := uint16(100), uint32(8000)
	raw := encode(pcm, PCMU)
	for i := 0; i+160 <= len(raw); i += 160 {
		step(rtpPkt(0, seq, ts, ssrc, i == 0, raw[i:i+160]))
		seq++
		ts += 160
	}
	// A press of 3 as RFC 4733 alone (replaced toward the platform), then
	// one of 8 while the sender keeps its audio going (after the first,
	// its event packets are dropped).
	evTS := ts
	for i, d := range []uint16{160, 320, 480, 640, 800, 800, 800} {
		step(rtpPkt(101, seq, evTS, ssrc, i == 0, eventPayload('3', i >= 4, d)))
		seq++
	}
	ts = evTS + 800
	quiet := encode(toneSignal("", 0, 0, 0, 0)[:160], PCMU)
	evTS = ts
	for i, d := range []uint16{160, 320, 480, 640, 800, 800, 800} {
		step(rtpPkt(101, seq, evTS, ssrc, i == 0, eventPayload('8', i >= 4, d)))
		seq++
		step(rtpPkt(0, seq, ts, ssrc, false, quiet))
		seq++
		ts += 160
	}
	for range 20 {
		step(rtpPkt(0, seq, ts, ssrc, false, quiet))
		seq++
		ts += 160
	}

	if got := e.sink.digits(); got != inband+"38" {
		t.Fatalf("control: the relay heard %q, want %q", got, inband+"38")
	}
	if e.metric(toPlatform, dropEventWithAudio) == 0 {
		t.Fatal("control: no event packet was dropped toward the platform")
	}
	if len(fork) != len(platform) {
		t.Fatalf("recorder got %d packets, platform %d", len(fork), len(platform))
	}
	for i := range fork {
		if !bytes.Equal(fork[i].raw, platform[i].raw) {
			t.Fatalf("packet %d: recorder got % x, platform % x", i, fork[i].raw, platform[i].raw)
		}
		if fork[i].pt == 101 {
			t.Fatalf("packet %d: an RFC 4733 event reached the recorder", i)
		}
	}
	audio := payloads(fork)
	for name, found := range detectAll(t, decode(audio, PCMU)) {
		if found != "" {
			t.Errorf("%s detects %q in the recorder's customer stream", name, found)
		}
	}
	// The note arrives delayed by the look-ahead, unchanged.
	d := e.relay.Delay()
	if !bytes.Contains(audio, raw[800:1600]) || !bytes.Equal(audio[d+800:d+1600], raw[800:1600]) {
		t.Error("the note before the presses is not in the recorder's customer stream")
	}
	if n := forkCount(t, e.reg, "customer", "sent"); n != float64(len(fork)) {
		t.Errorf("sent counter %v, want %d", n, len(fork))
	}
}

// TestRecordingAgentStream: the agent stream is the platform's packets as
// the carrier gets them, header and payload.
func TestRecordingAgentStream(t *testing.T) {
	e := newEnv(t, nil)
	sinks := newSRS(t)
	e.record(sinks)
	for i := range 10 {
		pkt := rtpPkt(8, uint16(7+i), uint32(160*i), 0xA6E, i == 0, bytes.Repeat([]byte{byte(i)}, 160))
		g := e.exchange(e.platform, Platform, pkt)
		f, err := recv(sinks.agent, wait)
		if err != nil {
			t.Fatal(err)
		}
		if !bytes.Equal(f.raw, pkt) || !bytes.Equal(g.raw, pkt) {
			t.Fatalf("packet %d: sent % x, carrier got % x, recorder % x", i, pkt, g.raw, f.raw)
		}
	}
	expectNothing(t, sinks.customer)
}

// TestRecordingSRTP: with SRTP on either leg or both, the fork sends plain
// RTP: the customer stream is the masked packet the platform decrypts,
// the agent stream the platform's packet before it was protected.
func TestRecordingSRTP(t *testing.T) {
	pcm := toneSignal("4111", 100, 80, 80, -10)
	if got := detectAll(t, pcm)["aggressive"]; got != "4111" {
		t.Fatalf("control: the input's digits are %q to the aggressive detector", got)
	}
	for _, l := range []struct{ carrier, platform bool }{{true, false}, {false, true}, {true, true}} {
		t.Run(fmt.Sprintf("carrier_srtp=%v/platform_srtp=%v", l.carrier, l.platform), func(t *testing.T) {
			e := newEnv(t, nil)
			var ck, pk *SRTP
			var cp, pp *peerCrypto
			if l.carrier {
				ck = srtpKeys(t, sdes.AESCM128SHA1_80, 0)
				cp = newPeerCrypto(t, ck)
			}
			if l.platform {
				pk = srtpKeys(t, sdes.AEADAES128GCM, 0)
				pp = newPeerCrypto(t, pk)
			}
			e.setSRTP(Carrier, e.carrier, ck)
			e.setSRTP(Platform, e.platform, pk)
			sinks := newSRS(t)
			e.record(sinks)
			raw := encode(pcm, PCMU)
			var customer []byte
			for i := 0; i+160 <= len(raw); i += 160 {
				plain := rtpPkt(0, uint16(i/160), uint32(i), 0x5EC, false, raw[i:i+160])
				pkt := plain
				if cp != nil {
					pkt = cp.protect(t, plain)
				}
				g := e.toPlatform(pkt)
				got := g.raw
				if pp != nil {
					got = pp.unprotect(t, g.raw)
				}
				f, err := recv(sinks.customer, wait)
				if err != nil {
					t.Fatal(err)
				}
				if !bytes.Equal(f.raw, got) {
					t.Fatalf("packet %d: recorder got % x, the platform's plain packet is % x", i/160, f.raw, got)
				}
				customer = append(customer, f.payload...)

				back := rtpPkt(0, uint16(i/160), uint32(i), 0xB0B, false, raw[len(raw)-160-i:len(raw)-i])
				pkt = back
				if pp != nil {
					pkt = pp.protect(t, back)
				}
				e.exchange(e.platform, Platform, pkt)
				f, err = recv(sinks.agent, wait)
				if err != nil {
					t.Fatal(err)
				}
				if !bytes.Equal(f.raw, back) {
					t.Fatalf("agent packet %d: recorder got % x, platform sent % x", i/160, f.raw, back)
				}
			}
			if found := refdetect.Digits(refdetect.Aggressive(decode(customer, PCMU))); found != "" {
				t.Errorf("the aggressive detector finds %q in the recorder's customer stream", found)
			}
		})
	}
}

// TestRecordingRemote: nothing is sent before SetRemote; a stream whose
// address is port 0, unspecified or whose SRS does not receive is not
// sent; SetRemote again moves a stream; bad input is refused clearly.
func TestRecordingRemote(t *testing.T) {
	e := newEnv(t, nil)
	rec, err := e.sess.Record()
	if err != nil {
		t.Fatal(err)
	}
	c, a := rec.Local()
	if c == a || c.Addr() != loopback || a.Addr() != loopback || c.Port() == 0 || a.Port() == 0 {
		t.Fatalf("Local %v %v", c, a)
	}
	pkt := rtpPkt(0, 1, 160, 1, false, make([]byte, 160))
	round := func(seq uint16) {
		t.Helper()
		putRTPHeader(pkt, false, 0, seq, uint32(seq)*160, 1)
		e.toPlatform(pkt)
		e.exchange(e.platform, Platform, pkt)
	}
	round(1)
	if n := forkCount(t, e.reg, "customer", "sent") + forkCount(t, e.reg, "agent", "sent"); n != 0 {
		t.Fatalf("%v packets sent before SetRemote", n)
	}

	first, second := newSRS(t), newSRS(t)
	cs, _ := first.streams()
	for _, off := range []Stream{
		{Addr: netip.AddrPortFrom(loopback, 0)},
		{Addr: netip.MustParseAddrPort("0.0.0.0:4000")},
		{},
		{Addr: addrOf(first.agent), Direction: "inactive"},
		{Addr: addrOf(first.agent), Direction: "sendonly"},
	} {
		if err := rec.SetRemote(cs, off); err != nil {
			t.Fatal(err)
		}
		round(2)
		if _, err := recv(first.customer, wait); err != nil {
			t.Fatalf("customer stream not sent: %v", err)
		}
		expectNothing(t, first.agent)
	}

	c1, a1 := first.streams()
	if err := rec.SetRemote(c1, a1); err != nil {
		t.Fatal(err)
	}
	round(3)
	for _, s := range []*net.UDPConn{first.customer, first.agent} {
		if g, err := recv(s, wait); err != nil || g.seq != 3 {
			t.Fatalf("before the move: %v %v", g.seq, err)
		}
	}
	c2, a2 := second.streams()
	if err := rec.SetRemote(c2, a2); err != nil {
		t.Fatal(err)
	}
	round(4)
	for _, s := range []*net.UDPConn{second.customer, second.agent} {
		if g, err := recv(s, wait); err != nil || g.seq != 4 {
			t.Fatalf("after the move: %v %v", g.seq, err)
		}
	}
	expectNothing(t, first.customer)
	expectNothing(t, first.agent)

	for _, tc := range []struct {
		st   Stream
		want string
	}{
		{Stream{Addr: addrOf(second.agent), SRTP: srtpKeys(t, sdes.AESCM128SHA1_80, 0)}, "SRTP"},
		{Stream{Addr: addrOf(second.agent), Direction: "sideways"}, "direction"},
		{Stream{Addr: netip.MustParseAddrPort("[::1]:4000")}, "family"},
	} {
		err := rec.SetRemote(c2, tc.st)
		if err == nil || !strings.Contains(err.Error(), tc.want) || !strings.Contains(err.Error(), "agent") {
			t.Errorf("SetRemote(%+v): %v, want an error about the agent stream's %s", tc.st, err, tc.want)
		}
	}
	// A refused SetRemote changed nothing.
	round(5)
	if g, err := recv(second.agent, wait); err != nil || g.seq != 5 {
		t.Fatalf("after refused SetRemotes: %v %v", g.seq, err)
	}
}

// TestRecordingClose: a fork takes two pairs from the relay's range and
// Close gives them back (the same ports can be taken again); the call
// relays on after it; a session records once at a time; Session.Close
// closes the fork; Close is idempotent.
func TestRecordingClose(t *testing.T) {
	var e *env
	for try := 0; ; try++ {
		lo, hi := randomRange(4) // a call and a fork
		e = newEnvMaybe(t, func(c *Config) { c.PortMin, c.PortMax = lo, hi })
		if e != nil {
			break
		}
		if try == 10 {
			t.Fatal("no free port range")
		}
	}
	rec, err := e.sess.Record()
	if err != nil {
		t.Fatal(err)
	}
	c, a := rec.Local()
	if _, err := e.sess.Record(); err == nil || !strings.Contains(err.Error(), "already recording") {
		t.Errorf("second Record: %v", err)
	}
	if _, err := e.relay.Open("call-2"); !errors.Is(err, ErrPortsExhausted) {
		t.Fatalf("the fork's ports are not the range's: Open %v", err)
	}
	if g := gauge(t, e.reg, "tonevault_recordings", nil); g != 1 {
		t.Errorf("tonevault_recordings %v, want 1", g)
	}
	sinks := newSRS(t)
	cs, as := sinks.streams()
	rec.SetRemote(cs, as)
	rec.Close()
	rec.Close()
	if err := rec.SetRemote(cs, as); err == nil {
		t.Error("SetRemote on a closed fork: no error")
	}
	if g := gauge(t, e.reg, "tonevault_recordings", nil); g != 0 {
		t.Errorf("tonevault_recordings %v after Close, want 0", g)
	}
	e.toPlatform(rtpPkt(0, 1, 160, 1, false, make([]byte, 160)))
	e.exchange(e.platform, Platform, rtpPkt(0, 1, 160, 2, false, make([]byte, 160)))
	expectNothing(t, sinks.customer)
	expectNothing(t, sinks.agent)
	if e.sess.Err() != nil {
		t.Fatalf("the call ended: %v", e.sess.Err())
	}

	again, err := e.sess.Record()
	if err != nil {
		t.Fatalf("Record after Close: %v", err)
	}
	c2, a2 := again.Local()
	if !slices.Contains([]netip.AddrPort{c, a}, c2) || !slices.Contains([]netip.AddrPort{c, a}, a2) {
		t.Errorf("ports %v %v, want %v %v again", c2, a2, c, a)
	}
	again.SetRemote(cs, as)
	e.toPlatform(rtpPkt(0, 2, 320, 1, false, make([]byte, 160)))
	if _, err := recv(sinks.customer, wait); err != nil {
		t.Fatalf("the new fork does not send: %v", err)
	}
	e.sess.Close()
	if g := gauge(t, e.reg, "tonevault_recordings", nil); g != 0 {
		t.Errorf("tonevault_recordings %v after Session.Close, want 0", g)
	}
	if n := e.relay.ports.inUse(); n != 0 {
		t.Errorf("%d pairs in use after Session.Close", n)
	}
	again.Close() // after Session.Close: nothing left to do
	if _, err := e.sess.Record(); err == nil {
		t.Error("Record on a closed session: no error")
	}
}

// newEnvMaybe is newEnv, or nil when the session's ports cannot be had.
func newEnvMaybe(t *testing.T, mut func(*Config)) *env {
	cfg := testConfig()
	mut(&cfg)
	r, err := NewRelay(cfg, Options{Registerer: prometheus.NewRegistry()})
	if err != nil {
		t.Fatal(err)
	}
	s, err := r.Open("call-1")
	if err != nil {
		r.Close()
		return nil
	}
	s.Close()
	r.Close()
	return newEnv(t, mut)
}

// TestRecordingFailures: a fork that cannot send (the kernel refuses the
// destination) or whose code panics, in the copy or the send, is counted
// and dropped; the call goes on, masked, and the panicking fork is closed.
func TestRecordingFailures(t *testing.T) {
	t.Run("send_error", func(t *testing.T) {
		e := newEnv(t, nil)
		rec, err := e.sess.Record()
		if err != nil {
			t.Fatal(err)
		}
		// SetRemote never takes port 0 (not sent), so the test puts it
		// there itself: the kernel refuses it (EINVAL) without a packet
		// leaving, on either engine.
		e.sess.mu.Lock()
		rec.remote = [2]netip.AddrPort{netip.AddrPortFrom(loopback, 0), netip.AddrPortFrom(loopback, 0)}
		e.sess.mu.Unlock()
		seq, ts := uint16(1), uint32(0)
		e.masksDigits(t, "12", &seq, &ts)
		e.exchange(e.platform, Platform, rtpPkt(0, 1, 160, 2, false, make([]byte, 160)))
		waitFor(t, func() bool { return forkCount(t, e.reg, "agent", "send_error") == 1 })
		if n := forkCount(t, e.reg, "customer", "send_error"); n != float64(seq-1) {
			t.Errorf("customer send errors %v, want %d", n, seq-1)
		}
		if e.sess.Err() != nil {
			t.Errorf("the call ended: %v", e.sess.Err())
		}
	})
	for _, where := range []string{"copy", "send"} {
		t.Run("panic_"+where, func(t *testing.T) {
			e := newEnv(t, nil)
			sinks := newSRS(t)
			e.record(sinks)
			f := func(w string) {
				if w == where {
					panic("test fault in the recording fork")
				}
			}
			testForkFault.Store(&f)
			t.Cleanup(func() { testForkFault.Store(nil) })
			seq, ts := uint16(1), uint32(0)
			e.masksDigits(t, "34", &seq, &ts)
			waitFor(t, func() bool { return gauge(t, e.reg, "tonevault_recordings", nil) == 0 })
			if n := forkCount(t, e.reg, "customer", "fault"); n != 1 {
				t.Errorf("faults counted %v, want 1", n)
			}
			if e.sess.Err() != nil || faultCount(t, e.reg, "session") != 0 {
				t.Fatalf("the call failed: %v", e.sess.Err())
			}
			expectNothing(t, sinks.customer)
			testForkFault.Store(nil)
			e.masksDigits(t, "5", &seq, &ts)
			e.exchange(e.platform, Platform, rtpPkt(0, 1, 160, 2, false, make([]byte, 160)))
			expectNothing(t, sinks.agent)
			// The fork's ports are back: a new one opens and sends.
			waitFor(t, func() bool { return e.relay.ports.inUse() == 2 })
			e.record(sinks)
			e.toPlatform(rtpPkt(0, seq, ts, 0xCA11, false, make([]byte, 160)))
			if _, err := recv(sinks.customer, wait); err != nil {
				t.Fatalf("a new fork after the fault does not send: %v", err)
			}
		})
	}
}

// TestRecordingNoAllocs: a packet each way through a recording call,
// fork copies and sends included, allocates nothing, on either engine
// (AllocsPerRun counts every goroutine's allocations, the relay's too).
func TestRecordingNoAllocs(t *testing.T) {
	e := newEnv(t, nil)
	sinks := newSRS(t)
	e.record(sinks)
	cpkt := rtpPkt(0, 0, 0, 7, false, encode(toneSignal("", 0, 0, 0, 0)[:160], PCMU))
	ppkt := rtpPkt(0, 0, 0, 8, false, make([]byte, 160))
	buf := make([]byte, recvBuf)
	var seq uint16
	read := func(c *net.UDPConn) {
		c.SetReadDeadline(time.Now().Add(wait))
		if _, _, err := c.ReadFromUDPAddrPort(buf); err != nil {
			t.Fatal(err)
		}
	}
	step := func() {
		seq++
		putRTPHeader(cpkt, false, 0, seq, uint32(seq)*160, 7)
		putRTPHeader(ppkt, false, 0, seq, uint32(seq)*160, 8)
		e.carrier.WriteToUDPAddrPort(cpkt, e.sess.Local(Carrier))
		read(e.platform)
		read(sinks.customer)
		e.platform.WriteToUDPAddrPort(ppkt, e.sess.Local(Platform))
		read(e.carrier)
		read(sinks.agent)
	}
	for range 50 {
		step() // the masker's and the sockets' first-use allocations
	}
	if n := testing.AllocsPerRun(200, step); n != 0 {
		t.Errorf("%v allocations per packet pair with a fork", n)
	}
}

// TestRecordingIgnoresSRS: what the recorder sends to the fork's ports
// (RTCP, or anything) goes nowhere: neither leg gets it, and the call
// and the fork go on.
func TestRecordingIgnoresSRS(t *testing.T) {
	e := newEnv(t, nil)
	sinks := newSRS(t)
	rec := e.record(sinks)
	c, a := rec.Local()
	junk := rtpPkt(0, 9, 9, 9, false, make([]byte, 160))
	for _, dst := range []netip.AddrPort{c, a, netip.AddrPortFrom(c.Addr(), c.Port()+1), netip.AddrPortFrom(a.Addr(), a.Port()+1)} {
		for _, from := range []*net.UDPConn{sinks.customer, sinks.agent, e.carrier, e.platform} {
			if _, err := from.WriteToUDPAddrPort(junk, dst); err != nil {
				t.Fatal(err)
			}
		}
	}
	expectNothing(t, e.carrier)
	expectNothing(t, e.platform)
	g := e.toPlatform(rtpPkt(0, 1, 160, 1, false, make([]byte, 160)))
	f, err := recv(sinks.customer, wait)
	if err != nil || !bytes.Equal(f.raw, g.raw) {
		t.Fatalf("after the recorder's packets: recorder got % x (%v), platform % x", f.raw, err, g.raw)
	}
	expectNothing(t, sinks.agent)
}
