package corpus

import (
	"fmt"
	"strings"
	"testing"
)

// CatOverSpeech is the category of OverSpeech cases.
const CatOverSpeech = "over-speech"

// SpeechLevelDBm0 is the active level OverSpeech normalises speech to.
const SpeechLevelDBm0 = -20

// overSpeechBeds are the speech clips digits are laid over (name prefixes
// in Speech): several languages and voices, and Asterisk's recorded digits.
var overSpeechBeds = []string{
	"espeak/en-us/s160",
	"espeak/de+f3/s190",
	"espeak/cmn+m7/s130",
	"espeak/ar/s160",
	"espeak/en+whisper/",
	"asterisk/en/digits",
}

// OverSpeech returns the 16 digits overlaid on speech, for the masking
// leak tests: for each speech bed (several espeak-ng voices and Asterisk's
// recorded digits, active level normalised to -20 dBm0) and each tone level
// (-10 and -20 dBm0 per tone), 60 ms presses every 250 ms starting 300 ms
// in. The bed is looped or cut to fit. Want is the digits sent; at -20 dBm0
// per tone the digits are about as loud as the speech, so whether a
// detector must find them there is the caller's decision.
func OverSpeech(tb testing.TB) []Case {
	tb.Helper()
	speech := Speech(tb)
	var cs []Case
	for _, bedName := range overSpeechBeds {
		var bed []int16
		for _, c := range speech {
			if strings.HasPrefix(c.Name, bedName) {
				bed = c.PCM
				bedName = c.Name
				break
			}
		}
		if bed == nil {
			tb.Fatalf("corpus: OverSpeech: no speech clip named %s*", bedName)
		}
		bed = Scale(bed, SpeechLevelDBm0-ActiveLevelDBm0(bed))
		for _, lvl := range []float64{-10, -20} {
			p := DefaultParams()
			p.LevelDBm0, p.OnMs, p.OffMs = lvl, 60, 190
			name := fmt.Sprintf("%s/%gdBm0/%s", CatOverSpeech, lvl, bedName)
			s := Signal{LeadMs: 300, TailMs: 300, Seed: seedOf(name)}
			tones, spans := s.RenderSpans(p.Presses(AllDigits))
			cs = append(cs, Case{
				Name:     name,
				Category: CatOverSpeech,
				PCM:      Mix(tones, loop(bed, len(tones))),
				Want:     AllDigits,
				Sent:     AllDigits,
				Tones:    spans,
			})
		}
	}
	return cs
}

// loop repeats pcm (or cuts it) to n samples.
func loop(pcm []int16, n int) []int16 {
	out := make([]int16, n)
	if len(pcm) == 0 {
		return out
	}
	for i := 0; i < n; i += len(pcm) {
		copy(out[i:], pcm)
	}
	return out
}
