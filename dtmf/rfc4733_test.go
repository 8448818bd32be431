package dtmf

import (
	"bytes"
	"errors"
	"fmt"
	"math/rand/v2"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"testing"
)

// ---- payload decode / encode ----

func TestRFC4733Decode(t *testing.T) {
	tests := []struct {
		name    string
		payload []byte
		want    TelephoneEvent
		digit   Digit
		isDigit bool
	}{
		{"digit 5 start", []byte{5, 10, 0x00, 0xa0}, TelephoneEvent{Event: 5, Volume: 10, Duration: 160}, '5', true},
		{"end bit", []byte{5, 0x80 | 10, 0x03, 0x20}, TelephoneEvent{Event: 5, End: true, Volume: 10, Duration: 800}, '5', true},
		{"R bit ignored", []byte{0, 0x40 | 7, 0, 0}, TelephoneEvent{Event: 0, Volume: 7}, '0', true},
		{"all flag bits", []byte{11, 0xff, 0xff, 0xff}, TelephoneEvent{Event: 11, End: true, Volume: 63, Duration: 0xffff}, '#', true},
		{"star", []byte{10, 0, 1, 0}, TelephoneEvent{Event: 10, Duration: 256}, '*', true},
		{"A", []byte{12, 0, 0, 1}, TelephoneEvent{Event: 12, Duration: 1}, 'A', true},
		{"D", []byte{15, 63, 0, 1}, TelephoneEvent{Event: 15, Volume: 63, Duration: 1}, 'D', true},
		{"flash is not a digit", []byte{16, 0x80, 0x01, 0x00}, TelephoneEvent{Event: 16, End: true, Duration: 256}, 0, false},
		{"fax tone is not a digit", []byte{36, 13, 0x10, 0x00}, TelephoneEvent{Event: 36, Volume: 13, Duration: 4096}, 0, false},
		{"event 255", []byte{255, 0, 0, 0}, TelephoneEvent{Event: 255}, 0, false},
		{"several blocks: first decoded", []byte{1, 0x8a, 0x03, 0x20, 2, 0x0a, 0x00, 0xa0}, TelephoneEvent{Event: 1, End: true, Volume: 10, Duration: 800}, '1', true},
		{"trailing bytes ignored", []byte{9, 0x05, 0x00, 0x10, 0xee}, TelephoneEvent{Event: 9, Volume: 5, Duration: 16}, '9', true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, err := DecodeTelephoneEvent(tt.payload)
			if err != nil {
				t.Fatalf("DecodeTelephoneEvent: %v", err)
			}
			if got != tt.want {
				t.Fatalf("got %+v, want %+v", got, tt.want)
			}
			d, ok := got.Digit()
			if ok != tt.isDigit || d != tt.digit {
				t.Fatalf("Digit() = %q, %v; want %q, %v", d, ok, tt.digit, tt.isDigit)
			}
			// Round trip: the first block back, R bit cleared.
			enc, err := got.AppendBinary(nil)
			if err != nil {
				t.Fatalf("AppendBinary: %v", err)
			}
			want := slices.Clone(tt.payload[:4])
			want[1] &^= 0x40
			if !bytes.Equal(enc, want) {
				t.Fatalf("re-encoded % x, want % x", enc, want)
			}
		})
	}
}

func TestRFC4733DecodeErrors(t *testing.T) {
	secret := []byte{9, 0x8a, 0x12} // an event code is a card digit
	for n := 0; n <= 3; n++ {
		var p []byte
		if n > 0 {
			p = secret[:n]
		}
		got, err := DecodeTelephoneEvent(p)
		if err == nil {
			t.Fatalf("%d bytes: no error", n)
		}
		if !errors.Is(err, ErrShortPayload) {
			t.Fatalf("%d bytes: %v is not ErrShortPayload", n, err)
		}
		if got != (TelephoneEvent{}) {
			t.Fatalf("%d bytes: got %+v with the error", n, got)
		}
		msg := err.Error()
		want := "rfc4733: telephone-event payload is " + strconv.Itoa(n) + " bytes, need at least 4"
		if msg != want {
			t.Fatalf("%d bytes: message %q, want %q", n, msg, want)
		}
	}
	if errors.Is(ErrVolumeRange, ErrShortPayload) {
		t.Fatal("ErrVolumeRange matches ErrShortPayload")
	}
}

func TestRFC4733Encode(t *testing.T) {
	tests := []struct {
		ev   TelephoneEvent
		want []byte
	}{
		{TelephoneEvent{Event: 1, Volume: 10, Duration: 160}, []byte{1, 10, 0, 0xa0}},
		{TelephoneEvent{Event: 1, End: true, Volume: 10, Duration: 800}, []byte{1, 0x8a, 3, 0x20}},
		{TelephoneEvent{Event: 15, End: true, Volume: 63, Duration: 0xffff}, []byte{15, 0xbf, 0xff, 0xff}},
		{TelephoneEvent{}, []byte{0, 0, 0, 0}},
		{TelephoneEvent{Event: 200, Duration: 0x1234}, []byte{200, 0, 0x12, 0x34}},
	}
	for _, tt := range tests {
		prefix := []byte{0xaa, 0xbb}
		got, err := tt.ev.AppendBinary(prefix)
		if err != nil {
			t.Fatalf("%+v: %v", tt.ev, err)
		}
		if !bytes.Equal(got[:2], []byte{0xaa, 0xbb}) || !bytes.Equal(got[2:], tt.want) {
			t.Fatalf("%+v: got % x, want aa bb % x", tt.ev, got, tt.want)
		}
	}

	// Volume out of range: error, slice unchanged, nothing appended.
	b := make([]byte, 1, 8)
	got, err := TelephoneEvent{Event: 3, Volume: 64}.AppendBinary(b)
	if !errors.Is(err, ErrVolumeRange) || len(got) != 1 {
		t.Fatalf("volume 64: got % x, %v", got, err)
	}
	if err.Error() != "rfc4733: telephone-event volume out of range 0-63" {
		t.Fatalf("volume error %q: the message names the range only", err)
	}
}

func TestRFC4733RoundTripAllFields(t *testing.T) {
	for ev := 0; ev < 256; ev++ {
		for _, vol := range []uint8{0, 1, 10, 32, 63} {
			for _, end := range []bool{false, true} {
				for _, dur := range []uint16{0, 1, 160, 800, 0x7fff, 0x8000, 0xffff} {
					in := TelephoneEvent{Event: uint8(ev), End: end, Volume: vol, Duration: dur}
					b, err := in.AppendBinary(nil)
					if err != nil || len(b) != TelephoneEventSize {
						t.Fatalf("%+v: % x, %v", in, b, err)
					}
					out, err := DecodeTelephoneEvent(b)
					if err != nil || out != in {
						t.Fatalf("%+v: decoded %+v, %v", in, out, err)
					}
				}
			}
		}
	}
}

func TestRFC4733DigitCodes(t *testing.T) {
	for i := 0; i < len(Digits); i++ {
		d := Digit(Digits[i])
		c, ok := EventCode(d)
		if !ok || int(c) != i {
			t.Fatalf("EventCode(%q) = %d, %v", d, c, ok)
		}
		got, ok := TelephoneEvent{Event: c}.Digit()
		if !ok || got != d {
			t.Fatalf("event %d: Digit() = %q, %v", c, got, ok)
		}
	}
	for _, d := range []Digit{0, 'a', 'E', ' ', '+'} {
		if _, ok := EventCode(d); ok {
			t.Fatalf("EventCode(%q) accepted", d)
		}
	}
}

func TestRFC4733NoAllocs(t *testing.T) {
	p := []byte{5, 0x8a, 3, 0x20}
	buf := make([]byte, 0, 64)
	var sink TelephoneEvent
	var err error
	if n := testing.AllocsPerRun(100, func() {
		sink, _ = DecodeTelephoneEvent(p)
		_, err = DecodeTelephoneEvent(p[:2]) // the error path too
		buf, _ = sink.AppendBinary(buf[:0])
	}); n != 0 {
		t.Fatalf("%v allocations per decode+encode", n)
	}
	if err == nil || len(buf) != 4 {
		t.Fatal("unexpected results")
	}
}

// ---- a simulated RFC 4733 sender ----

// rfcPkt is one RTP packet of the stream: a telephone event, or an audio
// packet (the relay passes its timestamp to Advance).
type rfcPkt struct {
	seq    uint16
	ts     uint32
	marker bool
	audio  bool
	ev     TelephoneEvent
	press  int   // index of the press it belongs to, -1 for audio
	t64    int64 // ts on the sender's extended clock
}

// rfcSender sends like an RFC 4733 sender: one event packet per ptime
// (160 samples, 50 packets/s) with the duration growing by 160, marker on
// the first, the End packet three times, long events in segments.
type rfcSender struct {
	seq     uint16
	now     int64 // extended RTP timestamp of the next sample
	talk    bool  // also send audio packets during a press
	presses []rfcPress
}

type rfcPress struct {
	digit Digit
	start int64 // on the sender's extended clock
	dur   int64
}

// newRFCSender starts a sender at RTP timestamp ts; its extended clock
// starts at ts too, as the assembler's does when it sees the first packet.
func newRFCSender(seq uint16, ts uint32) *rfcSender { return &rfcSender{seq: seq, now: int64(ts)} }

func (s *rfcSender) ev(t64 int64, marker bool, ev TelephoneEvent, press int) rfcPkt {
	p := rfcPkt{seq: s.seq, ts: uint32(t64), t64: t64, marker: marker, ev: ev, press: press}
	s.seq++
	return p
}

func (s *rfcSender) audio(t64 int64) rfcPkt {
	p := rfcPkt{seq: s.seq, ts: uint32(t64), t64: t64, audio: true, press: -1}
	s.seq++
	return p
}

// press sends one press of event code for dur samples.
func (s *rfcSender) press(code uint8, dur int) []rfcPkt {
	const ptime = 160
	start := s.now
	idx := len(s.presses)
	s.presses = append(s.presses, rfcPress{digit: Digit(Digits[code%16]), start: start, dur: int64(dur)})
	var out []rfcPkt
	seg, off := start, 0 // current segment's timestamp and its offset in the press
	marker := true
	for el := ptime; ; el += ptime {
		end := el >= dur
		if end {
			el = dur
		}
		for el-off > MaxEventDuration { // close the segment, start the next
			out = append(out, s.ev(seg, marker, TelephoneEvent{Event: code, Volume: 10, Duration: MaxEventDuration}, idx))
			marker = false
			off += MaxEventDuration
			seg += MaxEventDuration
		}
		d := uint16(el - off)
		if end {
			for range 3 {
				out = append(out, s.ev(seg, marker, TelephoneEvent{Event: code, End: true, Volume: 10, Duration: d}, idx))
				marker = false
			}
			break
		}
		out = append(out, s.ev(seg, marker, TelephoneEvent{Event: code, Volume: 10, Duration: d}, idx))
		marker = false
		if s.talk {
			out = append(out, s.audio(start+int64(el)))
		}
	}
	s.now = start + int64(dur)
	return out
}

// pause sends dur samples of audio, one packet per 160 samples.
func (s *rfcSender) pause(dur int) []rfcPkt {
	var out []rfcPkt
	for el := 0; el < dur; el += 160 {
		out = append(out, s.audio(s.now+int64(el)))
	}
	s.now += int64(dur)
	return out
}

func (s *rfcSender) events() []Event {
	out := make([]Event, len(s.presses))
	for i, p := range s.presses {
		out[i] = Event{Digit: p.digit, Start: p.start, End: p.start + p.dur, Source: RFC4733}
	}
	return out
}

func rfcPayload(ev TelephoneEvent) []byte {
	b, err := ev.AppendBinary(nil)
	if err != nil {
		panic(err)
	}
	return b
}

// feedRFC runs pkts through a and returns the reported events and, for
// each, the index of the packet that reported it.
func feedRFC(t testing.TB, a *EventAssembler, pkts []rfcPkt) ([]Event, []int) {
	t.Helper()
	var out []Event
	var at []int
	var buf [4]byte
	for i, p := range pkts {
		n := len(out)
		if p.audio {
			out = a.Advance(p.ts, out)
		} else {
			b, _ := p.ev.AppendBinary(buf[:0])
			var err error
			out, err = a.Push(p.seq, p.ts, p.marker, b, out)
			if err != nil {
				t.Fatalf("packet %d: %v", i, err)
			}
		}
		for range len(out) - n {
			at = append(at, i)
		}
	}
	return out, at
}

// rfcEventPkts returns the indexes of the telephone-event packets of press k.
func rfcEventPkts(pkts []rfcPkt, k int) []int {
	var idx []int
	for i, p := range pkts {
		if !p.audio && p.press == k {
			idx = append(idx, i)
		}
	}
	return idx
}

func rfcDropIdx(pkts []rfcPkt, idx ...int) []rfcPkt {
	out := make([]rfcPkt, 0, len(pkts))
	for i, p := range pkts {
		if !slices.Contains(idx, i) {
			out = append(out, p)
		}
	}
	return out
}

// rfcMoveIdx moves packet i to just after packet j (j > i).
func rfcMoveIdx(pkts []rfcPkt, i, j int) []rfcPkt {
	out := slices.Clone(pkts)
	p := out[i]
	out = slices.Delete(out, i, i+1)
	return slices.Insert(out, j, p)
}

// rfcSeqIdx is the index of the first packet with sequence number seq.
func rfcSeqIdx(pkts []rfcPkt, seq uint16) int {
	return slices.IndexFunc(pkts, func(p rfcPkt) bool { return p.seq == seq })
}

// rfcMoveSeq moves the packet with sequence number seq to just after the one
// with sequence number after.
func rfcMoveSeq(pkts []rfcPkt, seq, after uint16) []rfcPkt {
	i := rfcSeqIdx(pkts, seq)
	p := pkts[i]
	out := slices.Delete(slices.Clone(pkts), i, i+1)
	return slices.Insert(out, rfcSeqIdx(out, after)+1, p)
}

// rfcDropSeq drops the packets with the given sequence numbers.
func rfcDropSeq(pkts []rfcPkt, seqs ...uint16) []rfcPkt {
	return slices.DeleteFunc(slices.Clone(pkts), func(p rfcPkt) bool { return slices.Contains(seqs, p.seq) })
}

// rfcSeqsOf returns the sequence numbers of the packets at idx.
func rfcSeqsOf(pkts []rfcPkt, idx []int) []uint16 {
	out := make([]uint16, len(idx))
	for i, j := range idx {
		out[i] = pkts[j].seq
	}
	return out
}

// ---- assembler ----

// rfcTwoPresses is the reference stream: '1' for 100 ms, 60 ms of audio, '2'
// for 100 ms, 400 ms of audio.
func rfcTwoPresses(digit2 uint8) (*rfcSender, []rfcPkt) {
	s := newRFCSender(1000, 80000)
	var pk []rfcPkt
	pk = append(pk, s.pause(320)...)
	pk = append(pk, s.press(1, 800)...)
	pk = append(pk, s.pause(480)...)
	pk = append(pk, s.press(digit2, 800)...)
	pk = append(pk, s.pause(3200)...)
	return s, pk
}

func TestEventAssemblerCleanPress(t *testing.T) {
	s := newRFCSender(1000, 80000)
	pk := s.press(5, 800)
	// 100 ms at 50 packets/s: durations 160..640, then End 800 three times.
	if len(pk) != 7 || !pk[0].marker || pk[1].marker || pk[3].ev.Duration != 640 || !pk[4].ev.End || pk[6].ev.Duration != 800 {
		t.Fatalf("sender built %+v", pk)
	}
	var a EventAssembler
	got, at := feedRFC(t, &a, pk)
	want := []Event{{Digit: '5', Start: 80000, End: 80800, Source: RFC4733}}
	if !slices.Equal(got, want) {
		t.Fatalf("got %v, want %v", got, want)
	}
	if at[0] != 4 {
		t.Fatalf("reported at packet %d, want 4 (the first End)", at[0])
	}
	if got = a.Flush(nil); len(got) != 0 {
		t.Fatalf("Flush after the End reported %v", got)
	}
}

func TestEventAssemblerImpairments(t *testing.T) {
	type build func() ([]rfcPkt, []Event)
	base := func(d2 uint8) ([]rfcPkt, []Event, *rfcSender) {
		s, pk := rfcTwoPresses(d2)
		return pk, s.events(), s
	}
	cases := []struct {
		name string
		b    build
	}{
		{"clean", func() ([]rfcPkt, []Event) { pk, w, _ := base(2); return pk, w }},
		{"lost start packets", func() ([]rfcPkt, []Event) {
			pk, w, _ := base(2)
			e := rfcEventPkts(pk, 0)
			return rfcDropIdx(pk, e[0], e[1]), w
		}},
		{"lost marker packet of both", func() ([]rfcPkt, []Event) {
			pk, w, _ := base(2)
			return rfcDropIdx(pk, rfcEventPkts(pk, 0)[0], rfcEventPkts(pk, 1)[0]), w
		}},
		{"only the End packets", func() ([]rfcPkt, []Event) {
			pk, w, _ := base(2)
			e0, e1 := rfcEventPkts(pk, 0), rfcEventPkts(pk, 1)
			return rfcDropIdx(pk, e0[0], e0[1], e0[2], e0[3], e1[0], e1[1], e1[2], e1[3]), w
		}},
		{"lost End packets, newer press ends it", func() ([]rfcPkt, []Event) {
			pk, w, _ := base(2)
			e := rfcEventPkts(pk, 0)
			w[0].End = w[0].Start + 640
			return rfcDropIdx(pk, e[4], e[5], e[6]), w
		}},
		{"lost End packets, timeout ends it", func() ([]rfcPkt, []Event) {
			pk, w, _ := base(2)
			e := rfcEventPkts(pk, 1)
			w[1].End = w[1].Start + 640
			return rfcDropIdx(pk, e[4], e[5], e[6]), w
		}},
		{"lost End packets of the same digit twice", func() ([]rfcPkt, []Event) {
			pk, w, _ := base(1)
			e0, e1 := rfcEventPkts(pk, 0), rfcEventPkts(pk, 1)
			w[0].End = w[0].Start + 640
			w[1].End = w[1].Start + 640
			// and the second press's marker packet
			return rfcDropIdx(pk, e0[4], e0[5], e0[6], e1[0], e1[4], e1[5], e1[6]), w
		}},
		{"one mid packet only", func() ([]rfcPkt, []Event) {
			pk, w, _ := base(2)
			e := rfcEventPkts(pk, 0)
			w[0].End = w[0].Start + 480
			return rfcDropIdx(pk, e[0], e[1], e[3], e[4], e[5], e[6]), w
		}},
		{"End retransmissions after the next press started", func() ([]rfcPkt, []Event) {
			pk, w, _ := base(1)
			e0, e1 := rfcEventPkts(pk, 0), rfcEventPkts(pk, 1)
			pk = rfcMoveIdx(pk, e0[6], e1[1])
			pk = rfcMoveIdx(pk, e0[5], e1[2])
			return pk, w
		}},
		{"late start packet after its End", func() ([]rfcPkt, []Event) {
			pk, w, _ := base(2)
			e := rfcEventPkts(pk, 0)
			return rfcMoveIdx(pk, e[0], e[6]), w
		}},
		{"late start packet after the next press", func() ([]rfcPkt, []Event) {
			pk, w, _ := base(1)
			e0, e1 := rfcEventPkts(pk, 0), rfcEventPkts(pk, 1)
			return rfcMoveIdx(pk, e0[0], e1[2]), w
		}},
		{"late start packet after the next press's End", func() ([]rfcPkt, []Event) {
			pk, w, _ := base(1)
			e0, e1 := rfcEventPkts(pk, 0), rfcEventPkts(pk, 1)
			return rfcMoveIdx(pk, e0[0], e1[6]), w
		}},
		{"press packets reversed", func() ([]rfcPkt, []Event) {
			pk, w, _ := base(2)
			e := rfcEventPkts(pk, 0)
			slices.Reverse(pk[e[0] : e[6]+1])
			return pk, w
		}},
		{"every packet duplicated", func() ([]rfcPkt, []Event) {
			pk, w, _ := base(1)
			var out []rfcPkt
			for _, p := range pk {
				out = append(out, p, p)
			}
			return out, w
		}},
		{"combined: loss, reorder, duplicates, same digit", func() ([]rfcPkt, []Event) {
			pk, w, _ := base(1)
			s0, s1 := rfcSeqsOf(pk, rfcEventPkts(pk, 0)), rfcSeqsOf(pk, rfcEventPkts(pk, 1))
			// press 1: start lost, End 1 and 2 lost, End 3 late
			// after press 2 began (so press 1 is reported there,
			// with the duration seen so far); press 2: marker
			// lost, two packets swapped, one duplicated, End 1 lost.
			pk = rfcMoveSeq(pk, s0[6], s1[1])
			pk = rfcMoveSeq(pk, s1[2], s1[3])
			i := rfcSeqIdx(pk, s1[2])
			pk = slices.Insert(pk, i+1, pk[rfcSeqIdx(pk, s1[3])])
			pk = rfcDropSeq(pk, s0[0], s0[4], s0[5], s1[0], s1[4])
			w[0].End = w[0].Start + 640
			return pk, w
		}},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			pk, want := c.b()
			var a EventAssembler
			got, _ := feedRFC(t, &a, pk)
			got = a.Flush(got)
			if !slices.Equal(got, want) {
				t.Fatalf("got  %v\nwant %v", got, want)
			}
		})
	}
}

func TestEventAssemblerReportTime(t *testing.T) {
	// Lost End: reported at the first packet of the newer press.
	s, pk := rfcTwoPresses(2)
	e0 := rfcEventPkts(pk, 0)
	pk = rfcDropIdx(pk, e0[4], e0[5], e0[6])
	e1 := rfcEventPkts(pk, 1)
	var a EventAssembler
	got, at := feedRFC(t, &a, pk)
	if len(got) != 2 || at[0] != e1[0] {
		t.Fatalf("got %v at %v, want the first at packet %d", got, at, e1[0])
	}
	_ = s

	// Timeout: Advance exactly Timeout past the last known end does not
	// report, one more sample does.
	for _, timeout := range []int64{0, 800, 8000} {
		var a EventAssembler
		a.Timeout = timeout
		eff := timeout
		if eff == 0 {
			eff = DefaultEventTimeout
		}
		b := rfcPayload(TelephoneEvent{Event: 3, Volume: 10, Duration: 480})
		out, _ := a.Push(7, 1000, true, b, nil)
		out = a.Advance(uint32(1000+480+eff), out)
		if len(out) != 0 {
			t.Fatalf("timeout %d: reported at the boundary: %v", timeout, out)
		}
		out = a.Advance(uint32(1000+480+eff+1), out)
		want := []Event{{Digit: '3', Start: 1000, End: 1480, Source: RFC4733}}
		if !slices.Equal(out, want) {
			t.Fatalf("timeout %d: got %v, want %v", timeout, out, want)
		}
		// Later packets of the same press, End included, add nothing.
		out, _ = a.Push(8, 1000, false, rfcPayload(TelephoneEvent{Event: 3, Volume: 10, Duration: 640}), out)
		out, _ = a.Push(9, 1000, false, rfcPayload(TelephoneEvent{Event: 3, End: true, Volume: 10, Duration: 800}), out)
		out = a.Advance(100000, out)
		out = a.Flush(out)
		if len(out) != 1 {
			t.Fatalf("timeout %d: reported twice: %v", timeout, out)
		}
	}

	// Advance with timestamps before the press (late audio) never reports.
	var b EventAssembler
	out, _ := b.Push(1, 50000, true, rfcPayload(TelephoneEvent{Event: 4, Duration: 160}), nil)
	out = b.Advance(40000, out)
	out = b.Advance(50000, out)
	if len(out) != 0 {
		t.Fatalf("reported on old audio: %v", out)
	}
}

func TestEventAssemblerFlush(t *testing.T) {
	var a EventAssembler
	p := rfcPayload(TelephoneEvent{Event: 9, Volume: 10, Duration: 320})
	out, _ := a.Push(1, 4000, true, p, nil)
	if len(out) != 0 {
		t.Fatal("reported before the End")
	}
	out = a.Flush(out)
	want := []Event{{Digit: '9', Start: 4000, End: 4320, Source: RFC4733}}
	if !slices.Equal(out, want) {
		t.Fatalf("Flush: %v, want %v", out, want)
	}
	out = a.Flush(out)
	out, _ = a.Push(2, 4000, false, rfcPayload(TelephoneEvent{Event: 9, End: true, Duration: 480}), out)
	out = a.Flush(out)
	if !slices.Equal(out, want) {
		t.Fatalf("after Flush: %v, want %v", out, want)
	}
	// Reset starts over: the same packet is a press again.
	a.Reset()
	out, _ = a.Push(1, 4000, true, p, out[:0])
	out = a.Flush(out)
	if !slices.Equal(out, want) {
		t.Fatalf("after Reset: %v, want %v", out, want)
	}
}

func TestEventAssemblerSameDigitAgain(t *testing.T) {
	for _, pause := range []int{320, 480, 1600} {
		s := newRFCSender(1, 1000)
		var pk []rfcPkt
		pk = append(pk, s.press(7, 800)...)
		pk = append(pk, s.pause(pause)...)
		pk = append(pk, s.press(7, 400)...)
		pk = append(pk, s.pause(pause)...)
		pk = append(pk, s.press(7, 320)...)
		var a EventAssembler
		got, _ := feedRFC(t, &a, pk)
		if want := s.events(); !slices.Equal(got, want) {
			t.Fatalf("pause %d: got %v, want %v", pause, got, want)
		}
	}
	// Back to back with no pause at all (timestamp = previous End): still a
	// new press, it has its own timestamp.
	s := newRFCSender(1, 1000)
	pk := append(s.press(7, 800), s.press(7, 800)...)
	var a EventAssembler
	if got, _ := feedRFC(t, &a, pk); !slices.Equal(got, s.events()) {
		t.Fatalf("no pause: got %v, want %v", got, s.events())
	}
}

func TestEventAssemblerLongPresses(t *testing.T) {
	cases := []struct {
		name string
		dur  int
	}{
		{"0.5 s", 4000},
		{"2 s", 16000},
		{"just under one segment", MaxEventDuration - 15},
		{"exactly one segment", MaxEventDuration},
		{"one segment and a bit", MaxEventDuration + 160},
		{"20 s, three segments", 160000},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			s := newRFCSender(60000, 0xffff0000) // wraps the timestamp too
			pk := s.pause(800)
			pk = append(pk, s.press(11, c.dur)...)
			pk = append(pk, s.pause(800)...)
			var a EventAssembler
			got, _ := feedRFC(t, &a, pk)
			got = a.Flush(got)
			want := s.events()
			if !slices.Equal(got, want) {
				t.Fatalf("got %v, want %v", got, want)
			}
			if got[0].Duration() != int64(c.dur) {
				t.Fatalf("duration %d, want %d", got[0].Duration(), c.dur)
			}
		})
	}
}

// rfcSegmentStream is a 20 s '#' press with audio during it (talk), so that
// Advance runs; segs are the indexes of each segment's first packet.
func rfcSegmentStream() (*rfcSender, []rfcPkt, []int) {
	s := newRFCSender(100, 123456)
	s.talk = true
	pk := s.pause(800)
	pk = append(pk, s.press(11, 160000)...)
	s.talk = false
	pk = append(pk, s.pause(4000)...)
	var segs []int
	var last uint32
	for i, p := range pk {
		if !p.audio && (len(segs) == 0 || p.ts != last) {
			segs = append(segs, i)
			last = p.ts
		}
	}
	return s, pk, segs
}

func TestEventAssemblerSegments(t *testing.T) {
	s, pk, segs := rfcSegmentStream()
	if len(segs) != 3 {
		t.Fatalf("%d segments", len(segs))
	}
	for _, i := range segs[1:] { // the segment's closing packet is just before
		if pk[i].marker || pk[i-1].audio || pk[i].ts-pk[i-1].ts != MaxEventDuration || pk[i-1].ev.Duration != MaxEventDuration || pk[i-1].ev.End {
			t.Fatalf("segment at %d not as RFC 4733 2.5.1.3: %+v / %+v", i, pk[i-1], pk[i])
		}
	}
	closing1, closing2 := pk[segs[1]-1].seq, pk[segs[2]-1].seq
	first1 := pk[segs[1]].seq
	want := s.events()
	cases := []struct {
		name string
		f    func([]rfcPkt) []rfcPkt
		want func([]Event) []Event
	}{
		{"clean", func(p []rfcPkt) []rfcPkt { return p }, nil},
		{"segment's closing packet lost", func(p []rfcPkt) []rfcPkt { return rfcDropSeq(p, closing1, closing2) }, nil},
		{"segment's first packets lost", func(p []rfcPkt) []rfcPkt {
			return rfcDropIdx(p, segs[1], segs[1]+2, segs[1]+4, segs[2])
		}, nil},
		{"150 ms lost around the boundary", func(p []rfcPkt) []rfcPkt {
			var idx []int
			for i := segs[1] - 10; i < segs[1]+6; i++ {
				if !p[i].audio {
					idx = append(idx, i)
				}
			}
			return rfcDropIdx(p, idx...)
		}, nil},
		{"new segment before the old one's last packets", func(p []rfcPkt) []rfcPkt {
			p = rfcMoveSeq(p, closing1, first1+3)
			return rfcMoveSeq(p, closing1-2, first1+3)
		}, nil},
		{"earlier segment's packets arrive late", func(p []rfcPkt) []rfcPkt {
			return rfcMoveSeq(p, closing1, pk[segs[2]+3].seq)
		}, nil},
		{"gap longer than the timeout inside a segment", func(p []rfcPkt) []rfcPkt {
			// 400 ms of event packets lost while audio goes on: the
			// press is reported early, and the rest of it, segments
			// and End included, adds nothing.
			var idx []int
			for i := segs[0] + 100; i < segs[0]+140; i++ {
				if !p[i].audio {
					idx = append(idx, i)
				}
			}
			return rfcDropIdx(p, idx...)
		}, func(w []Event) []Event {
			w = slices.Clone(w)
			w[0].End = w[0].Start + 50*160 // the last packet before the gap
			return w
		}},
		{"gap longer than the timeout across a boundary", func(p []rfcPkt) []rfcPkt {
			var idx []int
			for i := segs[1] - 8; i < segs[1]+40; i++ {
				if !p[i].audio && i != segs[1]-1 {
					idx = append(idx, i)
				}
			}
			return rfcDropIdx(p, idx...)
		}, func(w []Event) []Event {
			w = slices.Clone(w)
			w[0].End = w[0].Start + MaxEventDuration
			return w
		}},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			var a EventAssembler
			got, _ := feedRFC(t, &a, c.f(slices.Clone(pk)))
			got = a.Flush(got)
			w := want
			if c.want != nil {
				w = c.want(want)
			}
			if !slices.Equal(got, w) {
				t.Fatalf("got  %v\nwant %v", got, w)
			}
		})
	}
}

func TestEventAssemblerSegmentNotConfusedWithNewPress(t *testing.T) {
	// A short press whose End was lost, then the same digit with its
	// marker packet lost 0xFFFF later: two presses, because the first
	// never came near the segment limit.
	var a EventAssembler
	out, _ := a.Push(1, 1000, true, rfcPayload(TelephoneEvent{Event: 4, Duration: 800}), nil)
	out, _ = a.Push(3, 1000+MaxEventDuration, false, rfcPayload(TelephoneEvent{Event: 4, Duration: 320}), out)
	out = a.Flush(out)
	want := []Event{
		{Digit: '4', Start: 1000, End: 1800, Source: RFC4733},
		{Digit: '4', Start: 1000 + MaxEventDuration, End: 1000 + MaxEventDuration + 320, Source: RFC4733},
	}
	if !slices.Equal(out, want) {
		t.Fatalf("got %v, want %v", out, want)
	}
	// A full segment followed by a new press with the marker: two.
	a.Reset()
	out, _ = a.Push(1, 1000, true, rfcPayload(TelephoneEvent{Event: 4, Duration: MaxEventDuration}), out[:0])
	out, _ = a.Push(2, 1000+MaxEventDuration, true, rfcPayload(TelephoneEvent{Event: 4, Duration: 320}), out)
	out = a.Flush(out)
	if len(out) != 2 {
		t.Fatalf("marker on the next segment: got %v, want two presses", out)
	}
}

func TestEventAssemblerDigitsAToD(t *testing.T) {
	s := newRFCSender(5, 20000)
	var pk []rfcPkt
	for code := uint8(12); code < 16; code++ {
		pk = append(pk, s.press(code, 640)...)
		pk = append(pk, s.pause(640)...)
	}
	var a EventAssembler
	got, _ := feedRFC(t, &a, pk)
	if !slices.Equal(got, s.events()) {
		t.Fatalf("got %v, want %v", got, s.events())
	}
	for i, e := range got {
		if e.Digit != Digit("ABCD"[i]) {
			t.Fatalf("event %d is %q", i, e.Digit)
		}
	}
}

func TestEventAssemblerNonDigitEvents(t *testing.T) {
	// A flash (16) and a fax tone (36) inside and around a press: ignored,
	// the press is intact.
	s := newRFCSender(5, 20000)
	pk := s.press(6, 800)
	flash := rfcPkt{seq: 900, ts: 20000 + 320, marker: true, ev: TelephoneEvent{Event: 16, End: true, Duration: 160}, press: -2}
	fax := rfcPkt{seq: 901, ts: 30000, ev: TelephoneEvent{Event: 36, Duration: 4000}, press: -2}
	pk = slices.Insert(pk, 2, flash, fax)
	pk = append(pk, flash, fax)
	var a EventAssembler
	got, _ := feedRFC(t, &a, pk)
	got = a.Flush(got)
	if !slices.Equal(got, s.events()) {
		t.Fatalf("got %v, want %v", got, s.events())
	}
	// Alone they report nothing.
	a.Reset()
	got, _ = feedRFC(t, &a, []rfcPkt{flash, fax})
	if got = a.Flush(got); len(got) != 0 {
		t.Fatalf("non-digit events reported %v", got)
	}
}

func TestEventAssemblerEventChangesSameTimestamp(t *testing.T) {
	// A broken sender keeps the timestamp for the next press: '1' then '2'
	// both at 5000. Decision: the other event code on newer packets is a
	// new press, reported with Start moved to the previous End.
	s := newRFCSender(10, 5000)
	p1 := s.press(1, 800)
	s.now = 5000
	p2 := s.press(2, 480)
	pk := append(slices.Clone(p1), p2...)
	want := []Event{
		{Digit: '1', Start: 5000, End: 5800, Source: RFC4733},
		{Digit: '2', Start: 5800, End: 6280, Source: RFC4733},
	}
	var a EventAssembler
	got, _ := feedRFC(t, &a, pk)
	if !slices.Equal(got, want) {
		t.Fatalf("got %v, want %v", got, want)
	}
	// Late packets of '1' (its start, an End) after '2' began: nothing.
	late := append(slices.Clone(p1[:1]), p2[:2]...)
	late = append(late, p1[5], p1[0], p2[2], p2[4], p1[6])
	a.Reset()
	got, _ = feedRFC(t, &a, append(slices.Clone(p1[:4]), late...))
	got = a.Flush(got)
	want[0].End = 5000 + 640 // '1' lost its End before '2' came
	want[1].Start = 5640
	want[1].End = 5640 + 480
	if !slices.Equal(got, want) {
		t.Fatalf("with late packets: got %v, want %v", got, want)
	}
	// An older sequence number with another code at the same timestamp is
	// a straggler, not a press.
	a.Reset()
	feedRFC(t, &a, p2)
	got, _ = feedRFC(t, &a, p1[:3])
	if len(got) != 0 {
		t.Fatalf("straggler reported %v", got)
	}
}

func TestEventAssemblerSameDigitSameTimestamp(t *testing.T) {
	// A broken sender re-uses the timestamp for a second '8': the marker
	// on a packet newer than the End marks the new press.
	s := newRFCSender(10, 5000)
	p1 := s.press(8, 800)
	s.now = 5000
	p2 := s.press(8, 800)
	var a EventAssembler
	got, _ := feedRFC(t, &a, append(slices.Clone(p1), p2...))
	want := []Event{
		{Digit: '8', Start: 5000, End: 5800, Source: RFC4733},
		{Digit: '8', Start: 5800, End: 6600, Source: RFC4733},
	}
	if !slices.Equal(got, want) {
		t.Fatalf("got %v, want %v", got, want)
	}
	// The first press's late start packet (marker, older sequence number)
	// and its End retransmissions arriving after the second press began:
	// nothing more.
	a.Reset()
	pk := append(slices.Clone(p1[1:5]), p2[0], p1[5], p1[0], p1[6])
	pk = append(pk, p2[1:]...)
	got, _ = feedRFC(t, &a, pk)
	if !slices.Equal(got, want) {
		t.Fatalf("with late packets: got %v, want %v", got, want)
	}
	// Without the marker (or before the End) the same timestamp is the
	// same press: retransmitted start packets change nothing.
	a.Reset()
	got, _ = feedRFC(t, &a, []rfcPkt{p1[0], p1[1], p1[0], p1[2], p1[4], p1[5], p1[6], p1[3], p1[6]})
	if !slices.Equal(got, want[:1]) {
		t.Fatalf("retransmitted start: got %v, want %v", got, want[:1])
	}
}

func TestEventAssemblerStragglers(t *testing.T) {
	s := newRFCSender(1, 1000)
	p0 := s.press(1, 800)
	p1 := s.press(2, 800)
	p2 := s.press(3, 800)
	var pk []rfcPkt
	pk = append(pk, p0...)
	pk = append(pk, p1...)
	pk = append(pk, p2...)
	// Every packet of the first press again, after the third: nothing.
	pk = append(pk, p0...)
	// A packet of a press older than any seen, never seen before: nothing.
	pk = append(pk, rfcPkt{seq: 0, ts: 200, marker: true, ev: TelephoneEvent{Event: 9, End: true, Duration: 400}})
	var a EventAssembler
	got, _ := feedRFC(t, &a, pk)
	got = a.Flush(got)
	if !slices.Equal(got, s.events()) {
		t.Fatalf("got %v, want %v", got, s.events())
	}
}

func TestEventAssemblerWrapAround(t *testing.T) {
	s := newRFCSender(65530, 0xffffff00) // seq and timestamp both wrap
	var pk []rfcPkt
	pk = append(pk, s.pause(160)...)
	pk = append(pk, s.press(1, 800)...) // starts before, ends after the wrap
	pk = append(pk, s.pause(480)...)
	pk = append(pk, s.press(2, 800)...) // after the wrap
	var a EventAssembler
	got, _ := feedRFC(t, &a, pk)
	want := []Event{
		{Digit: '1', Start: 0xffffffa0, End: 0xffffffa0 + 800, Source: RFC4733},
		{Digit: '2', Start: 0xffffffa0 + 1280, End: 0xffffffa0 + 2080, Source: RFC4733},
	}
	if !slices.Equal(got, want) {
		t.Fatalf("got %v, want %v", got, want)
	}
	if want[1].Start <= 1<<32 {
		t.Fatal("test does not cross the wrap")
	}
}

func TestEventAssemblerExtend(t *testing.T) {
	var a EventAssembler
	steps := []struct {
		ts   uint32
		want int64
	}{
		{0xfffff000, 0xfffff000},
		{0xfffff100, 0xfffff100},
		{0xffffe000, 0xffffe000},    // older: below the reference
		{0x00000100, 0x1_0000_0100}, // after the wrap
		{0xfffffff0, 0xfffffff0},    // late, before the wrap
		{0x80000000, 0x1_8000_0000}, // half a cycle on
		{0xc0000000, 0x1_c000_0000},
		{0x00000010, 0x2_0000_0010}, // second wrap
		{0x80000020, 0x1_8000_0020}, // just over half a cycle back
	}
	for i, st := range steps {
		if got := a.Extend(st.ts); got != st.want {
			t.Fatalf("step %d: Extend(%#x) = %#x, want %#x", i, st.ts, got, st.want)
		}
	}
	var b EventAssembler
	b.Extend(0x10)
	if got := b.Extend(0xfffffff0); got != -0x10 {
		t.Fatalf("before the first timestamp: %d, want -16", got)
	}
}

func TestEventAssemblerBadPayload(t *testing.T) {
	var a EventAssembler
	out, _ := a.Push(1, 1000, true, rfcPayload(TelephoneEvent{Event: 5, Duration: 160}), nil)
	for n := 0; n < 4; n++ {
		var err error
		out, err = a.Push(2, 9000, true, make([]byte, n), out)
		if !errors.Is(err, ErrShortPayload) {
			t.Fatalf("%d bytes: %v", n, err)
		}
	}
	out = a.Flush(out)
	want := []Event{{Digit: '5', Start: 1000, End: 1160, Source: RFC4733}}
	if !slices.Equal(out, want) {
		t.Fatalf("got %v, want %v: a bad payload changed the state", out, want)
	}
}

func TestEventAssemblerNoAllocs(t *testing.T) {
	s := newRFCSender(1, 1000)
	s.talk = true
	var pk []rfcPkt
	for i := range 20 {
		pk = append(pk, s.press(uint8(i%16), 800+160*(i%5))...)
		pk = append(pk, s.pause(640)...)
	}
	payloads := make([][]byte, len(pk))
	for i, p := range pk {
		payloads[i] = rfcPayload(p.ev)
	}
	out := make([]Event, 0, 64)
	var a EventAssembler
	n := testing.AllocsPerRun(20, func() {
		a.Reset()
		out = out[:0]
		for i, p := range pk {
			if p.audio {
				out = a.Advance(p.ts, out)
			} else {
				out, _ = a.Push(p.seq, p.ts, p.marker, payloads[i], out)
			}
		}
		out = a.Flush(out)
	})
	if n != 0 {
		t.Fatalf("%v allocations per run", n)
	}
	if len(out) != 20 {
		t.Fatalf("%d events", len(out))
	}
}

// TestEventAssemblerRandomLossReorder builds random streams of presses,
// loses, duplicates and reorders their packets, and checks that each press
// is reported exactly once, with its digit and start. A press is expected
// when one of its packets arrives before any packet of a later press
// (presses are reported in timestamp order); the test counts the others.
func TestEventAssemblerRandomLossReorder(t *testing.T) {
	rng := rand.New(rand.NewPCG(4733, 2833))
	var pressesSeen, reported, overtaken int
	for trial := range 300 {
		s := newRFCSender(uint16(rng.Uint32()), rng.Uint32())
		s.talk = rng.IntN(2) == 0
		var pk []rfcPkt
		pk = append(pk, s.pause(160*rng.IntN(10))...)
		nPress := 5 + rng.IntN(20)
		code := uint8(rng.IntN(16))
		for range nPress {
			if rng.IntN(3) != 0 { // a third repeat the previous digit
				code = uint8(rng.IntN(16))
			}
			dur := 320 + rng.IntN(2800) // 40-390 ms
			if rng.IntN(50) == 0 {
				dur = 70000 + rng.IntN(100000) // over 8 s: segments
			}
			pk = append(pk, s.press(code, dur)...)
			pk = append(pk, s.pause(320+rng.IntN(2000))...)
		}
		pk = append(pk, s.pause(4000)...)

		loss := []float64{0, 0.02, 0.1, 0.25}[rng.IntN(4)]
		dup := []float64{0, 0.05}[rng.IntN(2)]
		disp := []float64{0, 1, 2, 3, 12, 40}[rng.IntN(6)] // reorder by up to that many positions
		type arrival struct {
			p   rfcPkt
			key float64
		}
		var arr []arrival
		for i, p := range pk {
			if rng.Float64() < loss {
				continue
			}
			arr = append(arr, arrival{p, float64(i) + rng.Float64()*disp})
			if rng.Float64() < dup {
				arr = append(arr, arrival{p, float64(i) + rng.Float64()*(disp+2)})
			}
		}
		slices.SortStableFunc(arr, func(x, y arrival) int {
			switch {
			case x.key < y.key:
				return -1
			case x.key > y.key:
				return 1
			}
			return 0
		})
		in := make([]rfcPkt, len(arr))
		first := make([]int, nPress) // first arrival of each press
		for i := range first {
			first[i] = -1
		}
		for i, a := range arr {
			in[i] = a.p
			if a.p.press >= 0 && first[a.p.press] < 0 {
				first[a.p.press] = i
			}
		}
		var expect []int
		for k := range nPress {
			if first[k] < 0 {
				continue
			}
			pressesSeen++
			ok := true
			for j := k + 1; j < nPress; j++ {
				if first[j] >= 0 && first[j] < first[k] {
					ok = false
				}
			}
			if ok {
				expect = append(expect, k)
			} else {
				overtaken++
			}
		}

		var a EventAssembler
		got, _ := feedRFC(t, &a, in)
		got = a.Flush(got)
		truth := s.events()
		if len(in) > 0 { // the assembler's clock starts at the first packet it sees
			off := int64(in[0].ts) - in[0].t64
			for i := range truth {
				truth[i].Start += off
				truth[i].End += off
			}
		}
		if len(got) != len(expect) {
			t.Fatalf("trial %d (loss %.2f, dup %.2f, disp %.0f): %d events, want %d\ngot  %v\nwant presses %v of %v",
				trial, loss, dup, disp, len(got), len(expect), got, expect, truth)
		}
		for i, k := range expect {
			g, w := got[i], truth[k]
			if g.Digit != w.Digit || g.Start != w.Start || g.End > w.End || g.End <= g.Start || g.Source != RFC4733 {
				t.Fatalf("trial %d: event %d = %v, want press %d = %v", trial, i, g, k, w)
			}
		}
		reported += len(got)
	}
	t.Logf("%d presses with a packet through, %d reported, %d overtaken by the next press", pressesSeen, reported, overtaken)
}

// ---- fuzzing ----

func FuzzDecodeTelephoneEvent(f *testing.F) {
	f.Add([]byte{5, 0x8a, 3, 0x20})
	f.Add([]byte{})
	f.Add([]byte{1, 2, 3})
	f.Add([]byte{0xff, 0xff, 0xff, 0xff, 0, 0, 0, 0})
	f.Fuzz(func(t *testing.T, data []byte) {
		ev, err := DecodeTelephoneEvent(data)
		if len(data) < TelephoneEventSize {
			if !errors.Is(err, ErrShortPayload) {
				t.Fatalf("%d bytes: error %v", len(data), err)
			}
			if msg := err.Error(); msg != "rfc4733: telephone-event payload is "+strconv.Itoa(len(data))+" bytes, need at least 4" {
				t.Fatalf("error message %q says more than the size", msg)
			}
			return
		}
		if err != nil {
			t.Fatalf("%d bytes: %v", len(data), err)
		}
		if ev.Volume > MaxVolume {
			t.Fatalf("volume %d", ev.Volume)
		}
		if d, ok := ev.Digit(); ok != (ev.Event < 16) || (ok && !d.Valid()) {
			t.Fatalf("event %d: Digit() = %q, %v", ev.Event, d, ok)
		}
		b, err := ev.AppendBinary(make([]byte, 0, 4))
		if err != nil {
			t.Fatal(err)
		}
		want := []byte{data[0], data[1] &^ 0x40, data[2], data[3]}
		if !bytes.Equal(b, want) {
			t.Fatalf("re-encoded % x, want % x", b, want)
		}
	})
}

// fuzzAssemblerOps runs the op stream of FuzzAssembler. Each op is 8
// bytes: ctrl, sequence delta (int8), timestamp delta (int16; with ctrl
// bit 4 a segment step of 0xFFFF minus its low 11 bits, backwards with bit
// 5), 4 payload bytes. ctrl bits 0-1: 0-1 push, 2 advance, 3 flush (with
// bit 5: set Timeout to payload[0]*40 instead); bit 2 marker; bit 3 short
// payload (length ctrl>>6).
func fuzzAssemblerOps(t *testing.T, data []byte) { runFuzzOps(t, data) }

func runFuzzOps(t *testing.T, data []byte) []Event {
	var a EventAssembler
	seq := uint16(65500)
	ts := uint32(0xfff00000)
	var out []Event
	for len(data) >= 8 {
		op := data[:8]
		data = data[8:]
		ctrl := op[0]
		seq += uint16(int16(int8(op[1])))
		d := int16(uint16(op[2])<<8 | uint16(op[3]))
		if ctrl&0x10 != 0 {
			step := MaxEventDuration - uint32(uint16(d)%2048)
			if ctrl&0x20 != 0 {
				step = -step
			}
			ts += step
		} else {
			ts += uint32(int32(d))
		}
		n := len(out)
		switch ctrl & 3 {
		case 0, 1:
			payload := op[4:8]
			if ctrl&8 != 0 {
				payload = payload[:ctrl>>6]
			}
			var err error
			out, err = a.Push(seq, ts, ctrl&4 != 0, payload, out)
			if (err != nil) != (len(payload) < 4) {
				t.Fatalf("payload of %d bytes: error %v", len(payload), err)
			}
		case 2:
			out = a.Advance(ts, out)
		case 3:
			if ctrl&0x20 != 0 && ctrl&0x10 == 0 {
				a.Timeout = int64(op[4]) * 40
				continue
			}
			out = a.Flush(out)
			if m := len(out); len(a.Flush(out)) != m {
				t.Fatal("second Flush reported")
			}
		}
		for _, e := range out[n:] {
			if !e.Digit.Valid() || e.Source != RFC4733 || e.End < e.Start {
				t.Fatalf("bad event %+v", e)
			}
		}
	}
	out = a.Flush(out)
	// No timestamp is reported twice: Starts strictly increase.
	for i := 1; i < len(out); i++ {
		if out[i].Start <= out[i-1].Start {
			t.Fatalf("event %d starts at %d, event %d at %d", i-1, out[i-1].Start, i, out[i].Start)
		}
	}
	return out
}

func FuzzAssembler(f *testing.F) {
	for _, seed := range fuzzAssemblerSeeds() {
		f.Add(seed.data)
	}
	f.Fuzz(fuzzAssemblerOps)
}

type rfcFuzzSeed struct {
	name string
	data []byte
}

// encodeFuzzOps encodes packets in the FuzzAssembler op format, moved so
// that the first one has sequence number 65500 and timestamp 0xfff00000.
func encodeFuzzOps(pk []rfcPkt) []byte {
	var b []byte
	prevSeq, prevTS := uint16(65500), uint32(0xfff00000)
	seq0, ts0 := pk[0].seq, pk[0].ts
	for _, p := range pk {
		seq, ts := p.seq-seq0+65500, p.ts-ts0+0xfff00000
		var ctrl byte
		if p.audio {
			ctrl = 2
		}
		if p.marker {
			ctrl |= 4
		}
		sd, d := int16(seq-prevSeq), ts-prevTS
		if sd != int16(int8(sd)) {
			panic("sequence step too large for a fuzz op")
		}
		if d > 0x7fff && d < 0xffff8000 {
			ctrl |= 0x10
			if d > 0x80000000 { // backwards
				ctrl |= 0x20
				d = -d
			}
			d = MaxEventDuration - d
			if d >= 2048 {
				panic("timestamp step too large for a fuzz op")
			}
		}
		b = append(b, ctrl, byte(sd), byte(d>>8), byte(d))
		b = append(b, rfcPayload(p.ev)...)
		prevSeq, prevTS = seq, ts
	}
	return b
}

// fuzzAssemblerSeeds are realistic streams in the FuzzAssembler op format;
// testdata/fuzz/FuzzAssembler holds the same (TestEventAssemblerFuzzCorpus).
func fuzzAssemblerSeeds() []rfcFuzzSeed {
	var seeds []rfcFuzzSeed
	add := func(name string, pk []rfcPkt) { seeds = append(seeds, rfcFuzzSeed{name, encodeFuzzOps(pk)}) }

	s := newRFCSender(1, 1000)
	clean := s.pause(320)
	clean = append(clean, s.press(1, 800)...)
	clean = append(clean, s.pause(320)...)
	clean = append(clean, s.press(1, 640)...)
	clean = append(clean, s.pause(2400)...)
	add("same-digit-twice", clean)

	imp := rfcDropSeq(clean, clean[2].seq, clean[8].seq, clean[9].seq, clean[10].seq) // start, End 1-3 of press 1
	imp = rfcMoveSeq(imp, clean[4].seq, clean[14].seq)
	imp = append(imp, clean[2], clean[15])
	add("loss-reorder-stragglers", imp)

	s = newRFCSender(7, 0xfff00000)
	s.talk = true
	long := s.press(11, 70000)
	i := slices.IndexFunc(long, func(p rfcPkt) bool { return !p.audio && p.ts != long[0].ts })
	add("segment-boundary", long[i-12:i+12])

	s = newRFCSender(9, 5000)
	b1 := s.press(1, 480)
	s.now = 5000
	b2 := s.press(2, 480)
	s.now = 5000
	b3 := s.press(2, 480)
	add("broken-same-timestamp", append(append(b1, b2...), append(b3, b1[0], b2[4])...))

	s = newRFCSender(65530, 0xffffff00)
	w := s.pause(160)
	w = append(w, s.press(10, 960)...)
	w = append(w, s.pause(480)...)
	w = append(w, s.press(15, 800)...)
	add("wrap-around", w)

	s = newRFCSender(3, 40000)
	to := s.press(4, 960)
	to = append(to[:4], s.pause(3200)...) // End lost: timeout
	to = append(to, s.press(4, 320)...)
	add("timeout", to)
	return seeds
}

// TestEventAssemblerFuzzCorpus rewrites the committed seed corpora when
// TONEVAULT_WRITE_FUZZ_CORPUS is set; otherwise it checks they are there.
func TestEventAssemblerFuzzCorpus(t *testing.T) {
	decode := []rfcFuzzSeed{
		{"digit-end", []byte{5, 0x8a, 3, 0x20}},
		{"r-bit", []byte{11, 0x7f, 0, 0xa0}},
		{"flash", []byte{16, 0x80, 0x01, 0x00}},
		{"two-blocks", []byte{1, 0x0a, 0, 0xa0, 1, 0x8a, 3, 0x20}},
		{"empty", []byte{}},
		{"short", []byte{9, 0x8a, 3}},
	}
	// The seeds mean what they say: the op encoding reproduces the streams.
	wantDigits := map[string]string{
		"same-digit-twice":        "11",
		"loss-reorder-stragglers": "11",
		"segment-boundary":        "#",
		"broken-same-timestamp":   "122",
		"wrap-around":             "*D",
		"timeout":                 "44",
	}
	for _, seed := range fuzzAssemblerSeeds() {
		var got []byte
		for _, e := range runFuzzOps(t, seed.data) {
			got = append(got, byte(e.Digit))
		}
		if string(got) != wantDigits[seed.name] {
			t.Errorf("seed %s: digits %q, want %q", seed.name, got, wantDigits[seed.name])
		}
	}
	sets := map[string][]rfcFuzzSeed{"FuzzDecodeTelephoneEvent": decode, "FuzzAssembler": fuzzAssemblerSeeds()}
	for target, seeds := range sets {
		for _, seed := range seeds {
			path := filepath.Join("testdata", "fuzz", target, seed.name)
			want := fmt.Sprintf("go test fuzz v1\n[]byte(%q)\n", seed.data)
			if os.Getenv("TONEVAULT_WRITE_FUZZ_CORPUS") != "" {
				if err := os.MkdirAll(filepath.Dir(path), 0o755); err != nil {
					t.Fatal(err)
				}
				if err := os.WriteFile(path, []byte(want), 0o644); err != nil {
					t.Fatal(err)
				}
				continue
			}
			if got, err := os.ReadFile(path); err != nil || string(got) != want {
				t.Errorf("%s: missing or stale (%v); run with TONEVAULT_WRITE_FUZZ_CORPUS=1", path, err)
			}
		}
	}
}

// ---- benchmarks ----

func BenchmarkDecodeTelephoneEvent(b *testing.B) {
	p := []byte{5, 0x8a, 3, 0x20}
	var sink TelephoneEvent
	b.ReportAllocs()
	for b.Loop() {
		sink, _ = DecodeTelephoneEvent(p)
	}
	_ = sink
}

func BenchmarkAppendTelephoneEvent(b *testing.B) {
	ev := TelephoneEvent{Event: 5, End: true, Volume: 10, Duration: 800}
	buf := make([]byte, 0, 4)
	b.ReportAllocs()
	for b.Loop() {
		buf, _ = ev.AppendBinary(buf[:0])
	}
}

// BenchmarkEventAssemblerPush measures one telephone-event packet through
// the assembler, on a realistic stream (presses of 100-260 ms, three End
// packets each), decode included.
func BenchmarkEventAssemblerPush(b *testing.B) {
	s := newRFCSender(1, 1000)
	var pk []rfcPkt
	for i := range 64 {
		pk = append(pk, s.press(uint8(i%16), 800+160*(i%5))...)
		s.now += 480
	}
	span := uint32(s.now - 1000)
	payloads := make([][]byte, len(pk))
	for i, p := range pk {
		payloads[i] = rfcPayload(p.ev)
	}
	out := make([]Event, 0, 128)
	var a EventAssembler
	var round uint32
	i := 0
	b.ReportAllocs()
	for b.Loop() {
		p := pk[i]
		out, _ = a.Push(p.seq+uint16(round*uint32(len(pk))), p.ts+round*span, p.marker, payloads[i], out)
		if i++; i == len(pk) {
			i = 0
			round++
			out = out[:0]
		}
	}
}
