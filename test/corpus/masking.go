package corpus

import (
	"fmt"
	"math"
	"strings"
	"testing"

	"github.com/tonevault/tonevault/dtmf"
)

// Categories of the masking cases: no detector is required to report
// these digits, but other detectors read them, so the masker must hide them.
const (
	CatQuiet       = "quiet"        // -30 to -45 dBm0 per tone, below what the detector accepts
	CatWideTwist   = "wide-twist"   // ±10 dB twist, beyond Q.24's +4/-8 dB
	CatUnderSpeech = "under-speech" // digits mixed into speech at a digit-to-speech ratio
	CatUnderMusic  = "under-music"  // the same over music on hold
)

// MaskingCases returns the synthetic cases the masker must hide although
// the detector need not report them: all 16 digits per case, 60 ms tones
// (40 ms where named) with 100 ms between presses, nominal frequencies.
//
//   - quiet: -30, -35, -40 and -45 dBm0 per tone, and -45 dBm0 at 40 ms
//     and with 1 ms ramps;
//   - wide-twist: one tone 10 dB louder than the other, from 0/-10 down
//     to -30/-40 dBm0, both ways (at -35/-45 no reference detector reads
//     the pair unmasked, so a masking proof on it would prove nothing).
func MaskingCases() []Case {
	var cs []Case
	base := DefaultParams()
	for _, lvl := range []float64{-30, -35, -40, -45} {
		p := base
		p.LevelDBm0 = lvl
		cs = append(cs, mkCase(fmt.Sprintf("%s/%gdBm0", CatQuiet, lvl), CatQuiet, p.Presses(AllDigits), sig(), false))
	}
	{
		p := base
		p.LevelDBm0, p.OnMs = -45, 40
		cs = append(cs, mkCase(fmt.Sprintf("%s/-45dBm0/40ms", CatQuiet), CatQuiet, p.Presses(AllDigits), sig(), false))
		p.OnMs, p.RampMs = 60, 1
		cs = append(cs, mkCase(fmt.Sprintf("%s/-45dBm0/ramp1ms", CatQuiet), CatQuiet, p.Presses(AllDigits), sig(), false))
	}
	for _, tw := range []struct{ low, high float64 }{
		{-10, 0}, {0, -10}, {-25, -15}, {-15, -25}, {-35, -25}, {-25, -35}, {-40, -30}, {-30, -40},
	} {
		p := base
		p.LevelDBm0, p.TwistDB = tw.low, tw.high-tw.low
		side := "high"
		if tw.high < tw.low {
			side = "low"
		}
		name := fmt.Sprintf("%s/%s+10dB/low%gdBm0,high%gdBm0", CatWideTwist, side, tw.low, tw.high)
		cs = append(cs, mkCase(name, CatWideTwist, p.Presses(AllDigits), sig(), false))
	}
	return cs
}

// BedLevelDBm0 is the active level beds are normalised to in UnderSpeech.
const BedLevelDBm0 = SpeechLevelDBm0

// underOnMs are the press lengths UnderSpeech cycles through, as people
// type: short taps to long presses.
var underOnMs = []float64{60, 80, 100, 120}

// underBeds are the speech and music clips UnderSpeech lays digits over
// (name prefixes in Speech and Music).
var underBeds = append(append([]string(nil), overSpeechBeds...),
	"moh/macroform-cold_day", "moh/manolo_camp-morning_coffee", "moh/reno_project-system")

// UnderSpeech returns, for each digit-to-speech ratio (DSR) in dsrs and each bed
// (the OverSpeech speech clips and three music-on-hold tracks, active level
// normalised to -20 dBm0), the 16 digits mixed into the bed: presses of 60
// to 120 ms, 190 ms apart, both tones at the same level. The bed is looped
// or cut to fit.
//
// The DSR is in dB: the power of a press (both tones) over the active
// level of the bed (ActiveLevelDBm0). At 0 dB the digit is as loud as the
// talker; at -5 dB each tone sits at -28 dBm0 under speech at -20 dBm0.
func UnderSpeech(tb testing.TB, dsrs ...float64) []Case {
	tb.Helper()
	clips := append(Speech(tb), Music(tb)...)
	var cs []Case
	for _, prefix := range underBeds {
		var bed Clip
		for _, c := range clips {
			if strings.HasPrefix(c.Name, prefix) {
				bed = c
				break
			}
		}
		if bed.PCM == nil {
			tb.Fatalf("corpus: UnderSpeech: no clip named %s*", prefix)
		}
		cat := CatUnderSpeech
		if bed.Kind == KindMusic {
			cat = CatUnderMusic
		}
		for _, dsr := range dsrs {
			cs = append(cs, DigitsOver(bed, cat, dsr))
		}
	}
	return cs
}

// DigitsOver mixes the 16 digits into bed (normalised to BedLevelDBm0)
// at the digit-to-speech ratio dsr, as UnderSpeech does, in category cat.
func DigitsOver(bed Clip, cat string, dsr float64) Case {
	pcm := Scale(bed.PCM, BedLevelDBm0-ActiveLevelDBm0(bed.PCM))
	// Two tones at the same level L hold twice the power of one.
	perTone := BedLevelDBm0 + dsr - 10*math.Log10(2)
	name := fmt.Sprintf("%s/%+gdB/%s", cat, dsr, bed.Name)
	presses := make([]Press, len(AllDigits))
	for i := range presses {
		p := DefaultParams()
		p.LevelDBm0, p.OnMs, p.OffMs = perTone, underOnMs[i%len(underOnMs)], 190
		presses[i] = p.Press(dtmf.Digit(AllDigits[i]))
	}
	s := Signal{LeadMs: 300, TailMs: 300, Seed: seedOf(name)}
	tones, spans := s.RenderSpans(presses)
	return Case{
		Name:     name,
		Category: cat,
		PCM:      Mix(tones, loop(pcm, len(tones))),
		Want:     AllDigits,
		Sent:     AllDigits,
		Tones:    spans,
	}
}
