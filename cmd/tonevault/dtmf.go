package main

import (
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"runtime"
	"slices"
	"strings"
	"sync"
	"time"

	"github.com/tonevault/tonevault/dtmf"
	"github.com/tonevault/tonevault/dtmf/wav"
)

func init() {
	register(command{
		name:    "dtmf",
		summary: "scan WAV recordings for keypad tones, or mask them",
		run: func(args []string, stdout, stderr io.Writer) int {
			// Progress only when both the results and the progress line
			// go to a terminal: never into a file or a pipe.
			env := dtmfEnv{progress: isTerminal(stdout) && isTerminal(stderr)}
			return subcommands("dtmf", env.commands(), args, stdout, stderr)
		},
	})
}

// dtmfEnv is what the dtmf commands take from outside their arguments, so
// tests can set it.
type dtmfEnv struct {
	progress bool             // draw a progress line on stderr
	now      func() time.Time // clock for the progress line; nil: time.Now
}

func (env dtmfEnv) commands() []command {
	return []command{
		{name: "scan", summary: "list the DTMF digits in WAV files", run: env.scan},
		{name: "mask", summary: "write a copy of a WAV file with every DTMF tone replaced", run: env.mask},
		{name: "tones", summary: "write a WAV file of keypad tones for testing", run: env.tones},
	}
}

const scanUsage = `Usage: tonevault dtmf scan [--json] [--reveal] [-j N] FILE|DIR...

Scan WAV recordings for DTMF keypad tones and list every digit found. The
digits are masked unless --reveal is given: a compliance run must not put a
card number typed on a call into its log.

Reads RIFF/WAVE files in 16-bit PCM, G.711 µ-law (format 7) or A-law
(format 6), plain or WAVE_FORMAT_EXTENSIBLE, 1 to 8 channels, any rate from
1000 to 384000 Hz. Each channel is scanned on its own after resampling to
8 kHz. A DIR is scanned recursively: every file under it whose name ends in
.wav (any case), following symbolic links to files but not to directories.
Files and channels are scanned in parallel (-j). Each file is read whole
into memory while it is scanned (a one-hour 8 kHz stereo 16-bit recording
takes about 120 MB), so up to N files at once with -j N.

Output: one line per digit, sorted by file (in the order given, a DIR's
files in the order of their paths), then channel, then time:
  <digit> <start_ms>                     one FILE with one channel
  <file>:<channel> <digit> <start_ms>    several FILEs, a DIR, or several channels
<digit> is x, the mask, or with --reveal the key: one of 0-9 * # A-D.
<start_ms> is the start of the tone in whole milliseconds from the start of
the file, <channel> counts from 1 and <file> is the name as given or as
found under the DIR given. The last two space-separated fields are always
the digit and the start time.

Options (before or after the files; "--" ends them):
  --json     one JSON object per digit and line instead, always with every field:
             {"file":"rec.wav","channel":1,"digit":"x","start_ms":160,"end_ms":240}
             (end_ms: end of the tone, exclusive)
  --reveal   print each digit's key instead of x
  -j N       scan up to N files and channels at once (default: one per CPU)
  --help     show this help

At the end a summary goes to stderr: files scanned, with digits, digits
found, errors, and the audio's length against the time taken. While
scanning, a progress bar is drawn on stderr when stdout and stderr are
terminals.

Exit status: 0 when no file holds a digit, 1 when digits were found, 2 on an
error in any file (not a WAV, truncated, unsupported encoding, cannot open).
Errors are reported on stderr with the file's name; the remaining files are
still scanned.
`

const maskUsage = `Usage: tonevault dtmf mask [--mode tone|silence] IN.wav OUT.wav

Write OUT.wav: the audio of IN.wav with every DTMF tone replaced, from its
first sample to its last, on every channel. OUT has the same encoding, sample
rate, channels and length as IN; every sample outside the replaced stretches
is copied bit for bit (G.711 bytes included). Only the fmt, fact and data
chunks are written: metadata chunks such as LIST are not copied.

Reads the same files as 'tonevault dtmf scan'; IN is read whole into memory.
OUT is written to a temporary file in OUT's directory and renamed into place,
so a failure never leaves a partial OUT. Before the rename the masked audio
is scanned again; if any digit is still found, OUT is not written. IN and OUT
must be different files.

Options (before or after the file names; "--" ends them):
  --mode tone      replace each tone with one flat 1850 Hz beep at -20 dBm0,
                   the same for every key (default)
  --mode silence   replace each tone with comfort noise at -65 dBm0
  --help           show this help

A summary (digits masked and seconds replaced per channel) goes to stderr,
and a progress line too when stdout and stderr are terminals.

Exit status: 0 when OUT was written, 2 on any error (OUT is then left as it
was).
`

// parseFlags parses fs from args, letting options and operands mix
// ("scan a.wav --json b.wav"); "--" ends the options. It returns the
// operands, or an exit code when the command should stop: 0 after --help,
// 2 after a usage error.
func parseFlags(fs *flag.FlagSet, usage, cmd string, args []string, stdout, stderr io.Writer) ([]string, int, bool) {
	fs.SetOutput(io.Discard)
	fs.Usage = func() {}
	var operands []string
	for {
		if err := fs.Parse(args); err != nil {
			if errors.Is(err, flag.ErrHelp) {
				io.WriteString(stdout, usage)
				return nil, 0, false
			}
			fmt.Fprintf(stderr, "tonevault dtmf %s: %v\n%s\nRun 'tonevault dtmf %s --help' for details.\n", cmd, err, firstLine(usage), cmd)
			return nil, 2, false
		}
		rest := fs.Args()
		if consumed := len(args) - len(rest); consumed > 0 && args[consumed-1] == "--" {
			return append(operands, rest...), 0, true
		}
		if len(rest) == 0 {
			return operands, 0, true
		}
		operands = append(operands, rest[0])
		args = rest[1:]
	}
}

func firstLine(s string) string {
	line, _, _ := strings.Cut(s, "\n")
	return line
}

// fileError words a failure to read or parse name for stderr.
func fileError(name string, err error) string {
	var pe *fs.PathError
	if errors.As(err, &pe) {
		switch {
		case errors.Is(err, fs.ErrNotExist):
			return fmt.Sprintf("%s: cannot open: no such file", name)
		case pe.Op == "open":
			return fmt.Sprintf("%s: cannot open: %v", name, pe.Err)
		}
		return fmt.Sprintf("%s: cannot read: %v", name, pe.Err)
	}
	return fmt.Sprintf("%s: %v", name, err)
}

// readWAV reads and parses a whole file.
func readWAV(name string) (*wav.Audio, error) {
	b, err := os.ReadFile(name)
	if err != nil {
		return nil, err
	}
	return wav.Parse(b)
}

// chunk8k is how much 8 kHz audio (one second) is resampled and analysed
// between two looks at the progress line.
const chunk8k = dtmf.SampleRate

// to8k resamples a channel to 8 kHz piece by piece, calling step after each
// piece with the samples done so far. Audio already at 8 kHz is returned
// as is, not copied.
func to8k(rs *wav.Resampler, pcm []int16, step func(done int)) []int16 {
	if rs.From() == rs.To() {
		return pcm
	}
	out := make([]int16, rs.OutLen(len(pcm)))
	for i := 0; i < len(out); i += chunk8k {
		rs.ResampleAt(out[i:min(i+chunk8k, len(out))], pcm, i)
		step(min(i+chunk8k, len(out)))
	}
	return out
}

// detect8k runs a fresh detector over a whole 8 kHz signal.
func detect8k(pcm8k []int16, step func(done int)) []dtmf.Event {
	d := dtmf.NewDetector(dtmf.DetectorConfig{})
	var evs []dtmf.Event
	for i := 0; i < len(pcm8k); i += chunk8k {
		evs = d.Process(pcm8k[i:min(i+chunk8k, len(pcm8k))], evs)
		step(min(i+chunk8k, len(pcm8k)))
	}
	return d.Flush(evs)
}

// scanChannel finds the digits on channel c of a. It decodes, resamples
// and analyses a second of audio at a time, so a channel costs a few
// seconds of buffers whatever its length, and calls step after each with
// the 8 kHz samples done so far.
func scanChannel(a *wav.Audio, c int, rs *wav.Resampler, step func(done int)) []dtmf.Event {
	frames := a.Frames()
	n8k := rs.OutLen(frames)
	d := dtmf.NewDetector(dtmf.DetectorConfig{})
	var evs []dtmf.Event
	buf := make([]int16, min(chunk8k, n8k))
	var win []int16
	for i := 0; i < n8k; i += chunk8k {
		out := buf[:min(chunk8k, n8k-i)]
		from, to := rs.InputSpan(i, len(out))
		from, to = max(from, 0), min(to, frames)
		win = slices.Grow(win[:0], to-from)[:to-from]
		a.DecodeChannel(win, c, from)
		rs.ResampleWindow(out, win, from, frames, i)
		evs = d.Process(out, evs)
		step(i + len(out))
	}
	return d.Flush(evs)
}

// maskedDigit stands for every digit scan prints without --reveal. Not
// '*', which is a key too.
const maskedDigit = "x"

// scanHit is one digit found by scan.
type scanHit struct {
	File    string `json:"file"`
	Channel int    `json:"channel"` // from 1
	Digit   string `json:"digit"`   // maskedDigit unless --reveal
	StartMS int64  `json:"start_ms"`
	EndMS   int64  `json:"end_ms"`
}

// scanTarget is a file to scan, or an operand or directory entry that
// failed before it could be (err).
type scanTarget struct {
	name string
	size int64 // bytes, to weigh the file in the progress bar
	err  error
}

// scanTargets expands the operands: a directory becomes the .wav files
// under it, in the order of their paths; every file is listed once. A
// directory holding none is reported on stderr but is no error.
func scanTargets(operands []string, stderr io.Writer) []scanTarget {
	var ts []scanTarget
	seen := map[string]bool{}
	add := func(name string, size int64) {
		if key := filepath.Clean(name); !seen[key] {
			seen[key] = true
			ts = append(ts, scanTarget{name: name, size: size})
		}
	}
	for _, op := range operands {
		st, err := os.Stat(op)
		switch {
		case err != nil:
			ts = append(ts, scanTarget{name: op, err: err})
			continue
		case !st.IsDir():
			add(op, st.Size())
			continue
		}
		before := len(ts)
		filepath.WalkDir(op, func(path string, d fs.DirEntry, err error) error {
			if err != nil {
				ts = append(ts, scanTarget{name: path, err: err})
				return nil
			}
			if d.IsDir() || !strings.EqualFold(filepath.Ext(path), ".wav") {
				return nil
			}
			// Stat follows a symbolic link; only regular files count.
			st, err := os.Stat(path)
			if err != nil {
				ts = append(ts, scanTarget{name: path, err: err})
			} else if st.Mode().IsRegular() {
				add(path, st.Size())
			}
			return nil
		})
		if len(ts) == before {
			fmt.Fprintf(stderr, "tonevault dtmf scan: %s: no .wav files\n", op)
		}
	}
	return ts
}

// fileScan is what scanning one target gave.
type fileScan struct {
	hits     []scanHit // by channel, then time
	channels int
	seconds  float64 // the audio's length
	err      error
}

// scanner scans files with at most cap(cpu) channels at once.
type scanner struct {
	cpu    chan struct{} // a token a channel being scanned
	reveal bool
	prog   *scanProgress

	mu  sync.Mutex
	rss map[int]*wav.Resampler // by input rate: building one takes a millisecond
}

func (sc *scanner) resampler(rate int) (*wav.Resampler, error) {
	sc.mu.Lock()
	defer sc.mu.Unlock()
	if rs := sc.rss[rate]; rs != nil {
		return rs, nil
	}
	rs, err := wav.NewResampler(rate, dtmf.SampleRate)
	if err == nil {
		sc.rss[rate] = rs
	}
	return rs, err
}

// file scans target i, its channels in parallel when tokens allow.
func (sc *scanner) file(i int, t scanTarget) fileScan {
	defer sc.prog.finish(i)
	if t.err != nil {
		return fileScan{err: t.err}
	}
	a, err := readWAV(t.name)
	if err != nil {
		return fileScan{err: err}
	}
	f := a.Format
	rs, err := sc.resampler(f.Rate)
	if err != nil {
		return fileScan{err: err}
	}
	sc.prog.start(i, int64(rs.OutLen(a.Frames()))*int64(f.Channels))
	evs := make([][]dtmf.Event, f.Channels)
	channel := func(c int) {
		sc.cpu <- struct{}{}
		defer func() { <-sc.cpu }()
		done := 0
		evs[c] = scanChannel(a, c, rs, func(n int) {
			sc.prog.advance(i, int64(n-done))
			done = n
		})
	}
	if cap(sc.cpu) == 1 || f.Channels == 1 {
		for c := range f.Channels {
			channel(c)
		}
	} else {
		var wg sync.WaitGroup
		for c := range f.Channels {
			wg.Go(func() { channel(c) })
		}
		wg.Wait()
	}
	res := fileScan{channels: f.Channels, seconds: a.Duration().Seconds()}
	for c, list := range evs {
		for _, e := range list {
			digit := maskedDigit
			if sc.reveal {
				digit = e.Digit.String()
			}
			res.hits = append(res.hits, scanHit{
				File: t.name, Channel: c + 1, Digit: digit,
				StartMS: e.Start * 1000 / dtmf.SampleRate,
				EndMS:   e.End * 1000 / dtmf.SampleRate,
			})
		}
	}
	return res
}

func (env dtmfEnv) scan(args []string, stdout, stderr io.Writer) int {
	fs := flag.NewFlagSet("scan", flag.ContinueOnError)
	asJSON := fs.Bool("json", false, "")
	reveal := fs.Bool("reveal", false, "")
	jobs := fs.Int("j", runtime.GOMAXPROCS(0), "")
	operands, code, ok := parseFlags(fs, scanUsage, "scan", args, stdout, stderr)
	if !ok {
		return code
	}
	usageErr := func(msg string) int {
		fmt.Fprintf(stderr, "tonevault dtmf scan: %s\n%s\nRun 'tonevault dtmf scan --help' for details.\n", msg, firstLine(scanUsage))
		return 2
	}
	switch {
	case len(operands) == 0:
		return usageErr("no FILE or DIR given")
	case *jobs < 1:
		return usageErr(fmt.Sprintf("-j %d: want 1 or more", *jobs))
	}
	now := env.now
	if now == nil {
		now = time.Now
	}
	began := now()
	targets := scanTargets(operands, stderr)
	prog := newScanProgress(newProgress(stderr, env.progress, now), targets)
	defer prog.clear()
	sc := &scanner{cpu: make(chan struct{}, *jobs), reveal: *reveal, prog: prog, rss: map[int]*wav.Resampler{}}

	// Up to -j files are read and scanned at once; results come back in
	// any order and are printed in the targets' order.
	results := make([]fileScan, len(targets))
	done := make(chan int, len(targets))
	next := make(chan int)
	go func() {
		for i := range targets {
			next <- i
		}
		close(next)
	}()
	for range min(*jobs, len(targets)) {
		go func() {
			for i := range next {
				results[i] = sc.file(i, targets[i])
				done <- i
			}
		}()
	}

	enc := json.NewEncoder(stdout)
	enc.SetEscapeHTML(false)
	short := len(operands) == 1 && len(targets) == 1 && targets[0].name == operands[0]
	var sum struct {
		ok, withDigits, failed, digits int
		seconds                        float64
	}
	ready := make([]bool, len(targets))
	printed := 0
	for range targets {
		ready[<-done] = true
		for ; printed < len(targets) && ready[printed]; printed++ {
			r, name := results[printed], targets[printed].name
			prog.suspend(func() {
				if r.err != nil {
					fmt.Fprintf(stderr, "tonevault dtmf scan: %s\n", fileError(name, r.err))
					return
				}
				for _, h := range r.hits {
					switch {
					case *asJSON:
						enc.Encode(h)
					case short && r.channels == 1:
						fmt.Fprintf(stdout, "%s %d\n", h.Digit, h.StartMS)
					default:
						fmt.Fprintf(stdout, "%s:%d %s %d\n", h.File, h.Channel, h.Digit, h.StartMS)
					}
				}
			})
			if r.err != nil {
				sum.failed++
				continue
			}
			sum.ok++
			sum.seconds += r.seconds
			sum.digits += len(r.hits)
			if len(r.hits) > 0 {
				sum.withDigits++
			}
			results[printed] = fileScan{} // let the hits go
		}
	}
	prog.clear()
	took := now().Sub(began).Seconds()
	speed := ""
	if took > 0 && sum.seconds > 0 {
		speed = fmt.Sprintf(", %.0fx real time", sum.seconds/took)
	}
	fmt.Fprintf(stderr, "tonevault dtmf scan: %d file%s scanned, %d with digits (%d digit%s found), %d error%s; %.1f s of audio in %.2f s%s\n",
		sum.ok, plural(sum.ok), sum.withDigits, sum.digits, plural(sum.digits), sum.failed, plural(sum.failed), sum.seconds, took, speed)
	switch {
	case sum.failed > 0:
		return 2
	case sum.digits > 0:
		return 1
	}
	return 0
}

func (env dtmfEnv) mask(args []string, stdout, stderr io.Writer) int {
	fs := flag.NewFlagSet("mask", flag.ContinueOnError)
	modeName := fs.String("mode", "tone", "")
	names, code, ok := parseFlags(fs, maskUsage, "mask", args, stdout, stderr)
	if !ok {
		return code
	}
	usageErr := func(format string, a ...any) int {
		fmt.Fprintf(stderr, "tonevault dtmf mask: "+format+"\n%s\nRun 'tonevault dtmf mask --help' for details.\n", append(a, firstLine(maskUsage))...)
		return 2
	}
	if len(names) != 2 {
		return usageErr("want IN.wav and OUT.wav, got %d file names", len(names))
	}
	mode, err := dtmf.ParseMaskMode(*modeName)
	if err != nil {
		return usageErr("--mode %q: want tone or silence", *modeName)
	}
	in, out := names[0], names[1]
	fail := func(format string, a ...any) int {
		fmt.Fprintf(stderr, "tonevault dtmf mask: "+format+"\n", a...)
		return 2
	}
	if same, err := sameFile(in, out); err != nil {
		return fail("%v", err)
	} else if same {
		return fail("%s and %s are the same file; write the masked copy elsewhere", in, out)
	}
	if st, err := os.Stat(out); err == nil && st.IsDir() {
		return fail("%s is a directory; OUT must be a file name", out)
	}
	inInfo, err := os.Stat(in)
	if err != nil {
		return fail("%s", fileError(in, err))
	}

	prog := newProgress(stderr, env.progress, env.now)
	defer prog.clear()
	a, err := readWAV(in)
	if err != nil {
		return fail("%s", fileError(in, err))
	}
	res, err := maskAudio(a, dtmf.MaskConfig{Mode: mode}, in, prog)
	prog.clear()
	if err != nil {
		return fail("%s: %v", in, err)
	}
	if err := writeAtomic(out, inInfo.Mode().Perm(), a); err != nil {
		return fail("%s: %v", out, err)
	}
	fmt.Fprintf(stderr, "tonevault dtmf mask: %s -> %s (%s, mode %s)\n", in, out, a.Format, mode)
	for c, r := range res {
		fmt.Fprintf(stderr, "  channel %d: %d digit%s masked, %.3f s replaced\n", c+1, r.digits, plural(r.digits), r.seconds)
	}
	return 0
}

func plural(n int) string {
	if n == 1 {
		return ""
	}
	return "s"
}

// sameFile reports whether in and out name the same file: the same path
// once cleaned and made absolute, or, if out exists, the same file on disk
// (links).
func sameFile(in, out string) (bool, error) {
	ai, err1 := filepath.Abs(in)
	ao, err2 := filepath.Abs(out)
	if err := errors.Join(err1, err2); err != nil {
		return false, err
	}
	if ai == ao {
		return true, nil
	}
	si, err1 := os.Stat(in)
	so, err2 := os.Stat(out)
	return err1 == nil && err2 == nil && os.SameFile(si, so), nil
}

// channelMask is what mask did to one channel.
type channelMask struct {
	digits  int
	seconds float64
}

// maskAudio replaces every tone in a, in place, channel by channel: the
// channel is resampled to 8 kHz, dtmf.PlanMask finds the stretches to
// replace, and those (widened to whole samples at the file's rate) are
// filled with dtmf.FillMask at the file's rate. Only those samples are
// re-encoded. The result is then scanned again and refused if any digit
// is left.
func maskAudio(a *wav.Audio, cfg dtmf.MaskConfig, name string, prog *progress) ([]channelMask, error) {
	f := a.Format
	rs, err := wav.NewResampler(f.Rate, dtmf.SampleRate)
	if err != nil {
		return nil, err
	}
	frames := int64(a.Frames())
	// Progress counts 8 kHz samples through each stage, twice (mask, then
	// verify): resampling (unless the file is at 8 kHz already), then
	// detection; planning the mask counts as one sample.
	per := int64(rs.OutLen(a.Frames()))
	stages := int64(2)
	if f.Rate == dtmf.SampleRate {
		stages = 1
	}
	chTotal := 2*stages*per + 1
	total := chTotal * int64(f.Channels)
	res := make([]channelMask, f.Channels)
	pcm := make([]int16, frames)
	var fill []int16
	for c := range f.Channels {
		label := fmt.Sprintf("masking %s, channel %d of %d:", filepath.Base(name), c+1, f.Channels)
		base := chTotal * int64(c)
		step := func(done int) { prog.update(label, base+int64(done), total) }
		a.DecodeChannel(pcm, c, 0)
		pcm8k := to8k(rs, pcm, step)
		base += (stages - 1) * per
		res[c].digits = len(detect8k(pcm8k, step))
		base += per
		spans, err := dtmf.PlanMask(pcm8k, cfg)
		if err != nil {
			return nil, err
		}
		base++
		step(0)
		var replaced, prevEnd int64
		for _, s := range spans {
			// [Start, End) at 8 kHz → whole samples at the file's rate,
			// rounded outward.
			from := s.Start * int64(f.Rate) / dtmf.SampleRate
			to := (s.End*int64(f.Rate) + dtmf.SampleRate - 1) / dtmf.SampleRate
			from, to = max(from, prevEnd, 0), min(to, frames)
			if to <= from {
				continue
			}
			fill = slices.Grow(fill[:0], int(to-from))[:to-from]
			dtmf.FillMask(fill, f.Rate, from, cfg)
			if err := a.Put(c, int(from), fill); err != nil {
				return nil, err
			}
			replaced += to - from
			prevEnd = to
		}
		res[c].seconds = float64(replaced) / float64(f.Rate)

		// Verify: what is written must hold no digit.
		a.DecodeChannel(pcm, c, 0)
		pcm8k = to8k(rs, pcm, step)
		base += (stages - 1) * per
		if left := detect8k(pcm8k, step); len(left) > 0 {
			return nil, fmt.Errorf("channel %d: %d digit(s) still detected after masking (first at %d ms); nothing written",
				c+1, len(left), left[0].Start*1000/dtmf.SampleRate)
		}
	}
	return res, nil
}

// writeAtomic writes a as a WAV file to name via a temporary file in the
// same directory, renamed into place only when complete.
func writeAtomic(name string, perm fs.FileMode, a *wav.Audio) (err error) {
	dir, base := filepath.Split(name)
	if dir == "" {
		dir = "."
	}
	tmp, err := os.CreateTemp(dir, "."+base+".*.tmp")
	if err != nil {
		return fmt.Errorf("cannot create a temporary file beside it: %w", unwrapPath(err))
	}
	defer func() {
		if err != nil {
			tmp.Close()
			os.Remove(tmp.Name())
		}
	}()
	if _, err = a.WriteTo(tmp); err != nil {
		return fmt.Errorf("cannot write: %w", unwrapPath(err))
	}
	if err = tmp.Chmod(perm); err != nil {
		return fmt.Errorf("cannot set permissions: %w", unwrapPath(err))
	}
	if err = tmp.Sync(); err != nil {
		return fmt.Errorf("cannot write: %w", unwrapPath(err))
	}
	if err = tmp.Close(); err != nil {
		return fmt.Errorf("cannot write: %w", unwrapPath(err))
	}
	if err = os.Rename(tmp.Name(), name); err != nil {
		return fmt.Errorf("cannot rename the temporary file into place: %w", unwrapPath(err))
	}
	return nil
}

func unwrapPath(err error) error {
	var pe *fs.PathError
	if errors.As(err, &pe) {
		return pe.Err
	}
	var le *os.LinkError
	if errors.As(err, &le) {
		return le.Err
	}
	return err
}
