package webrtc

import (
	"errors"
	"fmt"
	"net"
	"net/netip"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/pion/ice/v4"
	"github.com/pion/rtp"
	pion "github.com/pion/webrtc/v4"

	"github.com/tonevault/tonevault/media"
)

// browser is a pion PeerConnection that offers what Chromium offers for
// a microphone: Opus, G.722, PCMU and PCMA, over DTLS-SRTP.
type browser struct {
	pc    *pion.PeerConnection
	track *pion.TrackLocalStaticRTP

	mu    sync.Mutex
	got   []rtp.Packet
	codec string
}

// newBrowser's microphone sends mic (PCMU or PCMA): a browser encodes
// its microphone in whatever was answered, pion's track has one codec.
func newBrowser(t *testing.T, mic ...string) *browser {
	t.Helper()
	me := &pion.MediaEngine{}
	if err := me.RegisterDefaultCodecs(); err != nil {
		t.Fatal(err)
	}
	se := pion.SettingEngine{}
	se.SetIncludeLoopbackCandidate(true)
	se.SetNetworkTypes([]pion.NetworkType{pion.NetworkTypeUDP4})
	se.SetIPFilter(func(ip net.IP) bool { return ip.IsLoopback() })
	se.SetICEMulticastDNSMode(ice.MulticastDNSModeDisabled)
	pc, err := pion.NewAPI(pion.WithMediaEngine(me), pion.WithSettingEngine(se)).NewPeerConnection(pion.Configuration{})
	if err != nil {
		t.Fatal(err)
	}
	b := &browser{pc: pc}
	t.Cleanup(func() { pc.Close() })
	mime := pion.MimeTypePCMU
	if len(mic) > 0 {
		mime = mic[0]
	}
	b.track, err = pion.NewTrackLocalStaticRTP(pion.RTPCodecCapability{MimeType: mime, ClockRate: 8000, Channels: 1}, "mic", "agent")
	if err != nil {
		t.Fatal(err)
	}
	if _, err := pc.AddTrack(b.track); err != nil {
		t.Fatal(err)
	}
	pc.OnTrack(func(tr *pion.TrackRemote, _ *pion.RTPReceiver) {
		b.mu.Lock()
		b.codec = tr.Codec().MimeType
		b.mu.Unlock()
		for {
			p, _, err := tr.ReadRTP()
			if err != nil {
				return
			}
			b.mu.Lock()
			b.got = append(b.got, *p)
			b.mu.Unlock()
		}
	})
	return b
}

// offer is the browser's complete offer (all candidates gathered), or,
// with noCandidates, the same without any candidate: ICE can never
// connect.
func (b *browser) offer(t *testing.T, noCandidates bool) []byte {
	t.Helper()
	o, err := b.pc.CreateOffer(nil)
	if err != nil {
		t.Fatal(err)
	}
	done := pion.GatheringCompletePromise(b.pc)
	if err := b.pc.SetLocalDescription(o); err != nil {
		t.Fatal(err)
	}
	<-done
	s := b.pc.LocalDescription().SDP
	if noCandidates {
		var keep []string
		for l := range strings.SplitSeq(s, "\r\n") {
			if !strings.HasPrefix(l, "a=candidate") && l != "" {
				keep = append(keep, l)
			}
		}
		s = strings.Join(keep, "\r\n") + "\r\n"
	}
	return []byte(s)
}

func (b *browser) answer(t *testing.T, sdp []byte) {
	t.Helper()
	if err := b.pc.SetRemoteDescription(pion.SessionDescription{Type: pion.SDPTypeAnswer, SDP: string(sdp)}); err != nil {
		t.Fatal(err)
	}
}

func (b *browser) packets() []rtp.Packet {
	b.mu.Lock()
	defer b.mu.Unlock()
	return append([]rtp.Packet(nil), b.got...)
}

// relaySocket stands in for the media session's platform port.
func relaySocket(t *testing.T) *net.UDPConn {
	t.Helper()
	c, err := net.ListenUDP("udp", &net.UDPAddr{IP: net.IPv4(127, 0, 0, 1)})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { c.Close() })
	return c
}

func testEngine(t *testing.T, cfg Config) *Engine {
	t.Helper()
	e, err := NewEngine(cfg, netip.MustParseAddr("127.0.0.1"), Options{})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { e.Close() })
	return e
}

func rtpPacket(seq uint16, pt uint8, payload byte) []byte {
	p := rtp.Packet{Header: rtp.Header{Version: 2, PayloadType: pt, SequenceNumber: seq, Timestamp: uint32(seq) * 160, SSRC: 0x1234}, Payload: make([]byte, 160)}
	for i := range p.Payload {
		p.Payload[i] = payload
	}
	b, _ := p.Marshal()
	return b
}

func waitUntil(t *testing.T, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(15 * time.Second)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out waiting for %s", what)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// TestLegRelaysBothWays connects a browser to a leg and sends audio each
// way: the relay's packets reach the browser, and only those (a stranger
// writing to the leg's socket and a packet of another payload type are
// dropped); the browser's reach the relay's address.
func TestLegRelaysBothWays(t *testing.T) {
	for _, codec := range []media.Codec{media.PCMU, media.PCMA} {
		t.Run(codec.String(), func(t *testing.T) {
			e := testEngine(t, DefaultConfig())
			relay := relaySocket(t)
			b := newBrowser(t, codecParams(codec).MimeType)
			leg, answer, err := e.NewLeg(b.offer(t, false), LegParams{Codec: codec, Relay: relay.LocalAddr().(*net.UDPAddr).AddrPort(), CallID: "c-test"})
			if err != nil {
				t.Fatal(err)
			}
			defer leg.Close()
			// Answered with the call's codec alone: nothing to transcode.
			want, other := "PCMU/8000", "PCMA/8000"
			pt := uint8(0)
			if codec == media.PCMA {
				want, other, pt = other, want, 8
			}
			if !strings.Contains(string(answer), want) || strings.Contains(string(answer), other) || strings.Contains(strings.ToLower(string(answer)), "opus") {
				t.Errorf("answer does not offer %s alone:\n%s", want, answer)
			}
			if !strings.Contains(string(answer), "a=fingerprint:") || !strings.Contains(string(answer), "a=candidate:") {
				t.Errorf("answer lacks a fingerprint or candidates:\n%s", answer)
			}
			b.answer(t, answer)
			select {
			case <-leg.Connected():
			case <-leg.Done():
				t.Fatalf("leg ended: %v", leg.Err())
			case <-time.After(15 * time.Second):
				t.Fatal("leg never connected")
			}

			stranger := relaySocket(t)
			for i := range 20 {
				if _, err := relay.WriteToUDPAddrPort(rtpPacket(uint16(100+i), pt, 0x55), leg.Addr()); err != nil {
					t.Fatal(err)
				}
				stranger.WriteToUDPAddrPort(rtpPacket(uint16(500+i), pt, 0x66), leg.Addr())
				relay.WriteToUDPAddrPort(rtpPacket(uint16(900+i), 13, 0x77), leg.Addr()) // comfort noise: not negotiated
				time.Sleep(5 * time.Millisecond)
			}
			waitUntil(t, "20 packets at the browser", func() bool { return len(b.packets()) >= 20 })
			time.Sleep(100 * time.Millisecond)
			for _, p := range b.packets() {
				if p.Payload[0] != 0x55 || p.PayloadType != pt {
					t.Errorf("the browser got a packet not from the relay: seq %d, pt %d, payload %#x", p.SequenceNumber, p.PayloadType, p.Payload[0])
				}
			}
			if n := len(b.packets()); n != 20 {
				t.Errorf("the browser got %d packets, want the relay's 20", n)
			}
			if _, _, dropped := leg.Stats(); dropped < 40 {
				t.Errorf("dropped %d packets, want at least the 40 from the stranger and of payload type 13", dropped)
			}

			// The browser's microphone (PCMU, as browsers send it when
			// it is the codec answered) reaches the relay's address.
			got := make(chan []byte, 1)
			go func() {
				buf := make([]byte, 1500)
				relay.SetReadDeadline(time.Now().Add(15 * time.Second))
				n, _, err := relay.ReadFromUDPAddrPort(buf)
				if err == nil {
					got <- buf[:n]
				}
				close(got)
			}()
			stop := make(chan struct{})
			go func() {
				for i := uint16(0); ; i++ {
					select {
					case <-stop:
						return
					case <-time.After(20 * time.Millisecond):
					}
					b.track.WriteRTP(&rtp.Packet{Header: rtp.Header{Version: 2, SequenceNumber: i, Timestamp: uint32(i) * 160}, Payload: make([]byte, 160)})
				}
			}()
			p, ok := <-got
			close(stop)
			if !ok {
				t.Fatal("nothing from the browser reached the relay")
			}
			if p[1]&0x7f != pt {
				t.Errorf("agent audio reached the relay with payload type %d, want %d", p[1]&0x7f, pt)
			}
		})
	}
}

// TestLegBadSDP refuses what is not a WebRTC audio offer with the call's
// codec, each with a reason.
func TestLegBadSDP(t *testing.T) {
	e := testEngine(t, DefaultConfig())
	good := string(newBrowser(t).offer(t, false))
	tests := []struct{ name, sdp, reason string }{
		{"empty", "", "empty"},
		{"not SDP", "hello", "does not parse"},
		{"no fingerprint", strings.ReplaceAll(good, "a=fingerprint:", "a=x-fingerprint:"), "no DTLS fingerprint"},
		{"plain RTP", strings.Replace(good, "UDP/TLS/RTP/SAVPF", "RTP/AVP", 1), "not DTLS-SRTP"},
		{"no PCMU", strings.ReplaceAll(strings.Replace(good, " 0 8", " 8", 1), "PCMU/8000", "X-NONE/8000"), "does not offer PCMU"},
		{"video only", strings.Replace(good, "m=audio", "m=video", 1), "no audio"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			leg, _, err := e.NewLeg([]byte(tt.sdp), LegParams{Codec: media.PCMU, Relay: netip.MustParseAddrPort("127.0.0.1:9"), CallID: "c-test"})
			if leg != nil {
				leg.Close()
			}
			if !errors.Is(err, ErrBadSDP) || !strings.Contains(err.Error(), tt.reason) {
				t.Errorf("err = %v, want ErrBadSDP saying %q", err, tt.reason)
			}
			if Reason(err) != "bad_sdp" {
				t.Errorf("reason %q", Reason(err))
			}
		})
	}
	// The control: the same offer unchanged is answered.
	leg, _, err := e.NewLeg([]byte(good), LegParams{Codec: media.PCMU, Relay: netip.MustParseAddrPort("127.0.0.1:9")})
	if err != nil {
		t.Fatalf("the unchanged offer: %v", err)
	}
	leg.Close()
}

// TestLegICEFailure: an offer without candidates never connects; the
// leg ends with ErrICEFailed once the connect timeout passes.
func TestLegICEFailure(t *testing.T) {
	cfg := DefaultConfig()
	cfg.ConnectTimeout = 300 * time.Millisecond
	e := testEngine(t, cfg)
	b := newBrowser(t)
	leg, answer, err := e.NewLeg(b.offer(t, true), LegParams{Codec: media.PCMU, Relay: netip.MustParseAddrPort("127.0.0.1:9")})
	if err != nil {
		t.Fatal(err)
	}
	defer leg.Close()
	_ = answer // the browser never gets it: it could not have connected anyway
	select {
	case <-leg.Done():
	case <-time.After(15 * time.Second):
		t.Fatal("leg did not end")
	}
	if !errors.Is(leg.Err(), ErrICEFailed) || Reason(leg.Err()) != "ice_failed" {
		t.Errorf("err = %v, want ErrICEFailed", leg.Err())
	}
	select {
	case <-leg.Connected():
		t.Error("Connected closed for a leg that never connected")
	default:
	}
}

// TestLegAgentGone: a connected browser that closes its connection ends
// the leg with ErrGone; a leg its owner closes ends with no error.
func TestLegAgentGone(t *testing.T) {
	e := testEngine(t, DefaultConfig())
	for _, byBrowser := range []bool{true, false} {
		b := newBrowser(t)
		leg, answer, err := e.NewLeg(b.offer(t, false), LegParams{Codec: media.PCMU, Relay: netip.MustParseAddrPort("127.0.0.1:9")})
		if err != nil {
			t.Fatal(err)
		}
		b.answer(t, answer)
		select {
		case <-leg.Connected():
		case <-time.After(15 * time.Second):
			t.Fatalf("not connected: %v", leg.Err())
		}
		if byBrowser {
			b.pc.Close()
			select {
			case <-leg.Done():
			case <-time.After(20 * time.Second):
				t.Fatal("leg did not end when the browser closed")
			}
			if !errors.Is(leg.Err(), ErrGone) {
				t.Errorf("browser closed: err = %v, want ErrGone", leg.Err())
			}
		} else {
			leg.Close()
			if leg.Err() != nil {
				t.Errorf("closed by its owner: err = %v, want nil", leg.Err())
			}
		}
		leg.Close()
	}
}

func TestConfigValidate(t *testing.T) {
	tests := []struct {
		name string
		mod  func(*Config)
		want string
	}{
		{"default", func(*Config) {}, ""},
		{"stun", func(c *Config) { c.STUNServers = []string{"http://x"} }, "webrtc.stun_servers[0]"},
		{"turn url", func(c *Config) { c.TURNServers = []TURNServer{{URL: "stun:x", Username: "u", CredentialFile: "f"}} }, "webrtc.turn_servers[0].url"},
		{"turn credential", func(c *Config) { c.TURNServers = []TURNServer{{URL: "turn:x"}} }, "webrtc.turn_servers[0]"},
		{"lite", func(c *Config) { c.ICELite = "maybe" }, "webrtc.ice_lite"},
		{"port", func(c *Config) { c.UDPPort = 70000 }, "webrtc.udp_port"},
		{"public", func(c *Config) { c.PublicIP = netip.IPv4Unspecified() }, "webrtc.public_ip"},
		{"timeout", func(c *Config) { c.ConnectTimeout = -1 }, "webrtc.connect_timeout"},
	}
	for _, tt := range tests {
		c := DefaultConfig()
		tt.mod(&c)
		err := c.Validate()
		if (err == nil) != (tt.want == "") || err != nil && !strings.Contains(err.Error(), tt.want) {
			t.Errorf("%s: err = %v, want %q", tt.name, err, tt.want)
		}
	}
}

func TestLite(t *testing.T) {
	tests := []struct {
		lite, bind, public string
		want               bool
	}{
		{"auto", "127.0.0.1", "", false},
		{"auto", "10.0.0.5", "", false},
		{"auto", "10.0.0.5", "203.0.113.7", true},
		{"auto", "198.51.100.20", "", true}, // documentation range counts as global here
		{"on", "127.0.0.1", "", true},
		{"off", "198.51.100.20", "", false},
	}
	for _, tt := range tests {
		c := Config{ICELite: tt.lite}
		if tt.public != "" {
			c.PublicIP = netip.MustParseAddr(tt.public)
		}
		if got := c.lite(netip.MustParseAddr(tt.bind)); got != tt.want {
			t.Errorf("%+v: lite = %v", tt, got)
		}
	}
}

// TestPublicAddress: behind a 1:1 NAT the answer's candidates name the
// public address, never bind_ip, and the gateway says it is ICE-lite.
func TestPublicAddress(t *testing.T) {
	cfg := DefaultConfig()
	cfg.PublicIP = netip.MustParseAddr("203.0.113.7")
	e := testEngine(t, cfg)
	if !e.Lite() {
		t.Error("not ICE-lite with a public address")
	}
	leg, answer, err := e.NewLeg(newBrowser(t).offer(t, false), LegParams{Codec: media.PCMU, Relay: netip.MustParseAddrPort("127.0.0.1:9")})
	if err != nil {
		t.Fatal(err)
	}
	defer leg.Close()
	a := string(answer)
	if !strings.Contains(a, "a=ice-lite") || !strings.Contains(a, " 203.0.113.7 ") || strings.Contains(a, " 127.0.0.1 ") {
		t.Errorf("answer behind a NAT:\n%s", a)
	}
	// The control: without it, the candidate is bind_ip and ICE is full.
	e = testEngine(t, DefaultConfig())
	leg2, answer, err := e.NewLeg(newBrowser(t).offer(t, false), LegParams{Codec: media.PCMU, Relay: netip.MustParseAddrPort("127.0.0.1:9")})
	if err != nil {
		t.Fatal(err)
	}
	defer leg2.Close()
	if a := string(answer); strings.Contains(a, "a=ice-lite") || !strings.Contains(a, " 127.0.0.1 ") {
		t.Errorf("answer on loopback:\n%s", a)
	}
}

// TestOneUDPPort: with webrtc.udp_port every leg's candidate is that
// port, and legs on it still connect.
func TestOneUDPPort(t *testing.T) {
	c, err := net.ListenUDP("udp", &net.UDPAddr{IP: net.IPv4(127, 0, 0, 1)})
	if err != nil {
		t.Fatal(err)
	}
	port := c.LocalAddr().(*net.UDPAddr).Port
	c.Close()
	cfg := DefaultConfig()
	cfg.UDPPort = port
	e := testEngine(t, cfg)
	for range 2 {
		b := newBrowser(t)
		leg, answer, err := e.NewLeg(b.offer(t, false), LegParams{Codec: media.PCMU, Relay: netip.MustParseAddrPort("127.0.0.1:9")})
		if err != nil {
			t.Fatal(err)
		}
		defer leg.Close()
		if !strings.Contains(string(answer), fmt.Sprintf(" 127.0.0.1 %d typ host", port)) {
			t.Errorf("candidate not on port %d:\n%s", port, answer)
		}
		b.answer(t, answer)
		select {
		case <-leg.Connected():
		case <-time.After(15 * time.Second):
			t.Fatalf("a leg on the shared port did not connect: %v", leg.Err())
		}
	}
}
