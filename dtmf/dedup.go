package dtmf

// DefaultDedupSlack is the Deduper's default Slack: 240 samples, 30 ms at
// 8 kHz.
//
// Why 30 ms. Reports of one press from two sources overlap in time as long
// as their clocks disagree by less than the press's length (at least 40 ms
// by ITU-T Q.24), so most duplicates need no slack at all; the slack
// catches the rest, up to length + slack apart. Two genuine presses of one
// digit are at least 40 ms apart (Q.24 pause), and the Deduper's matching
// rules keep them apart whenever each source reports both (see Deduper). The slack matters only when one press reached the
// gateway through one source only and the next through another only: then
// their reports are one pause apart, give or take how differently the two
// sources place a boundary, and they stay two if that gap is at least the
// slack. 40 ms of pause minus about 10 ms of boundary disagreement (a
// detector's analysis block, the Q.24 10 ms drop-out bridge) leaves 30 ms.
// A larger slack catches duplicates from sources whose clocks disagree by
// more than a press's length; a smaller one keeps presses separated by a
// shorter apparent pause apart. Tune it per deployment with Slack.
const DefaultDedupSlack = 240

// DedupHorizon is how long, in samples, a Deduper remembers a press after
// it ended: 2 s at 8 kHz. The remembered digits are card data, so they
// are kept only as long as a duplicate can still arrive: a source reports
// a press at most a few hundred milliseconds after it ended (the in-band
// detector once the tone is over, the EventAssembler at the End packet or
// its 250 ms timeout, SIP INFO near the press's start), and by then no
// other source can have reported a press that started more than that
// after it. Two seconds leave a wide margin for jitter and signalling
// delay.
const DedupHorizon = 2 * SampleRate

// dedupSlots bounds the presses remembered at once: a press and its pause
// last at least 80 ms (ITU-T Q.24), so at most 25 fit in DedupHorizon.
const dedupSlots = 32

// Deduper makes one key press one digit when it reaches the gateway more
// than once: in-band, as RFC 4733 events and/or as SIP INFO. Feed it every
// Event of one call direction, from every source, as they are produced
// (sources interleaved in any way, each source's events in its own order,
// as the detector and the EventAssembler give them), all on one clock (the stream's extended RTP timestamp:
// see EventAssembler.Extend; the caller maps in-band sample positions and
// SIP INFO arrival times onto it). The zero value is ready to use; it is
// not safe for concurrent use. It does not allocate.
//
// An event is a duplicate when a press already reported, from another
// source, has the same digit and a span that overlaps it or lies less
// than Slack samples away. Two rules make it robust to rapid presses of
// one digit and to any arrival order:
//
//   - Each source is trusted to report a press once (the detector and the
//     EventAssembler make sure of it): two events from the same source are
//     never duplicates of each other, however close.
//   - A press is matched at most once per source: an event can only be the
//     duplicate of a press that has no report from its source yet, and of
//     those, the closest one (the most overlap, else the smallest gap).
//
// So when every source reports every press, and the sources place a press
// less than 40 ms (the shortest Q.24 press and pause) apart, presses stay
// apart whatever the slack and however the sources interleave. The slack
// only decides the degraded case where one press came through one source
// only and the next press of the same digit through another only (see
// DefaultDedupSlack). Different digits are never duplicates, even when
// they overlap.
//
// The digits it remembers are card data: a press is forgotten (its slot
// zeroed) once it ended more than DedupHorizon before the newest press's
// start, and Reset wipes them all; call it when the call ends. A report
// arriving later than that counts as a fresh press.
type Deduper struct {
	// Slack is the largest gap, in samples, between two reports of one
	// press from different sources: spans closer than that (or
	// overlapping) are one press. Zero means DefaultDedupSlack; a
	// negative value means overlap only.
	Slack int64

	slots   [dedupSlots]dedupPress // a slot with no sources is free
	newest  int64                  // the latest Start seen
	started bool                   // newest is set
}

type dedupPress struct {
	start, end int64
	sources    uint16 // bit per Source that reported it; 0: a free slot
	digit      Digit
}

func sourceBit(s Source) uint16 { return 1 << (s & 15) }

func (d *Deduper) slack() int64 {
	switch {
	case d.Slack > 0:
		return d.Slack
	case d.Slack < 0:
		return 0
	}
	return DefaultDedupSlack
}

// Add takes the next event and reports whether it is a fresh press (true:
// pass it on) or a duplicate of a press already reported (false: drop it).
func (d *Deduper) Add(e Event) bool {
	end := max(e.End, e.Start)
	bit := sourceBit(e.Source)
	slack := d.slack()
	if !d.started || e.Start > d.newest {
		d.newest, d.started = e.Start, true
	}
	forget := d.newest - DedupHorizon
	best, bestGap := -1, int64(0)
	free := -1
	for i := range d.slots {
		p := &d.slots[i]
		if p.sources == 0 {
			if free < 0 {
				free = i
			}
			continue
		}
		if p.end < forget {
			*p = dedupPress{}
			if free < 0 {
				free = i
			}
			continue
		}
		if p.digit != e.Digit || p.sources&bit != 0 {
			continue
		}
		// gap < 0: they overlap by -gap samples.
		gap := max(e.Start, p.start) - min(end, p.end)
		if gap >= slack {
			continue
		}
		if best < 0 || gap < bestGap {
			best, bestGap = i, gap
		}
	}
	if best >= 0 {
		d.slots[best].sources |= bit
		return false
	}
	if free < 0 {
		// More presses within the horizon than Q.24 timing allows: the
		// one that ended first makes room.
		free = 0
		for i := range d.slots {
			if d.slots[i].end < d.slots[free].end {
				free = i
			}
		}
	}
	d.slots[free] = dedupPress{start: e.Start, end: end, sources: bit, digit: e.Digit}
	return true
}

// Reset forgets every press, as for a new call, and zeroes the memory
// that held their digits. Slack is kept.
func (d *Deduper) Reset() {
	*d = Deduper{Slack: d.Slack}
}
