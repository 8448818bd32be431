package main

import (
	"bytes"
	"encoding/json"
	"fmt"
	"math"
	"os"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/tonevault/tonevault/dtmf"
	"github.com/tonevault/tonevault/dtmf/wav"
)

// The test recordings: a quiet non-DTMF background on every channel and,
// on one channel, the digits 4, 1, # at -10 dBm0 per tone, 80 ms on and
// 80 ms off, the first at 200 ms.
const (
	leadMS, onMS, offMS, tailMS = 200, 80, 80, 300
	testDigits                  = "41#"
)

var digitHz = map[byte][2]float64{
	'1': {697, 1209}, '2': {697, 1336}, '3': {697, 1477}, 'A': {697, 1633},
	'4': {770, 1209}, '5': {770, 1336}, '6': {770, 1477}, 'B': {770, 1633},
	'7': {852, 1209}, '8': {852, 1336}, '9': {852, 1477}, 'C': {852, 1633},
	'*': {941, 1209}, '0': {941, 1336}, '#': {941, 1477}, 'D': {941, 1633},
}

// toneMS is where digit i starts.
func toneMS(i int) int { return leadMS + i*(onMS+offMS) }

// genPCM makes the channels of a test recording at rate: digits on
// channel toneCh (-1: none), background everywhere.
func genPCM(rate, channels, toneCh int, digits string) [][]int16 {
	n := (toneMS(len(digits)) + tailMS) * rate / 1000
	out := make([][]int16, channels)
	tone, bg := dtmf.PeakForDBm0(-10), dtmf.PeakForDBm0(-35)
	for c := range out {
		s := make([]float64, n)
		bgHz := []float64{440, 330, 250, 500}[c%4]
		for i := range s {
			s[i] = bg * math.Sin(2*math.Pi*bgHz*float64(i)/float64(rate))
		}
		if c == toneCh {
			for k := range len(digits) {
				hz := digitHz[digits[k]]
				from, to := toneMS(k)*rate/1000, (toneMS(k)+onMS)*rate/1000
				for i := from; i < to; i++ {
					t := float64(i-from) / float64(rate)
					s[i] += tone * (math.Sin(2*math.Pi*hz[0]*t) + math.Sin(2*math.Pi*hz[1]*t))
				}
			}
		}
		out[c] = make([]int16, n)
		for i, v := range s {
			out[c][i] = int16(math.Round(v))
		}
	}
	return out
}

func writeTestWAV(t testing.TB, dir, name string, f wav.Format, pcm [][]int16) string {
	t.Helper()
	var buf bytes.Buffer
	if err := wav.Write(&buf, f, pcm); err != nil {
		t.Fatal(err)
	}
	p := filepath.Join(dir, name)
	if err := os.WriteFile(p, buf.Bytes(), 0o640); err != nil {
		t.Fatal(err)
	}
	return p
}

func runCLI(args ...string) (code int, stdout, stderr string) {
	var o, e bytes.Buffer
	code = run(args, &o, &e)
	return code, o.String(), e.String()
}

var extPCM48 = wav.Format{Tag: wav.TagExtensible, Encoding: wav.PCM, Channels: 2, Rate: 48000, Bits: 16, ValidBits: 16, ChannelMask: 3}

// testFormats is every supported encoding, mono and stereo, 8 kHz and
// above; toneCh is the channel carrying the digits.
var testFormats = []struct {
	name   string
	f      wav.Format
	toneCh int
}{
	{"pcm-8k-mono", wav.NewFormat(wav.PCM, 8000, 1), 0},
	{"pcm-44k-mono", wav.NewFormat(wav.PCM, 44100, 1), 0},
	{"ulaw-8k-mono", wav.NewFormat(wav.ULaw, 8000, 1), 0},
	{"alaw-8k-mono", wav.NewFormat(wav.ALaw, 8000, 1), 0},
	{"ulaw-44k-mono", wav.NewFormat(wav.ULaw, 44100, 1), 0},
	{"pcm-8k-stereo-right", wav.NewFormat(wav.PCM, 8000, 2), 1},
	{"pcm-44k-stereo-left", wav.NewFormat(wav.PCM, 44100, 2), 0},
	{"ulaw-8k-stereo-right", wav.NewFormat(wav.ULaw, 8000, 2), 1},
	{"alaw-44k-stereo-right", wav.NewFormat(wav.ALaw, 44100, 2), 1},
	{"ext-pcm-48k-stereo-left", extPCM48, 0},
	{"alaw-16k-mono", wav.NewFormat(wav.ALaw, 16000, 1), 0},
	{"pcm-11k-mono", wav.NewFormat(wav.PCM, 11025, 1), 0},
}

var shortLine = regexp.MustCompile(`^([0-9*#A-D]) ([0-9]+)$`)

// checkHits compares scan lines (digit, start) with the digits generated,
// allowing the detector 10 ms on the start.
func checkHits(t *testing.T, got [][2]string) {
	t.Helper()
	if len(got) != len(testDigits) {
		t.Fatalf("got %d digits %v, want %q", len(got), got, testDigits)
	}
	for i, g := range got {
		ms, _ := strconv.Atoi(g[1])
		if g[0] != testDigits[i:i+1] || ms < toneMS(i)-10 || ms > toneMS(i)+10 {
			t.Errorf("digit %d: %s at %s ms, want %c at %d ms", i, g[0], g[1], testDigits[i], toneMS(i))
		}
	}
}

func TestScanFormats(t *testing.T) {
	dir := t.TempDir()
	for _, tc := range testFormats {
		t.Run(tc.name, func(t *testing.T) {
			p := writeTestWAV(t, dir, tc.name+".wav", tc.f, genPCM(tc.f.Rate, tc.f.Channels, tc.toneCh, testDigits))
			code, out, errs := runCLI("dtmf", "scan", p)
			if code != 1 || errs != "" {
				t.Fatalf("exit %d, stderr %q", code, errs)
			}
			var hits [][2]string
			for _, line := range strings.Split(strings.TrimSuffix(out, "\n"), "\n") {
				if tc.f.Channels == 1 {
					m := shortLine.FindStringSubmatch(line)
					if m == nil {
						t.Fatalf("line %q is not <digit> <start_ms>", line)
					}
					hits = append(hits, [2]string{m[1], m[2]})
					continue
				}
				want := fmt.Sprintf("%s:%d ", p, tc.toneCh+1)
				rest, ok := strings.CutPrefix(line, want)
				m := shortLine.FindStringSubmatch(rest)
				if !ok || m == nil {
					t.Fatalf("line %q is not %s<digit> <start_ms>", line, want)
				}
				hits = append(hits, [2]string{m[1], m[2]})
			}
			checkHits(t, hits)
		})
	}
}

func TestScanJSON(t *testing.T) {
	dir := t.TempDir()
	p := writeTestWAV(t, dir, "stereo.wav", wav.NewFormat(wav.ULaw, 8000, 2), genPCM(8000, 2, 1, testDigits))
	for _, args := range [][]string{{"--json", p}, {p, "--json"}, {"-json", "--", p}} {
		code, out, errs := runCLI(append([]string{"dtmf", "scan"}, args...)...)
		if code != 1 || errs != "" {
			t.Fatalf("%v: exit %d, stderr %q", args, code, errs)
		}
		var hits [][2]string
		for _, line := range strings.Split(strings.TrimSuffix(out, "\n"), "\n") {
			var h struct {
				File    *string
				Channel *int
				Digit   *string
				StartMS *int64 `json:"start_ms"`
				EndMS   *int64 `json:"end_ms"`
			}
			dec := json.NewDecoder(strings.NewReader(line))
			dec.DisallowUnknownFields()
			if err := dec.Decode(&h); err != nil {
				t.Fatalf("line %q: %v", line, err)
			}
			if h.File == nil || h.Channel == nil || h.Digit == nil || h.StartMS == nil || h.EndMS == nil {
				t.Fatalf("line %q lacks a field", line)
			}
			if *h.File != p || *h.Channel != 2 {
				t.Errorf("line %q: want file %s channel 2", line, p)
			}
			if d := *h.EndMS - *h.StartMS; d < onMS-15 || d > onMS+15 {
				t.Errorf("line %q: %d ms long, want ≈%d", line, d, onMS)
			}
			hits = append(hits, [2]string{*h.Digit, strconv.FormatInt(*h.StartMS, 10)})
		}
		checkHits(t, hits)
	}
}

func TestScanExitCodes(t *testing.T) {
	dir := t.TempDir()
	clean := writeTestWAV(t, dir, "clean.wav", wav.NewFormat(wav.PCM, 8000, 1), genPCM(8000, 1, -1, testDigits))
	cleanStereo := writeTestWAV(t, dir, "clean2.wav", wav.NewFormat(wav.ALaw, 44100, 2), genPCM(44100, 2, -1, testDigits))
	dirty := writeTestWAV(t, dir, "dirty.wav", wav.NewFormat(wav.PCM, 8000, 1), genPCM(8000, 1, 0, testDigits))
	empty := writeTestWAV(t, dir, "empty.wav", wav.NewFormat(wav.PCM, 8000, 1), [][]int16{{}})

	text := filepath.Join(dir, "notes.txt")
	os.WriteFile(text, []byte("card number read out on the call\n"), 0o644)
	whole, _ := os.ReadFile(dirty)
	truncated := filepath.Join(dir, "truncated.wav")
	os.WriteFile(truncated, whole[:len(whole)/2], 0o644)
	// A 32-bit float WAV, by hand.
	float := filepath.Join(dir, "float.wav")
	fb := []byte("RIFF\x2c\x00\x00\x00WAVEfmt \x10\x00\x00\x00\x03\x00\x01\x00\x40\x1f\x00\x00\x00\x7d\x00\x00\x04\x00\x20\x00data\x08\x00\x00\x00\x00\x00\x00\x00\x00\x00\x00\x00")
	os.WriteFile(float, fb, 0o644)
	missing := filepath.Join(dir, "missing.wav")

	for _, tc := range []struct {
		name     string
		args     []string
		code     int
		stdout   string   // exact, with FILE for the dirty file's name
		stderr   []string // substrings, in order
		noStderr bool
	}{
		{"clean", []string{clean}, 0, "", nil, true},
		{"clean stereo", []string{cleanStereo}, 0, "", nil, true},
		{"empty audio", []string{empty}, 0, "", nil, true},
		{"clean files", []string{clean, cleanStereo, empty}, 0, "", nil, true},
		{"text", []string{text}, 2, "", []string{"tonevault dtmf scan: " + text + ": not a WAV file: no RIFF/WAVE header\n"}, false},
		{"truncated", []string{truncated}, 2, "", []string{truncated + `: truncated WAV file: "data" chunk declares`}, false},
		{"float", []string{float}, 2, "", []string{float + ": unsupported encoding: IEEE float 32-bit (format 3); ToneVault reads 16-bit PCM, G.711 µ-law and A-law\n"}, false},
		{"missing", []string{missing}, 2, "", []string{missing + ": cannot open: no such file\n"}, false},
		{"directory", []string{dir}, 2, "", []string{dir + ": cannot read: is a directory\n"}, false},
		// Errors do not stop the scan: later files are still reported.
		{"errors then digits", []string{missing, text, dirty, float, clean}, 2, "FILE:1 4 \nFILE:1 1 \nFILE:1 # \n",
			[]string{missing + ": cannot open", text + ": not a WAV", float + ": unsupported encoding"}, false},
		{"two files", []string{clean, dirty}, 1, "FILE:1 4 \nFILE:1 1 \nFILE:1 # \n", nil, true},
		{"option terminator", []string{"--", "--json"}, 2, "", []string{"--json: cannot open"}, false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			code, out, errs := runCLI(append([]string{"dtmf", "scan"}, tc.args...)...)
			if code != tc.code {
				t.Errorf("exit %d, want %d (stderr %q)", code, tc.code, errs)
			}
			// Times vary by a few ms: compare lines up to the time.
			var trimmed strings.Builder
			for _, line := range strings.SplitAfter(out, "\n") {
				if i := strings.LastIndexByte(line, ' '); i >= 0 {
					line = line[:i+1] + "\n"
				}
				trimmed.WriteString(line)
			}
			if want := strings.ReplaceAll(tc.stdout, "FILE", dirty); trimmed.String() != want {
				t.Errorf("stdout %q, want %q", out, want)
			}
			if tc.noStderr && errs != "" {
				t.Errorf("stderr %q", errs)
			}
			rest := errs
			for _, s := range tc.stderr {
				i := strings.Index(rest, s)
				if i < 0 {
					t.Fatalf("stderr %q lacks %q", errs, s)
				}
				rest = rest[i+len(s):]
			}
		})
	}
}

func TestDTMFUsage(t *testing.T) {
	for _, tc := range []struct {
		args     []string
		code     int
		out, err string // substrings; "" means must be empty
	}{
		{[]string{"dtmf", "scan", "--help"}, 0, "Usage: tonevault dtmf scan [--json] FILE...", ""},
		{[]string{"dtmf", "scan", "-h"}, 0, "<file>:<channel> <digit> <start_ms>", ""},
		{[]string{"dtmf", "mask", "--help"}, 0, "Usage: tonevault dtmf mask [--mode tone|silence] IN.wav OUT.wav", ""},
		{[]string{"dtmf", "mask", "x.wav", "-help"}, 0, "read whole into memory", ""},
		{[]string{"dtmf", "--help"}, 0, "scan", ""},
		{[]string{"help", "dtmf"}, 0, "mask", ""},
		{[]string{"dtmf"}, 2, "", "Usage: tonevault dtmf <command>"},
		{[]string{"dtmf", "scan"}, 2, "", "no FILE given"},
		{[]string{"dtmf", "scan", "--bogus", "x.wav"}, 2, "", "flag provided but not defined: -bogus"},
		{[]string{"dtmf", "mask", "in.wav"}, 2, "", "want IN.wav and OUT.wav, got 1 file names"},
		{[]string{"dtmf", "mask", "a", "b", "c"}, 2, "", "got 3 file names"},
		{[]string{"dtmf", "mask", "--mode", "loud", "a", "b"}, 2, "", `--mode "loud": want tone or silence`},
		{[]string{"dtmf", "mask", "--mode"}, 2, "", "flag needs an argument: -mode"},
		{[]string{"dtmf", "frobnicate"}, 2, "", `unknown command "frobnicate"`},
	} {
		code, out, errs := runCLI(tc.args...)
		if code != tc.code {
			t.Errorf("%v: exit %d, want %d", tc.args, code, tc.code)
		}
		for _, c := range []struct{ got, want, name string }{{out, tc.out, "stdout"}, {errs, tc.err, "stderr"}} {
			if c.want == "" && c.got != "" || !strings.Contains(c.got, c.want) {
				t.Errorf("%v: %s %q, want %q", tc.args, c.name, c.got, c.want)
			}
		}
	}
}

// mask then scan: no digit left; same format, rate, channels and length;
// everything away from the tones bit-exact, including G.711 codes that
// would not survive a decode and re-encode.
func TestMaskFormats(t *testing.T) {
	dir := t.TempDir()
	for _, mode := range []string{"tone", "silence"} {
		for _, tc := range testFormats {
			t.Run(mode+"/"+tc.name, func(t *testing.T) {
				f := tc.f
				pcm := genPCM(f.Rate, f.Channels, tc.toneCh, testDigits)
				a, err := wav.New(f, pcm)
				if err != nil {
					t.Fatal(err)
				}
				if f.Encoding == wav.ULaw {
					// µ-law 0x7F (-0) decodes to 0, which re-encodes as 0xFF.
					for i := 0; i < 40; i += f.BlockAlign() {
						a.Data[i] = 0x7F
					}
				}
				var buf bytes.Buffer
				a.WriteTo(&buf)
				in := filepath.Join(dir, mode+"-"+tc.name+".wav")
				os.WriteFile(in, buf.Bytes(), 0o640)
				out := filepath.Join(dir, mode+"-"+tc.name+"-masked.wav")

				code, stdout, errs := runCLI("dtmf", "mask", "--mode", mode, in, out)
				if code != 0 || stdout != "" {
					t.Fatalf("mask: exit %d, stdout %q, stderr %q", code, stdout, errs)
				}
				for c := range f.Channels {
					want := fmt.Sprintf("channel %d: 0 digits masked, 0.000 s replaced\n", c+1)
					if c == tc.toneCh {
						want = fmt.Sprintf("channel %d: 3 digits masked, ", c+1)
					}
					if !strings.Contains(errs, want) {
						t.Errorf("summary %q lacks %q", errs, want)
					}
				}
				if code, stdout, errs := runCLI("dtmf", "scan", out); code != 0 || stdout != "" || errs != "" {
					t.Fatalf("scan of the masked file: exit %d, stdout %q, stderr %q", code, stdout, errs)
				}

				b, _ := os.ReadFile(out)
				m, err := wav.Parse(b)
				if err != nil {
					t.Fatal(err)
				}
				if m.Format != f || m.Frames() != a.Frames() {
					t.Fatalf("masked: %+v, %d frames; input %+v, %d frames", m.Format, m.Frames(), f, a.Frames())
				}
				if st, _ := os.Stat(out); st.Mode().Perm() != 0o640 {
					t.Errorf("mode %v, want the input's 0640", st.Mode().Perm())
				}
				// Frames further than 40 ms from a tone are untouched; in
				// the tones, samples changed.
				guard := 40 * f.Rate / 1000
				ba := f.BlockAlign()
				for fr := range a.Frames() {
					near := false
					for k := range len(testDigits) {
						from, to := toneMS(k)*f.Rate/1000, (toneMS(k)+onMS)*f.Rate/1000
						near = near || fr >= from-guard && fr < to+guard
					}
					for c := range f.Channels {
						bps := f.Bits / 8
						o := fr*ba + c*bps
						if (c != tc.toneCh || !near) && !bytes.Equal(a.Data[o:o+bps], m.Data[o:o+bps]) {
							t.Fatalf("channel %d frame %d (%d ms) changed", c+1, fr, fr*1000/f.Rate)
						}
					}
				}
				// In silence mode the tones are gone, not turned into noise
				// as loud as speech.
				if mode == "silence" {
					ch := m.Channel(tc.toneCh)
					for k := range len(testDigits) {
						from, to := (toneMS(k)+5)*f.Rate/1000, (toneMS(k)+onMS-5)*f.Rate/1000
						for _, v := range ch[from:to] {
							if v > 200 || v < -200 {
								t.Fatalf("digit %d: sample %d left in silence mode", k, v)
							}
						}
					}
				}
			})
		}
	}
}

func TestMaskErrors(t *testing.T) {
	dir := t.TempDir()
	in := writeTestWAV(t, dir, "in.wav", wav.NewFormat(wav.PCM, 8000, 1), genPCM(8000, 1, 0, testDigits))
	link := filepath.Join(dir, "link.wav")
	if err := os.Link(in, link); err != nil {
		t.Fatal(err)
	}
	text := filepath.Join(dir, "notes.txt")
	os.WriteFile(text, []byte("hello"), 0o644)
	existing := filepath.Join(dir, "existing.wav")
	os.WriteFile(existing, []byte("keep me"), 0o644)
	inBytes, _ := os.ReadFile(in)

	for _, tc := range []struct {
		name    string
		in, out string
		msg     string
	}{
		{"same path", in, in, "are the same file"},
		{"same path spelt differently", in, filepath.Join(dir, ".", "sub", "..", "in.wav"), "are the same file"},
		{"hard link", in, link, "are the same file"},
		{"missing input", filepath.Join(dir, "nope.wav"), existing, "nope.wav: cannot open: no such file"},
		{"not a WAV", text, existing, "notes.txt: not a WAV file"},
		{"output is a directory", in, dir, "is a directory; OUT must be a file name"},
		{"no such output directory", in, filepath.Join(dir, "no", "such", "out.wav"), "cannot create a temporary file beside it"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			code, stdout, errs := runCLI("dtmf", "mask", tc.in, tc.out)
			if code != 2 || stdout != "" || !strings.Contains(errs, tc.msg) {
				t.Fatalf("exit %d, stdout %q, stderr %q; want 2 and %q", code, stdout, errs, tc.msg)
			}
		})
	}
	if b, _ := os.ReadFile(existing); string(b) != "keep me" {
		t.Error("a failed mask changed OUT")
	}
	if b, _ := os.ReadFile(in); !bytes.Equal(b, inBytes) {
		t.Error("the input changed")
	}
	entries, _ := os.ReadDir(dir)
	for _, e := range entries {
		if strings.HasSuffix(e.Name(), ".tmp") {
			t.Errorf("temporary file %s left behind", e.Name())
		}
	}
	// Overwriting an existing OUT works and leaves no temporary file.
	if code, _, errs := runCLI("dtmf", "mask", in, existing); code != 0 {
		t.Fatalf("exit %d: %s", code, errs)
	}
	if b, _ := os.ReadFile(existing); len(b) != len(inBytes) {
		t.Errorf("OUT is %d bytes, want %d", len(b), len(inBytes))
	}
	entries, _ = os.ReadDir(dir)
	if len(entries) != 4 {
		t.Errorf("directory holds %d entries, want 4", len(entries))
	}
}

// fakeClock advances by step at every reading.
func fakeClock(step time.Duration) func() time.Time {
	t := time.Unix(0, 0)
	return func() time.Time { t = t.Add(step); return t }
}

func TestProgress(t *testing.T) {
	dir := t.TempDir()
	// 20 s at 8 kHz: 20 progress steps, one a second of audio.
	pcm := genPCM(8000, 1, 0, testDigits)
	long := make([]int16, 20*8000)
	copy(long, pcm[0])
	p := writeTestWAV(t, dir, "long.wav", wav.NewFormat(wav.PCM, 8000, 1), [][]int16{long})
	out := filepath.Join(dir, "masked.wav")
	// 20 s at 11025 Hz: resampling adds 20 steps.
	pcm = genPCM(11025, 1, 0, testDigits)
	long = make([]int16, 20*11025)
	copy(long, pcm[0])
	sub := filepath.Join(dir, "11k")
	os.Mkdir(sub, 0o755)
	p11 := writeTestWAV(t, sub, "long.wav", wav.NewFormat(wav.PCM, 11025, 1), [][]int16{long})

	for _, tc := range []struct {
		name     string
		env      dtmfEnv
		args     []string
		min, max int // \r-drawn lines
	}{
		// Each clock reading is 30 ms on: 40 readings (resample and
		// detect) span 1.2 s, so at most 13 lines at 10 a second.
		{"scan on terminal", dtmfEnv{progress: true, now: fakeClock(30 * time.Millisecond)}, []string{"scan", p11}, 5, 13},
		{"scan slow clock", dtmfEnv{progress: true, now: fakeClock(time.Second)}, []string{"scan", p}, 20, 20},
		{"scan slow clock 11025 Hz", dtmfEnv{progress: true, now: fakeClock(time.Second)}, []string{"scan", p11}, 40, 40},
		{"scan not a terminal", dtmfEnv{progress: false, now: fakeClock(time.Second)}, []string{"scan", p}, 0, 0},
		// Detect, plan, verify: 20 + 1 + 20.
		{"mask on terminal", dtmfEnv{progress: true, now: fakeClock(time.Second)}, []string{"mask", p, out}, 41, 41},
		{"mask not a terminal", dtmfEnv{}, []string{"mask", p, out}, 0, 0},
	} {
		t.Run(tc.name, func(t *testing.T) {
			var o, e bytes.Buffer
			code := subcommands("dtmf", tc.env.commands(), tc.args, &o, &e)
			if tc.args[0] == "scan" && (code != 1 || !strings.HasPrefix(o.String(), "4 ")) {
				t.Fatalf("exit %d, stdout %q", code, o.String())
			}
			if strings.Contains(o.String(), "\r") {
				t.Error("progress on stdout")
			}
			lines := 0
			for _, seg := range strings.Split(e.String(), "\r") {
				if strings.Contains(seg, "%") {
					lines++
				}
			}
			if lines < tc.min || lines > tc.max {
				t.Errorf("%d progress lines, want %d to %d:\n%q", lines, tc.min, tc.max, e.String())
			}
			if tc.min > 0 {
				if tc.min == tc.max && !strings.Contains(e.String(), "\rscanning long.wav, channel 1 of 1: 100%") && !strings.Contains(e.String(), "\rmasking long.wav, channel 1 of 1: 100%") {
					t.Errorf("no 100%% line: %q", e.String())
				}
				// The line is blanked before anything else is printed.
				s := e.String()
				last := strings.LastIndex(s, "%")
				if tail := s[last+1:]; !strings.HasPrefix(strings.TrimLeft(tail, " "), "\r") || !strings.Contains(tail, "\r"+strings.Repeat(" ", 20)) {
					t.Errorf("progress line not cleared: %q", tail)
				}
			}
			if tc.env.progress == false && tc.args[0] == "scan" && e.Len() != 0 {
				t.Errorf("stderr %q", e.String())
			}
		})
	}
}

func TestIsTerminal(t *testing.T) {
	f, err := os.CreateTemp(t.TempDir(), "x")
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	if isTerminal(f) || isTerminal(&bytes.Buffer{}) {
		t.Error("a file or a buffer taken for a terminal")
	}
}

// BenchmarkScan measures 'tonevault dtmf scan' end to end (read, parse,
// decode, resample, detect) on a 60 s recording; x_realtime is seconds of
// audio (per file, all channels) scanned per second.
//
//	go test ./cmd/tonevault/ -run '^$' -bench Scan -benchtime 10x
func BenchmarkScan(b *testing.B) {
	const seconds = 60
	for _, f := range []wav.Format{
		wav.NewFormat(wav.ULaw, 8000, 1), wav.NewFormat(wav.ALaw, 8000, 2),
		wav.NewFormat(wav.PCM, 16000, 1), wav.NewFormat(wav.PCM, 44100, 2),
	} {
		b.Run(fmt.Sprintf("%s/%dHz/%dch", f.Encoding, f.Rate, f.Channels), func(b *testing.B) {
			pcm := genPCM(f.Rate, f.Channels, 0, testDigits)
			for c := range pcm {
				long := make([]int16, seconds*f.Rate)
				for i := 0; i < len(long); i += len(pcm[c]) {
					copy(long[i:], pcm[c])
				}
				pcm[c] = long
			}
			p := writeTestWAV(b, b.TempDir(), "bench.wav", f, pcm)
			b.ResetTimer()
			for b.Loop() {
				if code, _, errs := runCLI("dtmf", "scan", p); code != 1 {
					b.Fatalf("exit %d: %s", code, errs)
				}
			}
			b.ReportMetric(float64(seconds)*float64(b.N)/b.Elapsed().Seconds(), "x_realtime")
		})
	}
}
