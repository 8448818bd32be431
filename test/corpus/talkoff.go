package corpus

import (
	"bytes"
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"math"
	"os"
	"os/exec"
	"path/filepath"
	"sort"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/tonevault/tonevault/dtmf"
	"github.com/tonevault/tonevault/test/refdetect"
)

// Clip kinds.
const (
	KindSpeech    = "speech"
	KindMusic     = "music"
	KindSynthetic = "synthetic"
)

// Clip is one talk-off signal: 8 kHz mono 16-bit audio that contains no
// DTMF, on which no detector may report a digit and which a masker should
// leave alone.
type Clip struct {
	Name string
	Kind string // KindSpeech, KindMusic or KindSynthetic
	PCM  []int16
}

// Duration returns the clip's length.
func (c Clip) Duration() time.Duration {
	return time.Duration(len(c.PCM)) * time.Second / SampleRate
}

// TotalDuration sums the lengths of clips.
func TotalDuration(clips []Clip) time.Duration {
	var d time.Duration
	for _, c := range clips {
		d += c.Duration()
	}
	return d
}

// EnvCacheDir overrides where converted clips are cached (default
// os.UserCacheDir()/tonevault-corpus).
const EnvCacheDir = "TONEVAULT_CORPUS_CACHE"

// cacheVersion is part of every cache key: bump it to invalidate the cache
// when the way clips are built changes outside their commands.
const cacheVersion = "tonevault-corpus/1"

// CacheDir returns the directory converted clips are cached in.
func CacheDir() string {
	if d := os.Getenv(EnvCacheDir); d != "" {
		return d
	}
	if d, err := os.UserCacheDir(); err == nil {
		return filepath.Join(d, "tonevault-corpus")
	}
	return filepath.Join(os.TempDir(), "tonevault-corpus")
}

// recipe is how one clip is made: commands run in order in a scratch
// directory, where "{tmp}" stands for a scratch WAV file and "{out}" for
// the raw s16le 8 kHz mono result. The cache key hashes the commands and
// the size and modification time of the input files.
type recipe struct {
	name, kind string
	inputs     []string
	cmds       [][]string
}

// soxTo8k converts inputs (concatenated) to raw s16le 8 kHz mono {out}:
// no dither and repeatable, so the result is deterministic.
func soxTo8k(inputs ...string) []string {
	args := []string{"sox", "-D", "-R", "-V1"}
	args = append(args, inputs...)
	return append(args, "-t", "raw", "-r", "8000", "-e", "signed-integer", "-b", "16", "-c", "1", "-L", "{out}")
}

func (r recipe) key() string {
	h := sha256.New()
	fmt.Fprintf(h, "%s\x00%s\x00", cacheVersion, r.kind)
	for _, c := range r.cmds {
		fmt.Fprintf(h, "%s\x01", strings.Join(c, "\x00"))
	}
	for _, in := range r.inputs {
		if st, err := os.Stat(in); err == nil {
			fmt.Fprintf(h, "%s\x00%d\x00%d\x02", in, st.Size(), st.ModTime().UnixNano())
		} else {
			fmt.Fprintf(h, "%s\x00missing\x02", in)
		}
	}
	return hex.EncodeToString(h.Sum(nil))[:32]
}

// build returns the clip's PCM from the cache, building it if needed.
func (r recipe) build(dir string) ([]int16, error) {
	final := filepath.Join(dir, r.key()+".s16")
	if b, err := os.ReadFile(final); err == nil {
		return fromBytes(b), nil
	}
	scratch, err := os.MkdirTemp(dir, "build-")
	if err != nil {
		return nil, err
	}
	defer os.RemoveAll(scratch)
	tmp, out := filepath.Join(scratch, "tmp.wav"), filepath.Join(scratch, "out.s16")
	for _, c := range r.cmds {
		args := make([]string, len(c))
		for i, a := range c {
			a = strings.ReplaceAll(a, "{tmp}", tmp)
			args[i] = strings.ReplaceAll(a, "{out}", out)
		}
		cmd := exec.Command(args[0], args[1:]...)
		cmd.Dir = scratch
		var stderr bytes.Buffer
		cmd.Stderr = &stderr
		if err := cmd.Run(); err != nil {
			return nil, fmt.Errorf("%s: %s: %v: %s", r.name, args[0], err, strings.TrimSpace(stderr.String()))
		}
	}
	b, err := os.ReadFile(out)
	if err != nil {
		return nil, fmt.Errorf("%s: %w", r.name, err)
	}
	if len(b) < 2*SampleRate/10 {
		return nil, fmt.Errorf("%s: built only %d bytes", r.name, len(b))
	}
	// Rename is atomic: concurrent test binaries never see half a file.
	if err := os.Rename(out, final); err != nil {
		return nil, err
	}
	return fromBytes(b), nil
}

func fromBytes(b []byte) []int16 {
	pcm := make([]int16, len(b)/2)
	for i := range pcm {
		pcm[i] = int16(uint16(b[2*i]) | uint16(b[2*i+1])<<8)
	}
	return pcm
}

var (
	memoMu sync.Mutex
	memo   = map[string][]Clip{}
)

// BuildStats reports how the last build of a set went.
type BuildStats struct {
	Clips    int
	Built    int // clips not found in the cache
	Audio    time.Duration
	Elapsed  time.Duration
	CacheDir string
}

var (
	statsMu   sync.Mutex
	lastStats = map[string]BuildStats{}
)

// LastBuild returns the stats of the last build of set ("speech" or
// "music") in this process.
func LastBuild(set string) BuildStats {
	statsMu.Lock()
	defer statsMu.Unlock()
	return lastStats[set]
}

// buildSet builds recipes with up to two workers (the test machines are
// small and shared), memoised per process. It returns copies, so callers
// may modify the PCM.
func buildSet(tb testing.TB, set string, rs []recipe) []Clip {
	tb.Helper()
	memoMu.Lock()
	defer memoMu.Unlock()
	clips, ok := memo[set]
	if !ok {
		dir := CacheDir()
		if err := os.MkdirAll(dir, 0o755); err != nil {
			tb.Fatalf("corpus: cache dir: %v", err)
		}
		start := time.Now()
		clips = make([]Clip, len(rs))
		errs := make([]error, len(rs))
		built := make([]bool, len(rs))
		var wg sync.WaitGroup
		next := make(chan int)
		for w := 0; w < 2; w++ {
			wg.Add(1)
			go func() {
				defer wg.Done()
				for i := range next {
					r := rs[i]
					_, err := os.Stat(filepath.Join(dir, r.key()+".s16"))
					built[i] = err != nil
					pcm, err := r.build(dir)
					clips[i] = Clip{Name: r.name, Kind: r.kind, PCM: pcm}
					errs[i] = err
				}
			}()
		}
		for i := range rs {
			next <- i
		}
		close(next)
		wg.Wait()
		for _, err := range errs {
			if err != nil {
				tb.Fatalf("corpus: building %s set: %v", set, err)
			}
		}
		st := BuildStats{Clips: len(clips), Audio: TotalDuration(clips), Elapsed: time.Since(start), CacheDir: dir}
		for _, b := range built {
			if b {
				st.Built++
			}
		}
		statsMu.Lock()
		lastStats[set] = st
		statsMu.Unlock()
		memo[set] = clips
	}
	out := make([]Clip, len(clips))
	for i, c := range clips {
		out[i] = Clip{Name: c.Name, Kind: c.Kind, PCM: append([]int16(nil), c.PCM...)}
	}
	return out
}

// TalkOff returns the whole talk-off set: Speech, Music and Synthetic.
// Missing tools or sound packages skip the test (or fail it under
// TONEVAULT_REQUIRE_TOOLS=1).
func TalkOff(tb testing.TB) []Clip {
	tb.Helper()
	var out []Clip
	out = append(out, Speech(tb)...)
	out = append(out, Music(tb)...)
	return append(out, Synthetic()...)
}

// Speech returns espeak-ng speech in many voices and languages (spoken
// numbers, card-number-like sequences, dates) and Debian's Asterisk English
// prompts (asterisk-core-sounds-en-wav, digits and letters included).
func Speech(tb testing.TB) []Clip {
	tb.Helper()
	refdetect.Require(tb, refdetect.ToolEspeak, refdetect.ToolSox, refdetect.ToolAsteriskSnd)
	rs := espeakRecipes()
	ast, err := asteriskPromptRecipes()
	if err != nil {
		tb.Fatalf("corpus: %v", err)
	}
	return buildSet(tb, "speech", append(rs, ast...))
}

// EspeakSpeech returns only the espeak-ng part of Speech.
func EspeakSpeech(tb testing.TB) []Clip {
	tb.Helper()
	refdetect.Require(tb, refdetect.ToolEspeak, refdetect.ToolSox)
	return buildSet(tb, "espeak", espeakRecipes())
}

// Music returns Debian's Asterisk music on hold (asterisk-moh-opsound-wav),
// one clip per track.
func Music(tb testing.TB) []Clip {
	tb.Helper()
	refdetect.Require(tb, refdetect.ToolSox, refdetect.ToolAsteriskMoH)
	files, _ := filepath.Glob(filepath.Join(refdetect.AsteriskMoHDir, "*.wav"))
	sort.Strings(files)
	var rs []recipe
	for _, f := range files {
		name := "moh/" + strings.TrimSuffix(filepath.Base(f), ".wav")
		rs = append(rs, recipe{name: name, kind: KindMusic, inputs: []string{f}, cmds: [][]string{soxTo8k(f)}})
	}
	return buildSet(tb, "music", rs)
}

// asteriskPromptRecipes groups the English prompts by directory, at most
// 40 files per clip, concatenated in name order (the silence/ directory,
// digital silence only, is left out).
func asteriskPromptRecipes() ([]recipe, error) {
	root, err := refdetect.AsteriskSoundsDir()
	if err != nil {
		return nil, err
	}
	// "en" is a symlink (alternatives); WalkDir does not follow it.
	if real, err := filepath.EvalSymlinks(root); err == nil {
		root = real
	}
	byDir := map[string][]string{}
	err = filepath.WalkDir(root, func(p string, d os.DirEntry, err error) error {
		if err != nil {
			return err
		}
		if d.IsDir() && d.Name() == "silence" {
			return filepath.SkipDir // digital silence of 1-9 s: nothing to test
		}
		if !d.IsDir() && strings.HasSuffix(p, ".wav") {
			rel, _ := filepath.Rel(root, filepath.Dir(p))
			byDir[rel] = append(byDir[rel], p)
		}
		return nil
	})
	if err != nil {
		return nil, err
	}
	dirs := make([]string, 0, len(byDir))
	for d := range byDir {
		dirs = append(dirs, d)
	}
	sort.Strings(dirs)
	var rs []recipe
	const per = 40
	for _, d := range dirs {
		files := byDir[d]
		sort.Strings(files)
		for i := 0; i < len(files); i += per {
			part := files[i:min(i+per, len(files))]
			name := "asterisk/" + filepath.ToSlash(filepath.Join("en", d))
			if len(files) > per {
				name += fmt.Sprintf("/part%02d", i/per+1)
			}
			rs = append(rs, recipe{name: name, kind: KindSpeech, inputs: part, cmds: [][]string{soxTo8k(part...)}})
		}
	}
	return rs, nil
}

// Texts spoken by espeak-ng: in each language a card number read digit by
// digit, an expiry date, a security code and a phone number, so the
// talk-off set is full of spoken numbers.
var espeakTexts = map[string]string{
	"en": "Hello, thanks for calling. My card number is 4 1 1 1, 1 1 1 1, 1 1 1 1, 1 1 1 1. " +
		"The expiry date is twelve twenty-eight and the security code is 7 3 7. " +
		"You can call me back on 0 2 0, 7 9 4 6, 0 0 0 0, any time between nine and five.",
	"de": "Guten Tag. Meine Kartennummer ist 4 5 3 2, 0 1 5 1, 1 2 8 3, 0 3 6 6. " +
		"Gültig bis zwölf achtundzwanzig. Die Prüfnummer ist 1 2 3. Rufen Sie mich unter 0 3 0 1 2 3 4 5 6 7 an.",
	"fr": "Bonjour. Mon numéro de carte est 5 5 5 5, 5 5 5 5, 5 5 5 5, 4 4 4 4. " +
		"Date d'expiration zéro neuf vingt-sept. Le cryptogramme est 4 5 6. Mon téléphone: 06 12 34 56 78.",
	"es": "Buenos días. Mi número de tarjeta es 4 0 0 0, 0 0 0 0, 0 0 0 0, 0 0 0 2. " +
		"Caduca en marzo de 2029 y el código es 9 8 7. Mi teléfono es 6 1 2 3 4 5 6 7 8.",
	"it": "Buongiorno. Il numero della mia carta è 3 7 8 2, 8 2 2 4, 6 3 1 0, 0 0 5. " +
		"Scade il 31 dicembre 2027. Il codice di sicurezza è 1 2 3 4.",
	"pt": "Bom dia. O número do meu cartão é 6 0 1 1, 1 1 1 1, 1 1 1 1, 1 1 1 7. " +
		"Validade onze de vinte e seis. O código é 5 5 5. O meu telefone é 9 1 2 3 4 5 6 7 8.",
	"nl": "Goedemiddag. Mijn kaartnummer is 4 9 1 7, 6 1 0 0, 0 0 0 0, 0 0 0 0. " +
		"Geldig tot januari 2030. De beveiligingscode is 3 2 1.",
	"pl": "Dzień dobry. Numer mojej karty to 5 1 0 5, 1 0 5 1, 0 5 1 0, 5 1 0 0. " +
		"Data ważności dwanaście dwadzieścia osiem. Kod to 8 0 8.",
	"ru": "Здравствуйте. Номер моей карты 2 2 0 0, 1 2 3 4, 5 6 7 8, 9 0 1 2. " +
		"Срок действия до декабря двадцать восьмого года. Код 4 4 4.",
	"cmn": "你好. 我的卡号是 6 2 2 2, 0 2 1 2, 3 4 5 6, 7 8 9 0. 有效期到 2028 年 12 月. 安全码是 3 6 9.",
	"ja":  "もしもし. カード番号は 4 1 1 1, 1 1 1 1, 1 1 1 1, 1 1 1 1 です. 有効期限は 12 月 28 年 です. セキュリティコードは 7 3 7 です.",
	"hi":  "नमस्ते. मेरा कार्ड नंबर 4 1 1 1, 1 1 1 1, 1 1 1 1, 1 1 1 1 है. समाप्ति तिथि बारह अट्ठाईस है. कोड 7 3 7 है.",
	"ar":  "مرحبا. رقم بطاقتي هو 4 1 1 1, 1 1 1 1, 1 1 1 1, 1 1 1 1. تاريخ الانتهاء 12 28. الرمز 7 3 7.",
	"sv":  "Hej. Mitt kortnummer är 4 5 7 1, 0 0 0 0, 0 0 0 0, 0 0 0 1. Giltigt till december tjugoåtta. Koden är 2 4 6.",
	"tr":  "Merhaba. Kart numaram 4 5 4 3, 1 2 3 4, 5 6 7 8, 9 0 1 2. Son kullanma tarihi on iki yirmi sekiz. Kod 1 5 9.",
	"el":  "Γεια σας. Ο αριθμός της κάρτας μου είναι 4 1 1 1, 2 2 2 2, 3 3 3 3, 4 4 4 4. Λήγει 12 28.",
	"fi":  "Hei. Korttini numero on 4 1 1 1, 1 1 1 1, 1 1 1 1, 1 1 1 1. Voimassa joulukuuhun 2028.",
	"ko":  "안녕하세요. 제 카드 번호는 4 1 1 1, 1 1 1 1, 1 1 1 1, 1 1 1 1 입니다. 유효기간은 12 28 입니다.",
	"vi":  "Xin chào. Số thẻ của tôi là 4 1 1 1, 1 1 1 1, 1 1 1 1, 1 1 1 1. Hết hạn 12 28.",
}

// English-only extras: numbers spelled as words (card, dates, amounts),
// keypad words, and plain conversation.
var espeakEnglish = []struct{ voice, text string }{
	{"en-us", "four one one one, one one one one, one one one one, one one one one. Expiry oh nine slash twenty seven. Code seven three seven."},
	{"en-gb-x-rp", "five four five four, five four five four, five four five four, five four five four. Valid until the end of March twenty twenty-nine."},
	{"en-us+f5", "my date of birth is the twenty-first of March, nineteen eighty-four, and my postcode is S W one A, one A A."},
	{"en+m3", "the amount is one hundred and twenty-three pounds forty-five. Reference number eight eight two nine one zero zero three."},
	{"en-us+klatt", "press one for sales, two for support, star to repeat, or hash to go back. Press zero to speak to an agent."},
	{"en+croak", "three seven eight two, eight two two four six, three one zero zero five. The security code is four digits, one two three four."},
	{"en+whisper", "six zero one one, one one one one, one one one one, one one one seven."},
	{"en-us+Storm", "double seven, triple one, oh four five, nine nine nine, twelve, thirteen, fourteen, fifteen, sixteen, seventeen, eighteen, nineteen, twenty."},
	{"en+f2", "I'm sorry, could you repeat that? I think I missed the last four digits. Was it nine eight seven six or nine eight six seven?"},
	{"en-us+m7", "Good afternoon, you're through to customer services. Before we go any further, can I take your full name and the first line of your address, please? " +
		"Lovely, thank you. And what seems to be the problem today? Right, I see. I'll just put you on hold for a moment while I look into that for you."},
	{"en-gb-x-rp+f4", "The quick brown fox jumps over the lazy dog. She sells sea shells by the sea shore. Peter Piper picked a peck of pickled peppers."},
	{"en-us+m1", "one, two, three, four, five, six, seven, eight, nine, ten, eleven, twelve, A, B, C, D, star, pound, hash."},
}

// espeak voice variants used for every language: name suffix, voice
// variant, speed (words per minute) and pitch (0-99).
var espeakVariants = []struct {
	suffix, variant string
	speed, pitch    int
}{
	{"", "", 160, 50},
	{"+f3", "+f3", 190, 65},
	{"+m7", "+m7", 130, 35},
}

// espeakLanguages is the order of languages in the set (en-us and
// en-gb-x-rp speak the English text too).
var espeakLanguages = []struct{ voice, text string }{
	{"en", "en"}, {"en-us", "en"}, {"en-gb-x-rp", "en"},
	{"de", "de"}, {"fr", "fr"}, {"es", "es"}, {"it", "it"}, {"pt", "pt"}, {"nl", "nl"},
	{"pl", "pl"}, {"ru", "ru"}, {"cmn", "cmn"}, {"ja", "ja"}, {"hi", "hi"}, {"ar", "ar"},
	{"sv", "sv"}, {"tr", "tr"}, {"el", "el"}, {"fi", "fi"}, {"ko", "ko"}, {"vi", "vi"},
}

func espeakCmd(voice string, speed, pitch int, text string) [][]string {
	return [][]string{
		{"espeak-ng", "-v", voice, "-s", fmt.Sprint(speed), "-p", fmt.Sprint(pitch), "-w", "{tmp}", "--", text},
		soxTo8k("{tmp}"),
	}
}

func espeakRecipes() []recipe {
	var rs []recipe
	for _, l := range espeakLanguages {
		for _, v := range espeakVariants {
			voice := l.voice + v.variant
			rs = append(rs, recipe{
				name: "espeak/" + voice + fmt.Sprintf("/s%d", v.speed),
				kind: KindSpeech,
				cmds: espeakCmd(voice, v.speed, v.pitch, espeakTexts[l.text]),
			})
		}
	}
	for i, e := range espeakEnglish {
		speed := []int{150, 175, 210, 120}[i%4]
		rs = append(rs, recipe{
			name: "espeak/" + e.voice + fmt.Sprintf("/s%d/en-extra%02d", speed, i+1),
			kind: KindSpeech,
			cmds: espeakCmd(e.voice, speed, 50, e.text),
		})
	}
	return rs
}

// Synthetic returns generated non-DTMF signals (no tools needed): 3- and
// 4-note chords with harmonics, sweeps across 300-3400 Hz, whistle-like
// single tones with vibrato, and single tones at DTMF frequencies.
func Synthetic() []Clip {
	var out []Clip
	for _, ch := range chords {
		out = append(out, Clip{Name: "synthetic/chord/" + ch.name, Kind: KindSynthetic, PCM: chord(ch.notes, -12, 800)})
	}
	// Sweeps: linear and logarithmic, slow and fast, both directions.
	for _, sw := range []struct {
		f0, f1, ms float64
		log        bool
	}{
		{300, 3400, 3000, false}, {3400, 300, 3000, false},
		{300, 3400, 3000, true}, {3400, 300, 3000, true},
		{300, 3400, 500, true}, {600, 1700, 2000, true},
	} {
		kind := "lin"
		if sw.log {
			kind = "log"
		}
		name := fmt.Sprintf("synthetic/sweep/%s/%g-%gHz/%gms", kind, sw.f0, sw.f1, sw.ms)
		out = append(out, Clip{Name: name, Kind: KindSynthetic, PCM: sweep(sw.f0, sw.f1, sw.ms, sw.log, -10)})
	}
	// Whistles: a single tone with 5 Hz vibrato of ±2 %, with a weak
	// second harmonic.
	for _, f := range []float64{900, 1209, 1400, 1800, 2200} {
		out = append(out, Clip{Name: fmt.Sprintf("synthetic/whistle/%gHz", f), Kind: KindSynthetic, PCM: whistle(f, -8, 1500)})
	}
	// Single tones sitting on each DTMF frequency: half a digit only.
	for _, f := range append(lowHz[:], highHz[:]...) {
		out = append(out, Clip{Name: fmt.Sprintf("synthetic/single/%gHz", f), Kind: KindSynthetic, PCM: Tone(f, -6, 500)})
	}
	return out
}

// Notes in Hz (A4 = 440).
func note(semitonesFromA4 float64) float64 { return 440 * math.Pow(2, semitonesFromA4/12) }

type chordSpec struct {
	name  string
	notes []float64
}

// chords: triads and seventh chords from 200 Hz up to 1.8 kHz. Several
// contain two notes that sit close to a DTMF pair (F5 = 698.5 Hz,
// F#6 = 1480 Hz, E6 = 1318.5 Hz) together with one or two other notes, so
// they look like "a DTMF pair plus more".
var chords = func() []chordSpec {
	type shape struct {
		name      string
		intervals []float64
	}
	shapes := []shape{
		{"maj", []float64{0, 4, 7}},
		{"min", []float64{0, 3, 7}},
		{"dom7", []float64{0, 4, 7, 10}},
		{"maj7", []float64{0, 4, 7, 11}},
		{"sus4", []float64{0, 5, 7}},
	}
	roots := []struct {
		name string
		st   float64 // semitones from A4
	}{
		{"C4", -9}, {"G4", -2}, {"D5", 5}, {"F5", 8}, {"A5", 12}, {"C6", 15},
	}
	var out []chordSpec
	for _, r := range roots {
		for _, s := range shapes {
			var ns []float64
			for _, iv := range s.intervals {
				ns = append(ns, note(r.st+iv))
			}
			out = append(out, chordSpec{r.name + s.name, ns})
		}
	}
	// Open voicings spanning the two DTMF groups.
	out = append(out,
		chordSpec{"F5-A5-C6-F#6", []float64{note(8), note(12), note(15), note(21)}},
		chordSpec{"F5-C6-E6", []float64{note(8), note(15), note(19)}},
		chordSpec{"G5-D6-G6-B6", []float64{note(10), note(17), note(22), note(26)}},
		chordSpec{"A#5-F6-A6", []float64{note(13), note(20), note(24)}},
	)
	return out
}()

// chord renders notes with two harmonics each (1, 0.5, 0.25), attack and
// release of 20 ms; level is the level of each fundamental.
func chord(notes []float64, dbm0, msec float64) []int16 {
	n := ms(msec)
	a := dtmf.PeakForDBm0(dbm0)
	buf := make([]float64, n)
	for k, f := range notes {
		ph := float64(k) * 0.7
		for h, g := range []float64{1, 0.5, 0.25} {
			fh := f * float64(h+1)
			if fh >= SampleRate/2 {
				continue
			}
			for i := range buf {
				buf[i] += g * a * math.Sin(2*math.Pi*fh*float64(i)/SampleRate+ph*float64(h+1))
			}
		}
	}
	fade(buf, ms(20))
	return toPCM(buf)
}

func sweep(f0, f1, msec float64, logarithmic bool, dbm0 float64) []int16 {
	n := ms(msec)
	a := dtmf.PeakForDBm0(dbm0)
	buf := make([]float64, n)
	var ph float64
	for i := range buf {
		t := float64(i) / float64(n)
		f := f0 + (f1-f0)*t
		if logarithmic {
			f = f0 * math.Pow(f1/f0, t)
		}
		ph += 2 * math.Pi * f / SampleRate
		buf[i] = a * math.Sin(ph)
	}
	fade(buf, ms(10))
	return toPCM(buf)
}

func whistle(f, dbm0, msec float64) []int16 {
	n := ms(msec)
	a := dtmf.PeakForDBm0(dbm0)
	buf := make([]float64, n)
	var ph float64
	for i := range buf {
		t := float64(i) / SampleRate
		fi := f * (1 + 0.02*math.Sin(2*math.Pi*5*t))
		ph += 2 * math.Pi * fi / SampleRate
		buf[i] = a * (math.Sin(ph) + 0.1*math.Sin(2*ph))
	}
	fade(buf, ms(30))
	return toPCM(buf)
}
