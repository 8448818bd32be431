package capture

import "github.com/tonevault/tonevault/internal/pan"

// Brand is a card scheme, from the card number's leading digits (BIN).
type Brand string

const (
	BrandVisa       Brand = "visa"
	BrandMastercard Brand = "mastercard"
	BrandAmex       Brand = "amex"
	BrandDiscover   Brand = "discover"
	BrandJCB        Brand = "jcb"
	BrandDiners     Brand = "diners"
	BrandUnionPay   Brand = "unionpay"
	BrandMaestro    Brand = "maestro"
	BrandUnknown    Brand = "unknown"
)

// Brands lists every known brand (not BrandUnknown).
func Brands() []Brand {
	return []Brand{BrandVisa, BrandMastercard, BrandAmex, BrandDiscover, BrandJCB, BrandDiners, BrandUnionPay, BrandMaestro}
}

// binRule says that card numbers whose first digits (as a number) lie in
// [lo, hi] belong to brand.
type binRule struct {
	lo, hi uint32
	digits int
	brand  Brand
}

// binRules are the BIN ranges. Where ranges overlap, the rule with more
// digits (the more specific one) wins: the only overlap is Discover's
// co-brand range 622126-622925 inside UnionPay's 62, so a 62 card is
// Discover there and UnionPay elsewhere. TestBINRulesOverlap proves there
// is no other overlap.
var binRules = []binRule{
	{4, 4, 1, BrandVisa},
	{51, 55, 2, BrandMastercard},
	{2221, 2720, 4, BrandMastercard},
	{34, 34, 2, BrandAmex},
	{37, 37, 2, BrandAmex},
	{6011, 6011, 4, BrandDiscover},
	{644, 649, 3, BrandDiscover},
	{65, 65, 2, BrandDiscover},
	{622126, 622925, 6, BrandDiscover},
	{3528, 3589, 4, BrandJCB},
	{300, 305, 3, BrandDiners},
	{36, 36, 2, BrandDiners},
	{38, 39, 2, BrandDiners},
	{62, 62, 2, BrandUnionPay},
	{81, 81, 2, BrandUnionPay},
	{50, 50, 2, BrandMaestro},
	{56, 58, 2, BrandMaestro},
	{6304, 6304, 4, BrandMaestro},
	{6759, 6759, 4, BrandMaestro},
	{6761, 6763, 4, BrandMaestro},
}

// brandLengths are the card number lengths each brand issues.
var brandLengths = map[Brand][]int{
	BrandVisa:       {13, 16, 19},
	BrandMastercard: {16},
	BrandAmex:       {15},
	BrandDiscover:   {16, 17, 18, 19},
	BrandJCB:        {16, 17, 18, 19},
	BrandDiners:     {14, 15, 16, 17, 18, 19},
	BrandUnionPay:   {16, 17, 18, 19},
	BrandMaestro:    {12, 13, 14, 15, 16, 17, 18, 19},
}

const (
	minPANLen = 12
	maxPANLen = 19
)

// brandStatus is what the digits typed so far say about the brand.
type brandStatus int

const (
	brandPending brandStatus = iota // more digits needed
	brandKnown
	brandNone // no brand can match whatever follows
)

// detectBrand looks at the leading digits typed so far ('0'-'9' bytes).
func detectBrand(p []byte) (Brand, brandStatus) {
	if len(p) == 0 {
		return BrandUnknown, brandPending
	}
	var best *binRule
	longestPending := 0
	for i := range binRules {
		r := &binRules[i]
		if len(p) >= r.digits {
			if v := prefixValue(p, r.digits); v >= r.lo && v <= r.hi && (best == nil || r.digits > best.digits) {
				best = r
			}
			continue
		}
		// Could the rule still match once more digits come?
		scale := pow10(r.digits - len(p))
		v := prefixValue(p, len(p))
		if v*scale <= r.hi && (v+1)*scale-1 >= r.lo {
			longestPending = max(longestPending, r.digits)
		}
	}
	switch {
	case best == nil && longestPending == 0:
		return BrandUnknown, brandNone
	case best == nil || longestPending > best.digits:
		return BrandUnknown, brandPending
	}
	return best.brand, brandKnown
}

// maxLen is the longest card number of brand b.
func maxLen(b Brand) int {
	ls := brandLengths[b]
	if len(ls) == 0 {
		return maxPANLen
	}
	return ls[len(ls)-1]
}

func validLen(b Brand, n int) bool {
	for _, l := range brandLengths[b] {
		if l == n {
			return true
		}
	}
	return false
}

// cvvLen is the security code length: 4 for Amex (CID), 3 for the rest.
func cvvLen(b Brand) int {
	if b == BrandAmex {
		return 4
	}
	return 3
}

func prefixValue(p []byte, n int) uint32 {
	var v uint32
	for _, c := range p[:n] {
		v = v*10 + uint32(c-'0')
	}
	return v
}

func pow10(n int) uint32 {
	v := uint32(1)
	for range n {
		v *= 10
	}
	return v
}

// luhn reports whether the digits pass the Luhn (mod 10) check.
func luhn(d []byte) bool { return pan.Luhn(d) }
