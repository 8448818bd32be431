package refdetect_test

import (
	"fmt"
	"math"
	"os"
	"sort"
	"strings"
	"testing"
	"time"

	"github.com/tonevault/tonevault/test/corpus"
	"github.com/tonevault/tonevault/test/refdetect"
)

// EnvMeasure turns on the measurement tests, which print tables for
// BENCHMARKS.md instead of asserting: TONEVAULT_MEASURE=1 go test -run
// Measure -v ./test/refdetect/
const envMeasure = "TONEVAULT_MEASURE"

func needMeasure(t *testing.T) {
	if os.Getenv(envMeasure) != "1" {
		t.Skipf("measurement only; set %s=1", envMeasure)
	}
}

// lcs is the length of the longest common subsequence of a and b: the
// digits of want a detector recovered in order.
func lcs(a, b string) int {
	prev := make([]int, len(b)+1)
	cur := make([]int, len(b)+1)
	for i := 1; i <= len(a); i++ {
		for j := 1; j <= len(b); j++ {
			switch {
			case a[i-1] == b[j-1]:
				cur[j] = prev[j-1] + 1
			case prev[j] >= cur[j-1]:
				cur[j] = prev[j]
			default:
				cur[j] = cur[j-1]
			}
		}
		prev, cur = cur, prev
	}
	return prev[len(b)]
}

type tally struct{ cases, sent, want, found, extra int }

// score: found = digits of Want recovered in order; extra = every other
// hit (false, split or duplicated digits).
func score(c corpus.Case, got string) (found, extra int) {
	found = lcs(c.Want, got)
	return found, len(got) - found
}

// TestMeasureQ24 prints, per category, how many digits each reference
// detector finds on Q24Cases.
func TestMeasureQ24(t *testing.T) {
	needMeasure(t)
	cases := corpus.Q24Cases()
	var dets []detector
	for _, d := range detectors {
		if refdetect.Available(d.tools...) == nil {
			dets = append(dets, d)
		}
	}
	res := map[string]map[string]*tally{}
	var detail strings.Builder
	for _, d := range dets {
		res[d.name] = map[string]*tally{}
		start := time.Now()
		var audio time.Duration
		for _, c := range cases {
			hits, err := d.run(c.PCM)
			if err != nil {
				t.Fatal(err)
			}
			audio += time.Duration(len(c.PCM)) * time.Second / 8000
			got := refdetect.Digits(hits)
			f, x := score(c, got)
			tl := res[d.name][c.Category]
			if tl == nil {
				tl = &tally{}
				res[d.name][c.Category] = tl
			}
			tl.cases++
			tl.sent += len(c.Sent)
			tl.want += len(c.Want)
			tl.found += f
			tl.extra += x
			if f != len(c.Want) || x != 0 {
				fmt.Fprintf(&detail, "  %-10s %-48s want %2d found %2d extra %2d  got %q\n", d.name, c.Name, len(c.Want), f, x, got)
			}
		}
		t.Logf("%s: %v of audio in %v", d.name, audio.Round(time.Millisecond), time.Since(start).Round(time.Millisecond))
	}
	var b strings.Builder
	fmt.Fprintf(&b, "\n%-18s %5s %5s %5s", "category", "cases", "sent", "want")
	for _, d := range dets {
		fmt.Fprintf(&b, " | %-18s", d.name+" found/extra")
	}
	b.WriteString("\n")
	for _, cat := range corpus.Categories {
		first := res[dets[0].name][cat]
		if first == nil {
			continue
		}
		fmt.Fprintf(&b, "%-18s %5d %5d %5d", cat, first.cases, first.sent, first.want)
		for _, d := range dets {
			tl := res[d.name][cat]
			fmt.Fprintf(&b, " | %8d / %-7d", tl.found, tl.extra)
		}
		b.WriteString("\n")
	}
	t.Log(b.String())
	t.Log("cases not matching Want exactly:\n" + detail.String())
}

// TestMeasureTalkOff prints each reference detector's hits on the talk-off
// set and on OverSpeech.
func TestMeasureTalkOff(t *testing.T) {
	needMeasure(t)
	start := time.Now()
	clips := corpus.TalkOff(t)
	t.Logf("talk-off set: %d clips, %v of audio, loaded in %v (speech build %+v, music build %+v)",
		len(clips), corpus.TotalDuration(clips).Round(time.Second), time.Since(start).Round(time.Millisecond),
		corpus.LastBuild("speech"), corpus.LastBuild("music"))
	for _, d := range detectors {
		if refdetect.Available(d.tools...) != nil {
			continue
		}
		start := time.Now()
		perKind := map[string]int{}
		var names []string
		for _, c := range clips {
			hits, err := d.run(c.PCM)
			if err != nil {
				t.Fatal(err)
			}
			perKind[c.Kind] += len(hits)
			if len(hits) > 0 {
				names = append(names, fmt.Sprintf("%s:%s", c.Name, refdetect.Digits(hits)))
			}
		}
		sort.Strings(names)
		t.Logf("%-10s speech %d, music %d, synthetic %d false digits (%v); clips: %s", d.name,
			perKind[corpus.KindSpeech], perKind[corpus.KindMusic], perKind[corpus.KindSynthetic],
			time.Since(start).Round(time.Millisecond), strings.Join(names, " "))
	}
	for _, d := range detectors {
		if refdetect.Available(d.tools...) != nil {
			continue
		}
		var line strings.Builder
		for _, c := range corpus.OverSpeech(t) {
			hits, err := d.run(c.PCM)
			if err != nil {
				t.Fatal(err)
			}
			f, x := score(c, refdetect.Digits(hits))
			fmt.Fprintf(&line, "\n    %-50s found %2d/%d extra %d", c.Name, f, len(c.Want), x)
		}
		t.Logf("%s over speech:%s", d.name, line.String())
	}
}

// TestAggressiveCalibration prints the data DefaultAggressive.MinShare was
// chosen from: the lowest best-window share over the presses of each Q.24
// category, and how many talk-off windows reach each share.
func TestAggressiveCalibration(t *testing.T) {
	needMeasure(t)
	cfg := refdetect.DefaultAggressive
	guard := func(w refdetect.Window) bool {
		return w.Low >= cfg.FloorDBm0 && w.High >= cfg.FloorDBm0 && math.Abs(w.Low-w.High) <= cfg.MaxLevelDiffDB
	}
	worst := map[string]float64{}
	for _, c := range corpus.Q24Cases() {
		ws := cfg.Windows(c.PCM)
		for _, sp := range c.Tones {
			best := 0.0
			for _, w := range ws {
				if w.Start >= int64(sp.Start) && w.Start+int64(cfg.Window) <= int64(sp.End) && guard(w) {
					best = max(best, w.Share)
				}
			}
			if v, ok := worst[c.Category]; !ok || best < v {
				worst[c.Category] = best
			}
		}
	}
	var b strings.Builder
	b.WriteString("\nlowest best-window share per press:\n")
	for _, cat := range corpus.Categories {
		fmt.Fprintf(&b, "  %-18s %.3f\n", cat, worst[cat])
	}
	clips := corpus.TalkOff(t)
	th := []float64{0.7, 0.8, 0.85, 0.88, 0.9, 0.93, 0.95}
	fmt.Fprintf(&b, "talk-off windows passing floor and level guard, by share (of %v audio):\n", corpus.TotalDuration(clips).Round(time.Second))
	for _, kind := range []string{corpus.KindSpeech, corpus.KindMusic, corpus.KindSynthetic} {
		counts := make([]int, len(th))
		total := 0
		for _, c := range clips {
			if c.Kind != kind {
				continue
			}
			for _, w := range cfg.Windows(c.PCM) {
				total++
				if !guard(w) {
					continue
				}
				for i, x := range th {
					if w.Share >= x {
						counts[i]++
					}
				}
			}
		}
		fmt.Fprintf(&b, "  %-9s (%d windows)", kind, total)
		for i, x := range th {
			fmt.Fprintf(&b, "  ≥%.2f:%d", x, counts[i])
		}
		b.WriteString("\n")
	}
	t.Log(b.String())
}
