package dtmf

// DetectorConfig tunes the in-band detector. The zero value gives the
// ITU-T Q.24 profile described in DESIGN.md.
type DetectorConfig struct{}

// Detector finds key presses in 8 kHz linear PCM. It is streaming: feed any
// frame size, state carries across calls, no allocation per call.
type Detector struct{}

// NewDetector returns a detector with cfg's settings.
func NewDetector(cfg DetectorConfig) *Detector { panic("TODO") }

// Process consumes pcm and appends every key press that ended inside it to
// out, returning the extended slice.
func (d *Detector) Process(pcm []int16, out []Event) []Event { panic("TODO") }

// Flush ends the stream: a tone still sounding is closed and reported.
func (d *Detector) Flush(out []Event) []Event { panic("TODO") }

// Suspect reports whether the latest analysis window looks like the onset
// of a tone; the masker acts on it before a digit is confirmed.
func (d *Detector) Suspect() bool { panic("TODO") }

// Reset forgets all state, as for a new stream.
func (d *Detector) Reset() { panic("TODO") }
