package media

import (
	"net/netip"
	"testing"
	"time"
)

// fuzzPeer is the carrier's signalled address in FuzzCarrierPacket: the
// fuzzer's bytes arrive from it, so they reach the parser.
var fuzzPeer = netip.MustParseAddrPort("127.0.0.1:4000")

func fuzzSession(tb testing.TB) *Session {
	r, err := NewRelay(testConfig(), Options{Digits: &sink{}})
	if err != nil {
		tb.Fatal(err)
	}
	tb.Cleanup(func() { r.Close() })
	s, err := r.Open("fuzz")
	if err != nil {
		tb.Fatal(err)
	}
	pts := append([]PayloadType{{PT: 13, Codec: ComfortNoise}}, g711PTs...)
	if err := s.SetRemote(Carrier, Stream{Addr: fuzzPeer, PayloadTypes: pts}); err != nil {
		tb.Fatal(err)
	}
	if err := s.SetRemote(Platform, Stream{Addr: netip.MustParseAddrPort("127.0.0.1:4002"), PayloadTypes: pts}); err != nil {
		tb.Fatal(err)
	}
	return s
}

// FuzzCarrierPacket feeds arbitrary datagrams to the carrier path. Whatever
// comes in, nothing panics, and whatever goes out is valid RTP of an
// inspected format (G.711 or comfort noise) with the sender's SSRC: never
// a telephone-event, never an unknown payload type, never more than
// MaxPacket.
func FuzzCarrierPacket(f *testing.F) {
	f.Add(rtpPkt(0, 1, 160, 7, true, make([]byte, 160)))
	f.Add(rtpPkt(101, 2, 160, 7, true, eventPayload('5', true, 800)))
	f.Add(rtpPkt(96, 3, 320, 7, false, []byte{1, 2, 3}))
	f.Add([]byte{0x8f, 0, 0, 1})
	s := fuzzSession(f)
	out := make([]byte, MaxPacket)
	start := time.Now()
	f.Fuzz(func(t *testing.T, pkt []byte) {
		res := s.carrierPacket(pkt, fuzzPeer, start.Add(time.Duration(len(pkt))*time.Millisecond), out, nil, nil)
		if res.n == 0 {
			return
		}
		if res.n > MaxPacket {
			t.Fatalf("%d bytes out", res.n)
		}
		p, bad := parseRTP(out[:res.n])
		if bad != outcomeNone {
			t.Fatalf("relay sent malformed RTP (%s): % x", bad.reason(), out[:res.n])
		}
		if c := s.ptmap[p.pt]; c != PCMU && c != PCMA && c != ComfortNoise {
			t.Fatalf("payload type %d (%v) reached the platform", p.pt, c)
		}
		in, _ := parseRTP(pkt)
		if p.ssrc != in.ssrc {
			t.Fatalf("ssrc %x → %x", in.ssrc, p.ssrc)
		}
		if out[0] != 0x80 {
			t.Fatalf("header byte 0 %#x: CSRC, extension or padding forwarded", out[0])
		}
	})
}
