package media

import (
	"bytes"
	"fmt"
	"net"
	"net/netip"
	"testing"
	"time"

	"github.com/pion/rtcp"
	"github.com/pion/srtp/v3"

	"github.com/tonevault/tonevault/media/sdes"
)

// srtpKeys draws a leg's keys as the SIP layer would: the peer's (Recv,
// from its SDP) and the relay's own (Send), with MKIs of mkiLen bytes on
// the peer's key when mkiLen > 0 (Microsoft Teams sends 1:1).
func srtpKeys(t testing.TB, s sdes.Suite, mkiLen int) *SRTP {
	t.Helper()
	peer, err := sdes.NewKey(s, mkiLen)
	if err != nil {
		t.Fatal(err)
	}
	ours, err := sdes.NewKey(s, mkiLen)
	if err != nil {
		t.Fatal(err)
	}
	return &SRTP{Suite: s, Recv: []sdes.Key{peer}, Send: ours}
}

// peerCrypto is the far end of an SRTP leg: it protects with the key
// the relay receives with, and unprotects with the relay's own.
type peerCrypto struct {
	enc, dec *srtp.Context
}

func newPeerCrypto(t testing.TB, k *SRTP) *peerCrypto {
	t.Helper()
	ctx := func(key sdes.Key) *srtp.Context {
		prof, err := profileOf(k.Suite)
		if err != nil {
			t.Fatal(err)
		}
		m, salt := key.Master(k.Suite)
		var opts []srtp.ContextOption
		if mki := key.MKIBytes(); mki != nil {
			opts = append(opts, srtp.MasterKeyIndicator(mki))
		}
		c, err := srtp.CreateContext(m, salt, prof, opts...)
		if err != nil {
			t.Fatal(err)
		}
		return c
	}
	return &peerCrypto{enc: ctx(k.Recv[0]), dec: ctx(k.Send)}
}

func (p *peerCrypto) protect(t testing.TB, pkt []byte) []byte {
	t.Helper()
	out, err := p.enc.EncryptRTP(nil, pkt, nil)
	if err != nil {
		t.Fatal(err)
	}
	return out
}

func (p *peerCrypto) unprotect(t testing.TB, pkt []byte) []byte {
	t.Helper()
	out, err := p.dec.DecryptRTP(nil, pkt, nil)
	if err != nil {
		t.Fatalf("the peer cannot authenticate what the relay sent: %v", err)
	}
	return out
}

// setSRTP signals leg with keys k (nil: plain RTP).
func (e *env) setSRTP(leg Leg, c *net.UDPConn, k *SRTP) {
	e.t.Helper()
	if err := e.sess.SetRemote(leg, Stream{Addr: addrOf(c), PayloadTypes: g711PTs, Direction: "sendrecv", SRTP: k}); err != nil {
		e.t.Fatal(err)
	}
}

// TestSRTPLegs runs keyed digits through the relay for every mix of SRTP
// and plain RTP on the two legs and every suite: what the platform gets
// is protected exactly when its leg has SRTP (with the relay's own key,
// never the carrier's), decrypts to masked audio in which no detector
// finds a digit, and the platform's audio reaches the carrier protected
// the carrier's way. RTCP goes across too.
func TestSRTPLegs(t *testing.T) {
	pcm := toneSignal("4111", 100, 80, 80, -10)
	if got := detectAll(t, pcm)["aggressive"]; got != "4111" {
		t.Fatalf("control: the input's digits are %q to the aggressive detector, want 4111", got)
	}
	type legs struct{ carrier, platform bool }
	for _, suite := range sdes.Suites {
		for _, l := range []legs{{true, true}, {true, false}, {false, true}} {
			for _, mki := range []int{0, 1} {
				if mki > 0 && !l.carrier {
					continue
				}
				name := fmt.Sprintf("%v/carrier_srtp=%v/platform_srtp=%v/mki=%d", suite, l.carrier, l.platform, mki)
				t.Run(name, func(t *testing.T) {
					e := newEnv(t, nil)
					var ck, pk *SRTP
					var cp, pp *peerCrypto
					if l.carrier {
						ck = srtpKeys(t, suite, mki)
						cp = newPeerCrypto(t, ck)
					}
					if l.platform {
						pk = srtpKeys(t, suite, 0)
						pp = newPeerCrypto(t, pk)
					}
					e.setSRTP(Carrier, e.carrier, ck)
					e.setSRTP(Platform, e.platform, pk)
					raw := encode(pcm, PCMU)
					var agent []int16
					for i := 0; i+160 <= len(raw); i += 160 {
						pkt := rtpPkt(0, uint16(i/160), uint32(i), 0x1234, false, raw[i:i+160])
						if cp != nil {
							pkt = cp.protect(t, pkt)
						}
						g := e.toPlatform(pkt)
						plain := g.raw
						if pp != nil {
							if len(plain) <= rtpHeaderLen+160 {
								t.Fatalf("packet %d reached the SRTP platform without an auth tag (%d bytes)", i/160, len(plain))
							}
							plain = pp.unprotect(t, g.raw)
						} else if len(plain) != rtpHeaderLen+160 {
							t.Fatalf("packet %d reached the plain platform with %d bytes", i/160, len(plain))
						}
						p, bad := parseRTP(plain)
						if bad != outcomeNone {
							t.Fatalf("packet %d: %v", i/160, bad.reason())
						}
						agent = append(agent, decode(p.payload, PCMU)...)
					}
					for name, got := range detectAll(t, agent) {
						if got != "" {
							t.Errorf("%s finds %q in the agent's decrypted audio", name, got)
						}
					}
					if got := e.sink.digits(); got != "4111" {
						t.Errorf("digits reported %q, want 4111", got)
					}

					// The agent talks back.
					back := rtpPkt(0, 1, 160, 0x9999, false, encode(toneSignal("", 20, 0, 0, 0), PCMU)[:160])
					if pp != nil {
						back = pp.protect(t, back)
					}
					g := e.exchange(e.platform, Platform, back)
					if cp != nil {
						g.raw = cp.unprotect(t, g.raw)
					}
					if p, bad := parseRTP(g.raw); bad != outcomeNone || p.ssrc != 0x9999 {
						t.Fatalf("carrier got %v, ssrc %x", bad.reason(), p.ssrc)
					}

					// RTCP both ways, from the peers' RTCP sockets.
					cR, pR := listen(t), listen(t)
					e.setSRTPWith(Carrier, Stream{Addr: addrOf(e.carrier), RTCP: addrOf(cR), PayloadTypes: g711PTs, SRTP: ck})
					e.setSRTPWith(Platform, Stream{Addr: addrOf(e.platform), RTCP: addrOf(pR), PayloadTypes: g711PTs, SRTP: pk})
					checkRTCP(t, e, Carrier, cR, pR, cp, pp)
					checkRTCP(t, e, Platform, pR, cR, pp, cp)
				})
			}
		}
	}
}

func (e *env) setSRTPWith(leg Leg, st Stream) {
	e.t.Helper()
	if err := e.sess.SetRemote(leg, st); err != nil {
		e.t.Fatal(err)
	}
}

// checkRTCP sends a receiver report from leg's peer (protected with from
// when not nil) and checks that the other peer gets it, protected with
// to when not nil, unchanged once unprotected.
func checkRTCP(t *testing.T, e *env, leg Leg, src, dst *net.UDPConn, from, to *peerCrypto) {
	t.Helper()
	rr, err := (&rtcp.ReceiverReport{SSRC: 0x1234 + uint32(leg)}).Marshal()
	if err != nil {
		t.Fatal(err)
	}
	pkt := rr
	if from != nil {
		if pkt, err = from.enc.EncryptRTCP(nil, rr, nil); err != nil {
			t.Fatal(err)
		}
	}
	a := e.sess.Local(leg)
	if _, err := src.WriteToUDPAddrPort(pkt, netip.AddrPortFrom(a.Addr(), a.Port()+1)); err != nil {
		t.Fatal(err)
	}
	g, err := recv(dst, 2*time.Second)
	if err != nil {
		t.Fatalf("%v RTCP not relayed: %v", leg, err)
	}
	got := g.raw
	if to != nil {
		if got, err = to.dec.DecryptRTCP(nil, g.raw, nil); err != nil {
			t.Fatalf("%v RTCP: the far peer cannot authenticate it: %v", leg, err)
		}
	} else if !bytes.Equal(got, rr) {
		t.Fatalf("%v RTCP reached a plain peer as % x, want % x", leg, got, rr)
	}
	if !bytes.Equal(got, rr) {
		t.Errorf("%v RTCP arrived as % x, want % x", leg, got, rr)
	}
}

// TestSRTPRefused: a carrier packet that does not authenticate (forged,
// tampered, under another key, plain RTP on an SRTP leg) or that
// replays one already seen is dropped and counted, never forwarded, and
// the audit hook hears of it once; the same from the platform is
// dropped too. A good packet first shows that the path works.
func TestSRTPRefused(t *testing.T) {
	e := newEnv(t, nil)
	ck, pk := srtpKeys(t, sdes.AESCM128SHA1_80, 0), srtpKeys(t, sdes.AESCM128SHA1_80, 0)
	e.setSRTP(Carrier, e.carrier, ck)
	e.setSRTP(Platform, e.platform, pk)
	cp, pp := newPeerCrypto(t, ck), newPeerCrypto(t, pk)
	audio := encode(toneSignal("", 20, 0, 0, 0), PCMU)[:160]
	good := cp.protect(t, rtpPkt(0, 1, 0, 7, false, audio))
	pp.unprotect(t, e.toPlatform(good).raw)

	other := newPeerCrypto(t, srtpKeys(t, sdes.AESCM128SHA1_80, 0))
	tampered := cp.protect(t, rtpPkt(0, 2, 160, 7, false, audio))
	tampered[rtpHeaderLen+5] ^= 1
	for _, tc := range []struct {
		name string
		pkt  []byte
		want outcome
	}{
		{"tampered payload", tampered, dropSRTPAuth},
		{"another key", other.protect(t, rtpPkt(0, 3, 320, 7, false, audio)), dropSRTPAuth},
		{"plain RTP", rtpPkt(0, 4, 480, 7, false, audio), dropSRTPAuth},
		{"replayed", good, dropSRTPRejected},
		{"shorter than a tag", []byte{0x80, 0, 0, 5, 0, 0, 0, 0, 0, 0, 0, 7, 1}, dropSRTPRejected},
	} {
		before := e.metric(toPlatform, tc.want)
		if g, ok := e.toPlatformMaybe(tc.pkt); ok {
			t.Errorf("%s: forwarded to the platform (% x)", tc.name, g.raw[:12])
		}
		if got := e.metric(toPlatform, tc.want); got != before+1 {
			t.Errorf("%s: %s counted %v times, want %v", tc.name, tc.want.reason(), got, before+1)
		}
	}
	// The stream goes on once the peer's packets authenticate again.
	pp.unprotect(t, e.toPlatform(cp.protect(t, rtpPkt(0, 5, 640, 7, false, audio))).raw)
	waitFor(t, func() bool { return len(e.failClosed()) == 2 })
	if got := e.failClosed(); got[0] != "call-1:srtp_auth_failed" || got[1] != "call-1:srtp_rejected" {
		t.Errorf("fail-closed reports %v", got)
	}

	// From the platform: a forged packet does not reach the customer.
	e.send(e.platform, Platform, rtpPkt(0, 9, 0, 9, false, audio))
	expectNothing(t, e.carrier)
	if e.metric(toCarrier, dropSRTPAuth) != 1 {
		t.Error("platform auth failure not counted")
	}
}

func waitFor(t *testing.T, cond func() bool) {
	t.Helper()
	for range 200 {
		if cond() {
			return
		}
		time.Sleep(10 * time.Millisecond)
	}
	t.Fatal("condition not met within 2 s")
}

// TestSRTPKeysKept: the same keys signalled again (an 18x then the 2xx,
// a re-INVITE that keeps them) keep the leg's SRTP state, so a replay is
// still caught; new keys replace it, and the old key no longer
// authenticates; no SRTP makes the leg plain again.
func TestSRTPKeysKept(t *testing.T) {
	e := newEnv(t, nil)
	ck := srtpKeys(t, sdes.AEADAES128GCM, 0)
	e.setSRTP(Carrier, e.carrier, ck)
	cp := newPeerCrypto(t, ck)
	audio := make([]byte, 160)
	first := cp.protect(t, rtpPkt(0, 1, 0, 7, false, audio))
	e.toPlatform(first)
	same := *ck
	e.setSRTP(Carrier, e.carrier, &same)
	if _, ok := e.toPlatformMaybe(first); ok {
		t.Fatal("a replay passed after the same keys were signalled again: the leg's state was reset")
	}
	nk := srtpKeys(t, sdes.AEADAES128GCM, 0)
	e.setSRTP(Carrier, e.carrier, nk)
	if _, ok := e.toPlatformMaybe(cp.protect(t, rtpPkt(0, 2, 160, 7, false, audio))); ok {
		t.Fatal("the old key still authenticates after new keys")
	}
	e.toPlatform(newPeerCrypto(t, nk).protect(t, rtpPkt(0, 3, 320, 7, false, audio)))
	e.setSRTP(Carrier, e.carrier, nil)
	if g := e.toPlatform(rtpPkt(0, 4, 480, 7, false, audio)); len(g.raw) != rtpHeaderLen+160 {
		t.Fatalf("plain leg: %d bytes", len(g.raw))
	}
}

// TestSRTPBadKeys: keys that cannot work are refused by SetRemote and
// leave the leg as it was.
func TestSRTPBadKeys(t *testing.T) {
	e := newEnv(t, nil)
	good := srtpKeys(t, sdes.AESCM128SHA1_80, 0)
	for _, k := range []*SRTP{
		{Suite: sdes.SuiteUnknown, Recv: good.Recv, Send: good.Send},
		{Suite: sdes.AESCM128SHA1_80, Send: good.Send},
		{Suite: sdes.AESCM128SHA1_80, Recv: good.Recv},
		{Suite: sdes.AEADAES128GCM, Recv: good.Recv, Send: good.Send}, // 30-byte keys for a 28-byte suite
	} {
		err := e.sess.SetRemote(Carrier, Stream{Addr: addrOf(e.carrier), PayloadTypes: g711PTs, SRTP: k})
		if err == nil {
			t.Errorf("SetRemote accepted %v", k.Suite)
		}
	}
	if g := e.toPlatform(rtpPkt(0, 1, 0, 7, false, make([]byte, 160))); len(g.raw) != rtpHeaderLen+160 {
		t.Fatal("the leg changed after refused keys")
	}
}
