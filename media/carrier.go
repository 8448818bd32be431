package media

import (
	"encoding/binary"
	"net/netip"
	"time"

	"github.com/zaf/g711"

	"github.com/tonevault/tonevault/dtmf"
)

// sampleDur is one sample at 8 kHz.
const sampleDur = time.Second / dtmf.SampleRate

// carrier is the carrier→platform direction's state: the masker, the
// RFC 4733 assembler of the current SSRC, the call clock the Deduper
// compares on, and what was last sent toward the platform. Guarded by
// Session.mu.
type carrier struct {
	ssrc     uint32
	haveSSRC bool
	asm      dtmf.EventAssembler

	masker  *dtmf.Masker
	mcodec  Codec
	fed     int64          // samples fed to the current masker
	retired dtmf.MaskStats // maskers replaced by a codec change

	// The call clock: the carrier's extended RTP timestamp plus epochOff,
	// which moves at an SSRC change so that the clock keeps counting from
	// where the old stream stopped (the Deduper needs one clock per call).
	epochOff  int64
	clock     int64     // call clock at the end of the newest media seen
	wall      time.Time // when that media arrived
	haveClock bool

	// Toward the platform.
	outTS      uint32 // newest timestamp sent
	haveOut    bool
	audioPT    uint8 // the carrier's audio format, for replacements
	audioCodec Codec
	audioN     int // samples per audio packet
	haveAudio  bool

	// When each stretch of masker input arrived, for the delay histogram.
	arr  [32]arrival
	narr int

	scratch [MaxPacket]byte
	events  []dtmf.Event

	// Some senders (baresip, some SBCs) keep sending audio while they send
	// an RFC 4733 event. Replacing each event packet as well would give the
	// platform two packets per 20 ms: a recorder that plays them in
	// sequence order would double the audio of every key press. So once
	// audio has arrived between two packets of one event, that event's
	// further packets are dropped, and the sequence numbers toward the
	// platform close the gaps they leave.
	eventTS         uint32 // the event timestamp of the newest event packet
	haveEvent       bool
	audioSinceEvent bool       // audio arrived after the newest event packet
	withAudio       bool       // the current event came with the sender's audio
	drops           [64]uint16 // sequence numbers dropped, oldest first
	nDrops          int
	settled         uint16 // drops older than those in drops
}

// outSeq is the sequence number toward the platform for the carrier's
// seq: lower by the number of dropped packets before it, so the platform
// sees no gap. A packet arriving more than 64 drops late is numbered as
// if it came after them (reordering that deep does not happen on a call).
func (c *carrier) outSeq(seq uint16) uint16 {
	d := c.settled
	for _, x := range c.drops[:c.nDrops] {
		if int16(seq-x) > 0 {
			d++
		}
	}
	return seq - d
}

func (c *carrier) dropSeq(seq uint16) {
	if c.nDrops == len(c.drops) {
		c.settled++
		copy(c.drops[:], c.drops[1:])
		c.nDrops--
	}
	c.drops[c.nDrops] = seq
	c.nDrops++
}

type arrival struct {
	start int64 // first masker sample of the packet
	at    time.Time
}

// carrierResult is what to send after a carrier packet, if anything.
type carrierResult struct {
	n       int            // bytes of out to send; 0: nothing
	dst     netip.AddrPort // platform's address
	arrived time.Time      // arrival of the first output sample, for the histogram
	digits  []Digit        // fresh presses, to deliver outside the lock
}

// carrierPacket is the whole carrier→platform decision for one datagram:
// source check, parse, inspect, mask or replace, rewrite. It writes the
// packet to send into out (MaxPacket bytes) and appends fresh digits to
// digits. It does not allocate except when the codec changes. What is
// sent, before the platform leg's SRTP, is copied into fk for the
// recording fork's customer stream (fk may be nil: no fork).
func (s *Session) carrierPacket(pkt []byte, from netip.AddrPort, now time.Time, out []byte, digits []Digit, fk *forkOut) carrierResult {
	res := carrierResult{digits: digits}
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.closed {
		return res
	}
	if !s.legs[Carrier].acceptRTP(from) {
		s.count(toPlatform, dropForeign)
		return res
	}
	if lc := s.legs[Carrier].crypto; lc != nil {
		// Fail closed: a packet that does not authenticate is not the
		// customer's and is never forwarded, masking or not.
		var o outcome
		if pkt, o = lc.decryptRTP(pkt); o != outcomeNone {
			s.count(toPlatform, o)
			return res
		}
	}
	p, bad := parseRTP(pkt)
	if bad != outcomeNone {
		s.count(toPlatform, bad)
		return res
	}
	s.lastRTP.Store(s.r.nanos(now))
	c := &s.c
	if !c.haveSSRC || p.ssrc != c.ssrc {
		res.digits = s.newSSRC(p, now, res.digits)
	}
	at := c.asm.Extend(p.ts) + c.epochOff
	masking := s.masking()
	var n int
	var o outcome
	switch codec := s.ptmap[p.pt]; codec {
	case PCMU, PCMA:
		n, res.arrived, res.digits = s.audio(p, codec, at, masking, now, out, res.digits)
		o = relayAudio
	case TelephoneEvent:
		n, o, res.digits = s.event(p, at, masking, now, out, res.digits)
	case ComfortNoise:
		payload := p.payload
		if masking && len(payload) > 1 {
			// Keep the noise level, drop the spectral shape: a shaped
			// noise is audio the relay cannot inspect.
			payload = payload[:1]
		}
		n = rtpHeaderLen + copy(out[rtpHeaderLen:], payload)
		putRTPHeader(out, p.marker, p.pt, c.outSeq(p.seq), p.ts, p.ssrc)
		c.sent(p.ts)
		o = relayCN
	default:
		if masking {
			n, res.digits = s.replace(p, p.ts, at, now, out, res.digits)
			o = replaceUnknown
		} else {
			n = rtpHeaderLen + copy(out[rtpHeaderLen:], p.payload)
			putRTPHeader(out, p.marker, p.pt, c.outSeq(p.seq), p.ts, p.ssrc)
			res.digits = s.feedMask(c.frameSamples(s), at, now, res.digits)
			c.sent(p.ts)
			o = relayUninspect
		}
	}
	dst, why := s.legs[Platform].rtpDest()
	if why != outcomeNone {
		s.count(toPlatform, why)
		res.arrived = time.Time{}
		return res
	}
	if n > 0 && s.rec != nil {
		// Masked: the recorder hears what the agent hears, never more.
		s.forkCopy(fk, streamCustomer, out[:n])
	}
	if lc := s.legs[Platform].crypto; lc != nil && n > 0 {
		enc, eo := lc.encryptRTP(out[:n])
		if eo != outcomeNone {
			s.count(toPlatform, eo)
			res.arrived = time.Time{}
			if fk != nil {
				fk.n = 0 // not relayed, not recorded
			}
			return res
		}
		if &enc[0] != &out[0] {
			// out had no room for the tag (a caller's short buffer).
			if len(enc) > cap(out) {
				s.count(toPlatform, dropSRTPProtect)
				res.arrived = time.Time{}
				if fk != nil {
					fk.n = 0
				}
				return res
			}
			copy(out[:cap(out)], enc)
		}
		n = len(enc)
	}
	s.count(toPlatform, o)
	res.n, res.dst = n, dst
	return res
}

// newSSRC starts a new carrier stream (re-INVITE, transfer, SBC
// failover). The assembler is per SSRC: a press in progress is reported
// and the assembler forgotten. The masker is kept: the customer's audio
// continues across the switch, so a tone that straddles it stays one tone
// to the detector and stays masked, and the look-ahead's content leaves
// through the masker like any other audio, never around it.
func (s *Session) newSSRC(p rtpPacket, now time.Time, digits []Digit) []Digit {
	c := &s.c
	if c.haveSSRC {
		for _, e := range c.asm.Flush(c.events[:0]) {
			digits = s.addDigit(c.toCall(e), now, digits)
		}
		c.asm.Reset()
	}
	first := c.asm.Extend(p.ts)
	if c.haveClock {
		c.epochOff = c.clock + max(int64(now.Sub(c.wall)/sampleDur), 0) - first
	}
	c.ssrc, c.haveSSRC = p.ssrc, true
	c.haveOut = false                                                                            // a new timestamp space toward the platform too
	c.nDrops, c.settled, c.haveEvent, c.audioSinceEvent, c.withAudio = 0, 0, false, false, false // and a new sequence space
	return digits
}

// audio masks one G.711 packet. The packet keeps its header (sequence
// number, timestamp, marker, SSRC); its payload becomes the masker's
// output, which is the audio that arrived Delay() samples earlier. So the
// platform stream is exactly as continuous as the carrier's, and the added
// latency is the look-ahead. At call start the first Delay() samples out
// are the masker's initial silence.
func (s *Session) audio(p rtpPacket, codec Codec, at int64, masking bool, now time.Time, out []byte, digits []Digit) (int, time.Time, []Digit) {
	c := &s.c
	n := len(p.payload)
	dst := out[rtpHeaderLen : rtpHeaderLen+n]
	if !c.ensureMasker(codec, s.r.cfg) {
		// Cannot happen with a validated config; fail closed anyway.
		fillMask(dst, s.r.mask[codec], int(p.ts))
		putRTPHeader(out, p.marker, p.pt, c.outSeq(p.seq), p.ts, p.ssrc)
		return rtpHeaderLen + n, time.Time{}, digits
	}
	c.advanceClock(at+int64(n), now)
	off := at - c.fed
	c.note(now)
	mout := dst
	if !masking {
		mout = c.scratch[:n]
	}
	runTestFault(s.callID)
	evs := c.masker.G711(p.payload, mout, c.events[:0])
	t0 := c.fed - int64(c.masker.Delay())
	c.fed += int64(n)
	for _, e := range evs {
		e.Start += off
		e.End += off
		digits = s.addDigit(e, now, digits)
	}
	for _, e := range c.asm.Advance(p.ts, c.events[:0]) {
		digits = s.addDigit(c.toCall(e), now, digits)
	}
	var arrived time.Time
	if masking {
		arrived = c.arrivalOf(t0)
	} else {
		copy(dst, p.payload)
	}
	putRTPHeader(out, p.marker, p.pt, c.outSeq(p.seq), p.ts, p.ssrc)
	c.sent(p.ts)
	if n > 0 {
		c.audioPT, c.audioCodec, c.audioN, c.haveAudio = p.pt, codec, n, true
		c.audioSinceEvent = true
	}
	return rtpHeaderLen + n, arrived, digits
}

// event handles one RFC 4733 packet: the assembler sees it, and the
// platform gets mask audio in its slot (or, under CaptureOnly outside a
// capture, the packet itself).
//
// The slot's timestamp: every packet of an event carries the event's
// start timestamp, so the replacement takes the time the packet reports,
// start + duration - one packet, the audio it stands for. End
// retransmissions repeat the duration, so they repeat the slot: the
// replacement is never given a timestamp older than the newest one sent,
// so retransmissions go out with the same timestamp as the first End
// (RFC 3550 allows equal timestamps; a jitter buffer keeps one). A
// strictly increasing invented timestamp would instead run into the next
// audio packet of senders that resume audio right at the event's end.
func (s *Session) event(p rtpPacket, at int64, masking bool, now time.Time, out []byte, digits []Digit) (int, outcome, []Digit) {
	c := &s.c
	evs, _ := c.asm.Push(p.seq, p.ts, p.marker, p.payload, c.events[:0])
	var dur int64
	if len(p.payload) >= dtmf.TelephoneEventSize {
		dur = int64(binary.BigEndian.Uint16(p.payload[2:]))
	}
	c.advanceClock(at+dur, now)
	for _, e := range evs {
		digits = s.addDigit(c.toCall(e), now, digits)
	}
	frame := int64(c.frameSamples(s))
	slot := max(dur-frame, 0)
	if !masking {
		n := rtpHeaderLen + copy(out[rtpHeaderLen:], p.payload)
		putRTPHeader(out, p.marker, p.pt, c.outSeq(p.seq), p.ts, p.ssrc)
		digits = s.feedMask(int(frame), at+slot, now, digits)
		c.sent(p.ts + uint32(slot))
		return n, relayEvent, digits
	}
	if !c.haveEvent || c.eventTS != p.ts {
		c.eventTS, c.haveEvent, c.withAudio = p.ts, true, false
	} else if c.audioSinceEvent {
		c.withAudio = true // and stays so for the rest of this event
	}
	c.audioSinceEvent = false
	if c.withAudio {
		// The sender's audio covers this slot (masked on its own path).
		c.dropSeq(p.seq)
		return 0, dropEventWithAudio, digits
	}
	n, digits := s.replace(p, p.ts+uint32(slot), at+slot, now, out, digits)
	return n, replaceEvent, digits
}

// replace sends one packet of mask audio in the platform's audio format
// in p's slot: p's sequence number and SSRC, the given timestamp (never
// older than the newest sent), marker clear. The masker is fed mask audio
// for the slot, so what sat in the look-ahead when the replacement began
// (possibly a tone's first milliseconds, sent in-band before the sender
// switched to events) is never sent, and the look-ahead holds mask audio
// when real audio resumes.
func (s *Session) replace(p rtpPacket, ts uint32, at int64, now time.Time, out []byte, digits []Digit) (int, []Digit) {
	c := &s.c
	n := c.frameSamples(s)
	fc := s.fill
	if c.haveAudio {
		fc = fillCodec{pt: c.audioPT, codec: c.audioCodec}
	}
	if c.haveOut && int32(ts-c.outTS) < 0 {
		ts = c.outTS
	}
	fillMask(out[rtpHeaderLen:rtpHeaderLen+n], s.r.mask[fc.codec], int(ts%uint32(len(s.r.mask[fc.codec]))))
	putRTPHeader(out, false, fc.pt, c.outSeq(p.seq), ts, p.ssrc)
	c.sent(ts)
	return rtpHeaderLen + n, s.feedMask(n, at, now, digits)
}

// feedMask keeps the masker's clock with the stream through a slot that
// carried no inspectable audio, by feeding it mask audio.
func (s *Session) feedMask(n int, at int64, now time.Time, digits []Digit) []Digit {
	c := &s.c
	codec := c.mcodec
	if c.masker == nil {
		codec = s.fill.codec
	}
	if !c.ensureMasker(codec, s.r.cfg) {
		return digits
	}
	c.advanceClock(at+int64(n), now)
	off := at - c.fed
	buf := c.scratch[:n]
	tab := s.r.mask[codec]
	fillMask(buf, tab, int(c.fed%int64(len(tab))))
	evs := c.masker.G711(buf, buf, c.events[:0])
	c.note(now)
	c.fed += int64(n)
	for _, e := range evs {
		e.Start += off
		e.End += off
		digits = s.addDigit(e, now, digits)
	}
	return digits
}

// ensureMasker makes sure a masker for codec runs. A codec change starts
// a new masker: the old one's look-ahead is dropped, never sent, and the
// new one starts with Delay() samples of silence. It allocates, which is
// fine for an event that happens a few times a call at most.
func (c *carrier) ensureMasker(codec Codec, cfg Config) bool {
	if c.masker != nil && c.mcodec == codec {
		return true
	}
	dc := dtmf.PCMU
	if codec == PCMA {
		dc = dtmf.PCMA
	}
	m, err := dtmf.NewMasker(cfg.maskConfig(), dc)
	if err != nil {
		return false
	}
	if c.masker != nil {
		st := c.masker.Stats()
		c.retired.Samples += st.Samples
		c.retired.Masked += st.Masked
		c.retired.Late += st.Late
	}
	c.masker, c.mcodec, c.fed, c.narr = m, codec, 0, 0
	return true
}

func (c *carrier) maskStats() dtmf.MaskStats {
	st := c.retired
	if c.masker != nil {
		cur := c.masker.Stats()
		st.Samples += cur.Samples
		st.Masked += cur.Masked
		st.Late += cur.Late
	}
	return st
}

// frameSamples is the size of a replacement packet: the carrier's audio
// packets once seen, else the signalled ptime, else 20 ms.
func (c *carrier) frameSamples(s *Session) int {
	n := 160
	if c.haveAudio {
		n = c.audioN
	} else if pt := s.legs[Carrier].stream.PTime; pt > 0 {
		n = int(pt / sampleDur)
	}
	return min(max(n, 1), MaxPacket-rtpHeaderLen)
}

// sent records the newest timestamp sent toward the platform.
func (c *carrier) sent(ts uint32) {
	if !c.haveOut || int32(ts-c.outTS) > 0 {
		c.outTS = ts
	}
	c.haveOut = true
}

// advanceClock moves the call clock to the end of the newest media. A
// packet up to two seconds older (reordering) leaves it alone; a larger
// jump back is a sender reset and is followed.
func (c *carrier) advanceClock(end int64, now time.Time) {
	if !c.haveClock || end > c.clock || end < c.clock-2*dtmf.SampleRate {
		c.clock, c.wall, c.haveClock = end, now, true
	}
}

// clockAt is the call clock at wall-clock time now.
func (c *carrier) clockAt(now time.Time) int64 {
	if !c.haveClock {
		return 0
	}
	return c.clock + int64(now.Sub(c.wall)/sampleDur)
}

// wallAt is the wall-clock time of call clock position pos.
func (c *carrier) wallAt(pos int64, now time.Time) time.Time {
	if !c.haveClock {
		return now
	}
	return c.wall.Add(time.Duration(pos-c.clock) * sampleDur)
}

// toCall moves an assembler event from the SSRC's clock to the call's.
func (c *carrier) toCall(e dtmf.Event) dtmf.Event {
	e.Start += c.epochOff
	e.End += c.epochOff
	return e
}

// note records when masker input starting at c.fed arrived.
func (c *carrier) note(now time.Time) {
	c.arr[c.narr%len(c.arr)] = arrival{start: c.fed, at: now}
	c.narr++
}

// arrivalOf is when masker sample t arrived (zero time for the initial
// silence or when it is too old to remember).
func (c *carrier) arrivalOf(t int64) time.Time {
	if t < 0 {
		return time.Time{}
	}
	for i := c.narr - 1; i >= 0 && i >= c.narr-len(c.arr); i-- {
		if a := c.arr[i%len(c.arr)]; a.start <= t {
			return a.at
		}
	}
	return time.Time{}
}

// fillMask copies the periodic mask signal tab into dst from phase.
func fillMask(dst, tab []byte, phase int) {
	phase %= len(tab)
	for len(dst) > 0 {
		k := copy(dst, tab[phase:])
		dst, phase = dst[k:], 0
	}
}

func encodeUlaw(v int16) byte { return g711.EncodeUlawFrame(v) }
func encodeAlaw(v int16) byte { return g711.EncodeAlawFrame(v) }
