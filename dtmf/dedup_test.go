package dtmf

import (
	"fmt"
	"slices"
	"testing"
)

// dedupRun feeds events to a fresh Deduper and returns the fresh ones.
func dedupRun(d *Deduper, evs []Event) []Event {
	var fresh []Event
	for _, e := range evs {
		if d.Add(e) {
			fresh = append(fresh, e)
		}
	}
	return fresh
}

// dedupInterleavings returns every merge of the lists that keeps each list's
// own order: sources interleave freely, each source reports in order.
func dedupInterleavings(lists ...[]Event) [][]Event {
	total := 0
	for _, l := range lists {
		total += len(l)
	}
	var out [][]Event
	pos := make([]int, len(lists))
	cur := make([]Event, 0, total)
	var rec func()
	rec = func() {
		if len(cur) == total {
			out = append(out, slices.Clone(cur))
			return
		}
		for i, l := range lists {
			if pos[i] < len(l) {
				cur = append(cur, l[pos[i]])
				pos[i]++
				rec()
				pos[i]--
				cur = cur[:len(cur)-1]
			}
		}
	}
	rec()
	return out
}

func dedupEv(d Digit, start, end int64, s Source) Event {
	return Event{Digit: d, Start: start, End: end, Source: s}
}

func TestDedupInBandAndRFC4733(t *testing.T) {
	// One 100 ms press of '5': RFC 4733 at the sender's timestamps, the
	// in-band detection shifted and stretched by up to 35 ms either way.
	rfc := dedupEv('5', 80000, 80800, RFC4733)
	for _, shift := range []int64{-280, -160, -40, 0, 40, 160, 280} {
		for _, stretch := range []int64{-160, 0, 160} {
			ib := dedupEv('5', rfc.Start+shift, rfc.End+shift+stretch, InBand)
			for _, order := range [][]Event{{rfc, ib}, {ib, rfc}} {
				var d Deduper
				fresh := dedupRun(&d, order)
				if len(fresh) != 1 || fresh[0] != order[0] {
					t.Fatalf("shift %d stretch %d, order %v: fresh %v", shift, stretch, order, fresh)
				}
			}
		}
	}
}

func TestDedupNonOverlappingReportsWithinSlack(t *testing.T) {
	// A 40 ms press whose two reports do not overlap: the in-band one is
	// 60 ms late (gap 20 ms < 30 ms slack): one press.
	rfc := dedupEv('0', 1000, 1320, RFC4733)
	ib := dedupEv('0', 1480, 1800, InBand)
	for _, order := range [][]Event{{rfc, ib}, {ib, rfc}} {
		var d Deduper
		if fresh := dedupRun(&d, order); len(fresh) != 1 {
			t.Fatalf("order %v: fresh %v", order, fresh)
		}
	}
}

func TestDedupSameDigitTwice(t *testing.T) {
	// Two 100 ms presses of '3' with the shortest Q.24 pause (40 ms),
	// reported in-band and as RFC 4733 (and in some cases SIP INFO), the
	// in-band and SIP INFO boundaries off by up to 30 ms; every
	// interleaving of the sources: always two presses.
	const pause = 320
	p1 := [2]int64{10000, 10800}
	p2 := [2]int64{p1[1] + pause, p1[1] + pause + 800}
	for _, shift := range []int64{-240, -120, 0, 120, 240} {
		for _, stretch := range []int64{-80, 0, 80} {
			rfc := []Event{dedupEv('3', p1[0], p1[1], RFC4733), dedupEv('3', p2[0], p2[1], RFC4733)}
			ib := []Event{
				dedupEv('3', p1[0]+shift, p1[1]+shift+stretch, InBand),
				dedupEv('3', p2[0]+shift, p2[1]+shift+stretch, InBand),
			}
			info := []Event{
				dedupEv('3', p1[0]-shift, p1[0]-shift+800, SIPInfo),
				dedupEv('3', p2[0]-shift, p2[0]-shift+800, SIPInfo),
			}
			for _, srcs := range [][][]Event{{rfc, ib}, {rfc, info}, {ib, info}, {rfc, ib, info}} {
				for _, order := range dedupInterleavings(srcs...) {
					var d Deduper
					fresh := dedupRun(&d, order)
					if len(fresh) != 2 {
						t.Fatalf("shift %d stretch %d, order %v: %d fresh: %v", shift, stretch, order, len(fresh), fresh)
					}
				}
			}
		}
	}
	// From one source only, presses are never merged, however close.
	for _, src := range []Source{InBand, RFC4733, SIPInfo} {
		var d Deduper
		evs := []Event{dedupEv('3', 0, 800, src), dedupEv('3', 800, 1600, src), dedupEv('3', 1000, 1400, src)}
		if fresh := dedupRun(&d, evs); len(fresh) != 3 {
			t.Fatalf("%v: %d fresh, want 3", src, len(fresh))
		}
	}
}

// TestDedupSlackBothSides is the degraded case the slack decides: one press
// came through one source only, the next press of the same digit through
// the other only.
func TestDedupSlackBothSides(t *testing.T) {
	cases := []struct {
		name  string
		slack int64
		gap   int64 // between the first report's End and the second's Start
		want  int
	}{
		{"40 ms pause, default slack: two", 0, 320, 2},
		{"40 ms pause, ends 10 ms late: two", 0, 240, 2},
		{"gap just under the default slack: one", 0, DefaultDedupSlack - 1, 1},
		{"touching: one", 0, 0, 1},
		{"overlapping: one", 0, -400, 1},
		{"slack 40 ms, 40 ms pause: two", 320, 320, 2},
		{"slack 40 ms, 39 ms: one", 320, 312, 1},
		{"slack 100 ms, 40 ms pause: one (too much slack)", 800, 320, 1},
		{"overlap only, touching: two", -1, 0, 2},
		{"overlap only, overlapping by 1: one", -1, -1, 1},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			for _, srcs := range [][2]Source{{InBand, RFC4733}, {RFC4733, InBand}, {SIPInfo, InBand}, {RFC4733, SIPInfo}} {
				a := dedupEv('7', 5000, 5800, srcs[0])
				b := dedupEv('7', 5800+c.gap, 6600+c.gap, srcs[1])
				for _, order := range [][]Event{{a, b}, {b, a}} {
					d := Deduper{Slack: c.slack}
					if fresh := dedupRun(&d, order); len(fresh) != c.want {
						t.Fatalf("%v then %v: %d fresh, want %d", order[0].Source, order[1].Source, len(fresh), c.want)
					}
				}
			}
		})
	}
}

func TestDedupDifferentDigits(t *testing.T) {
	// Different digits are never duplicates, even overlapping (a detector
	// that heard '8' where the sender sent '5' gives both).
	evs := []Event{
		dedupEv('1', 0, 800, RFC4733),
		dedupEv('2', 0, 800, InBand),
		dedupEv('1', 100, 900, InBand), // duplicate of the first
		dedupEv('2', 50, 850, RFC4733), // duplicate of the second
		dedupEv('3', 400, 1200, SIPInfo),
		dedupEv('D', 400, 1200, RFC4733),
	}
	var d Deduper
	fresh := dedupRun(&d, evs)
	want := []Event{evs[0], evs[1], evs[4], evs[5]}
	if !slices.Equal(fresh, want) {
		t.Fatalf("fresh %v, want %v", fresh, want)
	}
}

func TestDedupSIPInfo(t *testing.T) {
	// SIP INFO's time is its arrival mapped onto the clock, with the
	// duration it announces: late by tens of ms, often longer or shorter.
	var d Deduper
	rfc := dedupEv('9', 16000, 16960, RFC4733)
	info := dedupEv('9', 16400, 18000, SIPInfo)
	ib := dedupEv('9', 16080, 16900, InBand)
	for _, order := range dedupInterleavings([]Event{rfc}, []Event{info}, []Event{ib}) {
		d.Reset()
		if fresh := dedupRun(&d, order); len(fresh) != 1 || fresh[0] != order[0] {
			t.Fatalf("order %v: fresh %v", order, fresh)
		}
	}
	// A SIP INFO press alone, then the next digit's RFC 4733: two.
	d.Reset()
	if fresh := dedupRun(&d, []Event{info, dedupEv('9', 19000, 19800, RFC4733)}); len(fresh) != 2 {
		t.Fatalf("fresh %v", fresh)
	}
}

func TestDedupTypedCardNumber(t *testing.T) {
	// A 16-digit number with repeated digits typed quickly (80 ms tones,
	// 60 ms pauses) arriving in-band and as RFC 4733, in-band 20 ms late
	// and 10 ms longer, the two sources interleaved as the relay would
	// see them (RFC 4733 at the End packet, in-band a little later).
	const number = "4444333322221111"
	var rfc, ib []Event
	t0 := int64(100000)
	for i := 0; i < len(number); i++ {
		s := t0 + int64(i)*(640+480)
		rfc = append(rfc, dedupEv(Digit(number[i]), s, s+640, RFC4733))
		ib = append(ib, dedupEv(Digit(number[i]), s+160, s+640+160+80, InBand))
	}
	var stream []Event
	for i := range rfc {
		stream = append(stream, rfc[i], ib[i])
	}
	var d Deduper
	fresh := dedupRun(&d, stream)
	var got []byte
	for _, e := range fresh {
		got = append(got, byte(e.Digit))
	}
	if string(got) != number {
		t.Fatalf("got %q, want %q", got, number)
	}
	// Every second RFC 4733 event lost: the in-band copy fills in.
	d.Reset()
	stream = stream[:0]
	for i := range rfc {
		if i%2 == 0 {
			stream = append(stream, rfc[i])
		}
		stream = append(stream, ib[i])
	}
	got = got[:0]
	for _, e := range dedupRun(&d, stream) {
		got = append(got, byte(e.Digit))
	}
	if string(got) != number {
		t.Fatalf("with loss: got %q, want %q", got, number)
	}
}

// TestDedupHorizon: a press is remembered while a duplicate can still
// come, and forgotten, its digit zeroed, once it ended DedupHorizon
// before the newest press started.
func TestDedupHorizon(t *testing.T) {
	tests := []struct {
		name      string
		nextStart int64 // start of a press of another digit, after the first
		wantDup   bool  // the first press's late duplicate is still caught
	}{
		{"next press 1 s later", 800 + DedupHorizon/2, true},
		{"next press at the horizon", 800 + DedupHorizon, true},
		{"next press past the horizon", 801 + DedupHorizon, false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			var d Deduper
			d.Add(dedupEv('1', 0, 800, InBand))
			d.Add(dedupEv('2', tt.nextStart, tt.nextStart+800, InBand))
			remembered := slices.ContainsFunc(d.slots[:], func(p dedupPress) bool { return p.digit == '1' })
			if remembered != tt.wantDup {
				t.Errorf("digit 1 remembered: %v, want %v", remembered, tt.wantDup)
			}
			if fresh := d.Add(dedupEv('1', 40, 840, RFC4733)); fresh == tt.wantDup {
				t.Errorf("late duplicate fresh: %v, want %v", fresh, !tt.wantDup)
			}
		})
	}
}

// TestDedupTypedCardForgotten: a card typed on the keypad leaves nothing
// in the Deduper two seconds after the last key but the newest presses.
func TestDedupTypedCardForgotten(t *testing.T) {
	var d Deduper
	keys := "4111111111111111#1230#737#"
	at := int64(0)
	for _, k := range keys {
		d.Add(dedupEv(Digit(k), at, at+800, RFC4733))
		d.Add(dedupEv(Digit(k), at+40, at+840, InBand))
		at += 1600
	}
	// Two seconds later, one more press: 0.2 s per press, so only the
	// presses of the last two seconds before it may remain.
	d.Add(dedupEv('5', at+DedupHorizon, at+DedupHorizon+800, InBand))
	held := 0
	for _, p := range d.slots {
		if p != (dedupPress{}) {
			held++
		}
	}
	if held != 1 {
		t.Errorf("%d presses held, want only the newest", held)
	}
}

// TestDedupFullSlots: more presses within the horizon than slots (faster
// than Q.24 allows) evict the one that ended first.
func TestDedupFullSlots(t *testing.T) {
	var d Deduper
	for i := range dedupSlots {
		d.Add(dedupEv('2', int64(i)*400, int64(i)*400+100, InBand))
	}
	d.Add(dedupEv('3', 13000, 13100, InBand))
	if d.Add(dedupEv('2', 400, 500, RFC4733)) {
		t.Error("the second press was evicted instead of the first")
	}
	if !d.Add(dedupEv('2', 0, 100, RFC4733)) {
		t.Error("the evicted first press still caught a duplicate")
	}
}

func TestDedupReset(t *testing.T) {
	d := Deduper{Slack: 800}
	e := dedupEv('4', 0, 800, InBand)
	d.Add(e)
	d.Reset()
	if d.Slack != 800 {
		t.Fatal("Reset dropped Slack")
	}
	if d != (Deduper{Slack: 800}) {
		t.Fatalf("Reset left %+v", d)
	}
	if !d.Add(dedupEv('4', 0, 800, RFC4733)) {
		t.Fatal("remembered a press across Reset")
	}
}

func TestDedupWithAssembler(t *testing.T) {
	// End to end: an RFC 4733 stream through the assembler, and the same
	// presses detected in-band on the same clock, 15 ms late.
	s := newRFCSender(100, 0xfffff000)
	var pk []rfcPkt
	digits := []uint8{5, 5, 1, 5}
	for _, c := range digits {
		pk = append(pk, s.press(c, 800)...)
		pk = append(pk, s.pause(400)...)
	}
	var a EventAssembler
	var d Deduper
	var got []Event
	var buf [4]byte
	out := make([]Event, 0, 8)
	truth := s.events()
	next := 0
	for _, p := range pk {
		out = out[:0]
		if p.audio {
			out = a.Advance(p.ts, out)
			// The relay maps the detector's output onto the same
			// clock; here, each press is "detected" once the audio
			// passes its end.
			if next < len(truth) && a.Extend(p.ts) > truth[next].End+120 {
				tr := truth[next]
				out = append(out, Event{Digit: tr.Digit, Start: tr.Start + 120, End: tr.End + 120, Source: InBand})
				next++
			}
		} else {
			b, _ := p.ev.AppendBinary(buf[:0])
			out, _ = a.Push(p.seq, p.ts, p.marker, b, out)
		}
		for _, e := range out {
			if d.Add(e) {
				got = append(got, e)
			}
		}
	}
	if len(got) != len(digits) {
		t.Fatalf("got %v, want %d presses", got, len(digits))
	}
	for i, e := range got {
		if e != truth[i] {
			t.Fatalf("press %d: %v, want %v", i, e, truth[i])
		}
	}
}

func TestDedupNoAllocs(t *testing.T) {
	var d Deduper
	evs := make([]Event, 100)
	for i := range evs {
		evs[i] = dedupEv(Digit(Digits[i%16]), int64(i)*1000, int64(i)*1000+640, Source(1+i%3))
	}
	if n := testing.AllocsPerRun(50, func() {
		for _, e := range evs {
			d.Add(e)
		}
	}); n != 0 {
		t.Fatalf("%v allocations", n)
	}
}

func ExampleDeduper() {
	var d Deduper
	for _, e := range []Event{
		{Digit: '5', Start: 8000, End: 8800, Source: RFC4733},
		{Digit: '5', Start: 8120, End: 8880, Source: InBand}, // the same press
		{Digit: '5', Start: 9200, End: 10000, Source: RFC4733},
		{Digit: '5', Start: 9320, End: 10080, Source: InBand}, // the same press
	} {
		fmt.Println(e.Source, d.Add(e))
	}
	// Output:
	// rfc4733 true
	// in-band false
	// rfc4733 true
	// in-band false
}

func BenchmarkDeduperAdd(b *testing.B) {
	evs := make([]Event, 256)
	for i := range evs {
		s := int64(i/2) * 1200
		evs[i] = dedupEv(Digit(Digits[(i/2)%16]), s+int64(i%2)*80, s+640, Source(1+i%2))
	}
	var d Deduper
	i := 0
	b.ReportAllocs()
	for b.Loop() {
		d.Add(evs[i])
		if i++; i == len(evs) {
			i = 0
			d.Reset()
		}
	}
}
