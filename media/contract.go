package media

import (
	"net/netip"
	"time"

	"github.com/tonevault/tonevault/dtmf"
	"github.com/tonevault/tonevault/media/sdes"
)

// Leg is one side of a call.
type Leg uint8

const (
	Carrier  Leg = iota // the customer's side: its media is always inspected
	Platform            // the contact-centre side: agent, PBX, recorder
)

// Codec is what the relay knows about a payload type.
type Codec uint8

const (
	CodecUnknown   Codec = iota
	PCMU                 // G.711 µ-law, 8000 Hz
	PCMA                 // G.711 A-law, 8000 Hz
	TelephoneEvent       // RFC 4733, 8000 Hz
	ComfortNoise         // RFC 3389 CN
)

// PayloadType is one a=rtpmap of an m=audio line.
type PayloadType struct {
	PT    uint8
	Codec Codec
	Name  string // encoding name as signalled, e.g. "PCMU", "telephone-event"
	Rate  int    // clock rate
}

// Stream is what a leg's latest SDP (offer or answer) says about where its
// peer receives audio and in which formats.
type Stream struct {
	// Addr is the peer's RTP address from c=/m=. An unspecified address
	// (0.0.0.0, RFC 2543 hold) or port 0 means: send nothing to it.
	Addr netip.AddrPort
	// RTCP is the peer's RTCP address (a=rtcp, else Addr's port + 1).
	RTCP         netip.AddrPort
	PayloadTypes []PayloadType
	// Direction from the peer's point of view: "sendrecv" (default),
	// "sendonly", "recvonly", "inactive".
	Direction string
	PTime     time.Duration // 0: 20 ms
	// SRTP, when not nil, protects the leg with SDES-SRTP (RFC 4568):
	// everything the peer sends must decrypt and authenticate with its
	// keys, and everything sent to it is protected with the relay's own.
	// Nil: plain RTP on this leg. Each leg has its own, independently of
	// the other.
	SRTP *SRTP
}

// SRTP is one leg's SDES keys, as the leg's offer/answer settled them.
type SRTP struct {
	Suite sdes.Suite
	// Recv are the peer's keys: they authenticate and decrypt what it
	// sends, RTP and RTCP (several only when each has an MKI).
	Recv []sdes.Key
	// Send is the relay's own key for this leg, drawn for it alone: it
	// protects what the relay sends to the peer. A key of the other leg
	// is never used here.
	Send sdes.Key
}

// equal reports whether two settings are the same keys, so that a
// repeated answer (18x then 2xx, a re-INVITE that keeps its keys) keeps
// the SRTP state (rollover counters, replay windows) of the leg.
func (a *SRTP) equal(b *SRTP) bool {
	if a == nil || b == nil {
		return a == b
	}
	if a.Suite != b.Suite || !a.Send.Equal(b.Send) || len(a.Recv) != len(b.Recv) {
		return false
	}
	for i := range a.Recv {
		if !a.Recv[i].Equal(b.Recv[i]) {
			return false
		}
	}
	return true
}

// Policy decides when carrier digits are masked.
type Policy uint8

const (
	// Always masks every customer digit for the whole call (the default).
	Always Policy = iota
	// CaptureOnly lets digits through outside a payment capture (IVRs).
	CaptureOnly
)

// Digit is one customer key press, de-duplicated across transports.
type Digit struct {
	CallID string
	Digit  dtmf.Digit
	Source dtmf.Source // transport it was first seen on
	At     time.Time   // wall-clock time of the press's start
}

// DigitSink receives every carrier digit of every call, once. It is called
// from the relay's goroutines and must not block.
type DigitSink interface{ Digit(Digit) }

// Config is the relay's part of configs/tonevault.yaml ("media:").
type Config struct {
	BindIP       netip.Addr    `yaml:"bind_ip"`       // address RTP sockets bind to and SDP advertises
	PortMin      int           `yaml:"port_min"`      // even; RTP on even ports, RTCP on the next odd one
	PortMax      int           `yaml:"port_max"`      //
	LookAhead    time.Duration `yaml:"look_ahead"`    // masker delay (dtmf.DefaultLookAhead)
	MaskMode     dtmf.MaskMode `yaml:"mask"`          // tone or silence
	Policy       Policy        `yaml:"policy"`        // always or capture-only
	MediaTimeout time.Duration `yaml:"media_timeout"` // no RTP from either leg this long → Session.Done
	MaxDuration  time.Duration `yaml:"max_duration"`  // 0: unlimited
	IO           string        `yaml:"io"`            // IOAuto (""), IOUring or IOGoroutines
	// RingScheduling and RingPriority are the CPU scheduling of the
	// io_uring rings' threads: SchedOther ("") with RingPriority a nice
	// value (-20 to 19), or SchedFIFO or SchedRR with RingPriority a
	// real-time priority (1 to 99). Raising it shortens the latency tail
	// on a busy machine at a CPU cost (BENCHMARKS.md); anything above the
	// default needs CAP_SYS_NICE or a raised RLIMIT_NICE / RLIMIT_RTPRIO.
	RingScheduling string `yaml:"ring_scheduling"`
	RingPriority   int    `yaml:"ring_priority"`
}
