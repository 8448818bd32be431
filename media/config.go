package media

import (
	"errors"
	"fmt"
	"net/netip"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"go.uber.org/zap"

	"github.com/tonevault/tonevault/dtmf"
)

// DefaultConfig is the relay's configuration from DESIGN.md: loopback,
// ports 20000-29999, the dtmf package's look-ahead, a beep as mask, every
// digit masked, a 60 s media timeout, no limit on call length, and the
// rings' threads on the kernel's default scheduling.
func DefaultConfig() Config {
	return Config{
		BindIP:       netip.AddrFrom4([4]byte{127, 0, 0, 1}),
		PortMin:      20000,
		PortMax:      29999,
		LookAhead:    dtmf.DefaultLookAhead,
		MaskMode:     dtmf.MaskTone,
		Policy:       Always,
		MediaTimeout: 60 * time.Second,
		IO:           IOAuto,
		// RingPriority 0: the kernel's default, which needs no privilege.
		RingScheduling: SchedOther,
	}
}

// Validate reports a setting that cannot work, naming the config key.
//
// PortMin = PortMax = 0 is accepted and means: let the kernel pick each
// RTP port (still even, with RTCP on the next one). It is meant for tests,
// which run beside other processes and cannot own a fixed range.
func (c Config) Validate() error {
	if !c.BindIP.IsValid() || c.BindIP.IsUnspecified() {
		return fmt.Errorf("media.bind_ip: %v must be one concrete address: it is the address the SDP advertises", c.BindIP)
	}
	if c.BindIP.Zone() != "" {
		return fmt.Errorf("media.bind_ip: %v: zoned addresses are not supported", c.BindIP)
	}
	if c.PortMin != 0 || c.PortMax != 0 {
		switch {
		case c.PortMin < 1 || c.PortMax > 65535:
			return fmt.Errorf("media.port_min, media.port_max: %d-%d outside 1-65535", c.PortMin, c.PortMax)
		case c.PortMin%2 != 0:
			return fmt.Errorf("media.port_min: %d must be even (RTP on even ports, RTCP on the next odd one)", c.PortMin)
		case c.PortMax < c.PortMin+3:
			return fmt.Errorf("media.port_min, media.port_max: %d-%d too small: a call needs two RTP/RTCP pairs (4 ports)", c.PortMin, c.PortMax)
		}
	}
	if err := c.maskConfig().Validate(); err != nil {
		return fmt.Errorf("media.look_ahead, media.mask: %w", err)
	}
	if c.Policy != Always && c.Policy != CaptureOnly {
		return fmt.Errorf("media.policy: unknown policy %d (want always or capture-only)", c.Policy)
	}
	if c.MediaTimeout < 0 {
		return fmt.Errorf("media.media_timeout: %v is negative (0 disables it)", c.MediaTimeout)
	}
	switch c.IO {
	case "", IOAuto, IOUring, IOGoroutines:
	default:
		return fmt.Errorf("media.io: %q: want %s, %s or %s", c.IO, IOAuto, IOUring, IOGoroutines)
	}
	if err := c.ringSched().validate(); err != nil {
		return err
	}
	if c.IO == IOGoroutines && !c.ringSched().isDefault() {
		return fmt.Errorf("media.ring_scheduling, media.ring_priority: %s %d applies to the io_uring rings' threads, and media.io is %s", c.RingPolicy(), c.RingPriority, IOGoroutines)
	}
	if c.MaxDuration < 0 {
		return fmt.Errorf("media.max_duration: %v is negative (0: unlimited)", c.MaxDuration)
	}
	return nil
}

// RingPolicy is RingScheduling as applied: SchedOther when it is empty.
func (c Config) RingPolicy() string { return c.ringSched().policy() }

func (c Config) ringSched() ringSched {
	return ringSched{c.RingScheduling, c.RingPriority}
}

func (c Config) maskConfig() dtmf.MaskConfig {
	return dtmf.MaskConfig{Mode: c.MaskMode, LookAhead: c.LookAhead}
}

// ParsePolicy reads "always" or "capture-only" (the YAML spelling).
func ParsePolicy(s string) (Policy, error) {
	switch s {
	case "always", "":
		return Always, nil
	case "capture-only", "capture_only":
		return CaptureOnly, nil
	}
	return 0, fmt.Errorf("media: unknown policy %q (want always or capture-only)", s)
}

// UnmarshalText reads a policy as ParsePolicy does (configuration files).
func (p *Policy) UnmarshalText(b []byte) error {
	v, err := ParsePolicy(string(b))
	if err != nil {
		return err
	}
	*p = v
	return nil
}

// MarshalText writes the spelling ParsePolicy reads.
func (p Policy) MarshalText() ([]byte, error) { return []byte(p.String()), nil }

func (p Policy) String() string {
	switch p {
	case Always:
		return "always"
	case CaptureOnly:
		return "capture-only"
	}
	return fmt.Sprintf("Policy(%d)", uint8(p))
}

// Options are the relay's collaborators; every field may be left zero.
type Options struct {
	Logger     *zap.Logger           // nil: no logging
	Registerer prometheus.Registerer // nil: metrics are kept but not exported
	Digits     DigitSink             // nil: digits are dropped
	// FailClosed, when set, hears the first time in each call that carrier
	// audio could not be inspected while masking was on and was replaced
	// or dropped instead (DESIGN.md invariant 5: the audit trail says so).
	// reason is the metric's reason label, e.g. "unknown_payload_type",
	// "bad_version". It runs on its own goroutine.
	FailClosed func(callID, reason string)
}

// Errors a Session reports through Err, and Open's port error.
var (
	ErrMediaTimeout   = errors.New("media: no RTP from either leg within the media timeout")
	ErrMaxDuration    = errors.New("media: call reached its maximum duration")
	ErrPortsExhausted = errors.New("media: RTP port range exhausted")
	ErrClosed         = errors.New("media: relay closed")
	// ErrFault: relaying the call's packets panicked (the masker, the
	// DigitSink, a callback). Every packet of the session is dropped from
	// then on, never forwarded; the call must end.
	ErrFault = errors.New("media: fault while relaying the call")
	// ErrRingFailed: the io_uring ring that relayed the call failed
	// (io_uring_enter refused, or a panic on its thread); it is an
	// ErrFault. Every session on that ring gets it.
	ErrRingFailed = fmt.Errorf("%w: its io_uring ring failed", ErrFault)
)
