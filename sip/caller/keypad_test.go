package caller

import (
	"errors"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/tonevault/tonevault/dtmf"
)

func TestPlanTiming(t *testing.T) {
	ms := func(n int64) int64 { return n * dtmf.SampleRate / 1000 }
	tests := []struct {
		name             string
		timing           Timing
		pressLo, pressHi int64
		gapLo, gapHi     int64 // gap before a press not after '#'
		hashLo, hashHi   int64 // gap before the press after '#'
	}{
		{"human", Timing{Seed: 7}, ms(80), ms(150), ms(120), ms(400), ms(720), ms(1600)},
		{"fixed", Timing{Press: 60 * time.Millisecond, Gap: 70 * time.Millisecond, HashPause: 300 * time.Millisecond},
			ms(60), ms(60), ms(70), ms(70), ms(370), ms(370)},
		{"no pause", Timing{Seed: 3, HashPause: -1}, ms(80), ms(150), ms(120), ms(400), ms(120), ms(400)},
	}
	digits := []byte("4111111111111111#1230#737")
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			p, err := plan(digits, tc.timing, newRand(tc.timing.Seed))
			if err != nil {
				t.Fatal(err)
			}
			if len(p) != len(digits) {
				t.Fatalf("%d presses for %d digits", len(p), len(digits))
			}
			var prevEnd int64
			for i, x := range p {
				if byte(x.digit) != digits[i] {
					t.Errorf("press %d: wrong digit", i)
				}
				if n := x.end - x.start; n < tc.pressLo || n > tc.pressHi {
					t.Errorf("press %d: %d samples, want %d-%d", i, n, tc.pressLo, tc.pressHi)
				}
				lo, hi := tc.gapLo, tc.gapHi
				if i > 0 && digits[i-1] == '#' {
					lo, hi = tc.hashLo, tc.hashHi
				}
				if g := x.start - prevEnd; g < lo || g > hi {
					t.Errorf("gap before press %d: %d samples, want %d-%d", i, g, lo, hi)
				}
				prevEnd = x.end
			}
		})
	}
}

func TestPlanSeed(t *testing.T) {
	d := []byte("5555555555554444")
	a, _ := plan(d, Timing{Seed: 9}, newRand(9))
	b, _ := plan(d, Timing{Seed: 9}, newRand(9))
	c, _ := plan(d, Timing{Seed: 10}, newRand(10))
	if !slices.Equal(a, b) {
		t.Error("same seed, different timing")
	}
	if slices.Equal(a, c) {
		t.Error("different seeds, same timing")
	}
}

func TestPlanErrors(t *testing.T) {
	tests := []struct {
		name   string
		digits string
		timing Timing
		want   string
	}{
		{"empty", "", Timing{}, "no digits"},
		{"letter", "4111x", Timing{}, "digit 5 of 5"},
		{"space", "41 11", Timing{}, "digit 3 of 5"},
		{"long", strings.Repeat("1", MaxDigits+1), Timing{}, "at most"},
		{"short press", "1", Timing{Press: 5 * time.Millisecond}, "press length"},
		{"long press", "1", Timing{Press: 6 * time.Second}, "press length"},
		{"gap", "1", Timing{Gap: time.Millisecond}, "gap"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			_, err := plan([]byte(tc.digits), tc.timing, newRand(1))
			if err == nil || !strings.Contains(err.Error(), tc.want) {
				t.Fatalf("plan = %v, want an error with %q", err, tc.want)
			}
			if strings.Contains(err.Error(), "4111") || strings.Contains(err.Error(), "x") && tc.name == "letter" {
				t.Errorf("error shows the digits: %v", err)
			}
			if tc.name == "letter" && !errors.Is(err, errNotDigit) {
				t.Errorf("not errNotDigit: %v", err)
			}
		})
	}
}

func TestParseMode(t *testing.T) {
	for _, m := range []Mode{InBand, RFC4733, Info} {
		got, err := ParseMode(m.String())
		if err != nil || got != m {
			t.Errorf("ParseMode(%q) = %v, %v", m.String(), got, err)
		}
	}
	if _, err := ParseMode("dtmf"); err == nil {
		t.Error("ParseMode accepted dtmf")
	}
}

func TestInfoBody(t *testing.T) {
	for _, tc := range []struct {
		d    dtmf.Digit
		len  time.Duration
		want string
	}{
		{'4', 120 * time.Millisecond, "Signal=4\r\nDuration=120\r\n"},
		{'#', 85 * time.Millisecond, "Signal=#\r\nDuration=85\r\n"},
		{'*', time.Second, "Signal=*\r\nDuration=1000\r\n"},
	} {
		if got := string(infoBody(tc.d, tc.len)); got != tc.want {
			t.Errorf("infoBody(%c) = %q, want %q", tc.d, got, tc.want)
		}
	}
}
