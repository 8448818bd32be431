package dtmf

import "time"

// MaskMode chooses what replaces a tone.
type MaskMode uint8

const (
	MaskTone    MaskMode = iota // one flat beep, identical for every key
	MaskSilence                 // silence (optionally comfort noise)
)

// MaskConfig tunes masking. The zero value masks with a tone and a 30 ms
// look-ahead.
type MaskConfig struct {
	Mode      MaskMode
	LookAhead time.Duration
	Detector  DetectorConfig
}

// Span is a stretch of samples [Start, End) on the 8 kHz clock.
type Span struct{ Start, End int64 }

// PlanMask runs the detector over a whole 8 kHz signal and returns the spans
// the streaming masker would replace, for offline use (recordings).
func PlanMask(pcm []int16, cfg MaskConfig) ([]Span, error) { panic("TODO") }

// FillMask writes the mask signal for samples [from, from+len(buf)) of a
// signal at rate Hz into buf. The phase depends only on the sample index,
// so consecutive calls join without clicks.
func FillMask(buf []int16, rate int, from int64, cfg MaskConfig) { panic("TODO") }

// Codec is the encoding of the samples a Masker passes through.
type Codec uint8

const (
	Linear16 Codec = iota // 16-bit linear PCM
	PCMU                  // G.711 µ-law
	PCMA                  // G.711 A-law
)

// MaskStats counts what a masker did.
type MaskStats struct {
	Samples int64 // samples passed through
	Masked  int64 // of those, samples replaced
}

// Masker masks one direction of a call: audio in, the same audio out
// delayed by the look-ahead, with every tone replaced from its first sample
// to its last.
type Masker struct{}

// NewMasker returns a masker for audio in codec.
func NewMasker(cfg MaskConfig, codec Codec) (*Masker, error) { panic("TODO") }

// PCM masks linear samples (codec Linear16). out must be as long as in; it
// receives the input delayed by Delay() samples. Digits confirmed on the
// way are appended to events.
func (m *Masker) PCM(in, out []int16, events []Event) []Event { panic("TODO") }

// G711 masks G.711 bytes (codec PCMU or PCMA); unmasked bytes pass
// bit-exact.
func (m *Masker) G711(in, out []byte, events []Event) []Event { panic("TODO") }

// Delay is the look-ahead in samples.
func (m *Masker) Delay() int { panic("TODO") }

// Stats reports the counts so far.
func (m *Masker) Stats() MaskStats { panic("TODO") }
