package dtmf

import (
	"errors"
	"strconv"
)

// RFC 4733 telephone events.
//
// A telephone-event payload (RFC 4733 §2.3) is a 4-byte block:
//
//	 0                   1                   2                   3
//	 0 1 2 3 4 5 6 7 8 9 0 1 2 3 4 5 6 7 8 9 0 1 2 3 4 5 6 7 8 9 0 1
//	+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+
//	|     event     |E|R| volume    |          duration             |
//	+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+
//
// The RTP timestamp of every packet of one event is the event's start; the
// duration grows from packet to packet; the marker bit is set on the first
// packet; the final packet has the E bit and is sent three times.

// TelephoneEventSize is the size of one RFC 4733 event block.
const TelephoneEventSize = 4

// MaxEventDuration is the longest duration one RFC 4733 report can carry
// (0xFFFF timestamp units, 8.19 s at 8 kHz). Longer events are sent as
// several segments (RFC 4733 §2.5.1.3).
const MaxEventDuration = 0xFFFF

// MaxVolume is the largest volume field value (-63 dBm0).
const MaxVolume = 63

// TelephoneEvent is one decoded RFC 4733 event block.
type TelephoneEvent struct {
	// Event is the event code. 0-15 are the DTMF digits in the order of
	// Digits ("0123456789*#ABCD"); other codes (flash, fax and modem
	// tones, ...) decode too and are reported as not-a-digit by Digit.
	Event uint8
	// End is the E bit: this is the final report of the event.
	End bool
	// Volume is the power level of the tone in -dBm0 (0 is 0 dBm0, 63 is
	// -63 dBm0). Only the low 6 bits are on the wire.
	Volume uint8
	// Duration is the time since the event's start (the packet's RTP
	// timestamp) in timestamp units.
	Duration uint16
}

// Digit returns the keypad digit the event stands for and true, or false
// when the event code is not a DTMF digit (codes above 15).
func (e TelephoneEvent) Digit() (Digit, bool) {
	if e.Event >= uint8(len(Digits)) {
		return 0, false
	}
	return Digit(Digits[e.Event]), true
}

// EventCode returns the RFC 4733 event code of a keypad digit, false when
// d is not one of the 16 digits.
func EventCode(d Digit) (uint8, bool) {
	for i := 0; i < len(Digits); i++ {
		if Digits[i] == byte(d) {
			return uint8(i), true
		}
	}
	return 0, false
}

// ErrShortPayload is matched (errors.Is) by the error for a telephone-event
// payload shorter than TelephoneEventSize.
var ErrShortPayload = errors.New("rfc4733: telephone-event payload shorter than 4 bytes")

// ErrVolumeRange is returned when encoding a volume above MaxVolume.
var ErrVolumeRange = errors.New("rfc4733: telephone-event volume out of range 0-63")

// shortPayloadError carries only the payload's length, never its bytes (an
// event code is a card digit). Its values are 0-3, which an interface holds
// without allocating.
type shortPayloadError int

func (n shortPayloadError) Error() string {
	return "rfc4733: telephone-event payload is " + strconv.Itoa(int(n)) + " bytes, need at least 4"
}

func (shortPayloadError) Is(target error) bool { return target == ErrShortPayload }

// DecodeTelephoneEvent decodes an RFC 4733 telephone-event payload. The R
// bit is ignored. A payload shorter than 4 bytes is an error; a longer one
// (several blocks, as for RFC 4733 §2.5.1.5 multiple events) is decoded as
// its first block only: RFC 2198 redundancy (§2.6) is out of scope and
// arrives under its own payload type.
func DecodeTelephoneEvent(payload []byte) (TelephoneEvent, error) {
	if len(payload) < TelephoneEventSize {
		return TelephoneEvent{}, shortPayloadError(len(payload))
	}
	return TelephoneEvent{
		Event:    payload[0],
		End:      payload[1]&0x80 != 0,
		Volume:   payload[1] & 0x3f,
		Duration: uint16(payload[2])<<8 | uint16(payload[3]),
	}, nil
}

// AppendBinary appends the 4-byte payload of e to b (R bit zero) and
// returns the extended slice; it does not allocate when b has room. It
// implements encoding.BinaryAppender. The only error is ErrVolumeRange, in
// which case b is returned unchanged.
func (e TelephoneEvent) AppendBinary(b []byte) ([]byte, error) {
	if e.Volume > MaxVolume {
		return b, ErrVolumeRange
	}
	flags := e.Volume
	if e.End {
		flags |= 0x80
	}
	return append(b, e.Event, flags, byte(e.Duration>>8), byte(e.Duration)), nil
}

// DefaultEventTimeout is the EventAssembler's default Timeout: 250 ms at
// 8 kHz. Senders refresh an event every 20-50 ms, so this allows for a few
// lost refreshes and jitter before a press whose End packets were all lost
// is reported.
const DefaultEventTimeout = 2000

// segmentSlack is how far from the RFC 4733 §2.5.1.3 ideal (a new segment
// exactly 0xFFFF after the previous one, the previous one having reached
// 0xFFFF) a continuation may be and still be taken as one: 200 ms, for
// senders that round segments to whole packets and for the last packets of
// a segment being lost.
const segmentSlack = 1600

// EventAssembler turns the RFC 4733 telephone-event packets of one RTP
// stream (one SSRC) into key presses. The zero value is ready to use; it is
// not safe for concurrent use. Nothing on its paths allocates.
//
// Every press is reported exactly once, as an Event with Source RFC4733,
// Start the sender's event timestamp (extended to 64 bits across RTP
// timestamp wrap-around, see Extend) and End = Start + the final duration.
// A press is reported:
//
//   - at its first End packet (the two retransmissions are ignored);
//   - when a packet of a newer event arrives, if its End packets were lost;
//   - when Advance is called with a stream time more than Timeout past the
//     press's last known end, if its End packets were lost and no newer
//     event came; the press is then reported with the duration seen so far;
//   - at Flush.
//
// What counts as one press:
//
//   - Packets are matched to a press by event code and timestamp: every
//     packet carrying the press's timestamp (or one of its segments'
//     timestamps) belongs to it, whatever its sequence number, marker or
//     arrival order. So End retransmissions, duplicated packets, late
//     packets and a start packet arriving after the End add nothing.
//   - Lost start packets do not matter: every packet carries the start.
//   - A long event sent in segments (RFC 4733 §2.5.1.3: the duration
//     reaches 0xFFFF, the sender goes on with a new timestamp 0xFFFF later,
//     marker clear, no E bit on the earlier segment) is one press whose End
//     counts all segments. It is recognised when the previous segment was
//     seen reaching within 200 ms of 0xFFFF and the new timestamp is 0xFFFF
//     after it (or up to 200 ms less, for senders that round segments to
//     whole packets); a segment whose last 200 ms were all lost splits the
//     press in two. A press already reported by timeout still takes in its
//     later segments without being reported again. A sender that lets the
//     duration wrap without starting a segment gives one press whose End
//     stops at the longest duration seen.
//   - A new timestamp is a new press, also for the same digit, unless it is
//     a segment continuation or falls inside a press already seen. Presses
//     of any length are reported (a held key is one digit however long),
//     and so are events 12-15, as digits 'A'-'D'.
//   - Presses are reported in timestamp order: a packet older than the
//     newest press seen that belongs to neither it nor the press before is
//     dropped, so a straggler can never raise a digit twice. (A press whose
//     every packet arrives after the next press started is lost that way;
//     the in-band copy, if any, still reaches the Deduper.)
//   - Broken senders that keep one timestamp for several presses: a packet
//     with the same timestamp but another event code, sent after the
//     newest press started (newer sequence number), is a new press; so is
//     a packet with the same timestamp and code that has the marker bit and
//     a newer sequence number than the press's End packets. Such a press is
//     reported with Start moved to the previous press's End (it cannot have
//     begun earlier), so that the Deduper keeps it apart.
//
// Event codes above 15 are not digits: their packets are accepted and
// ignored, and do not end a press in progress.
//
// Reported Starts strictly increase from one event to the next.
type EventAssembler struct {
	// Timeout is how far, in timestamp units, the stream time passed to
	// Advance must go beyond a press's last known end before the press is
	// reported without its End packets. Zero or less means
	// DefaultEventTimeout.
	Timeout int64

	ref     int64 // newest extended timestamp seen
	haveRef bool

	cur  press // the press in progress, not yet reported
	last press // the press reported last
}

// press is one key press as the assembler tracks it. key, seg and segDur
// are on the sender's (extended) clock; shift moves the reported times.
type press struct {
	key      int64 // timestamp of the first segment: the event start
	seg      int64 // timestamp of the latest segment
	segDur   int64 // longest duration seen in the latest segment
	shift    int64 // reported Start minus key (re-used timestamps only)
	firstSeq uint16
	lastSeq  uint16
	code     uint8
	ended    bool // an End packet was seen
	valid    bool
}

func (p *press) rawEnd() int64 { return p.seg + p.segDur }
func (p *press) start() int64  { return p.key + p.shift }

func (p *press) event() Event {
	return Event{Digit: Digit(Digits[p.code]), Start: p.key + p.shift, End: p.rawEnd() + p.shift, Source: RFC4733}
}

// covers reports whether a packet with extended timestamp ts and event code
// code belongs to p: one of its segment timestamps or inside its span.
func (p *press) covers(ts int64, code uint8) bool {
	return p.valid && p.code == code && (ts == p.key || ts == p.seg || (ts > p.key && ts < p.rawEnd()))
}

// continues reports whether a packet starts a new segment of p (RFC 4733
// §2.5.1.3).
func (p *press) continues(ts int64, code uint8, marker bool) bool {
	if !p.valid || p.ended || marker || p.code != code || p.segDur < MaxEventDuration-segmentSlack {
		return false
	}
	d := ts - p.seg
	return d >= MaxEventDuration-segmentSlack && d <= MaxEventDuration+1
}

// seqNewer reports whether RTP sequence number a comes after b.
func seqNewer(a, b uint16) bool { return int16(a-b) > 0 }

func (a *EventAssembler) timeout() int64 {
	if a.Timeout > 0 {
		return a.Timeout
	}
	return DefaultEventTimeout
}

// Extend maps a 32-bit RTP timestamp of this stream onto the 64-bit clock
// the reported events use, and moves the stream's reference forward. The
// first timestamp the assembler sees maps to itself; later ones unwrap
// around it (a timestamp up to 2^31 before the newest one seen is taken as
// older, and can map below zero). The relay uses it to put the in-band
// detector's output on the same clock, so that the Deduper can compare.
func (a *EventAssembler) Extend(ts uint32) int64 {
	if !a.haveRef {
		a.haveRef = true
		a.ref = int64(ts)
		return a.ref
	}
	x := a.ref + int64(int32(ts-uint32(a.ref)))
	if x > a.ref {
		a.ref = x
	}
	return x
}

// Push feeds one telephone-event packet: its RTP sequence number, timestamp
// and marker bit and its payload. Presses it completes are appended to out,
// which is returned. A payload that does not decode is an error that
// leaves the state unchanged.
func (a *EventAssembler) Push(seq uint16, ts uint32, marker bool, payload []byte, out []Event) ([]Event, error) {
	te, err := DecodeTelephoneEvent(payload)
	if err != nil {
		return out, err
	}
	t := a.Extend(ts)
	if te.Event >= uint8(len(Digits)) {
		return out, nil
	}
	return a.push(seq, t, marker, te, out), nil
}

func (a *EventAssembler) newest() *press {
	if a.cur.valid {
		return &a.cur
	}
	return &a.last
}

func (a *EventAssembler) push(seq uint16, t int64, marker bool, te TelephoneEvent, out []Event) []Event {
	code, dur := te.Event, int64(te.Duration)
	newest := a.newest()

	// The next segment of a long event.
	if newest.continues(t, code, marker) {
		newest.seg, newest.segDur = t, 0
		return a.update(newest, seq, dur, te.End, out)
	}

	// A packet of a press already seen.
	var p *press
	switch cc, lc := a.cur.covers(t, code), a.last.covers(t, code); {
	case cc && lc: // one timestamp for both (broken sender): go by sequence
		p = &a.cur
		if seqNewer(a.cur.firstSeq, seq) {
			p = &a.last
		}
	case cc:
		p = &a.cur
	case lc:
		p = &a.last
	}
	// The marker bit after the End, on a newer packet with the same
	// timestamp, is a sender re-using the timestamp for a new press.
	if p != nil && !(p == newest && p.ended && marker && t == p.key && seqNewer(seq, p.lastSeq)) {
		if t != p.seg { // a late packet of an earlier segment
			if seqNewer(seq, p.lastSeq) {
				p.lastSeq = seq
			}
			return out
		}
		return a.update(p, seq, dur, te.End, out)
	}

	// Stragglers never start a press.
	if newest.valid && (t < newest.key || (t == newest.key && !seqNewer(seq, newest.firstSeq))) {
		return out
	}

	// A new press: the one in progress, if any, has ended.
	n := press{key: t, seg: t, segDur: dur, firstSeq: seq, lastSeq: seq, code: code, ended: te.End, valid: true}
	if newest.valid {
		start := t
		if t == newest.key { // timestamp re-used: it began after the previous one
			start = newest.rawEnd() + newest.shift
		}
		if prev := newest.start(); start <= prev {
			start = prev + 1
		}
		n.shift = start - t
	}
	if a.cur.valid {
		out = a.report(out)
	}
	a.cur = n
	if n.ended {
		out = a.report(out)
	}
	return out
}

// update applies a packet of p's latest segment; the first End reports p if
// it is the press in progress.
func (a *EventAssembler) update(p *press, seq uint16, dur int64, end bool, out []Event) []Event {
	if seqNewer(seq, p.lastSeq) {
		p.lastSeq = seq
	}
	if dur > p.segDur {
		p.segDur = dur
	}
	if end && !p.ended {
		p.ended = true
		if p == &a.cur {
			out = a.report(out)
		}
	}
	return out
}

// report reports the press in progress and makes it the last one.
func (a *EventAssembler) report(out []Event) []Event {
	out = append(out, a.cur.event())
	a.last = a.cur
	a.cur = press{}
	return out
}

// Advance tells the assembler the stream has reached RTP timestamp ts (the
// relay calls it with the timestamps of the audio packets it sees). A press
// in progress whose last known end is more than Timeout before ts is
// reported to out, which is returned.
func (a *EventAssembler) Advance(ts uint32, out []Event) []Event {
	t := a.Extend(ts)
	if a.cur.valid && t-a.cur.rawEnd() > a.timeout() {
		out = a.report(out)
	}
	return out
}

// Flush reports the press in progress, if any, as at the end of the
// stream. Packets that arrive afterwards are still matched against it, so
// they do not report it again.
func (a *EventAssembler) Flush(out []Event) []Event {
	if a.cur.valid {
		out = a.report(out)
	}
	return out
}

// Reset forgets everything, as for a new stream (new SSRC). Timeout is
// kept.
func (a *EventAssembler) Reset() {
	*a = EventAssembler{Timeout: a.Timeout}
}
