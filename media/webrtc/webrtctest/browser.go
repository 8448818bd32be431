// Package webrtctest is a WebRTC peer that stands in for an agent's
// browser where no browser runs: package tests, and the load client that
// measures many agent legs at once. It offers what Chromium offers for a
// microphone (Opus, G.722, PCMU, PCMA, DTLS-SRTP, host candidates on
// loopback), records the RTP it receives and sends G.711 packets of its
// own on demand. Not for the serving path.
package webrtctest

import (
	"errors"
	"net"
	"strings"
	"sync"
	"time"

	"github.com/pion/ice/v4"
	"github.com/pion/interceptor"
	"github.com/pion/rtp"
	pion "github.com/pion/webrtc/v4"
)

// Browser is one agent's PeerConnection.
type Browser struct {
	PC    *pion.PeerConnection
	track *pion.TrackLocalStaticRTP

	mu      sync.Mutex
	got     []rtp.Packet
	keep    bool // keep packets (tests) or only count them (load)
	count   int
	first   time.Time
	lastSeq uint16
	lost    int
	started bool
}

// Options vary a Browser.
type Options struct {
	// Mic is the codec the microphone track is encoded with
	// (pion.MimeTypePCMU by default): a browser encodes its microphone in
	// whatever was answered, and a pion track has one codec.
	Mic string
	// CountOnly keeps no packets, only their count and sequence gaps
	// (the load client).
	CountOnly bool
}

// New makes a Browser on loopback.
func New(o Options) (*Browser, error) {
	me := &pion.MediaEngine{}
	if err := me.RegisterDefaultCodecs(); err != nil {
		return nil, err
	}
	se := pion.SettingEngine{}
	se.SetIncludeLoopbackCandidate(true)
	se.SetNetworkTypes([]pion.NetworkType{pion.NetworkTypeUDP4})
	se.SetIPFilter(func(ip net.IP) bool { return ip.IsLoopback() })
	se.SetICEMulticastDNSMode(ice.MulticastDNSModeDisabled)
	pc, err := pion.NewAPI(pion.WithMediaEngine(me), pion.WithSettingEngine(se), pion.WithInterceptorRegistry(&interceptor.Registry{})).NewPeerConnection(pion.Configuration{})
	if err != nil {
		return nil, err
	}
	b := &Browser{PC: pc, keep: !o.CountOnly}
	mime := o.Mic
	if mime == "" {
		mime = pion.MimeTypePCMU
	}
	if b.track, err = pion.NewTrackLocalStaticRTP(pion.RTPCodecCapability{MimeType: mime, ClockRate: 8000, Channels: 1}, "mic", "agent"); err != nil {
		pc.Close()
		return nil, err
	}
	if _, err := pc.AddTrack(b.track); err != nil {
		pc.Close()
		return nil, err
	}
	pc.OnTrack(func(tr *pion.TrackRemote, _ *pion.RTPReceiver) {
		var p rtp.Packet
		buf := make([]byte, 1500)
		for {
			n, _, err := tr.Read(buf)
			if err != nil {
				return
			}
			if p.Unmarshal(buf[:n]) != nil {
				continue
			}
			b.received(&p)
		}
	})
	return b, nil
}

func (b *Browser) received(p *rtp.Packet) {
	b.mu.Lock()
	defer b.mu.Unlock()
	if !b.started {
		b.started, b.first = true, time.Now()
	} else if gap := p.SequenceNumber - b.lastSeq; gap > 1 && gap < 0x8000 {
		b.lost += int(gap - 1)
	}
	b.lastSeq = p.SequenceNumber
	b.count++
	if b.keep {
		c := *p
		c.Payload = append([]byte(nil), p.Payload...)
		b.got = append(b.got, c)
	}
}

// Offer is the browser's complete offer (every candidate gathered). With
// noCandidates, the candidates are removed: ICE can never connect.
func (b *Browser) Offer(noCandidates bool) ([]byte, error) {
	o, err := b.PC.CreateOffer(nil)
	if err != nil {
		return nil, err
	}
	done := pion.GatheringCompletePromise(b.PC)
	if err := b.PC.SetLocalDescription(o); err != nil {
		return nil, err
	}
	select {
	case <-done:
	case <-time.After(10 * time.Second):
		return nil, errors.New("webrtctest: gathering did not complete")
	}
	s := b.PC.LocalDescription().SDP
	if noCandidates {
		var keep []string
		for l := range strings.SplitSeq(s, "\r\n") {
			if !strings.HasPrefix(l, "a=candidate") && l != "" {
				keep = append(keep, l)
			}
		}
		s = strings.Join(keep, "\r\n") + "\r\n"
	}
	return []byte(s), nil
}

// Answer takes the gateway's answer.
func (b *Browser) Answer(sdp []byte) error {
	return b.PC.SetRemoteDescription(pion.SessionDescription{Type: pion.SDPTypeAnswer, SDP: string(sdp)})
}

// Send sends one RTP packet of 160 samples (20 ms) of the microphone:
// payload as given, sequence seq.
func (b *Browser) Send(seq uint16, payload []byte) error {
	return b.track.WriteRTP(&rtp.Packet{Header: rtp.Header{Version: 2, SequenceNumber: seq, Timestamp: uint32(seq) * 160}, Payload: payload})
}

// Packets are the packets received so far (not with CountOnly).
func (b *Browser) Packets() []rtp.Packet {
	b.mu.Lock()
	defer b.mu.Unlock()
	return append([]rtp.Packet(nil), b.got...)
}

// Received is how many packets arrived and how many the sequence numbers
// say were lost on the way.
func (b *Browser) Received() (n, lost int) {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.count, b.lost
}

// Close closes the connection (DTLS close_notify: a tab closing).
func (b *Browser) Close() error { return b.PC.Close() }
