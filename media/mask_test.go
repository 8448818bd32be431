package media

import (
	"testing"
	"time"

	"github.com/tonevault/tonevault/dtmf"
)

// sendAudio sends pcm as 20 ms packets of codec from seq/ts on and returns
// what the platform received.
func (e *env) sendAudio(pcm []int16, c Codec, pt uint8, seq *uint16, ts *uint32, ssrc uint32) []got {
	e.t.Helper()
	raw := encode(pcm, c)
	var out []got
	for i := 0; i+160 <= len(raw); i += 160 {
		out = append(out, e.toPlatform(rtpPkt(pt, *seq, *ts, ssrc, i == 0, raw[i:i+160])))
		*seq++
		*ts += 160
	}
	return out
}

func payloads(ps []got) []byte {
	var b []byte
	for _, p := range bySeq(ps) {
		b = append(b, p.payload...)
	}
	return b
}

func TestInBandMasked(t *testing.T) {
	const digits = "12#55*9"
	for _, tc := range []struct {
		name  string
		codec Codec
		pt    uint8
		mode  dtmf.MaskMode
	}{
		{"pcmu-tone", PCMU, 0, dtmf.MaskTone},
		{"pcma-tone", PCMA, 8, dtmf.MaskTone},
		{"pcmu-silence", PCMU, 0, dtmf.MaskSilence},
		{"pcma-silence", PCMA, 8, dtmf.MaskSilence},
	} {
		t.Run(tc.name, func(t *testing.T) {
			e := newEnv(t, func(c *Config) { c.MaskMode = tc.mode })
			pcm := toneSignal(digits, 300, 80, 80, -8)
			// The test can fail: the input carries the digits.
			if in := detectAll(t, decode(encode(pcm, tc.codec), tc.codec)); in["aggressive"] == "" || in["dtmf"] != digits {
				t.Fatalf("input detection %v, want %q", in, digits)
			}
			seq, ts := uint16(1000), uint32(5000)
			out := e.sendAudio(pcm, tc.codec, tc.pt, &seq, &ts, 0xCAFE)
			if len(out) != len(pcm)/160 {
				t.Fatalf("got %d packets, sent %d", len(out), len(pcm)/160)
			}
			for i, p := range out {
				if p.ssrc != 0xCAFE || p.seq != uint16(1000+i) || p.ts != uint32(5000+160*i) || p.pt != tc.pt {
					t.Fatalf("packet %d header changed: ssrc %x seq %d ts %d pt %d", i, p.ssrc, p.seq, p.ts, p.pt)
				}
			}
			for name, found := range detectAll(t, decode(payloads(out), tc.codec)) {
				if found != "" {
					t.Errorf("%s detects %q on the platform leg", name, found)
				}
			}
			if got := e.sink.digits(); got != digits {
				t.Errorf("sink got %q, want %q", got, digits)
			}
			for _, d := range e.sink.all() {
				if d.Source != dtmf.InBand || d.CallID != "call-1" || d.At.IsZero() {
					t.Errorf("digit %+v", d)
				}
			}
			st := e.sess.Close()
			if st.Mask.Masked == 0 || st.Digits != len(digits) {
				t.Errorf("stats %+v", st)
			}
		})
	}
}

// eventPacket is one packet of a scripted RFC 4733 press.
type eventPacket struct {
	seq uint16
	dur uint16
	end bool
}

func TestRFC4733Replaced(t *testing.T) {
	e := newEnv(t, nil)
	const ssrc = 0xBEEF
	seq, ts := uint16(200), uint32(16000)
	var out []got
	out = append(out, e.sendAudio(toneSignal("", 200, 0, 0, 0)[:1600], PCMU, 0, &seq, &ts, ssrc)...)
	evTS, evSeq := ts, seq
	// A press of 7 for 100 ms: five updates, the End three times. Packet
	// 3 is lost, 4 and 5 arrive swapped, the start packet has the marker.
	script := []eventPacket{{seq, 160, false}, {seq + 1, 320, false}, {seq + 3, 640, false}, {seq + 4, 800, true}, {seq + 5, 800, true}, {seq + 6, 800, true}}
	script[2], script[3] = script[3], script[2]
	for i, s := range script {
		out = append(out, e.toPlatform(rtpPkt(101, s.seq, evTS, ssrc, i == 0, eventPayload('7', s.end, s.dur))))
	}
	seq += 7
	ts = evTS + 800
	after := e.sendAudio(toneSignal("", 200, 0, 0, 0)[:1600], PCMU, 0, &seq, &ts, ssrc)
	out = append(out, after...)

	sorted := bySeq(out)
	lost := evSeq + 2
	// The carrier marks the start of each talk spurt; replacements never.
	markers := map[uint16]bool{200: true, after[0].seq: true}
	for i, p := range sorted {
		if p.ssrc != ssrc {
			t.Fatalf("seq %d: ssrc %x", p.seq, p.ssrc)
		}
		if p.pt != 0 {
			t.Errorf("seq %d: payload type %d reached the platform", p.seq, p.pt)
		}
		if len(p.payload) != 160 {
			t.Errorf("seq %d: %d bytes of audio", p.seq, len(p.payload))
		}
		if p.marker != markers[p.seq] {
			t.Errorf("seq %d: marker %v", p.seq, p.marker)
		}
		if i > 0 {
			prev := sorted[i-1]
			if want := prev.seq + 1; p.seq != want && !(prev.seq+1 == lost && p.seq == lost+1) {
				t.Errorf("sequence gap %d → %d", prev.seq, p.seq)
			}
			if int32(p.ts-prev.ts) < 0 {
				t.Errorf("timestamp goes back at seq %d: %d → %d", p.seq, prev.ts, p.ts)
			}
		}
	}
	for i := 1; i < len(out); i++ {
		if int32(out[i].ts-out[i-1].ts) < 0 {
			t.Errorf("timestamp goes back in arrival order at seq %d", out[i].seq)
		}
	}
	if after[0].ts != evTS+800 {
		t.Errorf("audio after the event: ts %d, want %d", after[0].ts, evTS+800)
	}
	for name, found := range detectAll(t, decode(payloads(out), PCMU)) {
		if found != "" {
			t.Errorf("%s detects %q on the platform leg", name, found)
		}
	}
	if got := e.sink.digits(); got != "7" {
		t.Fatalf("sink got %q, want 7", got)
	}
	if d := e.sink.all()[0]; d.Source != dtmf.RFC4733 {
		t.Errorf("source %v", d.Source)
	}
	if n := e.metric(toPlatform, replaceEvent); n != float64(len(script)) {
		t.Errorf("replaced counter %v, want %d", n, len(script))
	}
}

// TestOnePressManyTransports sends one press as in-band tone and RFC 4733
// at once, and another as SIP INFO and RFC 4733: two digits, not four.
func TestOnePressManyTransports(t *testing.T) {
	e := newEnv(t, nil)
	const ssrc = 7
	seq, ts := uint16(1), uint32(0)
	e.sendAudio(toneSignal("", 200, 0, 0, 0)[:1600], PCMU, 0, &seq, &ts, ssrc)

	// In-band 4 and RFC 4733 4 together, 100 ms.
	tone := encode(toneSignal("4", 0, 100, 100, -8), PCMU)
	evTS := ts
	var out []got
	events := 0
	for i := 0; i+160 <= len(tone); i += 160 {
		out = append(out, e.toPlatform(rtpPkt(0, seq, ts, ssrc, false, tone[i:i+160])))
		seq++
		ts += 160
		if dur := ts - evTS; dur <= 800 {
			reps := 1
			if dur == 800 {
				reps = 3 // the End, sent three times
			}
			for range reps {
				// The sender's audio goes on during the event: after
				// the first, its packets are dropped, not replaced.
				g, ok := e.toPlatformMaybe(rtpPkt(101, seq, evTS, ssrc, dur == 160, eventPayload('4', dur == 800, uint16(dur))))
				if ok {
					out = append(out, g)
					events++
				}
				seq++
			}
		}
	}
	if events != 1 {
		t.Errorf("%d event packets replaced while audio flowed, want only the first", events)
	}
	// SIP INFO 9, and the same press as RFC 4733 right after.
	e.sess.InfoDigit('9', 100*time.Millisecond)
	evTS = ts
	for dur := uint32(160); dur <= 800; dur += 160 {
		out = append(out, e.toPlatform(rtpPkt(101, seq, evTS, ssrc, dur == 160, eventPayload('9', dur == 800, uint16(dur)))))
		seq++
	}
	ts += 800
	out = append(out, e.sendAudio(toneSignal("", 200, 0, 0, 0)[:1600], PCMU, 0, &seq, &ts, ssrc)...)

	// No gap in the sequence numbers the platform sees, though packets
	// were dropped, and at most one slot doubled (the event's first packet).
	sameTS := 0
	for i := 1; i < len(out); i++ {
		if out[i].seq != out[i-1].seq+1 {
			t.Fatalf("platform seq %d after %d", out[i].seq, out[i-1].seq)
		}
		if out[i].ts == out[i-1].ts && out[i].pt == 0 && out[i-1].pt == 0 {
			sameTS++
		}
	}
	if sameTS > 4 { // the first event slot, and the End retransmissions of the 9 (no audio: replaced, same slot)
		t.Errorf("%d packets repeat the previous timestamp", sameTS)
	}
	for name, found := range detectAll(t, decode(payloads(out), PCMU)) {
		if found != "" {
			t.Errorf("%s detects %q on the platform leg", name, found)
		}
	}
	ds := e.sink.all()
	if got := e.sink.digits(); got != "49" {
		t.Fatalf("sink got %q (%+v), want 49", got, ds)
	}
	if ds[1].Source != dtmf.SIPInfo {
		t.Errorf("9 first seen as %v, want sip-info", ds[1].Source)
	}
}

func TestUnknownPayloadTypeReplaced(t *testing.T) {
	for _, masking := range []bool{true, false} {
		t.Run(map[bool]string{true: "always", false: "capture-only-idle"}[masking], func(t *testing.T) {
			e := newEnv(t, func(c *Config) {
				if !masking {
					c.Policy = CaptureOnly
				}
			})
			payload := encode(toneSignal("5", 0, 100, 0, -8), PCMU)[:160]
			g := e.toPlatform(rtpPkt(96, 1, 160, 9, true, payload))
			if masking {
				if g.pt != 0 || g.marker || string(g.payload) == string(payload) || g.seq != 1 || g.ssrc != 9 {
					t.Fatalf("unknown PT not replaced: pt %d marker %v seq %d", g.pt, g.marker, g.seq)
				}
				if e.metric(toPlatform, replaceUnknown) != 1 {
					t.Error("not counted")
				}
			} else if g.pt != 96 || string(g.payload) != string(payload) {
				t.Fatalf("outside capture an unknown PT passes: pt %d", g.pt)
			}
		})
	}
}

func TestCaptureOnly(t *testing.T) {
	e := newEnv(t, func(c *Config) { c.Policy = CaptureOnly })
	seq, ts := uint16(1), uint32(0)
	// Outside capture: an IVR menu choice passes, and is still reported.
	open := e.sendAudio(toneSignal("3", 100, 100, 100, -8), PCMU, 0, &seq, &ts, 1)
	if got := detectAll(t, decode(payloads(open), PCMU))["dtmf"]; got != "3" {
		t.Errorf("outside capture the platform should hear 3, detector found %q", got)
	}
	ev := e.toPlatform(rtpPkt(101, seq, ts, 1, true, eventPayload('8', true, 160)))
	seq++
	if ev.pt != 101 {
		t.Errorf("outside capture RFC 4733 should pass, got pt %d", ev.pt)
	}
	e.sess.SetCapture(true)
	masked := e.sendAudio(toneSignal("62", 100, 100, 100, -8), PCMU, 0, &seq, &ts, 1)
	for name, found := range detectAll(t, decode(payloads(masked), PCMU)) {
		if found != "" {
			t.Errorf("capture on: %s detects %q", name, found)
		}
	}
	ev = e.toPlatform(rtpPkt(101, seq, ts, 1, true, eventPayload('0', true, 160)))
	if ev.pt != 0 {
		t.Errorf("capture on: RFC 4733 reached the platform")
	}
	if got := e.sink.digits(); got != "3862"+"0" {
		t.Errorf("sink got %q", got)
	}
}

// TestSSRCChange switches SSRC in the middle of a press: the press is
// masked on both sides of the switch and reported once.
func TestSSRCChange(t *testing.T) {
	e := newEnv(t, nil)
	pcm := toneSignal("8", 200, 200, 200, -8)
	raw := encode(pcm, PCMU)
	var out []got
	seq, ts, ssrc := uint16(10), uint32(1000), uint32(0xA)
	for i := 0; i+160 <= len(raw); i += 160 {
		if i == 300*8 { // 100 ms into the tone
			seq, ts, ssrc = 40000, 900000, 0xB
		}
		out = append(out, e.toPlatform(rtpPkt(0, seq, ts, ssrc, false, raw[i:i+160])))
		if out[len(out)-1].ssrc != ssrc {
			t.Fatal("SSRC toward the platform is not the carrier's")
		}
		seq++
		ts += 160
	}
	var all []byte
	for _, p := range out {
		all = append(all, p.payload...)
	}
	for name, found := range detectAll(t, decode(all, PCMU)) {
		if found != "" {
			t.Errorf("%s detects %q", name, found)
		}
	}
	if got := e.sink.digits(); got != "8" {
		t.Errorf("sink got %q", got)
	}
}

// TestCodecChange switches from PCMU to PCMA in the middle of a press.
func TestCodecChange(t *testing.T) {
	e := newEnv(t, nil)
	pcm := toneSignal("0", 200, 300, 200, -8)
	var all []int16
	seq, ts := uint16(1), uint32(0)
	for i := 0; i+160 <= len(pcm); i += 160 {
		c, pt := PCMU, uint8(0)
		if i >= 350*8 {
			c, pt = PCMA, 8
		}
		g := e.toPlatform(rtpPkt(pt, seq, ts, 5, false, encode(pcm[i:i+160], c)))
		if g.pt != pt {
			t.Fatalf("pt %d, want %d", g.pt, pt)
		}
		all = append(all, decode(g.payload, c)...)
		seq++
		ts += 160
	}
	for name, found := range detectAll(t, all) {
		if found != "" {
			t.Errorf("%s detects %q", name, found)
		}
	}
}
