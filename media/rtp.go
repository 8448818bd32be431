package media

import "encoding/binary"

// MaxPacket is the largest datagram the relay accepts: an Ethernet MTU's
// worth. Anything larger is not RTP audio any gateway here sends.
const MaxPacket = 1500

// rtpHeaderLen is the fixed RTP header (RFC 3550 §5.1).
const rtpHeaderLen = 12

// rtpPacket is the parsed view of one RTP datagram. It points into the
// receive buffer: nothing is copied.
type rtpPacket struct {
	marker  bool
	pt      uint8
	seq     uint16
	ts      uint32
	ssrc    uint32
	payload []byte
}

// parseRTP checks every length field of an RTP header against the
// datagram before trusting it. The reason is returned so that each kind of
// malformed packet is counted on its own.
func parseRTP(b []byte) (rtpPacket, outcome) {
	var p rtpPacket
	switch {
	case len(b) > MaxPacket:
		return p, dropOversize
	case len(b) < rtpHeaderLen:
		return p, dropShort
	case b[0]>>6 != 2:
		return p, dropVersion
	}
	off := rtpHeaderLen + int(b[0]&0x0f)*4
	if off > len(b) {
		return p, dropCSRC
	}
	if b[0]&0x10 != 0 {
		if off+4 > len(b) {
			return p, dropExtension
		}
		off += 4 + int(binary.BigEndian.Uint16(b[off+2:]))*4
		if off > len(b) {
			return p, dropExtension
		}
	}
	end := len(b)
	if b[0]&0x20 != 0 {
		pad := int(b[end-1])
		if pad == 0 || pad > end-off {
			return p, dropPadding
		}
		end -= pad
	}
	p.marker = b[1]&0x80 != 0
	p.pt = b[1] & 0x7f
	p.seq = binary.BigEndian.Uint16(b[2:])
	p.ts = binary.BigEndian.Uint32(b[4:])
	p.ssrc = binary.BigEndian.Uint32(b[8:])
	p.payload = b[off:end]
	return p, outcomeNone
}

// putRTPHeader writes a fixed header with no CSRC, extension or padding.
// Toward the platform only the fixed header is kept: header extensions
// and CSRC lists are carrier data the relay does not inspect.
func putRTPHeader(b []byte, marker bool, pt uint8, seq uint16, ts, ssrc uint32) {
	b[0] = 2 << 6
	b[1] = pt & 0x7f
	if marker {
		b[1] |= 0x80
	}
	binary.BigEndian.PutUint16(b[2:], seq)
	binary.BigEndian.PutUint32(b[4:], ts)
	binary.BigEndian.PutUint32(b[8:], ssrc)
}
