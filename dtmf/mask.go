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
