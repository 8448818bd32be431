package main

import (
	"bytes"
	"encoding/json"
	"fmt"
	"math"
	"os"
	"path/filepath"
	"regexp"
	"slices"
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

// summaryRE matches the summary scan ends with on stderr.
var summaryRE = regexp.MustCompile(`(?m)^tonevault dtmf scan: (\d+) files? scanned, (\d+) with digits \((\d+) digits? found\), (\d+) errors?; [0-9.]+ s of audio in [0-9.]+ s(, \d+x real time)?\n`)

// splitSummary returns stderr without scan's summary, and the summary's
// counts: files scanned, with digits, digits found, errors.
func splitSummary(t testing.TB, stderr string) (string, [4]int) {
	t.Helper()
	m := summaryRE.FindStringSubmatchIndex(stderr)
	if m == nil {
		t.Fatalf("stderr %q lacks the summary", stderr)
	}
	var n [4]int
	for i := range n {
		n[i], _ = strconv.Atoi(stderr[m[2+2*i]:m[3+2*i]])
	}
	if m[1] != len(stderr) {
		t.Errorf("stderr %q goes on after the summary", stderr)
	}
	return stderr[:m[0]] + stderr[m[1]:], n
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
			code, out, errs := runCLI("dtmf", "scan", "--reveal", p)
			if rest, n := splitSummary(t, errs); code != 1 || rest != "" || n != [4]int{1, 1, len(testDigits), 0} {
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
	for _, args := range [][]string{{"--json", "--reveal", p}, {p, "--json", "--reveal"}, {"-json", "-reveal", "--", p}} {
		code, out, errs := runCLI(append([]string{"dtmf", "scan"}, args...)...)
		if rest, _ := splitSummary(t, errs); code != 1 || rest != "" {
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

	emptyDir := filepath.Join(dir, "nothing")
	os.Mkdir(emptyDir, 0o755)

	for _, tc := range []struct {
		name     string
		args     []string
		code     int
		stdout   string   // exact, with FILE for the dirty file's name
		stderr   []string // substrings, in order
		noStderr bool     // nothing but the summary
		summary  [4]int   // files scanned, with digits, digits, errors
	}{
		{"clean", []string{clean}, 0, "", nil, true, [4]int{1, 0, 0, 0}},
		{"clean stereo", []string{cleanStereo}, 0, "", nil, true, [4]int{1, 0, 0, 0}},
		{"empty audio", []string{empty}, 0, "", nil, true, [4]int{1, 0, 0, 0}},
		{"clean files", []string{clean, cleanStereo, empty}, 0, "", nil, true, [4]int{3, 0, 0, 0}},
		{"text", []string{text}, 2, "", []string{"tonevault dtmf scan: " + text + ": not a WAV file: no RIFF/WAVE header\n"}, false, [4]int{0, 0, 0, 1}},
		{"truncated", []string{truncated}, 2, "", []string{truncated + `: truncated WAV file: "data" chunk declares`}, false, [4]int{0, 0, 0, 1}},
		{"float", []string{float}, 2, "", []string{float + ": unsupported encoding: IEEE float 32-bit (format 3); ToneVault reads 16-bit PCM, G.711 µ-law and A-law\n"}, false, [4]int{0, 0, 0, 1}},
		{"missing", []string{missing}, 2, "", []string{missing + ": cannot open: no such file\n"}, false, [4]int{0, 0, 0, 1}},
		{"empty directory", []string{emptyDir}, 0, "", []string{emptyDir + ": no .wav files\n"}, false, [4]int{0, 0, 0, 0}},
		// Errors do not stop the scan: later files are still reported.
		{"errors then digits", []string{missing, text, dirty, float, clean}, 2, "FILE:1 x \nFILE:1 x \nFILE:1 x \n",
			[]string{missing + ": cannot open", text + ": not a WAV", float + ": unsupported encoding"}, false, [4]int{2, 1, 3, 3}},
		{"two files", []string{clean, dirty}, 1, "FILE:1 x \nFILE:1 x \nFILE:1 x \n", nil, true, [4]int{2, 1, 3, 0}},
		{"same file twice", []string{dirty, filepath.Join(dir, ".", "dirty.wav")}, 1, "FILE:1 x \nFILE:1 x \nFILE:1 x \n", nil, true, [4]int{1, 1, 3, 0}},
		{"option terminator", []string{"--", "--json"}, 2, "", []string{"--json: cannot open"}, false, [4]int{0, 0, 0, 1}},
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
			rest, sum := splitSummary(t, errs)
			if sum != tc.summary {
				t.Errorf("summary %v, want %v: %q", sum, tc.summary, errs)
			}
			if tc.noStderr && rest != "" {
				t.Errorf("stderr %q", errs)
			}
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

// testPAN is typed as tones in the masking tests: a test card number.
const testPAN = "4111111111111111"

// digitFields returns the digit field of every scan line: the last but one
// space-separated field, or "digit" in --json output.
func digitFields(t *testing.T, out string, asJSON bool) string {
	t.Helper()
	var b strings.Builder
	for _, line := range strings.Split(strings.TrimSuffix(out, "\n"), "\n") {
		if asJSON {
			var h scanHit
			if err := json.Unmarshal([]byte(line), &h); err != nil {
				t.Fatalf("line %q: %v", line, err)
			}
			b.WriteString(h.Digit)
			continue
		}
		f := strings.Fields(line)
		if len(f) < 2 {
			t.Fatalf("line %q", line)
		}
		b.WriteString(f[len(f)-2])
	}
	return b.String()
}

// Without --reveal no digit of a card number typed on the call reaches
// stdout or stderr, in any output form; with it, all do. The --reveal run
// is the control: it shows the greps find the number when it is there.
func TestScanMasksDigits(t *testing.T) {
	dir := t.TempDir()
	mono := writeTestWAV(t, dir, "mono.wav", wav.NewFormat(wav.ULaw, 8000, 1), genPCM(8000, 1, 0, testPAN))
	sub := filepath.Join(dir, "calls")
	os.Mkdir(sub, 0o755)
	writeTestWAV(t, sub, "stereo.wav", wav.NewFormat(wav.PCM, 44100, 2), genPCM(44100, 2, 1, testPAN))

	for _, tc := range []struct {
		name  string
		args  []string
		files int // files holding the number
	}{
		{"one mono file", []string{mono}, 1},
		{"json", []string{"--json", mono}, 1},
		{"directory", []string{dir}, 2},
		{"directory, json, parallel", []string{"--json", "-j", "4", dir}, 2},
	} {
		asJSON := tc.args[0] == "--json"
		t.Run(tc.name, func(t *testing.T) {
			code, out, errs := runCLI(append([]string{"dtmf", "scan"}, tc.args...)...)
			if code != 1 {
				t.Fatalf("exit %d, stderr %q", code, errs)
			}
			masked := strings.Repeat(maskedDigit, tc.files*len(testPAN))
			if got := digitFields(t, out, asJSON); got != masked {
				t.Errorf("digits %q, want %q", got, masked)
			}
			for _, s := range []string{out, errs} {
				if strings.Contains(s, testPAN) || strings.Contains(s, testPAN[:6]) {
					t.Errorf("the card number is in the output:\n%s", s)
				}
			}

			code, out, errs = runCLI(append([]string{"dtmf", "scan", "--reveal"}, tc.args...)...)
			if code != 1 {
				t.Fatalf("--reveal: exit %d, stderr %q", code, errs)
			}
			if got := digitFields(t, out, asJSON); got != strings.Repeat(testPAN, tc.files) {
				t.Errorf("--reveal: digits %q, want %q", got, strings.Repeat(testPAN, tc.files))
			}
		})
	}
}

// twoChannels is a stereo recording with digits a on the left and b on
// the right, pressed at the same times, so that ordering by time would
// interleave them.
func twoChannels(rate int, a, b string) [][]int16 {
	l, r := genPCM(rate, 1, 0, a)[0], genPCM(rate, 1, 0, b)[0]
	n := max(len(l), len(r))
	return [][]int16{append(l, make([]int16, n-len(l))...), append(r, make([]int16, n-len(r))...)}
}

// A directory is scanned recursively: .wav files in any case, through
// links to files but not to directories; other files are left alone.
// Output is sorted by file, then channel, then time, the same whatever
// -j, and each file is listed once.
func TestScanDirectories(t *testing.T) {
	root := t.TempDir()
	mk := func(parts ...string) string {
		p := filepath.Join(append([]string{root}, parts...)...)
		os.MkdirAll(p, 0o755)
		return p
	}
	tree, b, a, other := mk("tree"), mk("tree", "b"), mk("tree", "a", "deep"), mk("other")
	writeTestWAV(t, b, "2.wav", wav.NewFormat(wav.ALaw, 8000, 2), twoChannels(8000, "12", "34"))
	writeTestWAV(t, b, "1.WAV", wav.NewFormat(wav.PCM, 16000, 1), genPCM(16000, 1, 0, "5"))
	writeTestWAV(t, a, "x.wav", wav.NewFormat(wav.PCM, 48000, 2), twoChannels(48000, "6", "78"))
	writeTestWAV(t, tree, "clean.wav", wav.NewFormat(wav.PCM, 8000, 1), genPCM(8000, 1, -1, ""))
	writeTestWAV(t, other, "9.wav", wav.NewFormat(wav.PCM, 8000, 1), genPCM(8000, 1, 0, "9"))
	writeTestWAV(t, other, "0.wav", wav.NewFormat(wav.PCM, 8000, 1), genPCM(8000, 1, 0, "0"))
	// Not scanned: not .wav, and a link to a directory.
	os.WriteFile(filepath.Join(tree, "notes.txt"), []byte("not audio"), 0o644)
	os.WriteFile(filepath.Join(tree, "b", "2.wav.bak"), []byte("not audio"), 0o644)
	if err := os.Symlink(other, filepath.Join(tree, "linked-dir")); err != nil {
		t.Fatal(err)
	}
	// Scanned: a link to a file, under its own name.
	if err := os.Symlink(filepath.Join(other, "9.wav"), filepath.Join(tree, "c.wav")); err != nil {
		t.Fatal(err)
	}
	// Not a WAV: an error, and the rest is still scanned.
	os.WriteFile(filepath.Join(tree, "bad.wav"), []byte("RIFF"), 0o644)

	wantLines := []string{
		"tree/a/deep/x.wav:1 6",
		"tree/a/deep/x.wav:2 7",
		"tree/a/deep/x.wav:2 8",
		"tree/b/1.WAV:1 5",
		"tree/b/2.wav:1 1",
		"tree/b/2.wav:1 2",
		"tree/b/2.wav:2 3",
		"tree/b/2.wav:2 4",
		"tree/c.wav:1 9",
		"other/0.wav:1 0",
	}
	var first string
	for _, j := range []string{"1", "2", "8", "8", "8"} {
		// other/0.wav after the tree: operands keep their order; tree's
		// b/2.wav named again is not scanned twice.
		code, out, errs := runCLI("dtmf", "scan", "--reveal", "-j", j, tree, filepath.Join(other, "0.wav"), filepath.Join(b, "2.wav"))
		if code != 2 {
			t.Fatalf("-j %s: exit %d, want 2 for bad.wav; stderr %q", j, code, errs)
		}
		rest, sum := splitSummary(t, errs)
		if want := "tonevault dtmf scan: " + filepath.Join(tree, "bad.wav") + ": "; !strings.HasPrefix(rest, want) || strings.Count(rest, "\n") != 1 {
			t.Errorf("-j %s: stderr %q, want one error for bad.wav", j, errs)
		}
		if sum != [4]int{6, 5, 10, 1} {
			t.Errorf("-j %s: summary %v", j, sum)
		}
		var got []string
		for _, line := range strings.Split(strings.TrimSuffix(out, "\n"), "\n") {
			rel, _ := strings.CutPrefix(line, root+"/")
			got = append(got, rel[:strings.LastIndexByte(rel, ' ')])
		}
		if !slices.Equal(got, wantLines) {
			t.Errorf("-j %s: got\n%s\nwant\n%s", j, strings.Join(got, "\n"), strings.Join(wantLines, "\n"))
		}
		if first == "" {
			first = out
		} else if out != first {
			t.Errorf("-j %s: output differs from -j 1:\n%s\nvs\n%s", j, out, first)
		}
	}
}

func TestDTMFUsage(t *testing.T) {
	for _, tc := range []struct {
		args     []string
		code     int
		out, err string // substrings; "" means must be empty
	}{
		{[]string{"dtmf", "scan", "--help"}, 0, "Usage: tonevault dtmf scan [--json] [--reveal] [-j N] FILE|DIR...", ""},
		{[]string{"dtmf", "scan", "--help"}, 0, "<digit> is x, the mask, or with --reveal the key", ""},
		{[]string{"dtmf", "scan", "-h"}, 0, "<file>:<channel> <digit> <start_ms>", ""},
		{[]string{"dtmf", "mask", "--help"}, 0, "Usage: tonevault dtmf mask [--mode tone|silence] IN.wav OUT.wav", ""},
		{[]string{"dtmf", "mask", "x.wav", "-help"}, 0, "read whole into memory", ""},
		{[]string{"dtmf", "--help"}, 0, "scan", ""},
		{[]string{"help", "dtmf"}, 0, "mask", ""},
		{[]string{"dtmf"}, 2, "", "Usage: tonevault dtmf <command>"},
		{[]string{"dtmf", "scan"}, 2, "", "no FILE or DIR given"},
		{[]string{"dtmf", "scan", "-j", "0", "x.wav"}, 2, "", "-j 0: want 1 or more"},
		{[]string{"dtmf", "scan", "-j", "two", "x.wav"}, 2, "", `invalid value "two" for flag -j`},
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
				if code, stdout, errs := runCLI("dtmf", "scan", out); code != 0 || stdout != "" || !strings.HasPrefix(errs, "tonevault dtmf scan: 1 file scanned, 0 with digits") {
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
	// 20 s at 8 kHz: 20 progress steps, one a second of audio, and one
	// when the file is done.
	pcm := genPCM(8000, 1, 0, testDigits)
	long := make([]int16, 20*8000)
	copy(long, pcm[0])
	p := writeTestWAV(t, dir, "long.wav", wav.NewFormat(wav.PCM, 8000, 1), [][]int16{long})
	out := filepath.Join(dir, "masked.wav")
	// 20 s at 11025 Hz: resampled and analysed in the same steps.
	pcm = genPCM(11025, 1, 0, testDigits)
	long = make([]int16, 20*11025)
	copy(long, pcm[0])
	sub := filepath.Join(dir, "11k")
	os.Mkdir(sub, 0o755)
	p11 := writeTestWAV(t, sub, "long.wav", wav.NewFormat(wav.PCM, 11025, 1), [][]int16{long})
	// Two files in a directory: 21 steps each.
	two := filepath.Join(dir, "two")
	os.Mkdir(two, 0o755)
	writeTestWAV(t, two, "a.wav", wav.NewFormat(wav.PCM, 11025, 1), [][]int16{long})
	writeTestWAV(t, two, "b.wav", wav.NewFormat(wav.PCM, 11025, 1), [][]int16{long})

	full := "[" + strings.Repeat("#", barWidth) + "] 100%"
	for _, tc := range []struct {
		name     string
		env      dtmfEnv
		args     []string
		min, max int    // \r-drawn lines
		last     string // the last line drawn, when min == max
	}{
		// Each clock reading is 30 ms on: 21 readings span 0.63 s, so at
		// most 7 lines at 10 a second.
		{"scan on terminal", dtmfEnv{progress: true, now: fakeClock(30 * time.Millisecond)}, []string{"scan", "-j", "1", p11}, 4, 7, ""},
		{"scan slow clock", dtmfEnv{progress: true, now: fakeClock(time.Second)}, []string{"scan", "-j", "1", p}, 21, 21, "scanning long.wav " + full},
		{"scan slow clock 11025 Hz", dtmfEnv{progress: true, now: fakeClock(time.Second)}, []string{"scan", "-j", "1", p11}, 21, 21, "scanning long.wav " + full},
		{"scan a directory", dtmfEnv{progress: true, now: fakeClock(time.Second)}, []string{"scan", "-j", "1", two}, 42, 42, "scanning 2/2 files " + full},
		{"scan a directory in parallel", dtmfEnv{progress: true, now: fakeClock(time.Second)}, []string{"scan", "-j", "2", two}, 42, 42, "scanning 2/2 files " + full},
		{"scan not a terminal", dtmfEnv{progress: false, now: fakeClock(time.Second)}, []string{"scan", p}, 0, 0, ""},
		// Detect, plan, verify: 20 + 1 + 20.
		{"mask on terminal", dtmfEnv{progress: true, now: fakeClock(time.Second)}, []string{"mask", p, out}, 41, 41, "masking long.wav, channel 1 of 1: " + full},
		{"mask not a terminal", dtmfEnv{}, []string{"mask", p, out}, 0, 0, ""},
	} {
		t.Run(tc.name, func(t *testing.T) {
			var o, e bytes.Buffer
			code := subcommands("dtmf", tc.env.commands(), tc.args, &o, &e)
			if tc.args[0] == "scan" && (code != 1 || !strings.Contains(o.String(), "x ")) {
				t.Fatalf("exit %d, stdout %q", code, o.String())
			}
			if strings.Contains(o.String(), "\r") {
				t.Error("progress on stdout")
			}
			var lines []string
			for _, seg := range strings.Split(e.String(), "\r") {
				if strings.Contains(seg, "%") {
					lines = append(lines, strings.TrimRight(seg, " "))
				}
			}
			if len(lines) < tc.min || len(lines) > tc.max {
				t.Errorf("%d progress lines, want %d to %d:\n%q", len(lines), tc.min, tc.max, e.String())
			}
			if tc.last != "" && (len(lines) == 0 || lines[len(lines)-1] != tc.last) {
				t.Errorf("last progress line %q, want %q", lines, tc.last)
			}
			if tc.min > 0 {
				// The line is blanked before anything else is printed.
				s := e.String()
				last := strings.LastIndex(s, "%")
				if tail := s[last+1:]; !strings.HasPrefix(strings.TrimLeft(tail, " "), "\r") || !strings.Contains(tail, "\r"+strings.Repeat(" ", 20)) {
					t.Errorf("progress line not cleared: %q", tail)
				}
			}
			if !tc.env.progress && tc.args[0] == "scan" {
				if rest, _ := splitSummary(t, e.String()); rest != "" {
					t.Errorf("stderr %q", e.String())
				}
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
