package caller

import (
	"errors"
	"fmt"
	"math/rand/v2"
	"time"

	"github.com/tonevault/tonevault/dtmf"
)

// Mode is how Type sends key presses.
type Mode uint8

const (
	// InBand mixes the two tones of each press into the audio.
	InBand Mode = iota + 1
	// RFC4733 sends telephone-event RTP packets, pausing the audio
	// during each event as phones do.
	RFC4733
	// Info sends one SIP INFO (application/dtmf-relay) per press.
	Info
)

// ParseMode reads "inband", "rfc4733" (or "rfc2833") or "info".
func ParseMode(s string) (Mode, error) {
	switch s {
	case "inband":
		return InBand, nil
	case "rfc4733", "rfc2833":
		return RFC4733, nil
	case "info":
		return Info, nil
	}
	return 0, fmt.Errorf("unknown DTMF mode %q (want inband, rfc4733 or info)", s)
}

func (m Mode) String() string {
	switch m {
	case InBand:
		return "inband"
	case RFC4733:
		return "rfc4733"
	case Info:
		return "info"
	}
	return fmt.Sprintf("Mode(%d)", uint8(m))
}

// Timing shapes how a person types. The zero value types like one: every
// press 80-150 ms, every gap 120-400 ms, a longer pause after '#' (people
// stop to listen for the next prompt), drawn at random.
type Timing struct {
	// Seed makes the random timing repeatable; 0 draws a fresh seed.
	Seed uint64
	// Press fixes the length of every press (20 ms to 5 s) instead of
	// drawing it from 80-150 ms.
	Press time.Duration
	// Gap fixes the silence before every press (20 ms to 10 s) instead of
	// drawing it from 120-400 ms.
	Gap time.Duration
	// HashPause is added to the gap after '#'; zero draws it from
	// 600-1200 ms, a negative value means no extra pause.
	HashPause time.Duration
}

// Limits on fixed timings: a press must fit one RFC 4733 duration field
// (8.19 s) and still be a press; a gap must leave room for the three End
// packets (the sender delays the next press past them anyway).
const (
	minPress = 20 * time.Millisecond
	maxPress = 5 * time.Second
	minGap   = 20 * time.Millisecond
	maxGap   = 10 * time.Second
	// MaxDigits bounds one Type call: a card, expiry and CVV with
	// separators fit many times over.
	MaxDigits = 64
)

// Validate reports timings that cannot be typed.
func (t Timing) Validate() error {
	if t.Press != 0 && (t.Press < minPress || t.Press > maxPress) {
		return fmt.Errorf("press length %v out of range %v-%v", t.Press, minPress, maxPress)
	}
	if t.Gap != 0 && (t.Gap < minGap || t.Gap > maxGap) {
		return fmt.Errorf("gap %v out of range %v-%v", t.Gap, minGap, maxGap)
	}
	if t.HashPause > maxGap {
		return fmt.Errorf("pause after '#' %v longer than %v", t.HashPause, maxGap)
	}
	return nil
}

// press is one key press on the sender's 8 kHz sample clock, relative to
// the start of its plan; end is exclusive.
type press struct {
	digit      dtmf.Digit
	start, end int64
}

// errNotDigit never names the offending byte: it may be card data.
var errNotDigit = errors.New("not a keypad digit (0-9 * # A-D)")

// plan lays digits out in time. It checks every digit first, so a bad
// one sends nothing, and reports a bad one by position only.
func plan(digits []byte, t Timing, rng *rand.Rand) ([]press, error) {
	if len(digits) == 0 {
		return nil, errors.New("no digits to type")
	}
	if len(digits) > MaxDigits {
		return nil, fmt.Errorf("%d digits, at most %d in one go", len(digits), MaxDigits)
	}
	for i, b := range digits {
		if !dtmf.Digit(b).Valid() {
			return nil, fmt.Errorf("digit %d of %d: %w", i+1, len(digits), errNotDigit)
		}
	}
	if err := t.Validate(); err != nil {
		return nil, err
	}
	draw := func(fixed, lo, hi time.Duration) int64 {
		d := fixed
		if d == 0 {
			d = lo + time.Duration(rng.Int64N(int64(hi-lo)+1))
		}
		return samples(d)
	}
	out := make([]press, len(digits))
	var at int64
	for i, b := range digits {
		at += draw(t.Gap, 120*time.Millisecond, 400*time.Millisecond)
		if i > 0 && digits[i-1] == '#' && t.HashPause >= 0 {
			at += draw(t.HashPause, 600*time.Millisecond, 1200*time.Millisecond)
		}
		n := draw(t.Press, 80*time.Millisecond, 150*time.Millisecond)
		out[i] = press{digit: dtmf.Digit(b), start: at, end: at + n}
		at += n
	}
	return out, nil
}

// wipePlan forgets which keys were pressed once they have been sent.
func wipePlan(p []press) {
	for i := range p {
		p[i].digit = 0
	}
}

func samples(d time.Duration) int64 {
	return int64(d) * dtmf.SampleRate / int64(time.Second)
}

func newRand(seed uint64) *rand.Rand {
	if seed == 0 {
		seed = rand.Uint64()
	}
	return rand.New(rand.NewPCG(seed, seed^0x9e3779b97f4a7c15))
}

// infoBody is the application/dtmf-relay body of one press, built in a
// fresh byte slice (never a string) so that it can be wiped once sent.
func infoBody(d dtmf.Digit, length time.Duration) []byte {
	b := make([]byte, 0, 32)
	b = append(b, "Signal="...)
	b = append(b, byte(d))
	b = append(b, "\r\nDuration="...)
	b = fmt.Appendf(b, "%d", length.Milliseconds())
	return append(b, "\r\n"...)
}
