package capture

import (
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/tonevault/tonevault/audit"
)

// feed types keys into f: '#' ends the field, digits are added. It returns
// the verdict and the index of the key that ended the field (-1 if none).
func feed(f *field, c *check, keys string) (verdict, int) {
	for i := 0; i < len(keys); i++ {
		var v verdict
		if keys[i] == '#' {
			v = f.end(c)
		} else {
			v = f.add(keys[i], c)
		}
		if v.done {
			return v, i
		}
	}
	return more, -1
}

func testCheck(t *testing.T, cfg Config, now time.Time, card Brand) *check {
	t.Helper()
	cfg, err := cfg.withDefaults()
	if err != nil {
		t.Fatal(err)
	}
	return &check{now: now, cfg: &cfg, merchant: "shop", cardBrand: card}
}

func TestCardNumber(t *testing.T) {
	type tc struct {
		name   string
		keys   string
		end    int    // index of the key that ends the field; -1: still collecting
		reason string // "" for valid
		brand  Brand  // brand once known ("" to skip)
	}
	valid := func(name, prefix string, n int, hash bool, b Brand) tc {
		k := genPAN(prefix, n)
		end := n - 1
		if hash {
			k += "#"
			end = n
		}
		return tc{name, k, end, "", b}
	}
	cases := []tc{
		// Known test cards.
		{"visa 16 test card", "4111111111111111#", 16, "", BrandVisa},
		{"visa 16 waits for #", "4111111111111111", -1, "", BrandVisa},
		{"visa 13 test card", "4222222222222#", 13, "", BrandVisa},
		{"mastercard test card ends by itself", "5555555555554444", 15, "", BrandMastercard},
		{"mastercard 2-series test card", "2223003122003222", 15, "", BrandMastercard},
		{"amex test card ends at 15", "378282246310005", 14, "", BrandAmex},
		{"discover test card", "6011111111111117#", 16, "", BrandDiscover},
		{"jcb test card", "3530111333300000#", 16, "", BrandJCB},
		{"diners 14 test card", "30569309025904#", 14, "", BrandDiners},
		// BIN edges and lengths per brand.
		valid("visa 19 ends by itself", "4", 19, false, BrandVisa),
		valid("mastercard 51", "51", 16, false, BrandMastercard),
		valid("mastercard 55", "55", 16, false, BrandMastercard),
		valid("mastercard 2221", "2221", 16, false, BrandMastercard),
		valid("mastercard 2720", "2720", 16, false, BrandMastercard),
		{"2220 is no brand", "2220", 3, ReasonUnknownBrand, ""},
		{"2721 is no brand", "2721", 3, ReasonUnknownBrand, ""},
		valid("amex 34", "34", 15, false, BrandAmex),
		valid("amex 37", "37", 15, false, BrandAmex),
		{"33 is no brand", "33", 1, ReasonUnknownBrand, ""},
		valid("discover 6011", "6011", 16, true, BrandDiscover),
		valid("discover 644", "644", 16, true, BrandDiscover),
		valid("discover 649", "649", 16, true, BrandDiscover),
		valid("discover 65", "65", 16, true, BrandDiscover),
		valid("discover 65 19 ends by itself", "65", 19, false, BrandDiscover),
		valid("discover co-brand 622126", "622126", 16, true, BrandDiscover),
		valid("discover co-brand 622925", "622925", 16, true, BrandDiscover),
		valid("unionpay 622125 below co-brand", "622125", 16, true, BrandUnionPay),
		valid("unionpay 622926 above co-brand", "622926", 16, true, BrandUnionPay),
		valid("unionpay 62", "6200", 16, true, BrandUnionPay),
		valid("unionpay 81", "81", 16, true, BrandUnionPay),
		{"643 is no brand", "643", 2, ReasonUnknownBrand, ""},
		{"6012 is no brand", "6012", 3, ReasonUnknownBrand, ""},
		valid("jcb 3528", "3528", 16, true, BrandJCB),
		valid("jcb 3589", "3589", 19, false, BrandJCB),
		{"3527 is no brand", "3527", 3, ReasonUnknownBrand, ""},
		{"3590 is no brand", "3590", 2, ReasonUnknownBrand, ""},
		valid("diners 300", "300", 14, true, BrandDiners),
		valid("diners 305", "305", 16, true, BrandDiners),
		valid("diners 36", "36", 14, true, BrandDiners),
		valid("diners 38", "38", 16, true, BrandDiners),
		valid("diners 39", "39", 19, false, BrandDiners),
		{"306 is no brand", "306", 2, ReasonUnknownBrand, ""},
		valid("maestro 50 12 digits", "50", 12, true, BrandMaestro),
		valid("maestro 56", "56", 16, true, BrandMaestro),
		valid("maestro 58", "58", 19, false, BrandMaestro),
		valid("maestro 6304", "6304", 16, true, BrandMaestro),
		valid("maestro 6759", "6759", 16, true, BrandMaestro),
		valid("maestro 6761", "6761", 13, true, BrandMaestro),
		valid("maestro 6763", "6763", 16, true, BrandMaestro),
		{"6760 is no brand", "6760", 3, ReasonUnknownBrand, ""},
		{"6764 is no brand", "6764", 3, ReasonUnknownBrand, ""},
		{"first digit 0", "0", 0, ReasonUnknownBrand, ""},
		{"first digit 1", "1", 0, ReasonUnknownBrand, ""},
		{"first digit 7", "7", 0, ReasonUnknownBrand, ""},
		{"first digit 9", "9", 0, ReasonUnknownBrand, ""},
		{"82 is no brand", "82", 1, ReasonUnknownBrand, ""},
		{"brand pending at #", "6#", 1, ReasonUnknownBrand, ""},
		// Lengths.
		{"visa 14", genPAN("4", 14) + "#", 14, ReasonLength, BrandVisa},
		{"visa 12", genPAN("4", 12) + "#", 12, ReasonLength, BrandVisa},
		{"mastercard 15", genPAN("51", 15) + "#", 15, ReasonLength, BrandMastercard},
		{"amex 14", genPAN("34", 14) + "#", 14, ReasonLength, BrandAmex},
		{"discover 15", genPAN("6011", 15) + "#", 15, ReasonLength, BrandDiscover},
		{"diners 13", genPAN("36", 13) + "#", 13, ReasonLength, BrandDiners},
		{"maestro 11", genPAN("50", 11) + "#", 11, ReasonLength, BrandMaestro},
		{"unionpay 15", genPAN("81", 15) + "#", 15, ReasonLength, BrandUnionPay},
		// Luhn.
		{"visa luhn", "4111111111111112#", 16, ReasonLuhn, BrandVisa},
		{"mastercard luhn ends by itself", "5555555555554445", 15, ReasonLuhn, BrandMastercard},
		{"amex luhn", "378282246310006", 14, ReasonLuhn, BrandAmex},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			f := newField(FieldCardNumber, "", kindPAN, minPANLen, maxPANLen)
			v, end := feed(f, testCheck(t, Config{}, t0, ""), c.keys)
			if end != c.end || v.reason != c.reason {
				t.Fatalf("ended at key %d reason %q, want key %d reason %q", end, v.reason, c.end, c.reason)
			}
			if c.brand != "" && f.brand != c.brand {
				t.Fatalf("brand %q, want %q", f.brand, c.brand)
			}
			if cap(f.buf) != maxPANLen {
				t.Fatalf("buffer reallocated: cap %d", cap(f.buf))
			}
		})
	}
}

func TestBrandNotAccepted(t *testing.T) {
	cfg := Config{AcceptedBrands: []Brand{BrandVisa, BrandAmex},
		MerchantBrands: map[string][]Brand{"shop": {BrandMastercard}}}
	cases := []struct {
		merchant, keys string
		end            int
		reason         string
	}{
		{"other", "55", 1, ReasonBrandNotAccepted},                    // refused as soon as the brand is known
		{"other", "4111111111111111#", 16, ""},                        // accepted by default list
		{"other", "6011111111111117#", 3, ReasonBrandNotAccepted},     // known when a whole range matches
		{"shop", "5555555555554444", 15, ""},                          // the merchant's own list
		{"shop", "4111111111111111#", 0, ReasonBrandNotAccepted},      // not in the merchant's list
		{"shop", "622126" + "0000000000#", 5, ReasonBrandNotAccepted}, // co-brand known at the 6th digit
	}
	for _, c := range cases {
		t.Run(c.merchant+" "+c.keys[:2], func(t *testing.T) {
			chk := testCheck(t, cfg, t0, "")
			chk.merchant = c.merchant
			f := newField(FieldCardNumber, "", kindPAN, minPANLen, maxPANLen)
			v, end := feed(f, chk, c.keys)
			if end != c.end || v.reason != c.reason {
				t.Fatalf("ended at key %d reason %q, want key %d reason %q", end, v.reason, c.end, c.reason)
			}
		})
	}
}

// TestBINRulesOverlap checks every 6-digit prefix: no two rules of the
// same specificity match, and the only overlap between rules is the
// documented Discover co-brand range inside UnionPay 62.
func TestBINRulesOverlap(t *testing.T) {
	p := make([]byte, 6)
	for n := 0; n < 1_000_000; n++ {
		copy(p, fmt.Sprintf("%06d", n))
		var matched []binRule
		for _, r := range binRules {
			if v := prefixValue(p, r.digits); v >= r.lo && v <= r.hi {
				matched = append(matched, r)
			}
		}
		if len(matched) < 2 {
			continue
		}
		if len(matched) != 2 || matched[0].digits == matched[1].digits {
			t.Fatalf("prefix %s matches %v", p, matched)
		}
		b, st := detectBrand(p)
		if st != brandKnown || b != BrandDiscover || n < 622126 || n > 622925 {
			t.Fatalf("prefix %s: overlap outside the documented one, or resolved to %s", p, b)
		}
	}
}

func TestLuhn(t *testing.T) {
	for _, pan := range []string{"4111111111111111", "5555555555554444", "378282246310005",
		"6011111111111117", "3530111333300000", "2223003122003222", "4222222222222", "79927398713"} {
		if !luhn([]byte(pan)) {
			t.Errorf("%s should pass", pan)
		}
		for i := range pan { // every single-digit change fails
			b := []byte(pan)
			b[i] = '0' + (b[i]-'0'+1)%10
			if luhn(b) {
				t.Errorf("%s with digit %d changed should fail", pan, i)
			}
		}
	}
	if luhn(nil) {
		t.Error("empty passes")
	}
	for n := 12; n <= 19; n++ { // the test generator agrees
		if p := genPAN("4", n); !luhn([]byte(p)) {
			t.Errorf("genPAN %s fails", p)
		}
	}
}

func TestExpiry(t *testing.T) {
	cases := []struct {
		name   string
		now    time.Time
		keys   string
		end    int
		reason string
	}{
		{"current month", t0, "0626", 3, ""},
		{"next month", t0, "0726", 3, ""},
		{"last month", t0, "0526", 3, ReasonExpired},
		{"last year december", t0, "1225", 3, ReasonExpired},
		{"next year january", t0, "0127", 3, ""},
		{"far future", t0, "1299", 3, ""},
		{"month 00", t0, "0026", 1, ReasonMonth},
		{"month 13", t0, "1326", 1, ReasonMonth},
		{"month 12", t0, "1226", 3, ""},
		{"month 01 this year", t0, "0126", 3, ReasonExpired},
		{"short", t0, "062#", 3, ReasonLength},
		{"last second of the month", time.Date(2026, 6, 30, 23, 59, 59, 0, time.UTC), "0626", 3, ""},
		{"first second after the month", time.Date(2026, 7, 1, 0, 0, 0, 0, time.UTC), "0626", 3, ReasonExpired},
		// 01:00 on 1 July at UTC+2 is still June in UTC.
		{"judged in UTC", time.Date(2026, 7, 1, 1, 0, 0, 0, time.FixedZone("CEST", 2*3600)), "0626", 3, ""},
		{"judged in UTC, west", time.Date(2026, 6, 30, 20, 0, 0, 0, time.FixedZone("EDT", -4*3600)), "0626", 3, ReasonExpired},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			f := newField(FieldExpiry, "", kindExpiry, 4, 4)
			v, end := feed(f, testCheck(t, Config{}, c.now, ""), c.keys)
			if end != c.end || v.reason != c.reason {
				t.Fatalf("ended at key %d reason %q, want key %d reason %q", end, v.reason, c.end, c.reason)
			}
		})
	}
}

func TestSecurityCode(t *testing.T) {
	cases := []struct {
		brand  Brand
		keys   string
		end    int
		reason string
	}{
		{BrandVisa, "123", 2, ""},
		{BrandMastercard, "123", 2, ""},
		{BrandDiscover, "123", 2, ""},
		{BrandAmex, "1234", 3, ""},
		{BrandAmex, "123#", 3, ReasonLength},
		{BrandVisa, "12#", 2, ReasonLength},
		{BrandVisa, "1#", 1, ReasonLength},
	}
	for _, c := range cases {
		t.Run(string(c.brand)+" "+c.keys, func(t *testing.T) {
			f := newField(FieldSecurityCode, "", kindCVV, 3, 4)
			v, end := feed(f, testCheck(t, Config{}, t0, c.brand), c.keys)
			if end != c.end || v.reason != c.reason {
				t.Fatalf("ended at key %d reason %q, want key %d reason %q", end, v.reason, c.end, c.reason)
			}
		})
	}
}

func TestExtraField(t *testing.T) {
	cases := []struct {
		keys   string
		end    int
		reason string
	}{
		{"123#", 3, ""},
		{"12345", 4, ""},
		{"12#", 2, ReasonLength},
	}
	for _, c := range cases {
		f := newField("postcode", "Postcode digits", kindExtra, 3, 5)
		v, end := feed(f, testCheck(t, Config{}, t0, BrandVisa), c.keys)
		if end != c.end || v.reason != c.reason {
			t.Errorf("%s: ended at key %d reason %q, want key %d reason %q", c.keys, end, v.reason, c.end, c.reason)
		}
	}
}

func TestMaskPAN(t *testing.T) {
	cases := []struct{ pan, style, view, audit string }{
		{"4111111111111111", MaskBINLast4, "411111••••••1111", "411111******1111"},
		{"378282246310005", MaskBINLast4, "378282•••••0005", "378282*****0005"},
		{"4111111111111111", MaskLast4, "••••••••••••1111", "************1111"},
	}
	for _, c := range cases {
		v, a := maskPAN([]byte(c.pan), c.style)
		if v != c.view || a != c.audit {
			t.Errorf("%s %s: %q %q, want %q %q", c.pan, c.style, v, a, c.view, c.audit)
		}
	}
	for n := minPANLen; n <= maxPANLen; n++ {
		for _, style := range []string{MaskBINLast4, MaskLast4} {
			p := genPAN("5", n)
			v, a := maskPAN([]byte(p), style)
			if !audit.ValidMaskedPAN(a) {
				t.Errorf("audit mask %q of a %d-digit number is refused by the audit trail", a, n)
			}
			want := p[:6] + strings.Repeat(dot, n-10) + p[n-4:]
			if style == MaskLast4 {
				want = strings.Repeat(dot, n-4) + p[n-4:]
			}
			if v != want {
				t.Errorf("view mask %q, want %q", v, want)
			}
		}
	}
}

func TestConfig(t *testing.T) {
	bad := []Config{
		{MaxAttempts: -1},
		{MaskStyle: "full"},
		{AcceptedBrands: []Brand{"amexx"}},
		{MerchantBrands: map[string][]Brand{"m": {"visa", "nope"}}},
		{ExtraFields: []ExtraField{{Name: "", MinDigits: 1, MaxDigits: 2}}},
		{ExtraFields: []ExtraField{{Name: "expiry", MinDigits: 1, MaxDigits: 2}}},
		{ExtraFields: []ExtraField{{Name: "pc", MinDigits: 0, MaxDigits: 2}}},
		{ExtraFields: []ExtraField{{Name: "pc", MinDigits: 3, MaxDigits: 2}}},
		{ExtraFields: []ExtraField{{Name: "pc", MinDigits: 1, MaxDigits: 33}}},
		{ExtraFields: []ExtraField{{Name: "pc", MinDigits: 1, MaxDigits: 3}, {Name: "pc", MinDigits: 1, MaxDigits: 3}}},
		{ExtraFields: []ExtraField{{Name: "Postcode", MinDigits: 1, MaxDigits: 3}}},
		{ExtraFields: []ExtraField{{Name: "post code", MinDigits: 1, MaxDigits: 3}}},
		{ExtraFields: []ExtraField{{Name: "pc2", MinDigits: 1, MaxDigits: 3}}},
	}
	sink := newRecSink(t)
	for i, c := range bad {
		if _, err := NewManager(c, Options{Audit: sink, TickInterval: -1}); err == nil {
			t.Errorf("config %d accepted", i)
		}
	}
	c, err := Config{}.withDefaults()
	if err != nil {
		t.Fatal(err)
	}
	if c.InterDigitTimeout != 10*time.Second || c.FieldTimeout != time.Minute || c.SessionTimeout != 10*time.Minute ||
		c.MaxAttempts != 3 || c.MaskStyle != MaskBINLast4 || len(c.AcceptedBrands) != len(Brands()) {
		t.Errorf("defaults: %+v", c)
	}
}
