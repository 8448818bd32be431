package corpus

import (
	"fmt"
	"math"
	"os"
	"strings"
	"testing"
	"time"

	"github.com/tonevault/tonevault/dtmf"
)

func TestToneLevel(t *testing.T) {
	for _, lvl := range []float64{0, -10, -25} {
		got := LevelDBm0(Tone(1000, lvl, 1000)[400:7600]) // skip the fades
		if math.Abs(got-lvl) > 0.05 {
			t.Errorf("Tone at %g dBm0 measures %.2f dBm0", lvl, got)
		}
	}
}

func TestPressLevelsAndTwist(t *testing.T) {
	p := DefaultParams()
	p.LevelDBm0, p.TwistDB, p.OnMs, p.OffMs = -12, 4, 1000, 0
	pcm := Signal{}.Render([]Press{p.Press('1')})
	// Both tones together: 10log10(10^-1.2 + 10^-0.8) dBm0.
	want := 10 * math.Log10(math.Pow(10, -1.2)+math.Pow(10, -0.8))
	if got := LevelDBm0(pcm); math.Abs(got-want) > 0.05 {
		t.Errorf("pair level %.2f dBm0, want %.2f", got, want)
	}
	pr := p.Press('1')
	if pr.LowDBm0 != -12 || pr.HighDBm0 != -8 {
		t.Errorf("twist +4 from -12: low %g high %g", pr.LowDBm0, pr.HighDBm0)
	}
}

// zeroCrossFreq estimates a single tone's frequency.
func zeroCrossFreq(pcm []int16) float64 {
	n := 0
	for i := 1; i < len(pcm); i++ {
		if (pcm[i-1] < 0) != (pcm[i] < 0) {
			n++
		}
	}
	return float64(n) / 2 / (float64(len(pcm)) / SampleRate)
}

func TestDeviation(t *testing.T) {
	for _, dev := range []float64{-5, -1.5, 0, 3.5} {
		pr := Press{Digit: '1', LowDBm0: -10, HighDBm0: -300, LowDevPct: dev, OnMs: 2000}
		got := zeroCrossFreq(Signal{}.Render([]Press{pr}))
		want := 697 * (1 + dev/100)
		if math.Abs(got-want) > 1 {
			t.Errorf("low tone at %+g %%: %.1f Hz, want %.1f", dev, got, want)
		}
		pr = Press{Digit: 'D', LowDBm0: -300, HighDBm0: -10, HighDevPct: dev, OnMs: 2000}
		got = zeroCrossFreq(Signal{}.Render([]Press{pr}))
		want = 1633 * (1 + dev/100)
		if math.Abs(got-want) > 1 {
			t.Errorf("high tone at %+g %%: %.1f Hz, want %.1f", dev, got, want)
		}
	}
}

func TestSNR(t *testing.T) {
	p := DefaultParams()
	p.OnMs, p.OffMs = 4000, 0
	clean := Signal{Seed: 7}.Render(p.Presses("5"))
	noisy := Signal{Seed: 7, Noise: true, SNRdB: 12}.Render(p.Presses("5"))
	var ps, pn float64
	for i := range clean {
		ps += float64(clean[i]) * float64(clean[i])
		d := float64(noisy[i]) - float64(clean[i])
		pn += d * d
	}
	if got := 10 * math.Log10(ps/pn); math.Abs(got-12) > 0.2 {
		t.Errorf("SNR %.2f dB, want 12", got)
	}
}

func TestDropoutAndSpans(t *testing.T) {
	p := DefaultParams()
	p.OnMs, p.Dropouts = 80, []Dropout{{35, 10}}
	pcm, spans := DefaultSignal().RenderSpans(p.Presses("19"))
	if len(spans) != 2 || spans[0].Start != 800 || spans[0].End != 800+640 || spans[1].Start != 800+640+800 {
		t.Fatalf("spans %+v", spans)
	}
	for i := 800 + 280; i < 800+360; i++ {
		if pcm[i] != 0 {
			t.Fatalf("sample %d inside the drop-out is %d", i, pcm[i])
		}
	}
	if pcm[800+279] == 0 && pcm[800+278] == 0 || pcm[800+360] == 0 && pcm[800+361] == 0 {
		t.Errorf("tone missing around the drop-out")
	}
	if len(pcm) != 800+2*(640+800)+800 {
		t.Errorf("length %d", len(pcm))
	}
}

func TestDeterministic(t *testing.T) {
	s := Signal{Noise: true, SNRdB: 12, Seed: 3}
	a := s.Render(DefaultParams().Presses("123"))
	b := s.Render(DefaultParams().Presses("123"))
	s.Seed = 4
	c := s.Render(DefaultParams().Presses("123"))
	if !equal(a, b) {
		t.Error("same seed, different signal")
	}
	if equal(a, c) {
		t.Error("different seed, same signal")
	}
	if !equal(Q24Cases()[5].PCM, Q24Cases()[5].PCM) {
		t.Error("Q24Cases not deterministic")
	}
}

func equal(a, b []int16) bool {
	if len(a) != len(b) {
		return false
	}
	for i := range a {
		if a[i] != b[i] {
			return false
		}
	}
	return true
}

func TestQ24Cases(t *testing.T) {
	cs := Q24Cases()
	names := map[string]bool{}
	cats := map[string]int{}
	for _, c := range cs {
		if names[c.Name] {
			t.Errorf("duplicate case %s", c.Name)
		}
		names[c.Name] = true
		cats[c.Category]++
		if !strings.HasPrefix(c.Name, c.Category+"/") {
			t.Errorf("%s: name does not start with its category %s", c.Name, c.Category)
		}
		if len(c.Sent) != len(c.Tones) {
			t.Errorf("%s: %d digits sent, %d spans", c.Name, len(c.Sent), len(c.Tones))
		}
		for _, d := range AllDigits {
			if !strings.ContainsRune(c.Sent, d) {
				t.Errorf("%s: digit %c missing", c.Name, d)
			}
		}
		reject := c.Category == CatRejectShort || c.Category == CatRejectDeviation
		if reject != (c.Want == "") || !reject && c.Want != c.Sent {
			t.Errorf("%s: want %q, sent %q", c.Name, c.Want, c.Sent)
		}
		if c.MustReject() != reject || c.Required() != (c.Category != CatBeyond) {
			t.Errorf("%s: Required/MustReject wrong", c.Name)
		}
		for i, sp := range c.Tones {
			if sp.Start < 0 || sp.End > len(c.PCM) || sp.End <= sp.Start || byte(sp.Digit) != c.Sent[i] {
				t.Errorf("%s: bad span %+v", c.Name, sp)
			}
			if !dtmf.Digit(sp.Digit).Valid() {
				t.Errorf("%s: invalid digit %v", c.Name, sp.Digit)
			}
		}
	}
	for _, cat := range Categories {
		if cats[cat] == 0 {
			t.Errorf("no case in category %s", cat)
		}
	}
	if len(cats) != len(Categories) {
		t.Errorf("categories %v, want %v", cats, Categories)
	}
	// The edges of DESIGN.md are all there.
	for _, n := range []string{
		"frequency/+1.5%/both", "frequency/-1.5%/high", "frequency/+2.0%/both", "frequency/-2.5%/low",
		"reject-deviation/+3.5%/both", "reject-deviation/-5.0%/low",
		"level/0dBm0", "level/-25dBm0", "twist/high+4dB/low-12dBm0,high-8dBm0", "twist/low+8dB/low-6dBm0,high-14dBm0",
		"beyond/high+6dB/low-13dBm0,high-7dBm0", "beyond/low+10dB/low-5dBm0,high-15dBm0",
		"duration/40ms", "reject-short/23ms", "reject-short/20ms", "beyond/30ms",
		"dropout/60ms-tone/10ms@25ms", "pause/40ms/50ms-tones", "snr/12dB/-10dBm0",
	} {
		if !names[n] {
			t.Errorf("missing case %s", n)
		}
	}
	t.Logf("%d cases, %v", len(cs), cats)
}

func TestSynthetic(t *testing.T) {
	clips := Synthetic()
	if len(clips) < 40 {
		t.Errorf("only %d synthetic clips", len(clips))
	}
	for _, c := range clips {
		if c.Kind != KindSynthetic || len(c.PCM) == 0 {
			t.Errorf("%s: kind %s, %d samples", c.Name, c.Kind, len(c.PCM))
		}
		if lvl := LevelDBm0(c.PCM); lvl > 0 || lvl < -30 {
			t.Errorf("%s: level %.1f dBm0", c.Name, lvl)
		}
	}
}

func checkClips(t *testing.T, clips []Clip) {
	t.Helper()
	names := map[string]bool{}
	for _, c := range clips {
		if names[c.Name] {
			t.Errorf("duplicate clip %s", c.Name)
		}
		names[c.Name] = true
		if c.Duration() < 300*time.Millisecond {
			t.Errorf("%s: only %v", c.Name, c.Duration())
		}
		if lvl := ActiveLevelDBm0(c.PCM); lvl < -45 || lvl > 0 {
			t.Errorf("%s: active level %.1f dBm0", c.Name, lvl)
		}
	}
}

func TestTalkOff(t *testing.T) {
	start := time.Now()
	clips := TalkOff(t)
	t.Logf("talk-off: %d clips, %v of audio, in %v; speech %+v; music %+v", len(clips),
		TotalDuration(clips).Round(time.Second), time.Since(start).Round(time.Millisecond), LastBuild("speech"), LastBuild("music"))
	checkClips(t, clips)
	kinds := map[string]time.Duration{}
	langs := map[string]bool{}
	for _, c := range clips {
		kinds[c.Kind] += c.Duration()
		if rest, ok := strings.CutPrefix(c.Name, "espeak/"); ok {
			v := strings.SplitN(rest, "/", 2)[0]
			langs[strings.SplitN(v, "+", 2)[0]] = true
		}
	}
	if len(langs) < 15 {
		t.Errorf("espeak languages: %d (%v), want at least 15", len(langs), langs)
	}
	if kinds[KindSpeech] < 20*time.Minute || kinds[KindMusic] < 10*time.Minute {
		t.Errorf("too little audio: %v", kinds)
	}
	for _, want := range []string{"asterisk/en/digits", "asterisk/en/letters", "moh/macroform-cold_day", "espeak/cmn/s160", "espeak/en+whisper/"} {
		found := false
		for _, c := range clips {
			found = found || strings.HasPrefix(c.Name, want)
		}
		if !found {
			t.Errorf("no clip %s*", want)
		}
	}
	// Callers get copies.
	again := Speech(t)
	again[0].PCM[0]++
	if third := Speech(t); third[0].PCM[0] == again[0].PCM[0] {
		t.Error("Speech returned shared PCM")
	}
}

// TestTalkOffCache measures a cold and a warm build in a fresh cache
// (TONEVAULT_MEASURE=1 only: the cold build runs espeak-ng and sox on
// everything).
func TestTalkOffCache(t *testing.T) {
	if os.Getenv("TONEVAULT_MEASURE") != "1" {
		t.Skip("measurement only; set TONEVAULT_MEASURE=1")
	}
	t.Setenv(EnvCacheDir, t.TempDir())
	reset := func() {
		memoMu.Lock()
		memo = map[string][]Clip{}
		memoMu.Unlock()
	}
	reset()
	start := time.Now()
	clips := append(Speech(t), Music(t)...)
	cold := time.Since(start)
	reset()
	start = time.Now()
	clips2 := append(Speech(t), Music(t)...)
	warm := time.Since(start)
	if len(clips) != len(clips2) || !equal(clips[3].PCM, clips2[3].PCM) {
		t.Error("warm build differs from cold build")
	}
	if LastBuild("speech").Built != 0 || LastBuild("music").Built != 0 {
		t.Errorf("warm build rebuilt clips: %+v %+v", LastBuild("speech"), LastBuild("music"))
	}
	t.Logf("speech+music: %d clips, %v of audio: cold %v, warm %v", len(clips),
		TotalDuration(clips).Round(time.Second), cold.Round(time.Millisecond), warm.Round(time.Millisecond))
}

func TestOverSpeech(t *testing.T) {
	cs := OverSpeech(t)
	if len(cs) != 2*len(overSpeechBeds) {
		t.Errorf("%d cases", len(cs))
	}
	for _, c := range cs {
		if c.Want != AllDigits || len(c.Tones) != 16 || c.Category != CatOverSpeech {
			t.Errorf("%s: want %q, %d tones", c.Name, c.Want, len(c.Tones))
		}
		if c.Tones[15].End > len(c.PCM) {
			t.Errorf("%s: tones past the end", c.Name)
		}
		// The speech between the tones sits near -20 dBm0.
		gap := c.PCM[c.Tones[0].End+200 : c.Tones[1].Start-200]
		if lvl := LevelDBm0(gap); lvl > -10 {
			t.Errorf("%s: speech between tones at %.1f dBm0", c.Name, lvl)
		}
	}
}

func TestMaskingCases(t *testing.T) {
	cs := MaskingCases()
	names := map[string]bool{}
	for _, c := range cs {
		if names[c.Name] {
			t.Errorf("duplicate case %s", c.Name)
		}
		names[c.Name] = true
		if c.Required() || c.Want != c.Sent || c.Sent != AllDigits || len(c.Tones) != 16 {
			t.Errorf("%s: required %v, want %q, sent %q, %d tones", c.Name, c.Required(), c.Want, c.Sent, len(c.Tones))
		}
	}
	for _, n := range []string{"quiet/-45dBm0", "quiet/-45dBm0/40ms", "wide-twist/high+10dB/low-40dBm0,high-30dBm0", "wide-twist/low+10dB/low0dBm0,high-10dBm0"} {
		if !names[n] {
			t.Errorf("missing case %s", n)
		}
	}
	// The quietest press holds two tones at -45 dBm0: -42 dBm0 together.
	for _, c := range cs {
		if c.Name != "quiet/-45dBm0" {
			continue
		}
		sp := c.Tones[3]
		if got := LevelDBm0(c.PCM[sp.Start:sp.End]); math.Abs(got-(-45+10*math.Log10(2))) > 0.2 {
			t.Errorf("%s: press at %.2f dBm0", c.Name, got)
		}
	}
}

func TestDigitsOver(t *testing.T) {
	// A bed whose active level is known: a steady 300 Hz tone at -14 dBm0,
	// which DigitsOver brings to BedLevelDBm0.
	bed := Clip{Name: "hum", Kind: KindSpeech, PCM: Tone(300, -14, 3000)}
	for _, dsr := range []float64{-5, 0, 10} {
		c := DigitsOver(bed, CatUnderSpeech, dsr)
		if c.Name != fmt.Sprintf("under-speech/%+gdB/hum", dsr) || c.Sent != AllDigits || len(c.Tones) != 16 {
			t.Fatalf("case %s, sent %q, %d tones", c.Name, c.Sent, len(c.Tones))
		}
		scaled := loop(Scale(bed.PCM, BedLevelDBm0-ActiveLevelDBm0(bed.PCM)), len(c.PCM))
		sp := c.Tones[5]
		tones := make([]int16, sp.End-sp.Start)
		for i := range tones {
			tones[i] = c.PCM[sp.Start+i] - scaled[sp.Start+i]
		}
		if got := LevelDBm0(tones) - BedLevelDBm0; math.Abs(got-dsr) > 0.2 {
			t.Errorf("DSR %+g dB: press over bed measures %+.2f dB", dsr, got)
		}
		if n := sp.End - sp.Start; n != ms(underOnMs[5%len(underOnMs)]) {
			t.Errorf("press 5 lasts %d samples", n)
		}
	}
}

func TestUnderSpeech(t *testing.T) {
	cs := UnderSpeech(t, 0, -5)
	if len(cs) != 2*len(underBeds) {
		t.Fatalf("%d cases", len(cs))
	}
	cats := map[string]int{}
	for _, c := range cs {
		cats[c.Category]++
		if c.Required() || !strings.HasPrefix(c.Name, c.Category+"/") {
			t.Errorf("%s: category %s, required %v", c.Name, c.Category, c.Required())
		}
	}
	if cats[CatUnderSpeech] != 2*len(overSpeechBeds) || cats[CatUnderMusic] != 6 {
		t.Errorf("categories %v", cats)
	}
}
