package media

import (
	"errors"
	"fmt"

	"github.com/pion/rtcp"
	"github.com/pion/rtp"
	"github.com/pion/srtp/v3"

	"github.com/tonevault/tonevault/media/sdes"
)

// replayWindow is the SRTP and SRTCP replay window in packets: twice RFC
// 3711's minimum of 64, so that reordering on a long path is not taken
// for a replay.
const replayWindow = 128

// srtpOverhead is the most SRTP or SRTCP adds to a packet: a 16-byte tag
// (GCM), an MKI of up to sdes.MaxMKILen bytes and SRTCP's 4-byte index.
const srtpOverhead = 16 + sdes.MaxMKILen + 4

// legCrypto is one leg's SRTP state: the peer's keys to authenticate and
// decrypt what it sends, the relay's to protect what goes to it. Each
// pion context is one-way, and neither is safe for concurrent use: both
// are used under Session.mu only.
type legCrypto struct {
	keys *SRTP
	dec  *srtp.Context // from the peer, RTP and RTCP
	enc  *srtp.Context // to the peer, RTP and RTCP
	// Headers pion parses into, kept so that a packet allocates nothing.
	dh, eh   rtp.Header
	dch, ech rtcp.Header
}

func profileOf(s sdes.Suite) (srtp.ProtectionProfile, error) {
	switch s {
	case sdes.AESCM128SHA1_80:
		return srtp.ProtectionProfileAes128CmHmacSha1_80, nil
	case sdes.AESCM128SHA1_32:
		return srtp.ProtectionProfileAes128CmHmacSha1_32, nil
	case sdes.AEADAES128GCM:
		return srtp.ProtectionProfileAeadAes128Gcm, nil
	}
	return 0, fmt.Errorf("media: SRTP suite %v not supported", s)
}

// newLegCrypto builds the contexts of a leg's keys. Errors never carry
// key material.
func newLegCrypto(k *SRTP) (*legCrypto, error) {
	prof, err := profileOf(k.Suite)
	if err != nil {
		return nil, err
	}
	if len(k.Recv) == 0 || !k.Send.Valid() {
		return nil, errors.New("media: SRTP without a key for each direction")
	}
	ctx := func(keys []sdes.Key, opts ...srtp.ContextOption) (*srtp.Context, error) {
		key, salt := keys[0].Master(k.Suite)
		if key == nil {
			return nil, fmt.Errorf("media: SRTP key of the wrong length for %v", k.Suite)
		}
		if mki := keys[0].MKIBytes(); mki != nil {
			opts = append(opts, srtp.MasterKeyIndicator(mki))
		}
		c, err := srtp.CreateContext(key, salt, prof, opts...)
		if err != nil {
			return nil, fmt.Errorf("media: SRTP context for %v: invalid key parameters", k.Suite)
		}
		for _, o := range keys[1:] {
			key, salt := o.Master(k.Suite)
			if key == nil || o.MKIBytes() == nil || c.AddCipherForMKI(o.MKIBytes(), key, salt) != nil {
				return nil, fmt.Errorf("media: SRTP key %d for %v: invalid key parameters", len(keys), k.Suite)
			}
		}
		return c, nil
	}
	lc := &legCrypto{keys: k}
	if lc.dec, err = ctx(k.Recv, srtp.SRTPReplayProtection(replayWindow), srtp.SRTCPReplayProtection(replayWindow)); err != nil {
		return nil, err
	}
	if lc.enc, err = ctx([]sdes.Key{k.Send}); err != nil {
		return nil, err
	}
	return lc, nil
}

// unprotectOutcome names why an SRTP or SRTCP packet was refused.
func unprotectOutcome(err error) outcome {
	if errors.Is(err, srtp.ErrFailedToVerifyAuthTag) || errors.Is(err, srtp.ErrMKINotFound) {
		return dropSRTPAuth
	}
	return dropSRTPRejected
}

// decryptRTP authenticates and decrypts an SRTP packet in place.
func (lc *legCrypto) decryptRTP(pkt []byte) ([]byte, outcome) {
	if len(pkt) > MaxPacket+srtpOverhead {
		return nil, dropOversize
	}
	out, err := lc.dec.DecryptRTP(pkt[:0], pkt, &lc.dh)
	if err != nil {
		return nil, unprotectOutcome(err)
	}
	return out, outcomeNone
}

// encryptRTP protects an RTP packet in place; pkt must have room for
// srtpOverhead more bytes (its capacity), or the result is a new buffer.
func (lc *legCrypto) encryptRTP(pkt []byte) ([]byte, outcome) {
	out, err := lc.enc.EncryptRTP(pkt[:0], pkt, &lc.eh)
	if err != nil {
		return nil, dropSRTPProtect
	}
	return out, outcomeNone
}

func (lc *legCrypto) decryptRTCP(pkt []byte) ([]byte, outcome) {
	if len(pkt) > MaxPacket+srtpOverhead {
		return nil, dropOversize
	}
	out, err := lc.dec.DecryptRTCP(pkt[:0], pkt, &lc.dch)
	if err != nil {
		return nil, unprotectOutcome(err)
	}
	return out, outcomeNone
}

func (lc *legCrypto) encryptRTCP(pkt []byte) ([]byte, outcome) {
	out, err := lc.enc.EncryptRTCP(pkt[:0], pkt, &lc.ech)
	if err != nil {
		return nil, dropSRTPProtect
	}
	return out, outcomeNone
}
