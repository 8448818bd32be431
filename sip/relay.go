package sip

import (
	"net/netip"
	"time"

	"github.com/tonevault/tonevault/dtmf"
	"github.com/tonevault/tonevault/media"
)

// MediaRelay is what the B2BUA needs from the RTP relay (package media). It is
// an interface so that the signalling can be tested without sockets and
// built while the relay is written; AdaptRelay wraps the real one.
type MediaRelay interface {
	// Open allocates both legs' ports for a call.
	Open(callID string) (MediaSession, error)
}

// MediaSession is one call's media, as in package media's contract.
type MediaSession interface {
	// Local is where the peer of leg must send RTP (RTCP on port+1); it
	// goes into every SDP sent on that leg.
	Local(leg media.Leg) netip.AddrPort
	// SetRemote is called after each offer or answer received on leg.
	SetRemote(leg media.Leg, st media.Stream) error
	// InfoDigit reports a SIP INFO digit from the carrier.
	InfoDigit(d dtmf.Digit, dur time.Duration)
	// SetCapture tells the relay a payment capture is running (policy
	// capture-only masks only then; policy always ignores it).
	SetCapture(active bool)
	// Done is closed on media timeout or maximum duration; Err says which.
	Done() <-chan struct{}
	Err() error
	// Record opens the call's SIPREC fork (see MediaRecording).
	Record() (MediaRecording, error)
	// Close frees the ports, the fork's too; idempotent.
	Close()
}

// MediaRecording is a call's recording fork, as media.Recording: a copy
// of what the relay forwards on each leg, sent as plain RTP to a
// recording server. The customer stream is what goes to the platform
// (masked), the agent stream what goes to the carrier.
type MediaRecording interface {
	// Local is where each stream is sent from: the ports of the SDP
	// offered to the recording server.
	Local() (customer, agent netip.AddrPort)
	// SetRemote says where the server takes each stream (its answer).
	SetRemote(customer, agent media.Stream) error
	// Close stops the fork; idempotent. The call goes on.
	Close()
}

// AdaptRelay makes the real relay a MediaRelay.
func AdaptRelay(r *media.Relay) MediaRelay { return relayAdapter{r} }

type relayAdapter struct{ r *media.Relay }

func (a relayAdapter) Open(callID string) (MediaSession, error) {
	s, err := a.r.Open(callID)
	if err != nil {
		return nil, err
	}
	return sessionAdapter{s}, nil
}

// sessionAdapter drops Close's Stats, which the B2BUA does not use.
type sessionAdapter struct{ *media.Session }

func (s sessionAdapter) Close() { s.Session.Close() }

// Record returns the fork as a MediaRecording, never a nil pointer in
// an interface.
func (s sessionAdapter) Record() (MediaRecording, error) {
	r, err := s.Session.Record()
	if err != nil {
		return nil, err
	}
	return r, nil
}
