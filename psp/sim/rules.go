package sim

import (
	"bytes"
	"github.com/tonevault/tonevault/internal/pan"
	"time"
)

// Test cards with a fixed answer. Any other PAN that passes the Luhn check
// is approved (unless an amount rule says otherwise); one that fails it
// gets 14.
var (
	cardDecline    = []byte("4000000000000002") // 05 do not honour
	cardExpired    = []byte("4000000000000069") // 54 expired card
	cardNoAnswer   = []byte("4000000000000119") // never answered
	cardDisconnect = []byte("4000000000000127") // connection closed
)

// Amount rules (minor units).
const (
	amountNoAnswer  = 99999 // never answered
	slowSuffix      = 202   // amount ending in 0202: answered after SlowDelay
	insufficientEnd = 51    // amount ending in 51: 51 insufficient funds
)

// DefaultLimit is the amount above which the sim answers 51.
const DefaultLimit = 1_000_000

type verdict int

const (
	vAnswer verdict = iota
	vNoAnswer
	vDisconnect
)

// decide applies the documented rules in order: no answer, disconnect,
// invalid card (14), declined card (05), expired (54), insufficient funds
// (51), approved (00). slow says to answer late.
func decide(pan, yymm []byte, amount, limit int64, now time.Time) (v verdict, code string, slow bool) {
	switch {
	case bytes.Equal(pan, cardNoAnswer) || amount == amountNoAnswer:
		return vNoAnswer, "", false
	case bytes.Equal(pan, cardDisconnect):
		return vDisconnect, "", false
	}
	slow = amount%10000 == slowSuffix
	switch {
	case len(pan) < 12 || len(pan) > 19 || !luhn(pan):
		return vAnswer, "14", slow
	case bytes.Equal(pan, cardDecline):
		return vAnswer, "05", slow
	case bytes.Equal(pan, cardExpired) || expired(yymm, now):
		return vAnswer, "54", slow
	case amount%100 == insufficientEnd || amount > limit:
		return vAnswer, "51", slow
	}
	return vAnswer, "00", slow
}

func luhn(d []byte) bool { return pan.Luhn(d) }

// expired: a card is good through the end of its expiry month. A missing
// or malformed expiry counts as expired.
func expired(yymm []byte, now time.Time) bool {
	if len(yymm) != 4 {
		return true
	}
	n := 0
	for _, c := range yymm {
		if c < '0' || c > '9' {
			return true
		}
		n = n*10 + int(c-'0')
	}
	year, month := 2000+n/100, n%100
	if month < 1 || month > 12 {
		return true
	}
	now = now.UTC()
	return year < now.Year() || year == now.Year() && month < int(now.Month())
}

// mask is BIN + last four, the most PCI DSS 3.4.1 lets anyone see.
func mask(pan []byte) string {
	if len(pan) < 13 {
		return "****"
	}
	b := make([]byte, len(pan))
	copy(b, pan[:6])
	for i := 6; i < len(pan)-4; i++ {
		b[i] = '*'
	}
	copy(b[len(pan)-4:], pan[len(pan)-4:])
	for _, c := range b {
		if c != '*' && (c < '0' || c > '9') {
			return "****"
		}
	}
	return string(b)
}

// Rules is the simulator's behaviour, for `tonevault psp-sim --help`. Keep
// it in step with decide and with the table in package psp's doc.
const Rules = `Test-card rules, applied in this order to 0100 (authorization) and 0200 (sale):
  card 4000000000000119, or amount 99999    never answered (exercises timeouts
                                            and reversals)
  card 4000000000000127                     connection closed, no answer
  amount ending in 0202 (e.g. 10202)        answered after --slow-delay, by the
                                            rules below
  PAN not 12-19 digits or failing Luhn      14 invalid card
  card 4000000000000002                     05 do not honour
  card 4000000000000069, or expiry (field
    14, YYMM) before this month             54 expired card
  amount ending in 51 (e.g. 1051), or
    amount above --limit                    51 insufficient funds
  any other card (4111111111111111,
    5555555555554444, 378282246310005, ...) 00 approved, auth code T00001, T00002, ...
Amounts are in minor units (field 4). Replies never carry fields 2, 14 or 126.
0800 (sign-on 001, echo 301) gets 0810 "00".
0400/0401 (reversal) gets 0410/0411: "00" when the original (field 90: MTI,
STAN, transmission time) was received, "25" when it was not; each is logged
as "reversal acknowledged" and counted (--state-file).
Logs show the PAN as first six and last four digits, never the expiry or CVV.`
