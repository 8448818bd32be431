package webrtc

import (
	"errors"
	"fmt"
	"net"
	"net/netip"
	"time"

	"github.com/pion/ice/v4"
	"github.com/pion/interceptor"
	pion "github.com/pion/webrtc/v4"
	"github.com/prometheus/client_golang/prometheus"
	"go.uber.org/zap"

	"github.com/tonevault/tonevault/media"
)

// Options are the engine's collaborators; each may be left zero.
type Options struct {
	Logger     *zap.Logger           // nil: no logging
	Registerer prometheus.Registerer // nil: metrics kept, not exported
}

// Engine makes agent legs with one configuration: the ICE settings, and
// one pion API per codec whose media engine knows that codec alone, so
// that a browser can only ever be answered with the call's own G.711
// format (nothing is transcoded, and no other codec can be negotiated).
type Engine struct {
	cfg    Config
	bind   netip.Addr
	lite   bool
	apis   map[media.Codec]*pion.API
	ice    []ICEServer // the page's list
	mux    ice.UDPMux  // nil: a port per leg
	muxLn  net.PacketConn
	log    *zap.Logger
	m      *metrics
	server []pion.ICEServer // STUN the gateway uses itself (not ICE-lite)
}

// NewEngine prepares agent legs whose ICE host candidate is bind
// (media.bind_ip), or cfg.PublicIP in its place.
func NewEngine(cfg Config, bind netip.Addr, opts Options) (*Engine, error) {
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	if !bind.IsValid() || bind.IsUnspecified() {
		return nil, fmt.Errorf("webrtc: bind address %v must be one concrete address (media.bind_ip)", bind)
	}
	if cfg.ConnectTimeout == 0 {
		cfg.ConnectTimeout = DefaultConnectTimeout
	}
	if cfg.DisconnectTimeout == 0 {
		cfg.DisconnectTimeout = DefaultDisconnectTimeout
	}
	log := opts.Logger
	if log == nil {
		log = zap.NewNop()
	}
	page, err := cfg.iceServers()
	if err != nil {
		return nil, err
	}
	e := &Engine{cfg: cfg, bind: bind.Unmap(), lite: cfg.lite(bind), apis: map[media.Codec]*pion.API{}, ice: page, log: log, m: newMetrics(opts.Registerer)}
	if !e.lite && len(cfg.STUNServers) > 0 {
		e.server = []pion.ICEServer{{URLs: cfg.STUNServers}}
	}
	se := pion.SettingEngine{LoggerFactory: pionLog{log.Named("pion")}}
	se.SetLite(e.lite)
	family := pion.NetworkTypeUDP4
	if e.bind.Is6() {
		family = pion.NetworkTypeUDP6
	}
	se.SetNetworkTypes([]pion.NetworkType{family})
	// Host candidates on bind_ip alone: the relay's address, the one the
	// operator opened; never every interface of the host.
	se.SetIPFilter(func(ip net.IP) bool {
		a, ok := netip.AddrFromSlice(ip)
		return ok && a.Unmap() == e.bind
	})
	se.SetIncludeLoopbackCandidate(e.bind.IsLoopback())
	// No multicast DNS: it would put a socket on 224.0.0.251 per leg, and
	// browsers that have microphone permission show real addresses.
	se.SetICEMulticastDNSMode(ice.MulticastDNSModeDisabled)
	// Consent freshness: a browser that stops answering is disconnected
	// after a few missed checks and failed at DisconnectTimeout.
	se.SetICETimeouts(min(cfg.DisconnectTimeout, 2*time.Second), cfg.DisconnectTimeout, time.Second)
	if cfg.PublicIP.IsValid() {
		if err := se.SetICEAddressRewriteRules(pion.ICEAddressRewriteRule{
			External:        []string{cfg.PublicIP.String()},
			Local:           e.bind.String(),
			AsCandidateType: pion.ICECandidateTypeHost,
			Mode:            pion.ICEAddressRewriteReplace,
		}); err != nil {
			return nil, fmt.Errorf("webrtc.public_ip: %w", err)
		}
	}
	if cfg.UDPPort != 0 {
		ln, err := net.ListenUDP("udp", net.UDPAddrFromAddrPort(netip.AddrPortFrom(e.bind, uint16(cfg.UDPPort))))
		if err != nil {
			return nil, fmt.Errorf("webrtc.udp_port: %w", err)
		}
		e.muxLn = ln
		e.mux = ice.NewUDPMuxDefault(ice.UDPMuxParams{UDPConn: ln, Logger: pionLog{log.Named("pion")}.NewLogger("udpmux")})
		se.SetICEUDPMux(e.mux)
	}
	for _, c := range []media.Codec{media.PCMU, media.PCMA} {
		me := &pion.MediaEngine{}
		if err := me.RegisterCodec(codecParams(c), pion.RTPCodecTypeAudio); err != nil {
			e.Close()
			return nil, err
		}
		// No interceptors: no NACK or congestion control for G.711 audio,
		// and nothing between the relay's packets and SRTP but the header
		// rewrite of the track.
		e.apis[c] = pion.NewAPI(pion.WithMediaEngine(me), pion.WithSettingEngine(se), pion.WithInterceptorRegistry(&interceptor.Registry{}))
	}
	log.Info("webrtc agent legs ready", zap.Bool("ice_lite", e.lite), zap.Stringer("bind_ip", e.bind), zap.Int("udp_port", cfg.UDPPort))
	return e, nil
}

// ICEServers is what the agent page's RTCPeerConnection is configured
// with: the STUN servers and the TURN servers with their credentials.
func (e *Engine) ICEServers() []ICEServer { return append([]ICEServer(nil), e.ice...) }

// Lite reports whether the gateway's side is ICE-lite.
func (e *Engine) Lite() bool { return e.lite }

// Close releases the shared ICE port, if any. Legs still open keep
// running until they are closed.
func (e *Engine) Close() error {
	var err error
	if e.mux != nil {
		err = e.mux.Close()
	}
	if e.muxLn != nil {
		err = errors.Join(err, e.muxLn.Close())
	}
	return err
}

// codecParams is the one codec an agent leg's media engine knows, with
// its static payload type (RFC 3551).
func codecParams(c media.Codec) pion.RTPCodecParameters {
	if c == media.PCMA {
		return pion.RTPCodecParameters{RTPCodecCapability: pion.RTPCodecCapability{MimeType: pion.MimeTypePCMA, ClockRate: 8000, Channels: 1}, PayloadType: 8}
	}
	return pion.RTPCodecParameters{RTPCodecCapability: pion.RTPCodecCapability{MimeType: pion.MimeTypePCMU, ClockRate: 8000, Channels: 1}, PayloadType: 0}
}
