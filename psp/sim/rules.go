package sim

import (
	"bytes"
	"fmt"
	"time"

	"github.com/moov-io/iso8583"

	"github.com/tonevault/tonevault/internal/pan"
)

// Test cards with a fixed answer. Any other PAN that passes the Luhn check
// is approved (unless an amount rule says otherwise); one that fails it
// gets 14.
var (
	cardDecline    = []byte("4000000000000002") // 05 do not honour
	cardExpired    = []byte("4000000000000069") // 54 expired card
	cardNoAnswer   = []byte("4000000000000119") // never answered
	cardDisconnect = []byte("4000000000000127") // connection closed
	cardGarbage    = []byte("4000000000000135") // answered with bytes that are not ISO 8583
	cardNoCode     = []byte("4000000000000143") // answered 0110/0210 without field 39
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
	vGarbage
	vNoCode
)

// decide applies the documented rules in order: no answer, disconnect,
// garbage, no response code, invalid card (14), declined card (05),
// expired (54), insufficient funds (51), approved (00). slow says to
// answer late.
func decide(pan, yymm []byte, amount, limit int64, now time.Time) (v verdict, code string, slow bool) {
	switch {
	case bytes.Equal(pan, cardNoAnswer) || amount == amountNoAnswer:
		return vNoAnswer, "", false
	case bytes.Equal(pan, cardDisconnect):
		return vDisconnect, "", false
	case bytes.Equal(pan, cardGarbage):
		return vGarbage, "", false
	case bytes.Equal(pan, cardNoCode):
		return vNoCode, "", false
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

// brandOf tells Visa and Mastercard from their card numbers' prefixes:
// the two brands whose telephone-order indicators the simulator checks.
func brandOf(p []byte) string {
	if len(p) < 4 {
		return ""
	}
	n2 := int(p[0]-'0')*10 + int(p[1]-'0')
	n4 := n2*100 + int(p[2]-'0')*10 + int(p[3]-'0')
	switch {
	case p[0] == '4':
		return "visa"
	case n2 >= 51 && n2 <= 55, n4 >= 2221 && n4 <= 2720:
		return "mastercard"
	}
	return ""
}

// motoProblem says how a 0100/0200 fails to mark itself a telephone
// order, or "" when it does: field 22 starts "01" (manual key entry) and
// field 25 is "08" (mail/telephone order) for every brand; a Visa card's
// field 60 has "01" (single mail/telephone order) in positions 9-10; a
// Mastercard's DE 61 has "3" (phone order) in position 4 and "1" (card
// not present) in position 5. An acquirer whose specification differs
// is not simulated.
func motoProblem(p []byte, m *iso8583.Message) string {
	f22, _ := m.GetString(22)
	f25, _ := m.GetString(25)
	switch {
	case len(f22) < 2 || f22[:2] != "01":
		return fmt.Sprintf("field 22 %q does not start 01 (manual key entry)", printableOr(f22, "?"))
	case f25 != "08":
		return fmt.Sprintf("field 25 %q is not 08 (mail/telephone order)", printableOr(f25, "?"))
	}
	switch brandOf(p) {
	case "visa":
		f60, _ := m.GetString(60)
		if len(f60) < 10 || f60[8:10] != "01" {
			return fmt.Sprintf("visa field 60 %q lacks 01 (mail/telephone order) in positions 9-10", printableOr(f60, "?"))
		}
	case "mastercard":
		f61, _ := m.GetString(61)
		if len(f61) < 5 || f61[3] != '3' || f61[4] != '1' {
			return fmt.Sprintf("mastercard field 61 %q lacks 3 (phone order) and 1 (card not present) in positions 4 and 5", printableOr(f61, "?"))
		}
	}
	return ""
}

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
  card 4000000000000135                     answered with a frame that is not
                                            ISO 8583 (a garbled answer)
  card 4000000000000143                     answered 0110/0210 without a
                                            response code (field 39)
  amount ending in 0202 (e.g. 10202)        answered after --slow-delay, by the
                                            rules below
  field 22 not starting 01, field 25 not 08;
    a Visa card (4...) without 01 in field 60
    positions 9-10; a Mastercard (51-55,
    2221-2720) without 3 and 1 in field 61
    positions 4 and 5                       30 format error (the telephone-order
                                            indicators are wrong)
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
