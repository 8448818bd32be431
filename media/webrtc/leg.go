package webrtc

import (
	"context"
	"errors"
	"fmt"
	"net"
	"net/netip"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/pion/sdp/v3"
	pion "github.com/pion/webrtc/v4"
	"go.uber.org/zap"

	"github.com/tonevault/tonevault/media"
)

// Why a leg ended, as Leg.Err reports it. Each names one audit reason.
var (
	// ErrBadSDP: the offer is not a WebRTC audio offer the gateway can
	// answer (unparseable, no audio, no DTLS fingerprint, no G.711 in the
	// call's format). Returned by NewLeg; nothing was set up.
	ErrBadSDP = errors.New("webrtc: bad SDP offer")
	// ErrICEFailed: no ICE connectivity within the connect timeout, or
	// ICE failed before the leg connected.
	ErrICEFailed = errors.New("webrtc: ICE did not connect")
	// ErrDTLSFailed: ICE connected but the DTLS handshake failed or did
	// not finish within the connect timeout.
	ErrDTLSFailed = errors.New("webrtc: DTLS handshake failed")
	// ErrGone: a connected agent's media stopped (the tab closed, the
	// browser closed the connection, or its network went).
	ErrGone = errors.New("webrtc: the agent's media ended")
)

// LegParams say what a leg relays.
type LegParams struct {
	// Codec is the call's G.711 format, the carrier's: the browser is
	// answered with it alone.
	Codec media.Codec
	// Relay is the media session's platform address (Session.Local of
	// media.Platform): the masked stream comes from there and nowhere
	// else, and the agent's audio goes there.
	Relay netip.AddrPort
	// CallID names the leg in logs.
	CallID string
}

// maxOffer bounds an offer's size; browsers' audio offers are a few KiB.
const maxOffer = 64 << 10

// Leg is one agent's PeerConnection for one call, bridged to the
// platform leg of the call's media session. To the session the leg is an
// ordinary platform peer on a loopback socket: what it gets there is the
// session's platform output, after the masker, and it is the only input
// the browser's track is fed from. Nothing reaches the browser around the
// masker, and when the session sends nothing (fail closed), the browser
// hears nothing.
type Leg struct {
	e     *Engine
	p     LegParams
	pt    uint8 // the codec's static payload type
	pc    *pion.PeerConnection
	track *pion.TrackLocalStaticRTP
	conn  *net.UDPConn // toward the relay, on loopback
	addr  netip.AddrPort
	log   *zap.Logger

	connected     chan struct{}
	connectedOnce sync.Once
	isConnected   atomic.Bool
	iceUp         atomic.Bool // ICE reached connected at least once
	closing       atomic.Bool

	done     chan struct{}
	doneOnce sync.Once
	err      atomic.Pointer[error]
	torn     chan struct{}
	timer    *time.Timer
	wg       sync.WaitGroup

	toAgent, fromAgent, dropped atomic.Uint64
}

// NewLeg answers a browser's offer for a call: it returns the leg and
// the SDP answer (all candidates in it: no trickle). An offer that
// cannot be answered is ErrBadSDP (wrapped, with a reason fit for the
// agent to read); the leg then does not exist.
func (e *Engine) NewLeg(offer []byte, p LegParams) (*Leg, []byte, error) {
	api := e.apis[p.Codec]
	if api == nil {
		return nil, nil, fmt.Errorf("webrtc: codec %v: want PCMU or PCMA", p.Codec)
	}
	if !p.Relay.IsValid() {
		return nil, nil, errors.New("webrtc: no relay address")
	}
	if err := checkOffer(offer, p.Codec); err != nil {
		e.m.ended.WithLabelValues(reasonLabel(ErrBadSDP)).Inc()
		return nil, nil, err
	}
	// The socket toward the relay is on loopback, whatever bind_ip is:
	// nothing outside the host can reach it.
	lo := netip.IPv6Loopback()
	if p.Relay.Addr().Unmap().Is4() {
		lo = netip.AddrFrom4([4]byte{127, 0, 0, 1})
	}
	conn, err := net.ListenUDP("udp", net.UDPAddrFromAddrPort(netip.AddrPortFrom(lo, 0)))
	if err != nil {
		return nil, nil, fmt.Errorf("webrtc: relay socket: %w", err)
	}
	l := &Leg{
		e: e, p: p, pt: uint8(codecParams(p.Codec).PayloadType), conn: conn,
		addr:      conn.LocalAddr().(*net.UDPAddr).AddrPort(),
		log:       e.log.With(zap.String("call", p.CallID)),
		connected: make(chan struct{}), done: make(chan struct{}), torn: make(chan struct{}),
	}
	// Armed for good once the answer is made; until then nothing can fire
	// it, and a failure while negotiating tears the leg down like any.
	l.timer = time.AfterFunc(time.Duration(1<<62), l.connectTimeout)
	e.m.legs.Inc()
	answer, err := l.negotiate(api, offer)
	if err != nil {
		l.closing.Store(true)
		l.finish(err)
		<-l.torn
		return nil, nil, err
	}
	l.timer.Reset(e.cfg.ConnectTimeout)
	l.wg.Add(1)
	go l.fromRelay()
	return l, answer, nil
}

// checkOffer refuses, with a reason of our own words, what is not a
// WebRTC audio offer with the call's codec: pion's errors would do too,
// but less clearly.
func checkOffer(offer []byte, codec media.Codec) error {
	if len(offer) == 0 {
		return fmt.Errorf("%w: empty", ErrBadSDP)
	}
	if len(offer) > maxOffer {
		return fmt.Errorf("%w: larger than %d bytes", ErrBadSDP, maxOffer)
	}
	var d sdp.SessionDescription
	if err := d.UnmarshalString(string(offer)); err != nil {
		return fmt.Errorf("%w: it does not parse as SDP", ErrBadSDP)
	}
	_, fp := d.Attribute("fingerprint")
	want := "PCMU"
	if codec == media.PCMA {
		want = "PCMA"
	}
	for _, m := range d.MediaDescriptions {
		if m.MediaName.Media != "audio" || m.MediaName.Port.Value == 0 {
			continue
		}
		if !strings.Contains(strings.Join(m.MediaName.Protos, "/"), "SAVP") {
			return fmt.Errorf("%w: the audio is not DTLS-SRTP (UDP/TLS/RTP/SAVPF)", ErrBadSDP)
		}
		if _, ok := m.Attribute("fingerprint"); !ok && !fp {
			return fmt.Errorf("%w: no DTLS fingerprint", ErrBadSDP)
		}
		if _, ok := m.Attribute("ice-ufrag"); !ok {
			if _, ok := d.Attribute("ice-ufrag"); !ok {
				return fmt.Errorf("%w: no ICE credentials", ErrBadSDP)
			}
		}
		for _, f := range m.MediaName.Formats {
			if (want == "PCMU" && f == "0") || (want == "PCMA" && f == "8") {
				return nil
			}
		}
		for _, a := range m.Attributes {
			if a.Key == "rtpmap" && strings.Contains(strings.ToUpper(a.Value), " "+want+"/8000") {
				return nil
			}
		}
		return fmt.Errorf("%w: the audio does not offer %s, the call's codec", ErrBadSDP, want)
	}
	return fmt.Errorf("%w: no audio stream", ErrBadSDP)
}

// negotiate sets up the PeerConnection and returns the answer with every
// candidate in it.
func (l *Leg) negotiate(api *pion.API, offer []byte) ([]byte, error) {
	var err error
	l.pc, err = api.NewPeerConnection(pion.Configuration{ICEServers: l.e.server})
	if err != nil {
		return nil, fmt.Errorf("webrtc: %w", err)
	}
	c := codecParams(l.p.Codec)
	l.track, err = pion.NewTrackLocalStaticRTP(c.RTPCodecCapability, "audio", "tonevault")
	if err != nil {
		return nil, fmt.Errorf("webrtc: %w", err)
	}
	// Added before the offer is taken, the track's transceiver is the one
	// the browser's audio m-line is matched to: one audio stream, both
	// ways.
	sender, err := l.pc.AddTrack(l.track)
	if err != nil {
		return nil, fmt.Errorf("webrtc: %w", err)
	}
	l.pc.OnICEConnectionStateChange(func(s pion.ICEConnectionState) {
		if s == pion.ICEConnectionStateConnected || s == pion.ICEConnectionStateCompleted {
			l.iceUp.Store(true)
		}
	})
	l.pc.OnConnectionStateChange(func(pion.PeerConnectionState) { l.onState() })
	l.pc.OnTrack(func(t *pion.TrackRemote, _ *pion.RTPReceiver) {
		if t.Kind() != pion.RTPCodecTypeAudio {
			return
		}
		l.wg.Add(1)
		go l.toRelay(t)
	})
	if err := l.pc.SetRemoteDescription(pion.SessionDescription{Type: pion.SDPTypeOffer, SDP: string(offer)}); err != nil {
		l.log.Info("agent offer refused", zap.Error(err))
		return nil, fmt.Errorf("%w: the offer was refused (%s)", ErrBadSDP, pionReason(err))
	}
	answer, err := l.pc.CreateAnswer(nil)
	if err != nil {
		l.log.Info("no answer to the agent's offer", zap.Error(err))
		return nil, fmt.Errorf("%w: no answer possible (%s)", ErrBadSDP, pionReason(err))
	}
	gathered := pion.GatheringCompletePromise(l.pc)
	if err := l.pc.SetLocalDescription(answer); err != nil {
		return nil, fmt.Errorf("webrtc: %w", err)
	}
	// Host candidates only, on one address: gathering takes a moment. A
	// STUN server that does not answer is given up after pion's gather
	// timeout.
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	select {
	case <-gathered:
	case <-ctx.Done():
		return nil, errors.New("webrtc: ICE gathering did not complete")
	}
	l.wg.Add(1)
	go l.drainRTCP(sender)
	return []byte(l.pc.LocalDescription().SDP), nil
}

// pionReason is the first line of a pion error, short enough for a
// problem detail: pion quotes no SDP in its errors.
func pionReason(err error) string {
	s := err.Error()
	if i := strings.IndexByte(s, '\n'); i >= 0 {
		s = s[:i]
	}
	if len(s) > 200 {
		s = s[:200]
	}
	return s
}

// Addr is where the media session's platform leg must send: the masked
// stream comes in here.
func (l *Leg) Addr() netip.AddrPort { return l.addr }

// Connected is closed once ICE and DTLS are up: the agent can hear and
// be heard.
func (l *Leg) Connected() <-chan struct{} { return l.connected }

// Done is closed when the leg ended: by Close, or by a failure (Err).
func (l *Leg) Done() <-chan struct{} { return l.done }

// Err says why the leg ended: ErrICEFailed, ErrDTLSFailed or ErrGone;
// nil while it runs and after Close.
func (l *Leg) Err() error {
	if p := l.err.Load(); p != nil {
		return *p
	}
	return nil
}

// Stats are the leg's packet counts: relay to browser, browser to relay,
// and dropped (from a stranger, of another payload type, before the
// connection was up).
func (l *Leg) Stats() (toAgent, fromAgent, dropped uint64) {
	return l.toAgent.Load(), l.fromAgent.Load(), l.dropped.Load()
}

// Close ends the leg (the call ended on the SIP side) and waits until
// its goroutines have returned. It is idempotent.
func (l *Leg) Close() {
	l.closing.Store(true)
	l.finish(nil)
	<-l.torn
}

// finish ends the leg once, with err as its reason (nil: closed by its
// owner), and tears it down away from pion's callbacks.
func (l *Leg) finish(err error) {
	l.doneOnce.Do(func() {
		if err != nil {
			l.err.Store(&err)
			l.log.Info("agent leg ended", zap.String("reason", reasonLabel(err)))
		}
		l.e.m.ended.WithLabelValues(reasonLabel(err)).Inc()
		close(l.done)
		go func() {
			l.timer.Stop()
			if l.pc != nil {
				_ = l.pc.Close()
			}
			l.conn.Close()
			l.wg.Wait()
			l.e.m.legs.Dec()
			close(l.torn)
		}()
	})
}

// onState follows the PeerConnection. pion calls this on a goroutine
// per change, so the states are read again rather than trusted in order.
func (l *Leg) onState() {
	switch l.pc.ConnectionState() {
	case pion.PeerConnectionStateConnected:
		l.connectedOnce.Do(func() {
			l.isConnected.Store(true)
			l.timer.Stop()
			close(l.connected)
		})
	case pion.PeerConnectionStateFailed:
		l.finish(l.failure())
	case pion.PeerConnectionStateClosed:
		if !l.closing.Load() {
			// The browser closed DTLS (close_notify): the tab or the
			// connection was closed.
			l.finish(l.failure())
		}
	}
}

// failure names a failure: before the leg connected, what did not
// connect; after, the agent is gone.
func (l *Leg) failure() error {
	switch {
	case l.isConnected.Load():
		return ErrGone
	case l.iceUp.Load():
		return ErrDTLSFailed
	}
	return ErrICEFailed
}

func (l *Leg) connectTimeout() {
	if !l.isConnected.Load() {
		l.finish(l.failure())
	}
}

// fromRelay feeds the browser's track from the relay socket: packets
// from the media session's platform address alone, of the call's payload
// type alone (the session sends G.711 or its mask audio; comfort noise,
// which the browser did not negotiate, stays here).
func (l *Leg) fromRelay() {
	defer l.wg.Done()
	buf := make([]byte, 1500)
	for {
		n, from, err := l.conn.ReadFromUDPAddrPort(buf)
		if err != nil {
			if errors.Is(err, net.ErrClosed) {
				return
			}
			continue
		}
		if from != l.p.Relay || n < 12 || buf[0]>>6 != 2 || buf[1]&0x7f != l.pt || !l.isConnected.Load() {
			l.dropped.Add(1)
			continue
		}
		if _, err := l.track.Write(buf[:n]); err != nil {
			l.dropped.Add(1)
			continue
		}
		l.toAgent.Add(1)
	}
}

// toRelay sends the agent's audio, as it came, to the relay's platform
// leg; only the payload type is set to the static one the session was
// told (browsers use it anyway).
func (l *Leg) toRelay(t *pion.TrackRemote) {
	defer l.wg.Done()
	buf := make([]byte, 1500)
	for {
		n, _, err := t.Read(buf)
		if err != nil {
			return
		}
		if n < 12 || buf[0]>>6 != 2 || t.Codec().MimeType != codecParams(l.p.Codec).MimeType {
			l.dropped.Add(1)
			continue
		}
		buf[1] = buf[1]&0x80 | l.pt
		if _, err := l.conn.WriteToUDPAddrPort(buf[:n], l.p.Relay); err != nil {
			if errors.Is(err, net.ErrClosed) {
				return
			}
			continue
		}
		l.fromAgent.Add(1)
	}
}

// drainRTCP reads the browser's RTCP, which nothing here uses: pion
// keeps unread RTCP in a buffer until it is read.
func (l *Leg) drainRTCP(s *pion.RTPSender) {
	defer l.wg.Done()
	buf := make([]byte, 1500)
	for {
		if _, _, err := s.Read(buf); err != nil {
			return
		}
	}
}
