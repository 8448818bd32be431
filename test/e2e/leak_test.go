package e2e

import (
	"encoding/base64"
	"encoding/hex"
	"fmt"
	"os"
	"regexp"
	"slices"
	"strings"
	"testing"
)

// envDebug, when "1", prints the text around each leak found and, when
// a test fails, the tail of the gateway's log: both may hold the test
// card data, so it is off by default.
const envDebug = "TONEVAULT_E2E_DEBUG"

// card is what the customer typed: test cards only.
type card struct {
	pan    string
	expiry string // MMYY as typed
	cvv    string
}

var (
	visaApproved = card{pan: "4111111111111111", expiry: "1230", cvv: "737"}
	visaDeclined = card{pan: "4000000000000002", expiry: "1230", cvv: "737"}
	visaNoAnswer = card{pan: "4000000000000119", expiry: "1230", cvv: "737"}
)

// keys is what the customer presses for c: each field ended with '#'
// (a 16-digit Visa needs it; the expiry and CVV end by themselves at
// their length and the '#' after them is ignored, as customers press it
// out of habit).
func (c card) keys() []byte { return []byte(c.pan + "#" + c.expiry + "#" + c.cvv + "#") }

// A finding is one leak: where and what kind, never the value itself.
type finding struct {
	source string
	offset int
	kind   string
}

func (f finding) String() string { return fmt.Sprintf("%s at byte %d: %s", f.source, f.offset, f.kind) }

var (
	word     = regexp.MustCompile(`[0-9A-Za-z]+`)
	digitRun = regexp.MustCompile(`[0-9]+`)
	uuid     = regexp.MustCompile(`\b[0-9a-fA-F]{8}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{12}\b`)
)

// digitRuns returns the positions of text's maximal digit runs, except
// inside machine words: an alphanumeric word of 16 or more characters
// with a letter (a hash such as the config.loaded record's digest, a
// signature, an id, base64), a digit run of 32 or more (the all-zero
// hash that starts the audit chain), or a UUID (Vault's role ids and
// request ids, whose dashes cut them into words too short for the first
// rule). Their digits are random, so any short number turns up in them by
// chance; card data encoded that way is searched for separately.
func digitRuns(text string) [][2]int {
	ids := uuid.FindAllStringIndex(text, -1)
	inID := func(i int) bool {
		for _, id := range ids {
			if i >= id[0] && i < id[1] {
				return true
			}
		}
		return false
	}
	var out [][2]int
	for _, w := range word.FindAllStringIndex(text, -1) {
		if inID(w[0]) {
			continue
		}
		s := text[w[0]:w[1]]
		hasLetter := strings.Trim(s, "0123456789") != ""
		if len(s) >= 16 && hasLetter || len(s) >= 32 && !hasLetter {
			continue
		}
		for _, r := range digitRun.FindAllStringIndex(s, -1) {
			out = append(out, [2]int{w[0] + r[0], w[0] + r[1]})
		}
	}
	return out
}

// findLeaks searches text for c's card data. allowed are the values the
// gateway may show (the masked card number, the token): they are blanked
// first, so that a leak can never hide behind them and they cannot
// trigger a finding.
//
// How each value is searched, and how false positives are kept out:
//   - the card number: verbatim, with spaces or dashes between digits, in
//     base64 and in hex; and any digit run holding the 8 digits around
//     the hidden middle (positions 6-13 of 16): a mask has '*' or '•'
//     there, so it never matches, and neither does a token once blanked;
//   - digit runs inside hashes, signatures, ids and other machine words
//     are skipped (see digitRuns);
//   - expiry and CVV: short numbers that timestamps, ids and durations
//     contain all the time, so only a whole digit run counts (bounded by
//     non-digits: "737" inside 1732737123 is not one), not the fraction of
//     a decimal (".737" in 0.737s), and the expiry both as MMYY and as
//     ISO 8583's YYMM, and as MM/YY.
func findLeaks(source, text string, c card, allowed ...string) []finding {
	for _, a := range allowed {
		if a != "" {
			text = strings.ReplaceAll(text, a, strings.Repeat("_", len(a)))
		}
	}
	var out []finding
	add := func(i int, kind string) {
		if i >= 0 {
			out = append(out, finding{source, i, kind})
		}
	}
	sep := make([]string, len(c.pan))
	for i := range c.pan {
		sep[i] = string(c.pan[i])
	}
	if i := strings.Index(text, c.pan); i >= 0 {
		add(i, "the full card number")
	} else if loc := regexp.MustCompile(strings.Join(sep, `[ -]?`)).FindStringIndex(text); loc != nil {
		add(loc[0], "the card number with separators")
	}
	// Unpadded base64 is a prefix of the padded form; the URL alphabet
	// differs only where the standard one has '+' or '/'.
	b64 := []string{base64.RawStdEncoding.EncodeToString([]byte(c.pan))}
	if u := base64.RawURLEncoding.EncodeToString([]byte(c.pan)); u != b64[0] {
		b64 = append(b64, u)
	}
	for _, v := range b64 {
		add(strings.Index(text, v), "the card number in base64")
	}
	add(strings.Index(text, hex.EncodeToString([]byte(c.pan))), "the card number in hex")
	middle := c.pan[5 : len(c.pan)-3]
	yymm := c.expiry[2:] + c.expiry[:2]
	slash := c.expiry[:2] + "/" + c.expiry[2:]
	for _, loc := range digitRuns(text) {
		run := text[loc[0]:loc[1]]
		// The fraction of a decimal (".737" in 0.737 s, ".00000000" in a
		// timestamp) is a measurement, not something typed.
		decimal := loc[0] > 0 && text[loc[0]-1] == '.' ||
			loc[1]+1 < len(text) && text[loc[1]] == '.' && text[loc[1]+1] >= '0' && text[loc[1]+1] <= '9'
		if decimal {
			continue
		}
		switch {
		case strings.Contains(run, middle):
			add(loc[0], "the card number's hidden middle digits")
		case run == c.expiry, run == yymm:
			add(loc[0], "the expiry date")
		case run == c.cvv:
			add(loc[0], "the security code")
		}
	}
	for i := strings.Index(text, slash); i >= 0; {
		before := i == 0 || text[i-1] < '0' || text[i-1] > '9'
		after := i+len(slash) == len(text) || text[i+len(slash)] < '0' || text[i+len(slash)] > '9'
		if before && after {
			add(i, "the expiry date as MM/YY")
			break
		}
		j := strings.Index(text[i+1:], slash)
		if j < 0 {
			break
		}
		i += 1 + j
	}
	return out
}

// assertNoLeaks searches everything the test captured for c, and first
// plants c's card number in a copy of the largest source to prove the
// search can fail on this very material.
func assertNoLeaks(t *testing.T, rec *recorder, c card, allowed ...string) {
	t.Helper()
	src := rec.sources(t)
	names := make([]string, 0, len(src))
	total := 0
	for n, s := range src {
		names = append(names, n)
		total += len(s)
	}
	slices.Sort(names)
	if total == 0 {
		t.Fatal("nothing was captured: the leak search would prove nothing")
	}
	var biggest string
	for _, n := range names {
		if len(src[n]) > len(src[biggest]) {
			biggest = n
		}
	}
	s := src[biggest]
	planted := s[:len(s)/2] + " pan=" + c.pan + " exp=" + c.expiry + " cvv=" + c.cvv + " " + s[len(s)/2:]
	kinds := map[string]bool{}
	for _, f := range findLeaks(biggest, planted, c, allowed...) {
		kinds[f.kind] = true
	}
	for _, k := range []string{"the full card number", "the expiry date", "the security code"} {
		if !kinds[k] {
			t.Errorf("leak search self-check: %s planted in %q was not found", k, biggest)
		}
	}
	var found []finding
	for _, n := range names {
		found = append(found, findLeaks(n, src[n], c, allowed...)...)
	}
	for _, f := range found {
		t.Errorf("CARD DATA LEAK: %v", f)
		// Only on request: the context holds the (test) card data.
		if os.Getenv(envDebug) == "1" {
			t.Logf("context: %q", src[f.source][max(0, f.offset-200):min(len(src[f.source]), f.offset+60)])
		}
	}
	t.Logf("leak search: %d sources, %d bytes, %d findings (sources: %s)", len(names), total, len(found), strings.Join(names, ", "))
}

// TestFindLeaks proves the search finds each form of leak and ignores
// what the gateway may legitimately show.
func TestFindLeaks(t *testing.T) {
	c := visaApproved
	tests := []struct {
		name, text string
		allowed    []string
		want       []string // kinds, in order
	}{
		{"clean log line", `{"ts":1764000000.737123,"msg":"field completed","masked":"411111******1111","elapsed":0.737}`, nil, nil},
		{"a config digest holds the CVV digits", `"reason":"file","digest":"ff88800be9a737bd9380bd62b85b4bd5210bb579151fc5a901fe06e9fed3be3d","prev"`, nil, nil},
		{"a config digest holds the expiry and long digit runs", `"digest":"41230a901234567890123e9a7a7bd9380bd62b85b4bd5210bb579151fc5a90"`, nil, nil},
		{"a CVV beside a digest", `"digest":"ff88800be9a7a7bd9380bd62b85b4bd5210bb579151fc5a901fe06e9fed3be3d" cvv 737`, nil, []string{"the security code"}},
		{"a Vault role id holds the CVV digits", "    role_id: 3f9ab737-0c1d-4e2f-8a9b-1c2d3e4f5a6b\n", nil, nil},
		{"a CVV beside a Vault request id", `"request_id":"3f9ab7a7-0c1d-4e2f-8a9b-1c2d3e4f5a6b" cvv 737`, nil, []string{"the security code"}},
		{"a CVV in a UUID-shaped run that is not one", `3f9ab737-0c1d-4e2f`, nil, []string{"the security code"}},
		{"ids as the gateway makes them", `"call_id":"c-7f3a6ek2qzm4tbw5","payment_id":"pay_k5bq737m7rt3vhn4wzc6yd2j"`, nil, nil},
		{"timestamps hold expiry and CVV digits", `2026-12-30T12:30:07.737Z took 737.5ms seq=17371230 t=1230.25`, nil, nil},
		{"masked card number", `card 411111******1111 and 4111 11** **** 1111`, nil, nil},
		{"token allowed", `token 4111118402931111`, []string{"4111118402931111"}, nil},
		{"full card number", `pan=4111111111111111`, nil, []string{"the full card number", "the card number's hidden middle digits"}},
		{"card number with spaces", `4111 1111 1111 1111`, nil, []string{"the card number with separators"}},
		{"card number in base64", `"pan":"NDExMTExMTExMTExMTExMQ=="`, nil, []string{"the card number in base64"}},
		{"card number in hex", `34313131313131313131313131313131`, nil, []string{"the card number in hex"}},
		{"middle digits", `digits 1111111111 pressed`, nil, []string{"the card number's hidden middle digits"}},
		{"expiry MMYY", `"exp":"1230"`, nil, []string{"the expiry date"}},
		{"expiry YYMM", `f14=3012,`, nil, []string{"the expiry date"}},
		{"expiry MM/YY", `expires 12/30.`, nil, []string{"the expiry date as MM/YY"}},
		{"CVV", `cvv=737`, nil, []string{"the security code"}},
		{"CVV ending a sentence", `code was 737.`, nil, []string{"the security code"}},
		{"audit chain start and hashes", `"prev":"0000000000000000000000000000000000000000000000000000000000000000","sig":"9f3a737b1230cc4111111111e0d"`, nil, nil},
		{"CVV glued to a label", `cvv737 exp1230`, nil, []string{"the security code", "the expiry date"}},
		{"a leak next to an allowed value", `4111118402931111 4111111111111111`, []string{"4111118402931111"}, []string{"the full card number", "the card number's hidden middle digits"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			var got []string
			for _, f := range findLeaks("test", tt.text, c, tt.allowed...) {
				got = append(got, f.kind)
			}
			if !slices.Equal(got, tt.want) {
				t.Errorf("findLeaks(%q) = %q, want %q", tt.text, got, tt.want)
			}
		})
	}
}
