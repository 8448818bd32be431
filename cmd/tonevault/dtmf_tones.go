package main

import (
	"flag"
	"fmt"
	"io"
	"time"

	"github.com/tonevault/tonevault/dtmf"
	"github.com/tonevault/tonevault/dtmf/wav"
)

const tonesUsage = `Usage: tonevault dtmf tones [options] DIGITS OUT.wav

Write a WAV file of keypad tones, one press per digit of DIGITS
(0-9 * # A-D), to test recording pipelines, scanners and the masker.

Options:
  --on D         length of each press (default 80ms)
  --off D        silence after each press (default 80ms)
  --lead D       silence before the first press (default 100ms)
  --level DB     level of each tone, dBm0 (default -10)
  --twist DB     high-group level minus low-group level, dB (default 0)
  --rate HZ      sample rate (default 8000)
  --encoding E   pcm (16-bit), ulaw or alaw (default pcm)
  --help         show this help

Exit status: 0 when OUT was written, 2 on any error.
`

// tones writes test DTMF: what a compliance team needs to check that its
// recordings are scanned and scrubbed.
func (env dtmfEnv) tones(args []string, stdout, stderr io.Writer) int {
	fs := flag.NewFlagSet("tonevault dtmf tones", flag.ContinueOnError)
	on := fs.Duration("on", 80*time.Millisecond, "length of each press")
	off := fs.Duration("off", 80*time.Millisecond, "silence after each press")
	lead := fs.Duration("lead", 100*time.Millisecond, "silence before the first press")
	level := fs.Float64("level", -10, "level of each tone, dBm0")
	twist := fs.Float64("twist", 0, "high-group level minus low-group level, dB")
	rate := fs.Int("rate", dtmf.SampleRate, "sample rate, Hz")
	enc := fs.String("encoding", "pcm", "pcm (16-bit), ulaw or alaw")
	operands, code, ok := parseFlags(fs, tonesUsage, "tones", args, stdout, stderr)
	if !ok {
		return code
	}
	if len(operands) != 2 {
		fmt.Fprintf(stderr, "tonevault dtmf tones: want DIGITS and OUT.wav\n%s\n", firstLine(tonesUsage))
		return 2
	}
	digits, out := operands[0], operands[1]
	encoding := map[string]wav.Encoding{"pcm": wav.PCM, "ulaw": wav.ULaw, "alaw": wav.ALaw}[*enc]
	format := wav.NewFormat(encoding, *rate, 1)
	switch {
	case encoding == 0:
		fmt.Fprintf(stderr, "tonevault dtmf tones: unknown encoding %q (want pcm, ulaw or alaw)\n", *enc)
		return 2
	case format.Validate() != nil:
		fmt.Fprintf(stderr, "tonevault dtmf tones: %v\n", format.Validate())
		return 2
	case *on <= 0 || *off < 0 || *lead < 0 || *on > time.Minute:
		fmt.Fprintln(stderr, "tonevault dtmf tones: --on must be positive and at most 1m, --off and --lead not negative")
		return 2
	case *level > 3 || *level < -60 || *level+*twist > 3 || *twist < -30 || *twist > 30:
		fmt.Fprintln(stderr, "tonevault dtmf tones: each tone must be between -60 and +3 dBm0")
		return 2
	}
	samples := func(d time.Duration) int { return int(d.Seconds() * float64(*rate)) }
	pcm := make([]int16, samples(*lead))
	for i := range len(digits) {
		d := dtmf.Digit(digits[i])
		if !d.Valid() {
			fmt.Fprintf(stderr, "tonevault dtmf tones: %q is not a keypad digit (0-9 * # A-D)\n", digits[i])
			return 2
		}
		start := len(pcm)
		pcm = append(pcm, make([]int16, samples(*on)+samples(*off))...)
		dtmf.AddTone(pcm[start:start+samples(*on)], *rate, int64(start), d, *level, *level+*twist)
	}
	a, err := wav.New(format, [][]int16{pcm})
	if err == nil {
		err = writeAtomic(out, 0o644, a)
	}
	if err != nil {
		fmt.Fprintf(stderr, "tonevault dtmf tones: %s: %v\n", out, err)
		return 2
	}
	return 0
}
