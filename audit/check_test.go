package audit

import (
	"strings"
	"testing"

	"github.com/tonevault/tonevault/internal/pan"
)

func TestValidators(t *testing.T) {
	tests := []struct {
		name  string
		valid func(string) bool
		ok    []string
		bad   []string
	}{
		{"ValidID", ValidID,
			[]string{"c-7f3a6ek2qzm4tbw5", "pay_k5bqx2m7rt3vhn4wzc6yd2ja", "c", "call-1", "c-001", "c-" + strings.Repeat("2", 11), "c-12345678901-x-1", strings.Repeat("a", MaxIDLen)},
			[]string{"", "C-1", "1c", "-c", "c 1", "c.1", "c/1", "c-é", strings.Repeat("a", MaxIDLen+1),
				visa, "c" + visa, "c-" + visa, "c-" + strings.Repeat("2", 12), "c-4111-1111-1111", "c-411111--111111", "pay_" + amex}},
		{"ValidField", ValidField,
			[]string{"card_number", "expiry", "security_code", "postcode", "a", strings.Repeat("f", 32)},
			[]string{"", "_x", "Card", "card number", "card-number", "field1", visa, strings.Repeat("f", 33)}},
		{"ValidState", ValidState,
			[]string{"approved", "declined", "expired"},
			[]string{"", "Approved", "x" + visa}},
		{"ValidTrunk", ValidTrunk,
			[]string{"carrier", "platform"},
			[]string{"", "Carrier", "pbx", visa}},
		{"ValidMethod", ValidMethod,
			[]string{"INVITE", "GET", "OPTIONS", "X"},
			[]string{"", "invite", "GET ", "M1", "GET" + visa, strings.Repeat("M", 33)}},
		{"ValidRoute", ValidRoute,
			[]string{"GET /v1/payments/{id}", "POST /v1/calls/{id}/payments", "GET /v1/openapi.yaml", "GET /widget/", "GET /files/{path...}", "GET /{$}", "GET /"},
			[]string{"", "/v1/payments/{id}", "get /v1/calls", "GET v1/calls", "GET /v1//calls", "GET /v1/Calls", "GET /v1/{ID}", "GET /v1/{id", "GET /{$}/x",
				"GET /v1/calls?id=1", "GET  /v1", "GET /v1/payments/" + visa, "GET /v1/4111-1111-1111-1111", "GET /" + strings.Repeat("a", 124)}},
		{"ValidDigest", ValidDigest,
			// A digest is a machine word: its digits are not searched,
			// whatever they spell.
			[]string{strings.Repeat("ab", 32), GenesisPrev, visa + strings.Repeat("0", 48)},
			[]string{"", strings.Repeat("AB", 32), strings.Repeat("a", 63), strings.Repeat("a", 65), "sha256:" + strings.Repeat("a", 57)}},
		{"ValidVersion", ValidVersion,
			[]string{"(devel)", "v1.4.0", "v0.0.0", "v10.200.3000", "v1.4.0-rc.1", "v2.0.0+incompatible", "v1.0.0-beta-2",
				"v0.0.0-20250101120000-abcdef123456", "v0.0.0-20250101120000-123456789012", "v0.0.0-20250101120000-abcdef123456+dirty",
				"v1.2.4-0.20250101120000-abcdef123456", "v1.2.3-pre.0.20250101120000-abcdef123456", "v1.0.0-12345678901"},
			[]string{"", "devel", "1.4.0", "v1.4", "v1.4.0.1", "v01.4.0", "v1.4.0-", "v1.4.0+", "v1.4.0-rc..1", "v1.4.0-rc_1", "v1.4.0 ",
				"v" + visa, "v" + visa + ".0.0", "v1.0.0-" + visa, "v1.0.0+" + visa, "v1.0.0-4111-1111-1111-1111", "v1.0.0-rc." + visa,
				"v0.0.0-20251301120000-abcdef123456",    // no month 13: not a timestamp
				"v0.0.0-" + visa[:14] + "-abcdef123456", // not a date either
				"v0.0.0-20250101120000-ABCDEF123456",    // a revision is lowercase
				"v0.0.0-.20250101120000-abcdef123456",   // empty identifier before the timestamp
				"v0.0.0-x20250101120000-abcdef123456",   // the timestamp must start an identifier
				"v1.0.0-" + strings.Repeat("x", 122)}},
		{"ValidSTAN", ValidSTAN,
			[]string{"000123", "999999"},
			[]string{"", "12345", "1234567", "12345a", visa}},
		{"ValidResponseCode", ValidResponseCode,
			[]string{"00", "05", "N7", "ZZ"},
			[]string{"", "5", "005", "n7", "0 ", visa}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			for _, s := range tt.ok {
				if !tt.valid(s) {
					t.Errorf("%s(%q) = false, want true", tt.name, s)
				}
			}
			for _, s := range tt.bad {
				if tt.valid(s) {
					t.Errorf("%s(%q) = true, want false", tt.name, s)
				}
			}
		})
	}
	for _, n := range []int{100, 200, 486, 699} {
		if !ValidStatus(n) {
			t.Errorf("ValidStatus(%d) = false", n)
		}
	}
	for _, n := range []int{-1, 0, 99, 700, 4111111111111111} {
		if ValidStatus(n) {
			t.Errorf("ValidStatus(%d) = true", n)
		}
	}
}

// TestValidFieldsHoldNoCardNumber: the syntax checks leave no room for a
// card number in any typed field except the digest (a hash), whatever the
// value: a quick exhaustive look at values built around test cards.
func TestValidFieldsHoldNoCardNumber(t *testing.T) {
	var values []string
	for _, p := range []string{visa, mc, amex, "4111 1111 1111 1111", "4111-1111-1111-1111", "3782-822463-10005"} {
		for _, pre := range []string{"", "c", "c-", "c_", "v", "v1.0.0-", "v1.0.0+", "v1.0.0-x.", "GET /", "GET /v1/", "x"} {
			for _, post := range []string{"", "a", "-a", ".0.0", "/x"} {
				values = append(values, pre+p+post)
			}
		}
	}
	checks := map[string]func(string) bool{
		"ValidID": ValidID, "ValidField": ValidField, "ValidState": ValidState, "ValidTrunk": ValidTrunk,
		"ValidMethod": ValidMethod, "ValidRoute": ValidRoute, "ValidVersion": ValidVersion,
		"ValidSTAN": ValidSTAN, "ValidResponseCode": ValidResponseCode,
	}
	for _, v := range values {
		if !pan.Contains(v) {
			t.Fatalf("test value %q holds no card number", v)
		}
		for name, valid := range checks {
			if valid(v) {
				t.Errorf("%s(%q) = true", name, v)
			}
		}
	}
}

func TestReasons(t *testing.T) {
	seen := map[Reason]bool{}
	for _, r := range Reasons() {
		if seen[r] {
			t.Errorf("%s listed twice", r)
		}
		seen[r] = true
		if !r.Known() {
			t.Errorf("%s not Known", r)
		}
		if !name(string(r)) {
			t.Errorf("reason %q is not lowercase letters and '_'", r)
		}
	}
	for _, r := range []Reason{"", "Approved", "approved ", "expiry: in the past", "declined_05", Reason(visa)} {
		if r.Known() {
			t.Errorf("%q is Known", r)
		}
	}
	// The codes of call.failed, and of a session a fault ended.
	for _, r := range []Reason{"media_fault", "ring_failed", "sip_fault", "capture_fault", "api_fault"} {
		if !seen[r] {
			t.Errorf("reason %s missing", r)
		}
	}
	// The codes the Writer writes itself.
	for _, r := range []Reason{"created", "continued", "continued_after_unclean_stop", "interval", "requested", "close"} {
		if !seen[r] {
			t.Errorf("reason %s missing", r)
		}
	}
}
