// Package dtmfproof proves the DTMF engine's promises with detectors no one
// here wrote: what the masker lets through reveals no digit to multimon-ng,
// SpanDSP or a deliberately aggressive detector, and the detector finds
// more digits than SpanDSP at the Q.24 edges without more false ones.
package dtmfproof

import (
	"fmt"
	"os"
	"path/filepath"
	"sort"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/zaf/g711"

	"github.com/tonevault/tonevault/dtmf"
	"github.com/tonevault/tonevault/test/corpus"
	"github.com/tonevault/tonevault/test/refdetect"
)

// mask runs the streaming masker over pcm as the relay would: µ-law in
// 20 ms packets, then decoded and realigned by the look-ahead.
func mask(t testing.TB, pcm []int16, cfg dtmf.MaskConfig) ([]int16, dtmf.MaskStats, []dtmf.Event) {
	t.Helper()
	m, err := dtmf.NewMasker(cfg, dtmf.PCMU)
	if err != nil {
		t.Fatal(err)
	}
	d := m.Delay()
	in := make([]byte, len(pcm)+d)
	for i, v := range pcm {
		in[i] = ulaw(v)
	}
	for i := len(pcm); i < len(in); i++ {
		in[i] = ulaw(0)
	}
	out := make([]byte, len(in))
	var events []dtmf.Event
	for i := 0; i < len(in); i += 160 {
		j := min(i+160, len(in))
		events = m.G711(in[i:j], out[i:j], events)
	}
	res := make([]int16, len(pcm))
	dtmf.DecodeG711(res, out[d:], dtmf.PCMU)
	return res, m.Stats(), events
}

func ulaw(v int16) byte { return g711.EncodeUlawFrame(v) }

// wire is what a detector on the agent's line hears without masking: the
// input through G.711 µ-law, as the masked output is.
func wire(pcm []int16) []int16 {
	b := make([]byte, len(pcm))
	for i, v := range pcm {
		b[i] = ulaw(v)
	}
	out := make([]int16, len(pcm))
	dtmf.DecodeG711(out, b, dtmf.PCMU)
	return out
}

// detectors are the reference detectors, in report order.
var detectors = []string{"aggressive", "multimon-ng", "spandsp"}

// leakHits runs every reference detector over pcm.
func leakHits(t testing.TB, pcm []int16) map[string]string {
	t.Helper()
	hits := map[string]string{"aggressive": refdetect.Digits(refdetect.Aggressive(pcm))}
	sp, err := refdetect.SpanDSP(pcm)
	if err != nil {
		t.Fatal(err)
	}
	hits["spandsp"] = refdetect.Digits(sp)
	mm, err := refdetect.Multimon(pcm)
	if err != nil {
		t.Fatal(err)
	}
	hits["multimon-ng"] = refdetect.Digits(mm)
	return hits
}

func requireTools(t *testing.T) {
	refdetect.Require(t, refdetect.ToolSpanDSP, refdetect.ToolMultimon, refdetect.ToolSox)
}

// underDSRs are the digit-to-speech ratios of the under-speech and
// under-music cases, dB.
var underDSRs = []float64{10, 5, 0, -5}

// maskingCases are the cases every masking proof runs: the Q.24 edges
// (the presses a detector must reject included: other detectors read
// them), quiet tones and wide twist, and, unless -short, digits over
// speech and under speech and music.
func maskingCases(t *testing.T, dsrs ...float64) []corpus.Case {
	cs := append(corpus.Q24Cases(), corpus.MaskingCases()...)
	if !testing.Short() {
		cs = append(cs, corpus.OverSpeech(t)...)
		cs = append(cs, corpus.UnderSpeech(t, dsrs...)...)
	}
	return cs
}

// bedded reports whether a case's digits are mixed into speech or music.
// There a tone may show in a sub-block long before it can be told from
// the speech, so Late is reported, not required to be 0: the reference
// detectors decide.
func bedded(c corpus.Case) bool {
	switch c.Category {
	case corpus.CatOverSpeech, corpus.CatUnderSpeech, corpus.CatUnderMusic:
		return true
	}
	return false
}

// group is a case's row in the masking table: its category, with the
// under-speech and under-music cases split by digit-to-speech ratio.
func group(c corpus.Case) string {
	if c.Category == corpus.CatUnderSpeech || c.Category == corpus.CatUnderMusic || c.Category == corpus.CatOverSpeech {
		parts := strings.SplitN(c.Name, "/", 3)
		return parts[0] + " " + parts[1]
	}
	return c.Category
}

// leakRow sums one group of cases: digits each detector reads in the
// unmasked and in the masked signal, and tones that started late.
type leakRow struct {
	cases, sent, late int
	before, after     map[string]int
}

// proveMasked masks every case with cfg and runs the three reference
// detectors over the unmasked (the control) and the masked signal. Every
// case must be read by some detector unmasked, or its proof is void; then
// no detector may read a digit in the masked output, and no tone of a
// case without speech may start before the masker saw it.
func proveMasked(t *testing.T, cases []corpus.Case, cfg dtmf.MaskConfig) map[string]*leakRow {
	rows := map[string]*leakRow{}
	var mu sync.Mutex
	t.Run("cases", func(t *testing.T) {
		for _, c := range cases {
			t.Run(c.Name, func(t *testing.T) {
				t.Parallel()
				out, st, _ := mask(t, c.PCM, cfg)
				in, after := leakHits(t, wire(c.PCM)), leakHits(t, out)
				read := 0
				for _, got := range in {
					read += len(got)
				}
				if read == 0 {
					t.Errorf("no reference detector reads a digit in the unmasked signal: the proof is void")
				}
				for det, got := range after {
					if got != "" {
						t.Errorf("%s recovers %q from the masked output (sent %q; unmasked it read %q)", det, got, c.Sent, in[det])
					}
				}
				if st.Late != 0 && !bedded(c) {
					t.Errorf("%d tones reached the output before the masker saw them", st.Late)
				}
				mu.Lock()
				defer mu.Unlock()
				r := rows[group(c)]
				if r == nil {
					r = &leakRow{before: map[string]int{}, after: map[string]int{}}
					rows[group(c)] = r
				}
				r.cases++
				r.sent += len(c.Sent)
				r.late += int(st.Late)
				for _, det := range detectors {
					r.before[det] += len(in[det])
					r.after[det] += len(after[det])
				}
			})
		}
	})
	total := map[string]int{}
	for _, r := range rows {
		for det, n := range r.before {
			total[det] += n
		}
	}
	for _, det := range detectors {
		if total[det] == 0 {
			t.Errorf("%s found no digit in any unmasked case: the proof is void", det)
		}
	}
	return rows
}

// leakTable formats the rows: per group, digits sent, then unmasked →
// masked digits per detector, and late tones.
func leakTable(rows map[string]*leakRow) string {
	names := make([]string, 0, len(rows))
	for n := range rows {
		names = append(names, n)
	}
	sort.Strings(names)
	var b strings.Builder
	b.WriteString("| cases | digits sent | aggressive | multimon-ng | SpanDSP | late tones |\n|---|---|---|---|---|---|\n")
	for _, n := range names {
		r := rows[n]
		fmt.Fprintf(&b, "| %s (%d) | %d |", n, r.cases, r.sent)
		for _, det := range detectors {
			fmt.Fprintf(&b, " %d → **%d** |", r.before[det], r.after[det])
		}
		fmt.Fprintf(&b, " %d |\n", r.late)
	}
	return b.String()
}

// TestMaskedOutputRevealsNoDigit is invariant 2 of DESIGN.md: every Q.24
// edge case (including the tones a detector must reject, which other
// detectors may still read), tones down to -45 dBm0 per tone, twist up to
// ±10 dB, and digits over and under speech and music down to a -5 dB
// digit-to-speech ratio, masked with the default settings, reveal no digit
// to any reference detector, while unmasked each case reveals digits to
// one of them at least.
func TestMaskedOutputRevealsNoDigit(t *testing.T) {
	requireTools(t)
	rows := proveMasked(t, maskingCases(t, underDSRs...), dtmf.MaskConfig{})
	tab := leakTable(rows)
	t.Logf("digits read unmasked → masked, look-ahead %v:\n%s", dtmf.DefaultLookAhead, tab)
	writeArtifact(t, "dtmf-masking.md", tab)
}

// TestMaskModes repeats the proof for silence mode and for the shortest
// look-ahead, with speech at the two lowest digit-to-speech ratios.
func TestMaskModes(t *testing.T) {
	requireTools(t)
	for _, cfg := range []dtmf.MaskConfig{
		{Mode: dtmf.MaskSilence},
		{LookAhead: dtmf.MinLookAhead},
	} {
		t.Run(fmt.Sprintf("%v/%v", cfg.Mode, cfg.LookAhead), func(t *testing.T) {
			proveMasked(t, maskingCases(t, 0, -5), cfg)
		})
	}
}

// talkOffAlteredPct bounds the share of the talk-off set the masker
// alters, percent: the goal is 1 %, and this is what it measured (0.68 %)
// rounded up, so that a change that masks more speech shows.
const talkOffAlteredPct = 0.7

// TestTalkOff: no false digit on speech, music and synthetic signals, and
// the share of that audio the masker alters, bounded. Masking must not
// create digits the reference detectors did not already read in the input.
func TestTalkOff(t *testing.T) {
	requireTools(t)
	clips := corpus.TalkOff(t)
	var total, masked, falseDigits int64
	byKind := map[string][2]int64{}
	var report strings.Builder
	for _, c := range clips {
		out, st, events := mask(t, c.PCM, dtmf.MaskConfig{})
		det := dtmf.NewDetector(dtmf.DetectorConfig{})
		evs := det.Flush(det.Process(c.PCM, nil))
		if len(evs) != 0 || len(events) != 0 {
			falseDigits += int64(len(evs))
			t.Errorf("%s: false digits %v", c.Name, evs)
		}
		total += st.Samples
		masked += st.Masked
		k := byKind[c.Kind]
		byKind[c.Kind] = [2]int64{k[0] + st.Samples, k[1] + st.Masked}
		if st.Masked > 0 {
			fmt.Fprintf(&report, "  %s: %.2f %% altered\n", c.Name, 100*float64(st.Masked)/float64(st.Samples))
		}
		in, after := leakHits(t, c.PCM), leakHits(t, out)
		for name, got := range after {
			if len(got) > len(in[name]) {
				t.Errorf("%s: masking made %s read %q (input: %q)", c.Name, name, got, in[name])
			}
		}
	}
	pct := 100 * float64(masked) / float64(total)
	t.Logf("talk-off: %d clips, %.1f min, %d false digits, %.3f %% of the audio altered by masking",
		len(clips), float64(total)/dtmf.SampleRate/60, falseDigits, pct)
	if pct > talkOffAlteredPct {
		t.Errorf("masking altered %.3f %% of the talk-off set, more than %.2f %%", pct, talkOffAlteredPct)
	}
	for k, v := range byKind {
		t.Logf("  %s: %.1f min, %.3f %% altered", k, float64(v[0])/dtmf.SampleRate/60, 100*float64(v[1])/float64(v[0]))
	}
	t.Logf("clips with altered audio:\n%s", report.String())
}

// result is one detector's score on one category.
type result struct{ found, extra int }

// score compares what a detector reported with what it should have.
func score(got, want string) result {
	l := lcs(got, want)
	return result{found: l, extra: len(got) - l}
}

func lcs(a, b string) int {
	prev := make([]int, len(b)+1)
	cur := make([]int, len(b)+1)
	for i := 1; i <= len(a); i++ {
		for j := 1; j <= len(b); j++ {
			switch {
			case a[i-1] == b[j-1]:
				cur[j] = prev[j-1] + 1
			default:
				cur[j] = max(prev[j], cur[j-1])
			}
		}
		prev, cur = cur, prev
	}
	return prev[len(b)]
}

func ours(pcm []int16) string {
	d := dtmf.NewDetector(dtmf.DetectorConfig{})
	var b strings.Builder
	for _, e := range d.Flush(d.Process(pcm, nil)) {
		b.WriteByte(byte(e.Digit))
	}
	return b.String()
}

// TestDetectionAgainstSpanDSP builds BENCHMARKS.md's detection table: per
// Q.24 category, digits found and extra digits for ToneVault and SpanDSP on
// the same signals, and false digits on the talk-off set. ToneVault must
// find at least as many at every edge with no more extra digits, reject
// every ≤ 23 ms and ≥ 3.5 % press, and find nothing in talk-off audio.
func TestDetectionAgainstSpanDSP(t *testing.T) {
	requireTools(t)
	type row struct {
		want, sent   int
		tv, sp       result
		cases        int
		tvSent, spSt result
	}
	rows := map[string]*row{}
	for _, c := range corpus.Q24Cases() {
		r := rows[c.Category]
		if r == nil {
			r = &row{}
			rows[c.Category] = r
		}
		hits, err := refdetect.SpanDSP(c.PCM)
		if err != nil {
			t.Fatal(err)
		}
		tv, sp := ours(c.PCM), refdetect.Digits(hits)
		r.cases++
		r.want += len(c.Want)
		r.sent += len(c.Sent)
		add := func(dst *result, s result) { dst.found += s.found; dst.extra += s.extra }
		add(&r.tv, score(tv, c.Want))
		add(&r.sp, score(sp, c.Want))
		if c.Category == corpus.CatBeyond {
			add(&r.tvSent, score(tv, c.Sent))
			add(&r.spSt, score(sp, c.Sent))
		}
		if c.MustReject() && tv != "" {
			t.Errorf("%s: ToneVault reports %q, must reject", c.Name, tv)
		}
		if c.Required() && !c.MustReject() && tv != c.Want {
			t.Errorf("%s: ToneVault reports %q, want %q", c.Name, tv, c.Want)
		}
	}
	var talk [2]int
	for _, c := range corpus.TalkOff(t) {
		hits, err := refdetect.SpanDSP(c.PCM)
		if err != nil {
			t.Fatal(err)
		}
		talk[0] += len(ours(c.PCM))
		talk[1] += len(hits)
	}

	var tab strings.Builder
	tab.WriteString("| Q.24 case | requirement | digits sent | ToneVault found / extra | SpanDSP found / extra |\n|---|---|---|---|---|\n")
	need := map[string]string{
		corpus.CatFrequency: "detect ±1.5 % (and ±2.0, ±2.5 % margin)", corpus.CatLevel: "detect 0 to −25 dBm0",
		corpus.CatTwist: "detect high +4 dB, low +8 dB", corpus.CatDuration: "detect ≥ 40 ms",
		corpus.CatDropout: "one digit across ≤ 10 ms drop-out", corpus.CatPause: "two digits across a 40 ms pause",
		corpus.CatSNR: "detect at 12-18 dB SNR", corpus.CatRejectShort: "reject ≤ 23 ms",
		corpus.CatRejectDeviation: "reject ±3.5 %, ±5 %", corpus.CatBeyond: "none (twist +6/+10 dB, 30 ms)",
	}
	for _, cat := range corpus.Categories {
		r := rows[cat]
		if r == nil {
			continue
		}
		switch cat {
		case corpus.CatBeyond:
			fmt.Fprintf(&tab, "| %s | %s | %d | %d found | %d found |\n", cat, need[cat], r.sent, r.tvSent.found, r.spSt.found)
		case corpus.CatRejectShort, corpus.CatRejectDeviation:
			fmt.Fprintf(&tab, "| %s | %s | %d | %d accepted | %d accepted |\n", cat, need[cat], r.sent, r.tv.extra, r.sp.extra)
		default:
			fmt.Fprintf(&tab, "| %s | %s | %d | %d / %d | %d / %d |\n", cat, need[cat], r.sent, r.tv.found, r.tv.extra, r.sp.found, r.sp.extra)
			if r.tv.found < r.sp.found || r.tv.extra > r.sp.extra {
				t.Errorf("%s: ToneVault %d found / %d extra, SpanDSP %d / %d", cat, r.tv.found, r.tv.extra, r.sp.found, r.sp.extra)
			}
		}
	}
	fmt.Fprintf(&tab, "| talk-off set | no digit | 0 | %d false | %d false |\n", talk[0], talk[1])
	if talk[0] > talk[1] || talk[0] != 0 {
		t.Errorf("talk-off: ToneVault %d false digits, SpanDSP %d", talk[0], talk[1])
	}
	t.Logf("\n%s", tab.String())
	writeArtifact(t, "dtmf-detection.md", tab.String())
}

// writeArtifact keeps a test's report under test/artifacts for the reader.
func writeArtifact(t *testing.T, name, body string) {
	root, err := refdetect.ModuleRoot()
	if err != nil {
		t.Logf("artifact %s not written: %v", name, err)
		return
	}
	dir := filepath.Join(root, "test", "artifacts")
	if err := os.MkdirAll(dir, 0o755); err != nil {
		t.Logf("artifact %s not written: %v", name, err)
		return
	}
	if err := os.WriteFile(filepath.Join(dir, name), []byte(body), 0o644); err != nil {
		t.Logf("artifact %s not written: %v", name, err)
	}
}

// overSpeechFalseRate is the goal for digits typed over speech and music
// at 0 to +10 dB digit-to-speech ratio: at most one false digit per 50
// typed.
const overSpeechFalseRate = 1.0 / 50

// TestDigitsOverSpeech counts what the detector reports when the 16 digits
// are typed into every speech and music clip of the talk-off set, per
// digit-to-speech ratio: presses found, and false digits (a digit no press
// explains, or a second digit for one press). From 0 to +10 dB the false
// digits must stay within overSpeechFalseRate; at -5 dB they are reported.
func TestDigitsOverSpeech(t *testing.T) {
	refdetect.Require(t, refdetect.ToolSox, refdetect.ToolEspeak)
	beds := append(corpus.Speech(t), corpus.Music(t)...)
	var tab strings.Builder
	tab.WriteString("| DSR | digits typed | found | false digits | false per typed |\n|---|---|---|---|---|\n")
	for _, dsr := range []float64{10, 5, 0, -5} {
		var typed, found, wrong int
		for _, b := range beds {
			cat := corpus.CatUnderSpeech
			if b.Kind == corpus.KindMusic {
				cat = corpus.CatUnderMusic
			}
			c := corpus.DigitsOver(b, cat, dsr)
			d := dtmf.NewDetector(dtmf.DetectorConfig{})
			f, w := matchPresses(c, d.Flush(d.Process(wire(c.PCM), nil)))
			typed += len(c.Tones)
			found += f
			wrong += w
			if w > 0 && testing.Verbose() {
				t.Logf("DSR %+g dB, %s: %d false", dsr, b.Name, w)
			}
		}
		rate := float64(wrong) / float64(typed)
		per := "none"
		if wrong > 0 {
			per = fmt.Sprintf("1 in %.0f", 1/rate)
		}
		fmt.Fprintf(&tab, "| %+g dB | %d | %d (%.1f %%) | %d | %s |\n", dsr, typed, found, 100*float64(found)/float64(typed), wrong, per)
		if dsr >= 0 && rate > overSpeechFalseRate {
			t.Errorf("DSR %+g dB: %d false digits for %d typed, more than 1 in %.0f", dsr, wrong, typed, 1/overSpeechFalseRate)
		}
	}
	t.Logf("digits typed over %d speech and music clips:\n%s", len(beds), tab.String())
	writeArtifact(t, "dtmf-over-speech.md", tab.String())
}

// matchPresses pairs reported digits with the presses of c: a report
// matches an unmatched press of its digit that it overlaps (within 10 ms).
// It returns the presses found and the reports left over.
func matchPresses(c corpus.Case, evs []dtmf.Event) (found, wrong int) {
	used := make([]bool, len(c.Tones))
	for _, e := range evs {
		ok := false
		for i, p := range c.Tones {
			if !used[i] && byte(p.Digit) == byte(e.Digit) && e.Start < int64(p.End)+80 && e.End > int64(p.Start)-80 {
				used[i], ok = true, true
				found++
				break
			}
		}
		if !ok {
			wrong++
		}
	}
	return found, wrong
}

// TestMatchPresses: a press reported twice, a wrong digit and a digit far
// from any press are false; what TestDigitsOverSpeech counts can fail.
func TestMatchPresses(t *testing.T) {
	c := corpus.Case{Tones: []corpus.Span{{Digit: '1', Start: 800, End: 1440}, {Digit: '2', Start: 3000, End: 3640}}}
	ev := func(d byte, a, b int64) dtmf.Event { return dtmf.Event{Digit: dtmf.Digit(d), Start: a, End: b} }
	for _, tc := range []struct {
		evs          []dtmf.Event
		found, wrong int
	}{
		{[]dtmf.Event{ev('1', 800, 1440), ev('2', 3000, 3640)}, 2, 0},
		{[]dtmf.Event{ev('1', 800, 1100), ev('1', 1200, 1440), ev('2', 3000, 3640)}, 2, 1},
		{[]dtmf.Event{ev('3', 800, 1440)}, 0, 1},
		{[]dtmf.Event{ev('1', 2000, 2400)}, 0, 1},
	} {
		if f, w := matchPresses(c, tc.evs); f != tc.found || w != tc.wrong {
			t.Errorf("%v: found %d wrong %d, want %d and %d", tc.evs, f, w, tc.found, tc.wrong)
		}
	}
}

// TestMeasureLookAhead sweeps the look-ahead over every masking case and
// reports, per look-ahead, the digits each reference detector reads in the
// masked output and the tones that started late, with and without speech:
// the figures behind dtmf.MinLookAhead and dtmf.DefaultLookAhead.
// Measurement only (TONEVAULT_MEASURE=1): it runs the proofs once per
// look-ahead.
func TestMeasureLookAhead(t *testing.T) {
	if os.Getenv("TONEVAULT_MEASURE") != "1" {
		t.Skip("measurement only; set TONEVAULT_MEASURE=1")
	}
	requireTools(t)
	cases := maskingCases(t, underDSRs...)
	var tab strings.Builder
	tab.WriteString("| look-ahead | aggressive | multimon-ng | SpanDSP | late tones, no speech | late tones, under speech |\n|---|---|---|---|---|---|\n")
	for _, la := range []time.Duration{6, 8, 10, 12, 14, 16, 20, 30} {
		// Below dtmf.MinLookAhead the masker refuses to run; lower it in
		// dtmf/mask.go to measure there.
		if la *= time.Millisecond; la < dtmf.MinLookAhead {
			continue
		}
		var mu sync.Mutex
		leaks := map[string]int{}
		var late [2]int64
		sem := make(chan struct{}, 2)
		var wg sync.WaitGroup
		for _, c := range cases {
			wg.Add(1)
			go func() {
				defer wg.Done()
				sem <- struct{}{}
				defer func() { <-sem }()
				out, st, _ := mask(t, c.PCM, dtmf.MaskConfig{LookAhead: la})
				after := leakHits(t, out)
				mu.Lock()
				defer mu.Unlock()
				for det, got := range after {
					leaks[det] += len(got)
				}
				if bedded(c) {
					late[1] += st.Late
				} else {
					late[0] += st.Late
				}
			}()
		}
		wg.Wait()
		fmt.Fprintf(&tab, "| %v | %d | %d | %d | %d | %d |\n", la, leaks["aggressive"], leaks["multimon-ng"], leaks["spandsp"], late[0], late[1])
	}
	t.Logf("%d cases, digits read in the masked output:\n%s", len(cases), tab.String())
	writeArtifact(t, "dtmf-look-ahead.md", tab.String())
}

// TestMeasureQuietLevels reports, below the -45 dBm0 the proofs stop at,
// what each reference detector reads of the 16 digits per tone level,
// unmasked and masked: multimon-ng has no level floor.
// Measurement only (TONEVAULT_MEASURE=1).
func TestMeasureQuietLevels(t *testing.T) {
	if os.Getenv("TONEVAULT_MEASURE") != "1" {
		t.Skip("measurement only; set TONEVAULT_MEASURE=1")
	}
	requireTools(t)
	var tab strings.Builder
	tab.WriteString("| dBm0 per tone | aggressive | multimon-ng | SpanDSP |\n|---|---|---|---|\n")
	for _, lvl := range []float64{-45, -50, -55, -60, -65, -70, -75, -80, -85, -90} {
		p := corpus.DefaultParams()
		p.LevelDBm0 = lvl
		pcm := corpus.Generate(corpus.AllDigits, p)
		out, _, _ := mask(t, pcm, dtmf.MaskConfig{})
		in, after := leakHits(t, wire(pcm)), leakHits(t, out)
		fmt.Fprintf(&tab, "| %g |", lvl)
		for _, det := range detectors {
			fmt.Fprintf(&tab, " %d → %d |", len(in[det]), len(after[det]))
		}
		tab.WriteString("\n")
	}
	t.Logf("digits read unmasked → masked:\n%s", tab.String())
}
