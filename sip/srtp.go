package sip

import (
	"errors"
	"fmt"

	"github.com/tonevault/tonevault/media"
	"github.com/tonevault/tonevault/media/sdes"
)

// SRTPPolicy is a trunk's SDES-SRTP policy (sip.trunks.*.srtp).
type SRTPPolicy string

const (
	// SRTPOff: plain RTP only. An offer whose stream is RTP/SAVP gets
	// 488; a=crypto in an RTP/AVP offer is passed over.
	SRTPOff SRTPPolicy = "off"
	// SRTPOptional: SRTP when the peer does it. Offers to the peer are
	// RTP/AVP with a=crypto (best-effort SRTP: a peer without SDES
	// answers plain); the peer's SRTP and plain offers are both taken.
	SRTPOptional SRTPPolicy = "optional"
	// SRTPRequired: SRTP or no call. Offers to the peer are RTP/SAVP;
	// a plain offer or answer from the peer gets 488.
	SRTPRequired SRTPPolicy = "required"
)

// ErrSRTPPolicy is an offer or answer that the trunk's SRTP policy
// refuses, or SDES keys that do not fit: 488 Not Acceptable Here.
var ErrSRTPPolicy = errors.New("sdp: the trunk's SRTP policy refuses this media")

// legKeys is a call's SDES negotiation state on one leg.
type legKeys struct {
	// offered are the a=crypto the gateway offered on the leg, awaiting
	// its answer; offeredSAVP says the offer was RTP/SAVP.
	offered     []sdes.Crypto
	offeredSAVP bool
	// answer is the gateway's a=crypto answering the leg's own offer
	// (nil: answer plain); theirSAVP says that offer was RTP/SAVP, so the
	// answer must be too.
	answer    *sdes.Crypto
	theirSAVP bool
	// cur are the leg's keys in the relay now.
	cur *media.SRTP
}

// wipe overwrites every key the state holds.
func (k *legKeys) wipe() {
	for _, c := range k.offered {
		c.Wipe()
	}
	if k.answer != nil {
		k.answer.Wipe()
	}
	if k.cur != nil {
		wipeSRTP(k.cur)
	}
}

func wipeSRTP(s *media.SRTP) {
	for _, k := range s.Recv {
		k.Wipe()
	}
	s.Send.Wipe()
}

// tookOffer settles leg's keys from an offer received on it, under
// policy: the keys for the relay (nil: plain RTP), and the answer the
// gateway will send back, kept in k. When the offer keeps the key the
// leg uses now, the gateway's own key stays too.
func (k *legKeys) tookOffer(p *sdpIn, policy SRTPPolicy) (*media.SRTP, error) {
	k.answer, k.theirSAVP = nil, p.savp
	switch {
	case policy == SRTPOff || policy == "":
		if p.savp {
			return nil, fmt.Errorf("%w: RTP/SAVP offered to a trunk with srtp off", ErrSRTPPolicy)
		}
		return nil, nil
	case len(p.crypto) == 0:
		if p.savp {
			return nil, fmt.Errorf("%w: RTP/SAVP with no a=crypto the gateway can use (%d offered)", ErrSRTPPolicy, p.nCrypto)
		}
		if policy == SRTPRequired {
			return nil, fmt.Errorf("%w: plain RTP offered to a trunk with srtp required", ErrSRTPPolicy)
		}
		return nil, nil
	}
	theirs, ours, ok, err := sdes.Select(p.crypto)
	if err != nil || !ok {
		return nil, fmt.Errorf("%w: no usable a=crypto", ErrSRTPPolicy)
	}
	if c := k.cur; c != nil && c.Suite == theirs.Suite && sameKeys(c.Recv, theirs.Keys) && c.Send.MKILen == ours.Keys[0].MKILen {
		// The same key offered again (hold, resume, a session refresh):
		// the gateway's key stays, and with it the leg's SRTP state.
		ours.Wipe()
		ours.Keys = []sdes.Key{c.Send}
	}
	k.answer = &ours
	return &media.SRTP{Suite: theirs.Suite, Recv: theirs.Keys, Send: ours.Keys[0]}, nil
}

func sameKeys(a, b []sdes.Key) bool {
	if len(a) != len(b) {
		return false
	}
	for i := range a {
		if !a[i].Equal(b[i]) {
			return false
		}
	}
	return true
}

// tookAnswer settles leg's keys from its answer to the gateway's offer.
func (k *legKeys) tookAnswer(p *sdpIn, policy SRTPPolicy) (*media.SRTP, error) {
	if len(k.offered) == 0 {
		if p.savp {
			return nil, fmt.Errorf("%w: RTP/SAVP answer to a plain offer", ErrSRTPPolicy)
		}
		return nil, nil
	}
	if len(p.crypto) == 0 {
		if p.savp || k.offeredSAVP || policy == SRTPRequired {
			return nil, fmt.Errorf("%w: answer without a usable a=crypto (%d given)", ErrSRTPPolicy, p.nCrypto)
		}
		return nil, nil // best effort, answered plain
	}
	theirs := p.crypto[0]
	for _, o := range k.offered {
		if o.Tag == theirs.Tag && o.Suite == theirs.Suite {
			return &media.SRTP{Suite: o.Suite, Recv: theirs.Keys, Send: o.Keys[0]}, nil
		}
	}
	return nil, fmt.Errorf("%w: the answer's a=crypto matches no offered tag and suite", ErrSRTPPolicy)
}

// offer draws the a=crypto to offer on leg under policy, and whether
// the offer is RTP/SAVP. A leg that has SRTP now is offered its current
// key again for its suite, so that its state survives a re-INVITE.
func (k *legKeys) offer(policy SRTPPolicy) ([]sdes.Crypto, bool, error) {
	if policy == SRTPOff || policy == "" {
		k.offered, k.offeredSAVP = nil, false
		return nil, false, nil
	}
	lines, err := sdes.Offer(sdes.Suites)
	if err != nil {
		return nil, false, err
	}
	if c := k.cur; c != nil {
		for i := range lines {
			if lines[i].Suite == c.Suite && c.Send.MKILen == 0 {
				lines[i].Wipe()
				lines[i].Keys = []sdes.Key{c.Send}
			}
		}
	}
	k.offered, k.offeredSAVP = lines, policy == SRTPRequired
	return lines, k.offeredSAVP, nil
}
