package sip

import (
	"errors"
	"fmt"
	"net/netip"
	"strings"
	"time"

	"github.com/emiago/sipgo/sip"
)

// Config is the B2BUA's part of the configuration, the "sip:" section of
// configs/tonevault.yaml.
type Config struct {
	Trunks Trunks `yaml:"trunks"`
	// RejectUninspectable answers 488 to an offer with no codec the relay
	// can inspect (the default, true). False forwards such offers and the
	// relay mutes what it cannot read.
	RejectUninspectable bool `yaml:"reject_uninspectable"`
	// CorrelationHeaders are copied from a call's INVITE to the INVITE
	// the gateway sends on, and kept in the registry
	// (default X-Interaction-ID, User-to-User).
	CorrelationHeaders []string `yaml:"correlation_headers"`
	// RingTimeout ends a call not answered in this time with 408 (0: 3 min).
	RingTimeout time.Duration `yaml:"ring_timeout"`
	// ISUP says what happens to the ISUP part of a SIP-I/SIP-T multipart
	// INVITE body (SDP plus application/isup): ISUPDrop (the default)
	// sends the SDP alone, ISUPPass sends the ISUP part on beside the
	// gateway's SDP.
	ISUP ISUPMode `yaml:"isup"`
	// Limits cap the calls and requests taken, in total and per source.
	Limits Limits `yaml:"limits"`
	// SessionTimer is RFC 4028 session timers, negotiated and enforced
	// on each leg on its own.
	SessionTimer SessionTimerConfig `yaml:"session_timer"`
	// Transfer is what the gateway does with REFER.
	Transfer TransferConfig `yaml:"transfer"`
	// DrainTimeout is how long a stopping gateway (SIGTERM) waits for its
	// calls to end by themselves, refusing new ones with 503, before it
	// ends the rest with BYE (default 20s; serve reads it).
	DrainTimeout time.Duration `yaml:"drain_timeout"`
	// Routes send calls from the carrier to a called number elsewhere
	// than the platform trunk's target: a SIP URI or a pool of browser
	// agents ("agents:NAME"). The first entry whose callee matches wins.
	Routes []Route `yaml:"routes"`
	// UserAgent is the User-Agent and Server header ("ToneVault"); the
	// binary sets it to its name and version.
	UserAgent string `yaml:"-"`
}

// Trunks are the two sides of the gateway.
type Trunks struct {
	// Carrier is the customer side. Its media is always the inspected one.
	Carrier TrunkConfig `yaml:"carrier"`
	// Platform is the contact-centre side: agent, PBX, recorder.
	Platform TrunkConfig `yaml:"platform"`
}

// TrunkConfig is one side of the gateway ("sip.trunks.carrier" and
// "sip.trunks.platform").
type TrunkConfig struct {
	// Listen is the address SIP is received on and sent from, with each
	// of Transports. Port 0 picks a free port (tests), the same for UDP
	// and TCP.
	Listen netip.AddrPort `yaml:"listen"`
	// Transports: "udp", "tcp", "tls". Empty: udp and tcp. TLS listens
	// on its own port (TLS).
	Transports []string `yaml:"transports"`
	// TLS is SIP over TLS, when Transports has "tls".
	TLS TLSConfig `yaml:"tls"`
	// Allow lists the networks that may send SIP to this trunk; requests
	// from anywhere else get 403 and an audit record. Empty: nobody.
	Allow []Network `yaml:"allow"`
	// Target is where calls that leave through this trunk go: a SIP URI.
	// "{user}" in it is replaced by the user part of the Request-URI the
	// call arrived with (routing by Request-URI), e.g.
	// "sip:{user}@sbc.example.net:5060;transport=tcp". A host name with
	// no port is looked up as DNS SRV (RFC 3263: _sip._udp, _sip._tcp
	// or _sips._tcp after the transport), else as A/AAAA; every
	// address found is a target of its own, tried in SRV order.
	Target string `yaml:"target"`
	// Failover are more targets, written as Target, tried in order when
	// the ones before fail: no answer at all in FailoverTimeout, ICMP
	// unreachable, a refused TCP or TLS connection, or 503.
	Failover []string `yaml:"failover"`
	// FailoverTimeout is how long a target may take to answer an INVITE
	// at all (a 100 Trying will do) before the next target is tried
	// (default 1s).
	FailoverTimeout time.Duration `yaml:"failover_timeout"`
	// ProbeInterval sends OPTIONS to every target this often (0: never,
	// the default). A target that does not answer within
	// FailoverTimeout, is unreachable or answers 503 is marked down, any
	// other answer marks it up; targets that are down are tried after
	// those that are up.
	ProbeInterval time.Duration `yaml:"probe_interval"`
	// Trusted puts the trunk's peer in the gateway's trust domain (RFC
	// 3325): it gets P-Asserted-Identity and the caller's From even when
	// the caller asked for privacy (Privacy: id, user or header). An
	// untrusted trunk (the default) gets neither then: the identity
	// header is removed and From says Anonymous. Without a privacy
	// request the identity goes to either.
	Trusted bool `yaml:"trusted"`
	// SRTP is the trunk's SDES-SRTP policy (RFC 4568): off (the
	// default), optional or required. Each side is settled on its own:
	// SRTP and plain RTP mix across the two.
	SRTP SRTPPolicy `yaml:"srtp"`
	// Recording records the calls that come in on this trunk with a
	// SIPREC recording server (RFC 7866).
	Recording RecordingConfig `yaml:"recording"`
}

// RecordingConfig is a trunk's "recording:": the gateway as SIPREC
// client (SRC). Once a call that came in on the trunk is answered, the
// gateway opens a recording session of its own with the recording
// server (SRS), through the platform trunk: an INVITE with Require:
// siprec, two sendonly streams (the customer's, masked, and the
// agent's) and the RFC 7865 metadata. A recording that fails never
// touches the call, unless Required.
type RecordingConfig struct {
	// SRS is the recording server's SIP URI ("" records nothing), e.g.
	// "sip:srs@10.0.0.9:5060" or "sip:srs@rec.example.net;transport=tcp";
	// a host name is looked up as the trunk targets are. Its requests
	// (a BYE) come in on the platform trunk: its allow list must hold
	// the server's address.
	SRS string `yaml:"srs"`
	// Required refuses new calls (503) while the recording server is
	// down (OPTIONS every ProbeInterval), and ends a call whose
	// recording fails (BYE on both legs): for sites that must record
	// every call. False (the default): calls go on unrecorded, and the
	// failure is audited.
	Required bool `yaml:"required"`
	// Timeout is how long the recording server may take to answer the
	// recording session's INVITE (default 2s).
	Timeout time.Duration `yaml:"timeout"`
	// ProbeInterval sends the recording server OPTIONS this often
	// (default 5s; 0s: never, and Required takes it as up). No answer
	// within Timeout, an unreachable server or 503 is down.
	ProbeInterval time.Duration `yaml:"probe_interval"`
}

// Defaults of RecordingConfig.
const (
	DefaultRecordingTimeout = 2 * time.Second
	DefaultRecorderProbe    = 5 * time.Second
)

// SessionTimerConfig is "sip.session_timer" (RFC 4028). Each leg
// negotiates its own interval and refresher with its peer: a peer that
// supports timers refreshes when it asks to or when the gateway asks it
// to, else the gateway refreshes (UPDATE, or a re-INVITE with the same
// SDP to a peer that does not allow UPDATE). A leg whose session is not
// refreshed in time ends the call: BYE on both legs and a sip.call_ended
// record with reason session_expired.
type SessionTimerConfig struct {
	// Expires is the session interval the gateway asks for on the legs
	// it makes and uses where the peer asked for none (default 30m).
	Expires time.Duration `yaml:"expires"`
	// MinSE is the shortest interval the gateway takes: a request that
	// asks for less gets 422 with Min-SE (default 90s, the least RFC
	// 4028 allows).
	MinSE time.Duration `yaml:"min_se"`
}

// Defaults of SessionTimerConfig.
const (
	DefaultSessionExpires = 30 * time.Minute
	DefaultMinSE          = 90 * time.Second
)

// TransferConfig is "sip.transfer": REFER.
type TransferConfig struct {
	// Refer is what a REFER from the platform gets: accept (202; the
	// gateway places the new leg to the Refer-To target through the
	// platform trunk, blind or attended with Replaces, and bridges the
	// customer to it, media still through the relay) or refuse (403).
	// A REFER from the carrier is always refused.
	Refer string `yaml:"refer"`
	// Capture is what a transfer that completes does to a payment
	// capture in progress on the call: cancel (the session ends with
	// reason transferred) or keep (it goes on with the new agent).
	Capture string `yaml:"capture"`
}

// Values of TransferConfig.
const (
	ReferAccept     = "accept"
	ReferRefuse     = "refuse"
	CaptureCancel   = "cancel"
	CaptureKeep     = "keep"
	defaultFailover = time.Second
)

// ISUPMode is sip.isup: what to do with the ISUP part of a SIP-I/SIP-T
// body.
type ISUPMode string

const (
	ISUPDrop ISUPMode = "drop"
	ISUPPass ISUPMode = "pass"
)

// Network is one entry of an allow list: a network in CIDR notation
// ("10.0.0.0/8") or a single address ("10.0.0.7", a /32 or /128).
type Network struct{ netip.Prefix }

// ParseNetwork reads a Network.
func ParseNetwork(s string) (Network, error) {
	if !strings.Contains(s, "/") {
		a, err := netip.ParseAddr(s)
		if err != nil {
			return Network{}, err
		}
		return Network{netip.PrefixFrom(a, a.BitLen())}, nil
	}
	p, err := netip.ParsePrefix(s)
	if err != nil {
		return Network{}, err
	}
	return Network{p.Masked()}, nil
}

// MustParseNetwork is ParseNetwork for constants; it panics on error.
func MustParseNetwork(s string) Network {
	n, err := ParseNetwork(s)
	if err != nil {
		panic(err)
	}
	return n
}

// UnmarshalText reads a Network from the configuration.
func (n *Network) UnmarshalText(b []byte) error {
	v, err := ParseNetwork(string(b))
	if err != nil {
		return err
	}
	*n = v
	return nil
}

// DefaultCorrelationHeaders are copied across when the config names none.
var DefaultCorrelationHeaders = []string{"X-Interaction-ID", "User-to-User"}

// DefaultRingTimeout is how long a call may ring when the config says 0.
const DefaultRingTimeout = 3 * time.Minute

// DefaultDrainTimeout is how long a stopping gateway waits for its calls:
// with the BYEs and the HTTP stop after it, it fits in the 30 s that
// Kubernetes gives a pod between SIGTERM and SIGKILL by default.
const DefaultDrainTimeout = 20 * time.Second

var defaultRecording = RecordingConfig{Timeout: DefaultRecordingTimeout, ProbeInterval: DefaultRecorderProbe}

// DefaultConfig is the default configuration of DESIGN.md: the carrier
// side on 127.0.0.1:5060, the platform side on 127.0.0.1:5070 sending new
// calls to sip:agent@127.0.0.1:5090, both open to loopback only.
func DefaultConfig() Config {
	loopback := []Network{MustParseNetwork("127.0.0.0/8"), MustParseNetwork("::1/128")}
	return Config{
		Trunks: Trunks{
			Carrier: TrunkConfig{Listen: netip.MustParseAddrPort("127.0.0.1:5060"), Transports: []string{"udp", "tcp"},
				Allow: loopback, Target: "sip:{user}@127.0.0.1:5080", SRTP: SRTPOff,
				TLS: TLSConfig{Port: 5061, MinVersion: "1.2"}, FailoverTimeout: defaultFailover, Recording: defaultRecording},
			Platform: TrunkConfig{Listen: netip.MustParseAddrPort("127.0.0.1:5070"), Transports: []string{"udp", "tcp"},
				Allow: loopback, Target: "sip:agent@127.0.0.1:5090", SRTP: SRTPOff,
				TLS: TLSConfig{Port: 5071, MinVersion: "1.2"}, FailoverTimeout: defaultFailover, Recording: defaultRecording},
		},
		RejectUninspectable: true,
		CorrelationHeaders:  DefaultCorrelationHeaders,
		RingTimeout:         DefaultRingTimeout,
		ISUP:                ISUPDrop,
		Limits:              DefaultLimits(),
		DrainTimeout:        DefaultDrainTimeout,
		SessionTimer:        SessionTimerConfig{Expires: DefaultSessionExpires, MinSE: DefaultMinSE},
		Transfer:            TransferConfig{Refer: ReferAccept, Capture: CaptureCancel},
	}
}

// Validate reports a setting that cannot work, naming its key.
func (c Config) Validate() error {
	for _, t := range []struct {
		key string
		t   TrunkConfig
	}{{"sip.trunks.carrier", c.Trunks.Carrier}, {"sip.trunks.platform", c.Trunks.Platform}} {
		if err := t.t.validate(t.key); err != nil {
			return err
		}
	}
	for _, t := range []struct {
		key string
		r   RecordingConfig
	}{{"sip.trunks.carrier.recording.srs", c.Trunks.Carrier.Recording}, {"sip.trunks.platform.recording.srs", c.Trunks.Platform.Recording}} {
		var u sip.Uri
		if t.r.SRS != "" && sip.ParseUri(t.r.SRS, &u) == nil && transportFor(u) == "TLS" && !c.Trunks.Platform.hasTLS() {
			// The recording session leaves through the platform trunk.
			return fmt.Errorf("%s: TLS, and sip.trunks.platform.transports has no tls", t.key)
		}
	}
	if c.RingTimeout < 0 {
		return errors.New("sip.ring_timeout: negative")
	}
	switch c.ISUP {
	case "", ISUPDrop, ISUPPass:
	default:
		return fmt.Errorf("sip.isup: %q: want drop or pass", c.ISUP)
	}
	if c.DrainTimeout < 0 {
		return errors.New("sip.drain_timeout: negative")
	}
	if err := c.SessionTimer.validate(); err != nil {
		return err
	}
	switch c.Transfer.Refer {
	case "", ReferAccept, ReferRefuse:
	default:
		return fmt.Errorf("sip.transfer.refer: %q: want accept or refuse", c.Transfer.Refer)
	}
	switch c.Transfer.Capture {
	case "", CaptureCancel, CaptureKeep:
	default:
		return fmt.Errorf("sip.transfer.capture: %q: want cancel or keep", c.Transfer.Capture)
	}
	if err := c.Limits.validate(); err != nil {
		return err
	}
	platformTLS := TrunkConfig{Transports: c.Trunks.Platform.Transports}.hasTLS()
	for i, r := range c.Routes {
		key := fmt.Sprintf("sip.routes[%d]", i)
		if !safeUser(r.Callee) {
			return fmt.Errorf("%s.callee: %q is not a dialled number (digits, letters, +*#._-)", key, r.Callee)
		}
		if err := validateTarget(key+".target", r.Target, platformTLS, true); err != nil {
			return err
		}
	}
	for i, h := range c.CorrelationHeaders {
		if h == "" || strings.ContainsAny(h, " \t\r\n:") {
			return fmt.Errorf("sip.correlation_headers[%d]: %q is not a header name", i, h)
		}
	}
	return nil
}

func (r RecordingConfig) validate(key string) error {
	switch {
	case r.Timeout < 0:
		return fmt.Errorf("%s.timeout: negative", key)
	case r.ProbeInterval < 0:
		return fmt.Errorf("%s.probe_interval: negative", key)
	case r.SRS == "" && r.Required:
		return fmt.Errorf("%s.required: no srs to record with", key)
	case r.SRS == "":
		return nil
	}
	var u sip.Uri
	if err := sip.ParseUri(r.SRS, &u); err != nil || (u.Scheme != "sip" && u.Scheme != "sips") || u.Host == "" {
		return fmt.Errorf("%s.srs: %q is not a sip: or sips: URI", key, r.SRS)
	}
	if strings.Contains(r.SRS, "{user}") {
		return fmt.Errorf("%s.srs: {user} has no meaning here", key)
	}
	switch transportFor(u) {
	case "UDP", "TCP", "TLS":
	default:
		return fmt.Errorf("%s.srs: transport %q: want udp, tcp or tls", key, transportFor(u))
	}
	return nil
}

// withDefaults is r with its zero timeout set.
func (r RecordingConfig) withDefaults() RecordingConfig {
	if r.Timeout <= 0 {
		r.Timeout = DefaultRecordingTimeout
	}
	return r
}

func (s SessionTimerConfig) validate() error {
	switch {
	case s.MinSE != 0 && s.MinSE < DefaultMinSE:
		return fmt.Errorf("sip.session_timer.min_se: %v: RFC 4028 allows no less than 90s", s.MinSE)
	case s.Expires < 0:
		return errors.New("sip.session_timer.expires: negative")
	case s.Expires != 0 && s.Expires < max(s.MinSE, DefaultMinSE):
		return fmt.Errorf("sip.session_timer.expires: %v is less than min_se", s.Expires)
	}
	return nil
}

// withDefaults is s with its zero values set: what the gateway applies.
// Values under RFC 4028's 90 s are taken here (tests), not from YAML.
func (s SessionTimerConfig) withDefaults() SessionTimerConfig {
	if s.MinSE <= 0 {
		s.MinSE = DefaultMinSE
	}
	if s.Expires <= 0 {
		s.Expires = max(DefaultSessionExpires, s.MinSE)
	}
	return s
}

// hasTLS reports whether the trunk's transports include TLS.
func (t TrunkConfig) hasTLS() bool {
	for _, tp := range t.Transports {
		if tp == "tls" {
			return true
		}
	}
	return false
}

func (t TrunkConfig) validate(key string) error {
	if !t.Listen.Addr().IsValid() {
		return fmt.Errorf("%s.listen: no address", key)
	}
	if t.Listen.Addr().IsUnspecified() {
		// Contact, Via and SDP need an address peers can reach.
		return fmt.Errorf("%s.listen: %s is unspecified; give the address peers reach", key, t.Listen.Addr())
	}
	tlsOn := false
	for _, tp := range t.Transports {
		switch tp {
		case "udp", "tcp":
		case "tls":
			tlsOn = true
		default:
			return fmt.Errorf("%s.transports: %q: want udp, tcp or tls", key, tp)
		}
	}
	if tlsOn {
		if err := t.TLS.validate(key); err != nil {
			return err
		}
	}
	switch t.SRTP {
	case "", SRTPOff, SRTPOptional, SRTPRequired:
	default:
		return fmt.Errorf("%s.srtp: %q: want off, optional or required", key, t.SRTP)
	}
	if t.FailoverTimeout < 0 {
		return fmt.Errorf("%s.failover_timeout: negative", key)
	}
	if t.ProbeInterval < 0 {
		return fmt.Errorf("%s.probe_interval: negative", key)
	}
	if len(t.Failover) > 0 && t.Target == "" {
		return fmt.Errorf("%s.failover: no target before it", key)
	}
	if err := t.Recording.validate(key + ".recording"); err != nil {
		return err
	}
	targets := []struct {
		key, uri string
	}{{key + ".target", t.Target}}
	for i, f := range t.Failover {
		targets = append(targets, struct{ key, uri string }{fmt.Sprintf("%s.failover[%d]", key, i), f})
	}
	for _, tg := range targets {
		if tg.uri == "" && tg.key == key+".target" {
			continue
		}
		// A pool of browser agents only as the platform's own target: a
		// failover target is a SIP URI.
		pools := tg.key == key+".target" && key == "sip.trunks.platform"
		if err := validateTarget(tg.key, tg.uri, tlsOn, pools); err != nil {
			return err
		}
	}
	return nil
}
