package refdetect_test

import (
	"strings"
	"testing"

	"github.com/tonevault/tonevault/test/corpus"
	"github.com/tonevault/tonevault/test/refdetect"
)

const cleanDigits = "0123456789*#ABCD"

type detector struct {
	name  string
	tools []string
	run   func([]int16) ([]refdetect.Hit, error)
}

var detectors = []detector{
	{"spandsp", []string{refdetect.ToolSpanDSP}, refdetect.SpanDSP},
	{"multimon", []string{refdetect.ToolMultimon, refdetect.ToolSox}, refdetect.Multimon},
	{"aggressive", nil, func(p []int16) ([]refdetect.Hit, error) { return refdetect.Aggressive(p), nil }},
}

// TestReferenceDetectors: each detector finds every digit of a clean
// sequence, A-D included, and nothing in silence or white noise.
func TestReferenceDetectors(t *testing.T) {
	clean := corpus.Generate(cleanDigits, corpus.DefaultParams())
	inputs := []struct {
		name string
		pcm  []int16
		want string
	}{
		{"clean", clean, cleanDigits},
		{"silence-2s", corpus.Silence(2000), ""},
		{"noise-2s-20dBm0", corpus.WhiteNoise(2000, -20, 1), ""},
		{"noise-2s-5dBm0", corpus.WhiteNoise(2000, -5, 2), ""},
	}
	for _, d := range detectors {
		t.Run(d.name, func(t *testing.T) {
			refdetect.Require(t, d.tools...)
			for _, in := range inputs {
				hits, err := d.run(in.pcm)
				if err != nil {
					t.Fatalf("%s: %v", in.name, err)
				}
				if got := refdetect.Digits(hits); got != in.want {
					t.Errorf("%s: got %q, want %q (hits %v)", in.name, got, in.want, hits)
				}
			}
		})
	}
}

// TestSpanDSPPositions: SpanDSP's sample positions fall just after each
// tone's start (it confirms a digit after two 102-sample blocks).
func TestSpanDSPPositions(t *testing.T) {
	refdetect.Require(t, refdetect.ToolSpanDSP)
	pcm, spans := corpus.DefaultSignal().RenderSpans(corpus.DefaultParams().Presses(cleanDigits))
	hits, err := refdetect.SpanDSP(pcm)
	if err != nil {
		t.Fatal(err)
	}
	if len(hits) != len(spans) {
		t.Fatalf("got %d hits, want %d", len(hits), len(spans))
	}
	for i, h := range hits {
		s := spans[i]
		if h.Sample < int64(s.Start) || h.Sample > int64(s.End) {
			t.Errorf("hit %v outside tone %d-%d", h, s.Start, s.End)
		}
	}
}

// TestAggressivePositions: Aggressive's positions are within one window of
// each tone's start.
func TestAggressivePositions(t *testing.T) {
	pcm, spans := corpus.DefaultSignal().RenderSpans(corpus.DefaultParams().Presses(cleanDigits))
	hits := refdetect.Aggressive(pcm)
	if len(hits) != len(spans) {
		t.Fatalf("got %d hits, want %d: %v", len(hits), len(spans), hits)
	}
	for i, h := range hits {
		s := spans[i]
		if h.Sample < int64(s.Start)-80 || h.Sample > int64(s.Start)+40 {
			t.Errorf("hit %v not at tone start %d", h, s.Start)
		}
	}
}

// TestAggressiveQ24: the aggressive detector sees every press of every
// Q.24 case, including the ones a compliant detector must reject (short
// tones, ±3.5 and ±5 % deviation) and those beyond the twist limits. That
// is what makes it a leak detector: if it finds nothing, nothing is left.
func TestAggressiveQ24(t *testing.T) {
	for _, c := range corpus.Q24Cases() {
		ws := refdetect.DefaultAggressive.Windows(c.PCM)
		for i, sp := range c.Tones {
			found := false
			for _, w := range ws {
				if !w.Hit || w.Start+80 <= int64(sp.Start) || w.Start >= int64(sp.End) {
					continue
				}
				// Off-frequency tones may land on a neighbour digit at
				// ±5 %; below that the digit must be right.
				if w.Digit == byte(sp.Digit) || c.Category == corpus.CatRejectDeviation && strings.Contains(c.Name, "5.0%") {
					found = true
					break
				}
			}
			if !found {
				t.Errorf("%s: press %d (%c) not found", c.Name, i, sp.Digit)
			}
		}
		// And nothing outside the tones (one window of slack either side).
		for _, h := range refdetect.Aggressive(c.PCM) {
			inside := false
			for _, sp := range c.Tones {
				if h.Sample+80 > int64(sp.Start) && h.Sample < int64(sp.End)+80 {
					inside = true
				}
			}
			if !inside {
				t.Errorf("%s: hit %v outside every tone", c.Name, h)
			}
		}
	}
}

// TestAggressiveSingleTones: one tone alone is not a digit, however loud
// and wherever it sits (a masking beep, a whistle), even with a ramp.
func TestAggressiveSingleTones(t *testing.T) {
	for f := 500.0; f <= 2000; f += 7 {
		for _, lvl := range []float64{0, -10, -25} {
			pcm := corpus.Concat(corpus.Silence(50), corpus.Tone(f, lvl, 200), corpus.Silence(50))
			if hits := refdetect.Aggressive(pcm); len(hits) != 0 {
				t.Errorf("%g Hz at %g dBm0: %v", f, lvl, hits)
			}
		}
	}
}

// TestAggressiveTalkOff: no hit on the synthetic talk-off signals and
// only a few on speech and music (59 when calibrated: 18 in Asterisk's
// tt-monkeys prompt, 1 in espeak-ng German, 39 in music on hold).
func TestAggressiveTalkOff(t *testing.T) {
	for _, c := range corpus.Synthetic() {
		if hits := refdetect.Aggressive(c.PCM); len(hits) != 0 {
			t.Errorf("%s: %v", c.Name, hits)
		}
	}
	if testing.Short() {
		t.Skip("speech and music skipped in -short mode")
	}
	n := 0
	for _, c := range append(corpus.Speech(t), corpus.Music(t)...) {
		n += len(refdetect.Aggressive(c.PCM))
	}
	if n > 80 {
		t.Errorf("%d hits on speech and music, calibrated at 59", n)
	}
	t.Logf("%d hits on speech and music", n)
}
