package dtmf

import (
	"encoding/binary"
	"errors"
	"fmt"
	"math"
	"time"

	"github.com/zaf/g711"
)

// MaskMode chooses what replaces a tone.
type MaskMode uint8

const (
	// MaskTone replaces every press with one flat beep of the same pitch,
	// so the agent hears that a key was pressed but not which.
	MaskTone MaskMode = iota
	// MaskSilence replaces every press with comfort-level noise.
	MaskSilence
)

func (m MaskMode) String() string {
	switch m {
	case MaskTone:
		return "tone"
	case MaskSilence:
		return "silence"
	}
	return fmt.Sprintf("MaskMode(%d)", uint8(m))
}

// UnmarshalText reads "tone" or "silence" (configuration files).
func (m *MaskMode) UnmarshalText(b []byte) error {
	v, err := ParseMaskMode(string(b))
	if err != nil {
		return err
	}
	*m = v
	return nil
}

// MarshalText writes the spelling ParseMaskMode reads.
func (m MaskMode) MarshalText() ([]byte, error) { return []byte(m.String()), nil }

// ParseMaskMode reads "tone" or "silence".
func ParseMaskMode(s string) (MaskMode, error) {
	switch s {
	case "tone":
		return MaskTone, nil
	case "silence":
		return MaskSilence, nil
	}
	return 0, fmt.Errorf("dtmf: unknown mask mode %q (want tone or silence)", s)
}

// Defaults of MaskConfig.
const (
	// DefaultLookAhead leaves a margin over MinLookAhead.
	DefaultLookAhead = 20 * time.Millisecond
	DefaultMaskHz    = 1850 // above the high group, far from the low group
	DefaultMaskLevel = -20  // dBm0
	// MinLookAhead is the shortest look-ahead at which no sample of a
	// clean tone leaves before the masker has seen it (Late stays 0 on
	// every synthetic case of test/dtmfproof; at 12 ms two tones start
	// late). The reference detectors read nothing in the masked output
	// down to 8 ms: a tone's first few milliseconds are too short for them.
	MinLookAhead = 16 * time.Millisecond
)

// MaskConfig tunes masking. The zero value masks with a 1850 Hz beep at
// -20 dBm0 and a 20 ms look-ahead.
type MaskConfig struct {
	Mode      MaskMode
	LookAhead time.Duration // default 20 ms, at least MinLookAhead (16 ms)
	ToneHz    float64       // beep pitch for MaskTone, whole Hz (default 1850)
	Level     float64       // beep or comfort noise level, dBm0 (default -20 for the beep, -65 for noise)
	Detector  DetectorConfig
}

func (c MaskConfig) withDefaults() MaskConfig {
	if c.LookAhead == 0 {
		c.LookAhead = DefaultLookAhead
	}
	if c.ToneHz == 0 {
		c.ToneHz = DefaultMaskHz
	}
	// Whole hertz: the beep then repeats exactly every second at any rate,
	// so FillMask and the masker's table agree and long files never jump.
	c.ToneHz = math.Round(c.ToneHz)
	if c.Level == 0 {
		c.Level = DefaultMaskLevel
		if c.Mode == MaskSilence {
			c.Level = -65
		}
	}
	return c
}

// Validate reports settings that cannot work.
func (c MaskConfig) Validate() error {
	c = c.withDefaults()
	if c.Mode != MaskTone && c.Mode != MaskSilence {
		return fmt.Errorf("dtmf: unknown mask mode %d", c.Mode)
	}
	if c.LookAhead < MinLookAhead || c.LookAhead > 200*time.Millisecond {
		return fmt.Errorf("dtmf: look-ahead %v out of range %v to 200ms", c.LookAhead, MinLookAhead)
	}
	// A beep inside or near the DTMF bands could itself read as a tone.
	if c.Mode == MaskTone && (c.ToneHz < 300 || c.ToneHz > 3400 || (c.ToneHz > 600 && c.ToneHz < 1750)) {
		return fmt.Errorf("dtmf: mask tone %.0f Hz must be 300-600 or 1750-3400 Hz, away from the DTMF groups", c.ToneHz)
	}
	if c.Level > -3 || c.Level < -90 {
		return fmt.Errorf("dtmf: mask level %.1f dBm0 out of range -90 to -3", c.Level)
	}
	return c.Detector.Validate()
}

// Span is a stretch of samples [Start, End) on the 8 kHz clock.
type Span struct{ Start, End int64 }

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
	// Late counts tones that showed in a sub-block already sent when the
	// masker suspected them. For clean tones it stays 0 with a look-ahead
	// ≥ MinLookAhead; a tone buried in speech may show long before it
	// can be told from the speech, and what left is too weak to be read.
	Late int64
}

// ringLen is the delay line's size: a power of two above the longest
// look-ahead.
const ringLen = 2048

// Masker masks one direction of a call: audio in, the same audio out
// delayed by the look-ahead, with every tone replaced from its first sample
// to its last. It does not allocate after construction.
type Masker struct {
	cfg   MaskConfig
	codec Codec
	det   *Detector
	delay int64
	pre   int64 // samples masked before the sub-block where a tone first shows

	lin [ringLen]int16 // delay line, decoded
	raw [ringLen]byte  // delay line, G.711 as received
	in  int64          // samples taken in

	// The span being masked; spans closer together than the look-ahead
	// merge, which is harmless because both sides are tone.
	span    Span
	spanSet bool

	// The mask signal at 8 kHz repeats with a short period, so it is
	// computed once: linear and encoded.
	maskLin []int16
	maskRaw []byte
	stats   MaskStats
	// onSpan, when set, sees each masked span once it is final (PlanMask).
	onSpan func(Span)
}

// NewMasker returns a masker for audio in codec.
func NewMasker(cfg MaskConfig, codec Codec) (*Masker, error) {
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	if codec > PCMA {
		return nil, fmt.Errorf("dtmf: unknown codec %d", codec)
	}
	cfg = cfg.withDefaults()
	delay := int64(cfg.LookAhead.Seconds()*SampleRate + 0.5)
	m := &Masker{
		cfg:   cfg,
		codec: codec,
		det:   NewDetector(cfg.Detector),
		delay: delay,
		pre:   2 * hop,
	}
	period := SampleRate // comfort noise: one second, repeated
	if cfg.Mode == MaskTone {
		period = SampleRate / gcd(int(cfg.ToneHz), SampleRate)
	}
	m.maskLin = make([]int16, period)
	FillMask(m.maskLin, SampleRate, 0, cfg)
	m.maskRaw = make([]byte, period)
	for i, v := range m.maskLin {
		m.maskRaw[i] = m.encode(v)
	}
	return m, nil
}

func gcd(a, b int) int {
	for b != 0 {
		a, b = b, a%b
	}
	return a
}

// Delay is the look-ahead in samples.
func (m *Masker) Delay() int { return int(m.delay) }

// Stats reports the counts so far.
func (m *Masker) Stats() MaskStats { return m.stats }

// Suspect reports whether the detector currently suspects a tone.
func (m *Masker) Suspect() bool { return m.det.Suspect() }

var errCodec = errors.New("dtmf: masker codec does not match the call")

// PCM masks linear samples (codec Linear16). out must be as long as in; it
// receives the input delayed by Delay() samples. Digits confirmed on the
// way are appended to events.
func (m *Masker) PCM(in, out []int16, events []Event) []Event {
	if m.codec != Linear16 || len(out) < len(in) {
		panic(errCodec)
	}
	d := m.det
	for len(in) > 0 {
		if d.fill == 0 && len(in) >= subLen {
			// Whole sub-blocks: filtered together, then judged and sent
			// one by one, as G711 does. The ring holds the look-ahead
			// and a batch, so the batch goes in at once.
			k := min(len(in)/subLen, batchSubs)
			d.filterPCM(in, k)
			ringPut(m.lin[:], in[:k*subLen], m.in)
			for j := range k {
				events = d.endSub(&d.bst[j], d.ben[j], events)
				m.decide(subLen)
				m.sendLinear(out[j*subLen : (j+1)*subLen])
			}
			in, out = in[k*subLen:], out[k*subLen:]
			continue
		}
		n := min(subLen-d.fill, len(in))
		ringPut(m.lin[:], in[:n], m.in)
		events = d.Process(in[:n], events)
		m.decide(n)
		m.sendLinear(out[:n])
		in, out = in[n:], out[n:]
	}
	return events
}

// sendLinear writes the len(out) samples that leave now, those taken in
// Delay() samples ago, masked where a span covers them.
func (m *Masker) sendLinear(out []int16) {
	n := len(out)
	if t0 := m.in - int64(n) - m.delay; m.clear(t0, n) {
		ringCopy(out, m.lin[:], t0)
	} else {
		for i := range n {
			out[i] = m.outLinear(t0 + int64(i))
		}
	}
}

// G711 masks G.711 bytes (codec PCMU or PCMA); unmasked bytes pass
// bit-exact.
func (m *Masker) G711(in, out []byte, events []Event) []Event {
	if (m.codec != PCMU && m.codec != PCMA) || len(out) < len(in) {
		panic(errCodec)
	}
	table := &ulaw
	if m.codec == PCMA {
		table = &alaw
	}
	d := m.det
	for len(in) > 0 {
		if d.fill == 0 && len(in) >= subLen {
			// Whole sub-blocks: filtered together, then judged and sent
			// one by one, as if they had come one at a time. The ring
			// holds the look-ahead (at most 1600 samples) and a batch,
			// so the batch goes in at once.
			k := min(len(in)/subLen, batchSubs)
			d.filterG711(in, k, table)
			ringPut(m.raw[:], in[:k*subLen], m.in)
			for j := range k {
				events = d.endSub(&d.bst[j], d.ben[j], events)
				m.decide(subLen)
				m.sendSub((*[subLen]byte)(out[j*subLen:]))
			}
			in, out = in[k*subLen:], out[k*subLen:]
			continue
		}
		n := min(subLen-d.fill, len(in))
		ringPut(m.raw[:], in[:n], m.in)
		events = d.processG711(in[:n], table, events)
		m.decide(n)
		m.sendG711(out[:n])
		in, out = in[n:], out[n:]
	}
	return events
}

// sendSub is sendG711 for a whole sub-block, which mostly passes
// unchanged: then, unless the ring's end splits it, one copy of fixed
// size.
func (m *Masker) sendSub(out *[subLen]byte) {
	t0 := m.in - subLen - m.delay
	if j := int(t0 & (ringLen - 1)); j <= ringLen-subLen && m.clear(t0, subLen) {
		// Eight bytes a move: an array copy would call memmove, as out
		// might overlap the ring.
		r, le := (*[subLen]byte)(m.raw[j:]), binary.LittleEndian
		le.PutUint64(out[0:], le.Uint64(r[0:]))
		le.PutUint64(out[8:], le.Uint64(r[8:]))
		le.PutUint64(out[16:], le.Uint64(r[16:]))
		le.PutUint64(out[24:], le.Uint64(r[24:]))
		return
	}
	m.sendG711(out[:])
}

// sendG711 writes the len(out) bytes that leave now, those taken in
// Delay() samples ago, masked where a span covers them.
func (m *Masker) sendG711(out []byte) {
	n := len(out)
	t0 := m.in - int64(n) - m.delay
	if m.clear(t0, n) {
		ringCopy(out, m.raw[:], t0)
		return
	}
	// Before the stream's first sample, silence, not counted; then the
	// input, the span's part masked.
	end, t := t0+int64(n), t0
	for ; t < 0 && t < end; t++ {
		out[t-t0] = m.encode(0)
	}
	a, b := end, end
	if m.spanSet {
		a = min(max(m.span.Start, t), end)
		b = min(max(m.span.End, a), end)
	}
	ringCopy(out[t-t0:a-t0], m.raw[:], t)
	for i, j := a-t0, a%int64(len(m.maskRaw)); i < b-t0; j = 0 {
		i += int64(copy(out[i:b-t0], m.maskRaw[j:]))
	}
	ringCopy(out[b-t0:], m.raw[:], b)
	m.stats.Samples += end - t
	m.stats.Masked += b - a
}

func (m *Masker) encode(v int16) byte {
	if m.codec == PCMA {
		return g711.EncodeAlawFrame(v)
	}
	return g711.EncodeUlawFrame(v)
}

func (m *Masker) outLinear(t int64) int16 {
	if t < 0 {
		return 0
	}
	if !m.masked(t) {
		return m.lin[t&(ringLen-1)]
	}
	return m.maskLin[t%int64(len(m.maskLin))]
}

// decide counts n samples fed to the detector (at most up to the next
// sub-block boundary) and opens or extends the mask span on suspicion.
func (m *Masker) decide(n int) {
	m.in += int64(n)
	if d := m.det; d.fill == 0 && d.nsub >= winSubs && (d.suspectShort() || d.suspectLong()) {
		m.suspect()
	}
}

// suspect opens or extends the mask span for what the detector suspects.
func (m *Masker) suspect() {
	d := m.det
	// Either way the span runs to the current window's end plus two hops,
	// for a tail too short to raise suspicion itself.
	outPos, end := m.in-m.delay, m.in+2*hop
	switch {
	case d.suspectShort():
		// Mask from a margin before the sub-block where the pair first
		// shows, however late the windows judged it.
		onset := d.onset()
		if onset < outPos && (!m.spanSet || m.span.End < outPos) {
			m.stats.Late++
		}
		m.open(max(onset-m.pre, outPos), end)
	case d.suspectLong():
		// A tone buried in speech shows in the long window only; what of
		// it left before is too weak against the speech to be read.
		m.open(max(m.in-longLen, outPos), end)
	}
}

// open masks [start, end), merging with the current span: spans closer
// together than the look-ahead merge, as both sides are tone.
func (m *Masker) open(start, end int64) {
	if m.spanSet && start <= m.span.End+m.delay {
		m.span.End = max(m.span.End, end)
		return
	}
	if m.spanSet && m.onSpan != nil {
		m.onSpan(m.span)
	}
	m.span, m.spanSet = Span{start, end}, true
}

// clear reports whether output samples [t0, t0+n) all pass unchanged, and
// counts them if so: the common case, copied in bulk.
func (m *Masker) clear(t0 int64, n int) bool {
	if t0 < 0 || m.spanSet && t0 < m.span.End && t0+int64(n) > m.span.Start {
		return false
	}
	m.stats.Samples += int64(n)
	return true
}

// ringPut copies src into ring from index t on.
func ringPut[T int16 | byte](ring, src []T, t int64) {
	j := int(t & int64(len(ring)-1))
	if k := copy(ring[j:], src); k < len(src) {
		copy(ring, src[k:])
	}
}

// ringCopy copies len(dst) samples from ring, starting at index t.
func ringCopy[T int16 | byte](dst, ring []T, t int64) {
	j := int(t & int64(len(ring)-1))
	if k := copy(dst, ring[j:]); k < len(dst) {
		copy(dst[k:], ring)
	}
}

// masked reports whether output sample t is replaced, and counts it.
func (m *Masker) masked(t int64) bool {
	if t < 0 {
		return false
	}
	m.stats.Samples++
	if m.spanSet && t >= m.span.Start && t < m.span.End {
		m.stats.Masked++
		return true
	}
	return false
}

// PlanMask runs the streaming masker over a whole 8 kHz signal and returns
// the spans it replaces, for offline use (recordings at any rate).
func PlanMask(pcm []int16, cfg MaskConfig) ([]Span, error) {
	m, err := NewMasker(cfg, Linear16)
	if err != nil {
		return nil, err
	}
	var spans []Span
	m.onSpan = func(s Span) { spans = append(spans, s) }
	out := make([]int16, 4096)
	tail := make([]int16, m.delay+2*hop)
	for len(pcm) > 0 {
		n := min(len(pcm), len(out))
		m.PCM(pcm[:n], out[:n], nil)
		pcm = pcm[n:]
	}
	m.PCM(tail, out[:len(tail)], nil)
	if m.spanSet {
		spans = append(spans, m.span)
	}
	total := m.in - int64(len(tail))
	kept := spans[:0]
	for _, s := range spans {
		s.End = min(s.End, total)
		if s.End > s.Start {
			kept = append(kept, s)
		}
	}
	return kept, nil
}

// FillMask writes the mask signal for samples [from, from+len(buf)) of a
// signal at rate Hz into buf. The phase depends only on the sample index,
// so consecutive calls join without clicks.
func FillMask(buf []int16, rate int, from int64, cfg MaskConfig) {
	cfg = cfg.withDefaults()
	peak := PeakForDBm0(cfg.Level)
	if cfg.Mode == MaskTone {
		w := 2 * math.Pi * cfg.ToneHz / float64(rate)
		for i := range buf {
			n := (from + int64(i)) % (int64(rate) * 100)
			buf[i] = int16(peak * math.Sin(w*float64(n)))
		}
		return
	}
	for i := range buf {
		// A hash of the index gives noise that is the same however the
		// signal is cut into calls; it repeats every second, which no
		// one hears in comfort noise and lets the masker use a table.
		h := uint32((from+int64(i))%int64(rate)) * 2654435761
		h ^= h >> 15
		h *= 2246822519
		h ^= h >> 13
		buf[i] = int16(peak * (float64(h)/float64(math.MaxUint32)*2 - 1))
	}
}

var ulawTable, alawTable = func() (u, a [256]int16) {
	for i := range 256 {
		u[i] = g711.DecodeUlawFrame(uint8(i))
		a[i] = g711.DecodeAlawFrame(uint8(i))
	}
	return
}()

// g711Table decodes G.711 straight to the detector's input.
type g711Table struct {
	f  [256]float64 // the sample
	sq [256]int64   // its square, for the energy
}

var ulaw, alaw = func() (u, a g711Table) {
	for i := range 256 {
		x, y := int64(ulawTable[i]), int64(alawTable[i])
		u.f[i], u.sq[i] = float64(x), x*x
		a.f[i], a.sq[i] = float64(y), y*y
	}
	return
}()

// DecodeG711 decodes PCMU or PCMA bytes into dst, which must be as long.
func DecodeG711(dst []int16, src []byte, codec Codec) {
	table := &ulawTable
	if codec == PCMA {
		table = &alawTable
	}
	for i, b := range src {
		dst[i] = table[b]
	}
}
