// Package dtmf is ToneVault's signal processing for keypad digits: G.711
// decoding, a streaming Goertzel detector tuned to ITU-T Q.24, RFC 4733
// telephone events, masking with look-ahead and tone generation.
//
// The package does no I/O and does not allocate on its per-frame paths, so
// the media relay can run it on every packet of every call.
package dtmf

import (
	"fmt"
	"math"
)

// SampleRate is the only rate the detector and masker work at; callers
// resample other audio before handing it in.
const SampleRate = 8000

// Digit is one keypad symbol: '0'-'9', '*', '#', 'A'-'D'.
type Digit byte

// Digits lists every digit in RFC 4733 event-code order (event 0 is '0',
// event 10 is '*', event 11 is '#', 12-15 are 'A'-'D').
const Digits = "0123456789*#ABCD"

// Valid reports whether d is one of the 16 keypad symbols.
func (d Digit) Valid() bool {
	for i := 0; i < len(Digits); i++ {
		if Digits[i] == byte(d) {
			return true
		}
	}
	return false
}

func (d Digit) String() string {
	if !d.Valid() {
		return fmt.Sprintf("Digit(%d)", byte(d))
	}
	return string(rune(d))
}

// Source says how a digit reached the gateway.
type Source uint8

const (
	InBand  Source = iota + 1 // tones in the audio
	RFC4733                   // telephone-event RTP packets
	SIPInfo                   // SIP INFO body
)

func (s Source) String() string {
	switch s {
	case InBand:
		return "in-band"
	case RFC4733:
		return "rfc4733"
	case SIPInfo:
		return "sip-info"
	}
	return fmt.Sprintf("Source(%d)", uint8(s))
}

// Event is one key press. Start and End are sample indexes on the stream's
// 8 kHz clock (for RTP, the extended RTP timestamp), End exclusive.
type Event struct {
	Digit  Digit
	Start  int64
	End    int64
	Source Source
}

// Duration is the press length in samples.
func (e Event) Duration() int64 { return e.End - e.Start }

// ZeroDBm0Peak is the 16-bit linear peak amplitude of a 0 dBm0 sine: a
// full-scale sine is +3.14 dBm0 in G.711 µ-law (ITU-T G.711 table 5).
const ZeroDBm0Peak = 32767 / 1.4351 // 10^(3.14/20)

// PeakForDBm0 converts a level in dBm0 to a sine's 16-bit peak amplitude.
func PeakForDBm0(dbm0 float64) float64 { return ZeroDBm0Peak * math.Pow(10, dbm0/20) }
