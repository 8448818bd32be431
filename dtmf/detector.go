package dtmf

import (
	"errors"
	"math"
	"math/cmplx"
	"time"
)

// The detector analyses 12 ms windows (three 4 ms sub-blocks) every 4 ms.
// Each sub-block runs eight Goertzel filters whose complex outputs are
// combined into the window's DFT, so overlapping windows cost no more than
// one filter pass per sample. Comparing a window's phase with the previous
// window's gives each tone's frequency offset, which both corrects the
// window's power loss for off-frequency tones and lets a press be rejected
// at ±3.5 % deviation, which power alone cannot do for the low group.
//
// Masking has a second, long window: the last ten sub-blocks, a 40 ms DFT
// at the nominal frequencies, slid on by one sub-block per hop.
const (
	subLen   = 32               // sub-block and hop, samples (4 ms)
	winSubs  = 3                // sub-blocks per window
	winLen   = subLen * winSubs // window, samples (12 ms); DFT nulls every 83 Hz
	hop      = subLen
	longSubs = 10                // sub-blocks per long window, kept as a ring
	longLen  = subLen * longSubs // long window, samples (40 ms); nulls every 25 Hz
	maxRun   = 256               // windows kept per press for the duration estimate (~1 s)
	// batchSubs is how many whole sub-blocks are filtered at once: a
	// 20 ms packet's five, rounded up to the three the filters take a
	// pass.
	batchSubs = 6
)

var toneHz = [8]float64{697, 770, 852, 941, 1209, 1336, 1477, 1633}

// keypad maps low-group row and high-group column to a digit.
var keypad = [4][4]Digit{
	{'1', '2', '3', 'A'},
	{'4', '5', '6', 'B'},
	{'7', '8', '9', 'C'},
	{'*', '0', '#', 'D'},
}

// Each sub-block's DFT is kept referenced to the stream's first sample,
// not to its own start: sub-block j at bin k is z_j = e^{-iωMj}·x_j. Then
// a window's DFT is the plain sum of its sub-blocks' (up to a phase that
// no power depends on), the long window slides by adding the newest and
// subtracting the oldest, and z_{j+1}·conj(z_j) is the phase advance of a
// hop. Every tone is a whole number of hertz, so e^{-iωMj} repeats every
// 250 sub-blocks (one second) and comes from a table, with no drift.
const phases = SampleRate / subLen

// goertzel holds the per-frequency constants, computed once.
var goertzel = func() (g struct {
	coef [8]float64 // 2cos(ω)
	// ref[j%phases][·][k] turns sub-block j's Goertzel state (s1, s2),
	// real, into z_j: z_j = ref[0][k]·s1 − ref[1][k]·s2,
	// ref[·][k] = e^{-iωMj}·e^{-iω(M-1)}·(1, e^{-iω}).
	ref [phases][2][8]complex128
}) {
	for k, f := range toneHz {
		w := 2 * math.Pi * f / SampleRate
		g.coef[k] = 2 * math.Cos(w)
		for j := range phases {
			r := cmplx.Exp(complex(0, -w*float64(subLen*j+subLen-1)))
			g.ref[j][0][k], g.ref[j][1][k] = r, r*cmplx.Exp(complex(0, -w))
		}
	}
	return
}()

// DetectorConfig tunes the in-band detector. The zero value gives the
// ITU-T Q.24 profile of DESIGN.md; fields left zero take their default.
type DetectorConfig struct {
	// MinLevel is the weakest tone detected, dBm0 per tone (default -36:
	// Q.24 asks for -25, the rest is margin for off-frequency and noisy tones).
	MinLevel float64
	// MinDuration is the shortest press reported (default 30 ms, between
	// Q.24's reject at 23 ms and detect at 40 ms).
	MinDuration time.Duration
	// MaxDeviation is the largest frequency error accepted, percent
	// (default 2.8: Q.24 detects at 1.5 and rejects at 3.5).
	MaxDeviation float64
	// TwistHigh and TwistLow bound how much louder, in dB, the high group
	// may be than the low group and the low than the high (defaults 6 and
	// 10: Q.24 asks for 4 and 8).
	TwistHigh, TwistLow float64
	// MinPurity is the share of the window's energy the two tones must hold
	// (default 0.75).
	MinPurity float64
}

func (c DetectorConfig) withDefaults() DetectorConfig {
	def := func(v *float64, d float64) {
		if *v == 0 {
			*v = d
		}
	}
	def(&c.MinLevel, -36)
	def(&c.MaxDeviation, 2.8)
	def(&c.TwistHigh, 6)
	def(&c.TwistLow, 10)
	def(&c.MinPurity, 0.75)
	if c.MinDuration == 0 {
		c.MinDuration = 30 * time.Millisecond
	}
	return c
}

// Validate reports settings that cannot work.
func (c DetectorConfig) Validate() error {
	c = c.withDefaults()
	switch {
	case c.MinLevel > 0 || c.MinLevel < -60:
		return errors.New("dtmf: MinLevel must be between -60 and 0 dBm0")
	case c.MinDuration < 10*time.Millisecond || c.MinDuration > time.Second:
		return errors.New("dtmf: MinDuration must be between 10 ms and 1 s")
	case c.MaxDeviation < 0.5 || c.MaxDeviation > 5:
		return errors.New("dtmf: MaxDeviation must be between 0.5 and 5 percent")
	case c.TwistHigh < 0 || c.TwistLow < 0 || c.TwistHigh > 20 || c.TwistLow > 20:
		return errors.New("dtmf: twist limits must be between 0 and 20 dB")
	case c.MinPurity < 0.3 || c.MinPurity > 1:
		return errors.New("dtmf: MinPurity must be between 0.3 and 1")
	}
	return nil
}

// Masking is far more eager than reporting: a press is reported only within
// Q.24's limits (DetectorConfig), but any tone pair another detector might
// read is masked. multimon-ng reads pairs at any level and buried under
// speech (40 ms windows, 40 % of the energy, no level floor), the other
// reference detectors twist up to about 15 dB, so the masking limits do
// not follow the configuration. Tuned on test/dtmfproof's cases and
// talk-off set (BENCHMARKS.md has the figures).
const (
	// maskFloorDBm0 is the weakest tone masked, per tone: below what G.711
	// carries. multimon-ng reads a pair at -75 dBm0 through µ-law (none at
	// -80, where the codec leaves nothing of it), so there is no floor in
	// effect; it costs 0.004 % more of the talk-off set than -70 dBm0.
	maskFloorDBm0 = -90
	// maskTwistDB is the largest level difference between the two tones
	// masked, either way: ±10 dB and a margin.
	maskTwistDB = 13
	// maskPurity is the share of a 12 ms window's energy a suspected pair
	// must hold. The long window catches the tones buried deeper, so this
	// stays above speech: at 0.55 without the long window the masker
	// altered 0.99 % of the talk-off set and leaked, at 0.7 with it 0.68 %
	// and nothing leaks up to 0.9.
	maskPurity = 0.7
	// longShare and longDominanceDB judge the long window: the pair must
	// hold 30 % of its energy (multimon-ng wants 40 %) and each tone stand
	// 6 dB above the other three of its group (multimon-ng: 10 dB). At
	// 40 % multimon-ng reads digits under speech, at 35 % none.
	longShare       = 0.3
	longDominanceDB = 6
	// longWins is how many consecutive long windows must agree on the pair.
	longWins = 2
)

// thresholds are the configuration turned into the squared amplitudes and
// ratios compared per window, so the hot path has no logarithms.
type thresholds struct {
	minAmp2, suspectAmp2  float64
	twistHi, twistLo      float64 // ratios of squared amplitudes
	suspectTwist          float64
	purity, suspectPurity float64
	dominance             float64
	stable                float64 // Hz a suspect tone's offset may move per hop
	longShare, longDom    float64
	maxDev                float64 // fraction
	minWins               int     // windows a press must count
}

func dbRatio(db float64) float64 { return math.Pow(10, db/10) }

func (c DetectorConfig) thresholds() thresholds {
	a0 := ZeroDBm0Peak * ZeroDBm0Peak
	return thresholds{
		minAmp2:       a0 * dbRatio(c.MinLevel),
		suspectAmp2:   a0 * dbRatio(maskFloorDBm0),
		twistHi:       dbRatio(c.TwistHigh),
		twistLo:       dbRatio(c.TwistLow),
		suspectTwist:  dbRatio(maskTwistDB),
		purity:        c.MinPurity,
		suspectPurity: maskPurity,
		dominance:     dbRatio(4.5),
		longShare:     longShare,
		longDom:       dbRatio(longDominanceDB),
		maxDev:        c.MaxDeviation / 100,
		stable:        10,
		// A press of L samples fills about (L-winLen)/hop+1 windows
		// with enough purity to count.
		minWins: int(math.Ceil((c.MinDuration.Seconds()*SampleRate - (winLen - hop)) / hop)),
	}
}

// window is the analysis of one 12 ms window.
type window struct {
	digit   Digit // 0 unless the window is a valid tone pair
	suspect bool  // looks like a tone pair under relaxed limits
	// flo and fhi are the tones' measured frequencies, Hz; a real tone's
	// stay put from window to window, speech's wander.
	flo, fhi float64
	purity   float64 // of the suspect pair
	lo, hi   int     // strongest tone in each group
	slo, shi int     // the suspect pair's bins (lo and hi when not suspect)
	power    float64
	zlo      complex128 // phase progression of the two tones, for the press
	zhi      complex128
	raw      [2]float64 // power in the lo and hi bins, uncorrected
	held     bool       // the press being followed still sounds in this window
}

// inbandPress is the press being followed.
type inbandPress struct {
	active   bool
	digit    Digit
	lo, hi   int
	first    int64 // window index of the first valid window
	n        int   // windows since first
	gap      int   // invalid windows since the last valid one
	pows     [maxRun]float32
	pmax     float64
	zlo, zhi complex128
	// The loudest each tone was in a valid window, raw power: a window
	// still holding both at a quarter of that is the press going on
	// under speech, not a gap.
	plo, phi float64
}

// Detector finds key presses in 8 kHz linear PCM. It is streaming: feed any
// frame size, state carries across calls, no allocation per call.
type Detector struct {
	cfg DetectorConfig
	th  thresholds

	s1, s2 [8]float64 // Goertzel state of the sub-block being filled
	energy float64
	fill   int

	// Whole sub-blocks are filtered together, then judged one by one: the
	// filters of different sub-blocks are independent chains the
	// processor overlaps, where one sub-block's filters wait on their own
	// last step at every sample.
	xbuf [batchSubs * subLen]float64
	bst  [batchSubs][2][8]float64 // each sub-block's final (s1, s2)
	ben  [batchSubs]float64       // and its energy

	// The last longSubs sub-blocks, a ring by nsub: the 12 ms window is
	// the newest three, the long window all of them.
	subX [longSubs][8]complex128 // z_j, referenced to the stream's start
	subP [longSubs][8]float64    // |subX|²
	subE [longSubs]float64
	nsub int64
	win  [winSubs]int // the 12 ms window's slots, oldest first
	// The next sub-block's slot in the ring and row of goertzel.ref:
	// nsub modulo longSubs and phases, kept as counters.
	slot, phase int

	// The 12 ms window's DFT, squared amplitudes and wide-bin powers,
	// and the strongest of those.
	wx             [8]complex128
	wamp2, wbroad  [8]float64
	ampPk, broadPk pick
	tones          tones // the suspect pair's candidates

	longY   [8]complex128 // the long window's DFT
	longP   [8]float64    // its powers
	longPk  pick          // and their strongest
	longE   float64       // and its energy
	longRun int           // consecutive long windows holding the same pair
	longLo  int
	longHi  int

	last window
	cur  inbandPress
	// suspectRun counts consecutive suspect windows of the same tone
	// pair; one window alone is too easily speech.
	suspectRun int
}

// NewDetector returns a detector with cfg's settings; invalid settings are
// replaced by defaults (check them first with Validate).
func NewDetector(cfg DetectorConfig) *Detector {
	if cfg.Validate() != nil {
		cfg = DetectorConfig{}
	}
	d := &Detector{cfg: cfg.withDefaults()}
	d.th = d.cfg.thresholds()
	return d
}

// Reset forgets all state, as for a new stream.
func (d *Detector) Reset() {
	*d = Detector{cfg: d.cfg, th: d.th}
}

// Suspect reports whether the latest analysis window looks like a tone pair
// or continues a press; the masker acts on it before a digit is confirmed.
func (d *Detector) Suspect() bool { return d.suspectShort() || d.suspectLong() }

// suspectShort: the 12 ms windows see a pair, or a press goes on.
func (d *Detector) suspectShort() bool {
	return d.suspectRun >= suspectWins || d.cur.active && d.last.digit != 0
}

// suspectLong: the 40 ms window sees a pair buried in other sound.
func (d *Detector) suspectLong() bool { return d.longRun >= longWins }

// onset returns the first sample of the run of sub-blocks, ending with the
// latest window, in which both tones of the suspected pair show at a
// sixteenth (-12 dB) of their power in that window or more: where the tone
// began, to within a sub-block, however late the window was judged.
func (d *Detector) onset() int64 {
	// The bins are below 8: the mask only spares the checks.
	lo, hi := d.last.slo&7, d.last.shi&7
	// Powers are never NaN: the comparisons are max.
	var rlo, rhi float64
	for _, s := range d.win {
		p := &d.subP[s]
		if p[lo] > rlo {
			rlo = p[lo]
		}
		if p[hi] > rhi {
			rhi = p[hi]
		}
	}
	first, s := d.nsub-winSubs, d.win[0]
	for stop := max(d.nsub-longSubs, 0); first > stop; first-- {
		// The ring's slots run backwards from the window's first.
		if s--; s < 0 {
			s = longSubs - 1
		}
		if p := &d.subP[s]; p[lo]*16 < rlo || p[hi]*16 < rhi {
			break
		}
	}
	return first * subLen
}

// suspectWins is how many consecutive windows must look like the same tone
// pair before the masker acts.
const suspectWins = 2

// Process consumes pcm and appends every key press that ended inside it to
// out, returning the extended slice.
func (d *Detector) Process(pcm []int16, out []Event) []Event {
	for len(pcm) > 0 {
		if d.fill == 0 && len(pcm) >= subLen {
			k := min(len(pcm)/subLen, batchSubs)
			d.filterPCM(pcm, k)
			for j := range k {
				out = d.endSub(&d.bst[j], d.ben[j], out)
			}
			pcm = pcm[k*subLen:]
			continue
		}
		n := min(subLen-d.fill, len(pcm))
		d.run(d.xbuf[:n], toFloat(d.xbuf[:n], pcm[:n]))
		pcm = pcm[n:]
		if d.fill == subLen {
			out = d.endPart(out)
		}
	}
	return out
}

// Flush ends the stream: a press still sounding is closed and reported.
func (d *Detector) Flush(out []Event) []Event {
	if d.cur.active {
		out = d.finish(out)
	}
	return out
}

// toFloat converts pcm into dst, as long, and returns its energy: a sum
// of squared integers, exact in any order.
func toFloat(dst []float64, pcm []int16) float64 {
	dst = dst[:len(pcm)]
	var e int64
	for i, v := range pcm {
		dst[i] = float64(v)
		e += int64(v) * int64(v)
	}
	return float64(e)
}

// g711ToFloat decodes in into dst, as long, by table, and returns its
// energy.
func g711ToFloat(dst []float64, in []byte, t *g711Table) float64 {
	dst = dst[:len(in)]
	var e int64
	for i, b := range in {
		dst[i] = t.f[b]
		e += t.sq[b]
	}
	return float64(e)
}

// run feeds converted samples of part of a sub-block, of energy e, to the
// filters.
func (d *Detector) run(buf []float64, e float64) {
	d.energy += e
	goertzel8(buf, &d.s1, &d.s2, &goertzel.coef)
	d.fill += len(buf)
}

// processG711 is Process for G.711 bytes, decoded by table straight to the
// filters' input: the masker's path. It takes at most up to the next
// sub-block boundary.
func (d *Detector) processG711(in []byte, t *g711Table, out []Event) []Event {
	d.run(d.xbuf[:len(in)], g711ToFloat(d.xbuf[:len(in)], in, t))
	if d.fill == subLen {
		out = d.endPart(out)
	}
	return out
}

// endPart ends a sub-block filled in parts and clears the filters for the
// next; whole sub-blocks never touch them.
func (d *Detector) endPart(out []Event) []Event {
	out = d.endSub(&[2][8]float64{d.s1, d.s2}, d.energy, out)
	d.s1, d.s2, d.energy, d.fill = [8]float64{}, [8]float64{}, 0, 0
	return out
}

// filterPCM filters k whole sub-blocks of pcm, starting at a sub-block
// boundary; endSub then takes their results in order.
func (d *Detector) filterPCM(pcm []int16, k int) {
	toFloats(&d.xbuf, pcm[:k*subLen], &d.ben)
	goertzel8Subs(&d.xbuf, &d.bst, k)
}

// toFloatsGo converts each whole sub-block of src (at most batchSubs)
// into dst, with its energy in e.
func toFloatsGo(dst *[batchSubs * subLen]float64, src []int16, e *[batchSubs]float64) {
	for j := range len(src) / subLen {
		e[j] = toFloat(dst[j*subLen:(j+1)*subLen], src[j*subLen:(j+1)*subLen])
	}
}

// filterG711 filters k whole sub-blocks of G.711 bytes, in, starting at a
// sub-block boundary; endSub then takes their results in order.
func (d *Detector) filterG711(in []byte, k int, t *g711Table) {
	if goertzel8SubsG711(in[:k*subLen], t, &d.bst, &d.ben) {
		return
	}
	for j := range k {
		d.ben[j] = g711ToFloat(d.xbuf[j*subLen:(j+1)*subLen], in[j*subLen:(j+1)*subLen], t)
	}
	goertzel8Subs(&d.xbuf, &d.bst, k)
}

// goertzel8SubsGo runs the filters, from rest, over each of the first k
// sub-blocks of x.
func goertzel8SubsGo(x *[batchSubs * subLen]float64, s *[batchSubs][2][8]float64, k int) {
	for j := range k {
		s[j] = [2][8]float64{}
		goertzel8Go(x[j*subLen:(j+1)*subLen], &s[j][0], &s[j][1], &goertzel.coef)
	}
}

// goertzel8Go runs the eight filters over x, four at a time so that their
// states stay in the sixteen float registers.
func goertzel8Go(x []float64, s1, s2, c *[8]float64) {
	goertzel4(x, (*[4]float64)(s1[0:4]), (*[4]float64)(s2[0:4]), (*[4]float64)(c[0:4]))
	goertzel4(x, (*[4]float64)(s1[4:8]), (*[4]float64)(s2[4:8]), (*[4]float64)(c[4:8]))
}

// goertzel4 runs four filters over x.
func goertzel4(x []float64, s1, s2 *[4]float64, c *[4]float64) {
	c0, c1, c2, c3 := c[0], c[1], c[2], c[3]
	a0, a1, a2, a3 := s1[0], s1[1], s1[2], s1[3]
	b0, b1, b2, b3 := s2[0], s2[1], s2[2], s2[3]
	// Two samples per turn: b takes s[n], then a takes s[n+1], so the
	// states never need shuffling between registers.
	i := 0
	for ; i+1 < len(x); i += 2 {
		b0 = c0*a0 - b0 + x[i]
		b1 = c1*a1 - b1 + x[i]
		b2 = c2*a2 - b2 + x[i]
		b3 = c3*a3 - b3 + x[i]
		a0 = c0*b0 - a0 + x[i+1]
		a1 = c1*b1 - a1 + x[i+1]
		a2 = c2*b2 - a2 + x[i+1]
		a3 = c3*b3 - a3 + x[i+1]
	}
	if i < len(x) {
		a0, b0 = c0*a0-b0+x[i], a0
		a1, b1 = c1*a1-b1+x[i], a1
		a2, b2 = c2*a2-b2+x[i], a2
		a3, b3 = c3*a3-b3+x[i], a3
	}
	*s1 = [4]float64{a0, a1, a2, a3}
	*s2 = [4]float64{b0, b1, b2, b3}
}

// endSub stores the finished sub-block's spectrum, from its filters' state
// st and its energy, and, once three are there, analyses the window they
// make.
func (d *Detector) endSub(st *[2][8]float64, energy float64, out []Event) []Event {
	slot := d.slot
	d.win = [winSubs]int{d.win[1], d.win[2], slot}
	// The sub-block in this slot leaves the long window; the 12 ms window
	// ends with the new one.
	spectra(d, st, &goertzel.ref[d.phase])
	// Energies are sums of squared integers, exact in a float64, so the
	// long window's sum can slide without drifting.
	d.longE += energy - d.subE[slot]
	d.subE[slot] = energy
	d.nsub++
	if d.slot++; d.slot == longSubs {
		d.slot = 0
	}
	if d.phase++; d.phase == phases {
		d.phase = 0
	}
	if d.nsub >= longSubs {
		d.judgeLong()
	}
	if d.nsub < winSubs {
		return out
	}
	// The window is analysed in place of the last one, of which only the
	// frequencies are still needed.
	flo, fhi := d.last.flo, d.last.fhi
	w := &d.last
	*w = window{}
	d.analyse(w)
	switch {
	case !w.suspect:
		d.suspectRun = 0
	case d.suspectRun > 0 && (math.Abs(w.flo-flo) > d.th.stable || math.Abs(w.fhi-fhi) > d.th.stable):
		d.suspectRun = 1
	default:
		d.suspectRun++
	}
	// A window that is all but pure tone needs no second opinion: it
	// catches tones whose measured frequency wanders (5 % off, between two
	// bins' nulls) at no measurable cost on the talk-off set.
	if w.suspect && w.purity >= 0.9 {
		d.suspectRun = max(d.suspectRun, suspectWins)
	}
	if !d.cur.active && w.digit == 0 {
		return out // no press, none starting: track would do nothing
	}
	return d.track(w, out)
}

// projectGo turns a sub-block's filter state st into its DFT sx, referenced
// to the stream's start by ref, and the powers sp, and slides the long
// window's DFT y, of powers yp: the sub-block that sx held leaves it, the
// new one joins; pk gets yp's strongest tones. The conversions round every
// product, so that no build fuses a multiplication and an addition
// (GOAMD64=v3 would): the results are the assembly's, and the default
// build's, everywhere.
func projectGo(st *[2][8]float64, ref *[2][8]complex128, sx *[8]complex128, sp *[8]float64, y *[8]complex128, yp *[8]float64, pk *pick) {
	for k := range 8 {
		a, b, s1, s2 := ref[0][k], ref[1][k], st[0][k], st[1][k]
		z := complex(float64(real(a)*s1)-float64(real(b)*s2), float64(imag(a)*s1)-float64(imag(b)*s2))
		y[k] += z - sx[k]
		sx[k] = z
		sp[k] = float64(real(z)*real(z)) + float64(imag(z)*imag(z))
		yp[k] = float64(real(y[k])*real(y[k])) + float64(imag(y[k])*imag(y[k]))
	}
	pickGo(yp, pk)
}

// spectraGo takes a sub-block's filter state st into d's ring at d.slot
// (projectGo, with ref its row of goertzel.ref), then sums the window of
// the sub-blocks in slots d.win (sum3Go).
func spectraGo(d *Detector, st *[2][8]float64, ref *[2][8]complex128) {
	projectGo(st, ref, &d.subX[d.slot], &d.subP[d.slot], &d.longY, &d.longP, &d.longPk)
	sum3Go(&d.subX, &d.subP, &d.win, &d.wx, &d.wamp2, &d.wbroad, &d.ampPk, &d.broadPk)
}

// sum3Go sums the DFTs of the three sub-blocks in slots win into the
// 12 ms window's, x, of squared amplitudes amp2, and their powers into
// broad; unfused, as projectGo. pa and pb get amp2's and broad's
// strongest tones.
func sum3Go(subX *[longSubs][8]complex128, subP *[longSubs][8]float64, win *[winSubs]int, x *[8]complex128, amp2, broad *[8]float64, pa, pb *pick) {
	s0, s1, s2 := win[0], win[1], win[2]
	for k := range 8 {
		v := subX[s0][k] + subX[s1][k] + subX[s2][k]
		x[k] = v
		amp2[k] = (float64(real(v)*real(v)) + float64(imag(v)*imag(v))) * (4.0 / (winLen * winLen))
		broad[k] = subP[s0][k] + subP[s1][k] + subP[s2][k]
	}
	pickGo(amp2, pa)
	pickGo(broad, pb)
}

// pick is best2's answer for eight powers v, with the winners' powers.
type pick struct {
	lo, hi   int     // the strongest of each group
	lo1, hi1 float64 // v[lo], v[hi]
	lo2, hi2 float64 // the strongest of the other three
}

func pickGo(v *[8]float64, p *pick) {
	lo, lo2, hi, hi2 := best2(v)
	*p = pick{lo, hi, v[lo], v[hi], lo2, hi2}
}

// judgeLong judges the long window for masking: a pair that holds a good
// share of the energy and stands out in its group, as a tone buried in
// speech or music does when 40 ms of it are heard at once.
func (d *Detector) judgeLong() {
	e := d.longE
	// Of the powers |Y|² (a tone of amplitude A gives (A·longLen/2)²),
	// the strongest of each group.
	pk := &d.longPk
	lo, hi, plo, phi := pk.lo, pk.hi, pk.lo1, pk.hi1
	th := &d.th
	const toAmp2 = 4.0 / (longLen * longLen)
	if e == 0 || (plo+phi)*toAmp2*(longLen/2) < th.longShare*e ||
		plo < th.longDom*pk.lo2 || phi < th.longDom*pk.hi2 ||
		phi > th.suspectTwist*plo || plo > th.suspectTwist*phi ||
		min(plo, phi)*toAmp2 < th.suspectAmp2 {
		d.longRun = 0
		return
	}
	if d.longRun == 0 || lo != d.longLo || hi != d.longHi {
		d.longRun = 0
	}
	d.longRun++
	d.longLo, d.longHi = lo, hi
}

// analyse combines the last three sub-blocks into one window and judges it.
func (d *Detector) analyse(w *window) {
	// spectra has summed the window: its DFT, squared amplitudes and
	// wide-bin powers, in the detector, not on the stack, which would
	// clear them first, and the strongest of each group with its power
	// (a1[0] = amp2[lo]).
	X, amp2 := &d.wx, &d.wamp2
	pk := &d.ampPk
	lo, hi := pk.lo, pk.hi
	a1 := [2]float64{pk.lo1, pk.hi1}
	w.lo, w.hi = lo, hi
	w.slo, w.shi = lo, hi
	w.raw = a1
	if p := &d.cur; p.active {
		w.held = amp2[p.lo]*4 >= p.plo && amp2[p.hi]*4 >= p.phi
	}
	s0, s1, s2 := d.win[0], d.win[1], d.win[2]
	e := d.subE[s0] + d.subE[s1] + d.subE[s2]
	// The previous window, one hop earlier, is still in the ring.
	if d.nsub <= winSubs || e == 0 {
		return
	}
	d.suspect(w, amp2, e)
	th := &d.th
	// The offset correction raises a tone by 6 dB for one 3.2 % off (and
	// a press averaging 2.8 % or more is rejected): windows that cannot
	// pass even so (silence, most speech) stop here.
	if raw := a1[0] + a1[1]; raw*4*(winLen/2) < th.purity*e || min(a1[0], a1[1])*4 < th.minAmp2 {
		return
	}
	// Each tone must stand out in its group, whatever its offset: most
	// speech that passed the gate above stops here, before the phases.
	if a1[0] < th.dominance*pk.lo2 || a1[1] < th.dominance*pk.hi2 {
		return
	}
	// Each tone's frequency offset from the phase advance over one hop:
	// the sub-block before the window's first is the slot before it.
	sp, so, sm := &d.subX[(s0+longSubs-1)%longSubs], &d.subX[s0], &d.subX[s1]
	z := [2]complex128{X[lo] * cmplx.Conj(sp[lo]+so[lo]+sm[lo]), X[hi] * cmplx.Conj(sp[hi]+so[hi]+sm[hi])}
	var df, g [2]float64
	offsets(&z, &df, &g)
	dflo, dfhi := df[0], df[1]
	alo := a1[0] / g[0]
	ahi := a1[1] / g[1]
	purity := (alo + ahi) * (winLen / 2) / e
	if alo >= th.minAmp2 && ahi >= th.minAmp2 && purity >= th.purity &&
		ahi <= alo*th.twistHi && alo <= ahi*th.twistLo &&
		// Per window only gross errors: the press's average offset
		// decides against the configured limit.
		math.Abs(dflo) <= 0.05*toneHz[lo] && math.Abs(dfhi) <= 0.05*toneHz[hi] {
		w.digit = keypad[lo][hi-4]
		w.power = alo + ahi
		w.zlo, w.zhi = z[0], z[1]
	}
}

// suspect judges the window under relaxed limits, for the masker: a
// steady pair of tones near the two DTMF groups that holds much of the
// energy, including tones too far off frequency, too short, too twisted or
// too buried in speech to be a valid press, because other detectors may
// still read them.
//
// The 12 ms window's DFT has nulls 83 Hz either side of each bin, where a
// tone 5 % off (1633 Hz + 5 % = 1715 Hz) all but vanishes. So the tones are
// picked by the wide bins of the 4 ms sub-blocks, each tone's frequency is
// measured from its phase advance between them, and the three
// sub-blocks are recombined at that frequency: the window's response is
// then centred on the tone wherever it lies within ±125 Hz.
func (d *Detector) suspect(w *window, amp2 *[8]float64, e float64) {
	th := &d.th
	// Coherent recombination gives at most three times the broad power
	// (Cauchy-Schwarz), less the sub-block's own loss off-bin.
	const bound = 3 * 4.0 / (winLen * winLen) / 0.6
	pk := &d.broadPk
	blo, bhi, plo, phi := pk.lo, pk.hi, pk.lo1, pk.hi1 // plo = d.wbroad[blo]
	if (plo+phi)*bound*(winLen/2) < th.suspectPurity*e || min(plo, phi)*bound < th.suspectAmp2 {
		return
	}
	// A single tone leaks into the other group's wide bins 14 dB down or
	// more; the twist limit on the wide bins keeps whistles and hold-music
	// notes from passing for a pair.
	if phi > plo*th.suspectTwist || plo > phi*th.suspectTwist {
		return
	}
	// The same bound, tighter, for the bins recombine will try: most
	// speech stops here.
	clo, chi := max(d.cohere(blo), d.cohere(w.lo)), max(d.cohere(bhi), d.cohere(w.hi))
	const cbound = 4.0 / (winLen * winLen) / 0.6
	if (clo+chi)*cbound*(winLen/2) < th.suspectPurity*e || min(clo, chi)*cbound < th.suspectAmp2 {
		return
	}
	// The wide bins cannot tell neighbours 73 Hz apart, the narrow ones
	// lose tones in their nulls: try the best of each.
	k := [4]int{blo, w.lo, bhi, w.hi}
	measure4(&d.subX, &d.win, amp2, &k, &d.tones)
	lo, alo, dflo := recombine(&d.tones, &k, 0)
	hi, ahi, dfhi := recombine(&d.tones, &k, 2)
	purity := (alo + ahi) * (winLen / 2) / e
	// The same goes for the pair: a lone tone can recombine in the other
	// group's bin 250 Hz away, the two measured frequencies then differing
	// by a multiple of 250 Hz to within a few hertz, the alias well below
	// the tone. Real pairs 250·n±6 Hz apart are within the twist limits.
	// (The difference is positive: truncation rounds it to 250·n.)
	diff := toneHz[hi] + dfhi - toneHz[lo] - dflo
	if a := diff - 250*float64(int(diff/250+0.5)); math.Abs(a) < 6 &&
		(ahi < alo*aliasTwist || alo < ahi*aliasTwist) {
		return
	}
	w.suspect = alo >= th.suspectAmp2 && ahi >= th.suspectAmp2 && purity >= th.suspectPurity &&
		ahi <= alo*th.suspectTwist && alo <= ahi*th.suspectTwist
	w.flo, w.fhi = toneHz[lo]+dflo, toneHz[hi]+dfhi
	w.slo, w.shi = lo, hi
	w.purity = purity
}

// cohere bounds the power the window's three sub-blocks recombine to at
// bin k, whatever the frequency: (|z0|+|z1|+|z2|)².
func (d *Detector) cohere(k int) float64 {
	a := math.Sqrt(d.subP[d.win[0]][k]) + math.Sqrt(d.subP[d.win[1]][k]) + math.Sqrt(d.subP[d.win[2]][k])
	return a * a
}

// aliasTwist is how much weaker (-9 dB) an alias is than its tone, at the
// least.
var aliasTwist = dbRatio(-9)

// tones holds the measures of four bins (measureGo): lane l's squared
// amplitude and frequency offset, and in bit l of ok whether it holds a
// tone at all.
type tones struct {
	p, f [4]float64
	ok   int
}

// measure4Go is measureGo at each of the four bins k, one a lane of t.
func measure4Go(subX *[longSubs][8]complex128, win *[winSubs]int, amp2 *[8]float64, k *[4]int, t *tones) {
	t.ok = 0
	for l, b := range k {
		p, f, ok := measureGo(subX, win, amp2, b)
		t.p[l], t.f[l] = p, f
		if ok {
			t.ok |= 1 << l
		}
	}
}

// measureGo measures the tone near bin k of the window in slots win from
// its phase advance between sub-blocks: its squared amplitude p and
// frequency offset f, or ok false when the bin holds no such tone.
func measureGo(subX *[longSubs][8]complex128, win *[winSubs]int, amp2 *[8]float64, k int) (p, f float64, ok bool) {
	z0, z1, z2 := &subX[win[0]], &subX[win[1]], &subX[win[2]]
	// The phase advance between sub-blocks, whose wide bins keep a tone
	// anywhere within ±125 Hz; the window's own bin has a null 83 Hz off,
	// where its phase is noise.
	z := z1[k]*cmplx.Conj(z0[k]) + z2[k]*cmplx.Conj(z1[k])
	az := math.Sqrt(real(z)*real(z) + imag(z)*imag(z))
	if az == 0 {
		return 0, 0, false
	}
	f = offsetHz(z)
	if math.Abs(f) > toneLim[k] {
		return 0, 0, false
	}
	// Undo the advance between sub-blocks: the window at f.
	u := complex(real(z)/az, -imag(z)/az)
	x := z0[k] + u*(z1[k]+u*z2[k])
	r := response(f)
	p = (real(x)*real(x) + imag(x)*imag(x)) * (4.0 / (winLen * winLen)) / r.sub
	// The phase advance over one hop cannot tell f from f±250 Hz, so a
	// tone 250 Hz away (a whistle in the other group, a harmonic)
	// recombines as if it were here. The window's own bin tells them
	// apart: a tone really at f shows there with the window's response to
	// f, one 250 Hz away about 10 dB weaker.
	if amp2[k] < 0.25*p*r.win {
		return 0, 0, false
	}
	return p, f, true
}

// toneLim is the largest offset measured, 7 % of each tone.
var toneLim = func() (l [8]float64) {
	for k, f := range toneHz {
		l[k] = 0.07 * f
	}
	return
}()

// recombine returns, of the tones measured in lanes l and l+1 of t (bins
// k[l] and k[l+1], the second ignored when the same), the stronger's bin,
// squared amplitude and frequency offset; all zero when neither holds
// one.
func recombine(t *tones, k *[4]int, l int) (bin int, amp, df float64) {
	if t.ok>>l&1 != 0 && t.p[l] > amp {
		bin, amp, df = k[l], t.p[l], t.f[l]
	}
	if l++; k[l] != k[l-1] && t.ok>>l&1 != 0 && t.p[l] > amp {
		bin, amp, df = k[l], t.p[l], t.f[l]
	}
	return
}

// best2 returns, for the low group v[0:4] and the high group v[4:8], the
// index of the strongest tone and the power of the next: lo in 0-3, hi in
// 4-7. The values are powers, never negative, so their bits order as they
// do: compared as integers, the choices compile to conditional moves,
// where the float comparisons branched and speech mispredicted them.
func best2(v *[8]float64) (lo int, lo2 float64, hi int, hi2 float64) {
	b := func(i int) uint64 { return math.Float64bits(v[i]) }
	lo, l2 := bestBits(b(0), b(1), b(2), b(3))
	hi, h2 := bestBits(b(4), b(5), b(6), b(7))
	return lo, math.Float64frombits(l2), hi + 4, math.Float64frombits(h2)
}

// bestBits is best2 for one group, on the values' bits.
func bestBits(u0, u1, u2, u3 uint64) (int, uint64) {
	// Two pairs, then their winners: the runner-up is the larger of the
	// final loser and the winner's own pair partner.
	i, a, a2 := 0, u0, u1
	if u1 > u0 {
		i, a, a2 = 1, u1, u0
	}
	j, b, b2 := 2, u2, u3
	if u3 > u2 {
		j, b, b2 = 3, u3, u2
	}
	k, r := i, max(b, a2)
	if b > a {
		k, r = j, max(a, b2)
	}
	return k, r
}

// offsetHz turns a one-hop phase advance into a frequency offset.
func offsetHz(z complex128) float64 {
	return atan2(imag(z), real(z)) * SampleRate / (2 * math.Pi * hop)
}

// atan2 is math.Atan2 to within 1e-5 rad at a fraction of its cost; it runs
// twice per window.
func atan2(y, x float64) float64 {
	ax, ay := math.Abs(x), math.Abs(y)
	if ax == 0 && ay == 0 {
		return 0
	}
	a := min(ax, ay) / max(ax, ay)
	s := a * a
	// Minimax polynomial for atan on [0, 1].
	r := ((((((-0.0040540580*s+0.0218612288)*s-0.0559098861)*s+0.0964200441)*s-0.1390853351)*s+0.1994653599)*s-0.3332985605)*s*a + a
	if ay > ax {
		r = math.Pi/2 - r
	}
	if x < 0 {
		r = math.Pi - r
	}
	if y < 0 {
		r = -r
	}
	return r
}

// offsetsGo turns the phase advances z of two tones into their
// frequency offsets df and the window's power response g to them.
func offsetsGo(z *[2]complex128, df, g *[2]float64) {
	for i, v := range z {
		df[i] = offsetHz(v)
		g[i] = gain2(df[i])
	}
}

// gain2 is the window's power response to a tone df Hz off its bin,
// floored so noise cannot inflate a weak bin by more than 10 dB.
func gain2(df float64) float64 { return max(response(df).win, 0.1) }

// resp is the power response (sin πx / πx)² of the 12 ms window and of a
// 4 ms sub-block to a tone some hertz off their bin.
type resp struct{ win, sub float64 }

// The offsets a hop's phase can express span ±125 Hz; a table covers them,
// as the windows run this twice to six times each.
const (
	gainSteps = 1024
	gainStep  = 2.0 * SampleRate / (2 * hop) / gainSteps // Hz
)

var respTable = func() (t [gainSteps + 1]resp) {
	sinc2 := func(x float64) float64 {
		x *= math.Pi
		if x == 0 {
			return 1
		}
		g := math.Sin(x) / x
		return g * g
	}
	for i := range t {
		df := float64(i-gainSteps/2) * gainStep
		t[i] = resp{sinc2(df * winLen / SampleRate), sinc2(df * subLen / SampleRate)}
	}
	return
}()

func response(df float64) resp { return respTable[respIndex(df)] }

func respIndex(df float64) int {
	i := int(math.Round(df/gainStep)) + gainSteps/2
	return min(max(i, 0), gainSteps)
}

// track follows presses across windows: a press is a run of valid windows
// of one digit, bridging gaps of up to six windows (a 10 ms drop-out
// invalidates at most six; a 40 ms pause at least seven).
func (d *Detector) track(w *window, out []Event) []Event {
	const maxGap = 6
	idx := d.nsub - winSubs
	p := &d.cur
	if p.active && w.digit != 0 && w.digit != p.digit {
		out = d.finish(out)
	}
	if !p.active {
		if w.digit == 0 {
			return out
		}
		*p = inbandPress{active: true, digit: w.digit, lo: w.lo, hi: w.hi, first: idx}
	}
	i := int(idx - p.first)
	p.n = i + 1
	if w.digit == 0 {
		// Speech over a press spoils its windows' purity but not its
		// tones: such a window bridges like a valid one, or one press
		// under speech would be reported twice. It adds nothing to the
		// press's duration.
		if w.held {
			p.gap = 0
			return out
		}
		p.gap++
		if p.gap > maxGap {
			out = d.finish(out)
		}
		return out
	}
	p.gap = 0
	p.plo, p.phi = max(p.plo, w.raw[0]), max(p.phi, w.raw[1])
	if i < maxRun {
		p.pows[i] = float32(w.power)
	}
	p.pmax = max(p.pmax, w.power)
	p.zlo += w.zlo
	p.zhi += w.zhi
	return out
}

// finish closes the press and reports it if it was long enough and on
// frequency. Only windows (nearly) filled with the tone pass the purity
// test, so the press spans from the first such window's start to the last
// one's end; windows weaker than a quarter of the peak (the edges of a
// drop-out) do not count.
func (d *Detector) finish(out []Event) []Event {
	p := &d.cur
	defer func() { p.active = false }()
	if math.Abs(offsetHz(p.zlo)) > d.th.maxDev*toneHz[p.lo] || math.Abs(offsetHz(p.zhi)) > d.th.maxDev*toneHz[p.hi] {
		return out
	}
	floor := float32(p.pmax / 4)
	first, last, count := -1, -1, 0
	valid := p.n - p.gap
	for i := range valid {
		if i >= maxRun {
			// Beyond the kept powers the press is surely long enough;
			// its last valid window ends it.
			count += valid - maxRun
			last = valid - 1
			break
		}
		if p.pows[i] >= floor && p.pows[i] > 0 {
			if first < 0 {
				first = i
			}
			last = i
			count++
		}
	}
	if count < d.th.minWins || first < 0 {
		return out
	}
	start := (p.first + int64(first)) * hop
	end := (p.first+int64(last))*hop + winLen
	return append(out, Event{Digit: p.digit, Start: start, End: end, Source: InBand})
}
