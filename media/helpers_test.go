package media

import (
	"encoding/binary"
	"errors"
	"net"
	"net/netip"
	"os"
	"sort"
	"sync"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/tonevault/tonevault/dtmf"
	"github.com/tonevault/tonevault/test/refdetect"
)

var loopback = netip.MustParseAddr("127.0.0.1")

// sink records digits.
type sink struct {
	mu   sync.Mutex
	ds   []Digit
	bomb string // a call whose digits make Digit panic (fault tests)
}

func (s *sink) Digit(d Digit) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if d.CallID == s.bomb {
		panic("test fault in the digit sink")
	}
	s.ds = append(s.ds, d)
}

func (s *sink) digits() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	b := make([]byte, len(s.ds))
	for i, d := range s.ds {
		b[i] = byte(d.Digit)
	}
	return string(b)
}

func (s *sink) all() []Digit {
	s.mu.Lock()
	defer s.mu.Unlock()
	return append([]Digit(nil), s.ds...)
}

// testConfig is DefaultConfig with kernel-chosen ports and no timeout,
// relaying with the engine TONEVAULT_MEDIA_IO names (default auto);
// TestGoroutineEngine runs the package's tests again with goroutines.
func testConfig() Config {
	c := DefaultConfig()
	c.PortMin, c.PortMax = 0, 0
	c.MediaTimeout = 0
	if io := os.Getenv(envMediaIO); io != "" {
		c.IO = io
	}
	return c
}

const envMediaIO = "TONEVAULT_MEDIA_IO"

type env struct {
	t        *testing.T
	relay    *Relay
	reg      *prometheus.Registry
	sink     *sink
	sess     *Session
	carrier  *net.UDPConn // the customer's phone / SBC
	platform *net.UDPConn // the agent's phone / PBX

	failMu sync.Mutex
	fails  []string // Options.FailClosed calls, "call:reason"
}

// failClosed returns the FailClosed reports so far, sorted.
func (e *env) failClosed() []string {
	e.failMu.Lock()
	defer e.failMu.Unlock()
	out := append([]string(nil), e.fails...)
	sort.Strings(out)
	return out
}

// g711PTs is what both legs signal in most tests.
var g711PTs = []PayloadType{
	{PT: 0, Codec: PCMU, Name: "PCMU", Rate: 8000},
	{PT: 8, Codec: PCMA, Name: "PCMA", Rate: 8000},
	{PT: 101, Codec: TelephoneEvent, Name: "telephone-event", Rate: 8000},
}

func newEnv(t *testing.T, mut func(*Config)) *env {
	t.Helper()
	cfg := testConfig()
	if mut != nil {
		mut(&cfg)
	}
	e := &env{t: t, reg: prometheus.NewRegistry(), sink: &sink{}}
	r, err := NewRelay(cfg, Options{Registerer: e.reg, Digits: e.sink, FailClosed: func(call, reason string) {
		e.failMu.Lock()
		e.fails = append(e.fails, call+":"+reason)
		e.failMu.Unlock()
	}})
	if err != nil {
		t.Fatal(err)
	}
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

func listen(t *testing.T) *net.UDPConn {
	t.Helper()
	c, err := net.ListenUDP("udp", &net.UDPAddr{IP: net.IPv4(127, 0, 0, 1)})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { c.Close() })
	return c
}

func addrOf(c *net.UDPConn) netip.AddrPort { return unmap(c.LocalAddr().(*net.UDPAddr).AddrPort()) }

func (e *env) setRemote(leg Leg, c *net.UDPConn, dir string) {
	e.t.Helper()
	a := addrOf(c)
	if err := e.sess.SetRemote(leg, Stream{Addr: a, PayloadTypes: g711PTs, Direction: dir}); err != nil {
		e.t.Fatal(err)
	}
}

// rtpPkt builds an RTP packet with a fixed header.
func rtpPkt(pt uint8, seq uint16, ts, ssrc uint32, marker bool, payload []byte) []byte {
	b := make([]byte, rtpHeaderLen+len(payload))
	putRTPHeader(b, marker, pt, seq, ts, ssrc)
	copy(b[rtpHeaderLen:], payload)
	return b
}

// eventPayload is one RFC 4733 block.
func eventPayload(d dtmf.Digit, end bool, dur uint16) []byte {
	code, _ := dtmf.EventCode(d)
	b := []byte{code, 10, 0, 0}
	if end {
		b[1] |= 0x80
	}
	binary.BigEndian.PutUint16(b[2:], dur)
	return b
}

type got struct {
	rtpPacket
	raw []byte
}

// exchange sends from a peer to the relay's socket of leg and waits for
// the relayed packet at the other leg's peer: the relay sends exactly one
// packet per accepted one, so lock-step keeps socket buffers from
// overflowing.
func (e *env) exchange(from *net.UDPConn, leg Leg, pkt []byte) got {
	e.t.Helper()
	e.send(from, leg, pkt)
	rx := e.platform
	if leg == Platform {
		rx = e.carrier
	}
	g, err := recv(rx, 2*time.Second)
	if err != nil {
		e.t.Fatalf("no packet relayed: %v", err)
	}
	return g
}

// toPlatform sends a carrier packet and returns what the platform got.
func (e *env) toPlatform(pkt []byte) got { return e.exchange(e.carrier, Carrier, pkt) }

// toPlatformMaybe sends a carrier packet that the relay may drop: it
// returns what reached the platform, if anything within 150 ms.
func (e *env) toPlatformMaybe(pkt []byte) (got, bool) {
	e.t.Helper()
	e.send(e.carrier, Carrier, pkt)
	g, err := recv(e.platform, 150*time.Millisecond)
	var ne net.Error
	if errors.As(err, &ne) && ne.Timeout() {
		return got{}, false
	}
	if err != nil {
		e.t.Fatal(err)
	}
	return g, true
}

func (e *env) send(from *net.UDPConn, leg Leg, pkt []byte) {
	e.t.Helper()
	if _, err := from.WriteToUDPAddrPort(pkt, e.sess.Local(leg)); err != nil {
		e.t.Fatal(err)
	}
}

func recv(c *net.UDPConn, wait time.Duration) (got, error) {
	buf := make([]byte, recvBuf)
	c.SetReadDeadline(time.Now().Add(wait))
	n, _, err := c.ReadFromUDPAddrPort(buf)
	if err != nil {
		return got{}, err
	}
	p, bad := parseRTP(buf[:n])
	if bad != outcomeNone {
		return got{raw: buf[:n]}, nil
	}
	return got{rtpPacket: p, raw: buf[:n]}, nil
}

// expectNothing checks that no packet arrives on c for a moment.
func expectNothing(t *testing.T, c *net.UDPConn) {
	t.Helper()
	g, err := recv(c, 150*time.Millisecond)
	var ne net.Error
	if err == nil {
		t.Fatalf("unexpected packet relayed: % x", g.raw)
	}
	if !errors.As(err, &ne) || !ne.Timeout() {
		t.Fatal(err)
	}
}

// metric reads one series of tonevault_rtp_packets_total.
func (e *env) metric(dir direction, o outcome) float64 {
	e.t.Helper()
	mfs, err := e.reg.Gather()
	if err != nil {
		e.t.Fatal(err)
	}
	for _, mf := range mfs {
		if mf.GetName() != "tonevault_rtp_packets_total" {
			continue
		}
		for _, m := range mf.Metric {
			l := map[string]string{}
			for _, lp := range m.Label {
				l[lp.GetName()] = lp.GetValue()
			}
			if l["direction"] == directionLabels[dir] && l["action"] == o.action() && l["reason"] == o.reason() {
				return m.Counter.GetValue()
			}
		}
	}
	return 0
}

// toneSignal is speech-free audio with presses of digits: each press
// on for onMs, then offMs of pause, after leadMs of quiet.
func toneSignal(digits string, leadMs, onMs, offMs int, dbm0 float64) []int16 {
	n := (leadMs + len(digits)*(onMs+offMs) + 200) * 8
	pcm := make([]int16, n)
	pos := leadMs * 8
	for _, d := range digits {
		dtmf.AddTone(pcm[pos:pos+onMs*8], dtmf.SampleRate, int64(pos), dtmf.Digit(d), dbm0, dbm0)
		pos += (onMs + offMs) * 8
	}
	// A little noise so the stream is not digital silence.
	x := uint32(1)
	for i := range pcm {
		x = x*1664525 + 1013904223
		pcm[i] += int16(x>>28) - 8
	}
	return pcm
}

func encode(pcm []int16, c Codec) []byte {
	b := make([]byte, len(pcm))
	for i, v := range pcm {
		if c == PCMA {
			b[i] = encodeAlaw(v)
		} else {
			b[i] = encodeUlaw(v)
		}
	}
	return b
}

func decode(b []byte, c Codec) []int16 {
	pcm := make([]int16, len(b))
	dc := dtmf.PCMU
	if c == PCMA {
		dc = dtmf.PCMA
	}
	dtmf.DecodeG711(pcm, b, dc)
	return pcm
}

// bySeq orders received packets by sequence number (no wrap in tests).
func bySeq(ps []got) []got {
	out := append([]got(nil), ps...)
	sort.Slice(out, func(i, j int) bool { return out[i].seq < out[j].seq })
	return out
}

// detectAll runs every detector at hand over pcm and returns their
// findings by name: ours, the aggressive reference, and SpanDSP and
// multimon-ng when installed (required with TONEVAULT_REQUIRE_TOOLS=1).
func detectAll(t *testing.T, pcm []int16) map[string]string {
	t.Helper()
	res := map[string]string{}
	d := dtmf.NewDetector(dtmf.DetectorConfig{})
	evs := d.Flush(d.Process(pcm, nil))
	var s []byte
	for _, e := range evs {
		s = append(s, byte(e.Digit))
	}
	res["dtmf"] = string(s)
	res["aggressive"] = refdetect.Digits(refdetect.Aggressive(pcm))
	require := os.Getenv(refdetect.EnvRequireTools) == "1"
	if require || refdetect.Available(refdetect.ToolSpanDSP) == nil {
		refdetect.Require(t, refdetect.ToolSpanDSP)
		h, err := refdetect.SpanDSP(pcm)
		if err != nil {
			t.Fatal(err)
		}
		res["spandsp"] = refdetect.Digits(h)
	}
	if require || refdetect.Available(refdetect.ToolMultimon, refdetect.ToolSox) == nil {
		refdetect.Require(t, refdetect.ToolMultimon, refdetect.ToolSox)
		h, err := refdetect.Multimon(pcm)
		if err != nil {
			t.Fatal(err)
		}
		res["multimon-ng"] = refdetect.Digits(h)
	}
	return res
}
