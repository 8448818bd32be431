package media

import (
	"errors"
	"net/netip"
)

// Recording is a call's SIPREC fork (RFC 7866): a copy of each packet the
// relay forwards on either leg, sent as plain RTP from two ports of its own
// to a recording server (SRS). The customer stream is what goes to the
// platform leg, after the masker (DESIGN.md invariant 5 holds for the
// recorder as for the agent); the agent stream is what goes to the
// carrier leg. Packets keep their payload type, sequence number, timestamp
// and SSRC; the SRTP of either call leg is removed before the copy.
type Recording struct {
	s *Session
}

// ErrRecordingUnsupported: placeholder until the fork is built (branch
// siprec-media).
var ErrRecordingUnsupported = errors.New("media: recording fork not built yet")

// Record opens the session's recording fork: two RTP ports (RTCP on +1)
// from the relay's port range, one per stream. Nothing is sent until
// SetRemote; Session.Close closes it too.
func (s *Session) Record() (*Recording, error) {
	return nil, ErrRecordingUnsupported
}

// Local is where the fork sends from, for the SDP offered to the SRS:
// the customer stream's port and the agent stream's.
func (r *Recording) Local() (customer, agent netip.AddrPort) {
	return netip.AddrPort{}, netip.AddrPort{}
}

// SetRemote says where the SRS receives each stream (its answer's m=
// lines, in the offer's order). A stream whose Addr is invalid or port 0
// is not sent. It may be called again (a re-INVITE from the SRS).
func (r *Recording) SetRemote(customer, agent Stream) error {
	return ErrRecordingUnsupported
}

// Close stops the fork and frees its ports; idempotent. The call goes on.
func (r *Recording) Close() {}
