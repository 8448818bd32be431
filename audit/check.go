package audit

import (
	"errors"
	"fmt"
	"strings"
	"time"
	"unicode/utf8"

	"github.com/tonevault/tonevault/internal/pan"
)

// checkNew checks a record given to Writer.Append.
func (r *Record) checkNew() error {
	if r.Seq != 0 || !r.Time.IsZero() || r.Prev != "" || r.KeyID != "" || r.Sig != "" || r.Lost != 0 {
		return errors.New("audit: Seq, Time, Prev, KeyID, Sig and Lost are set by the Writer")
	}
	if !r.Event.Known() {
		return refused("event", string(r.Event), "a known event")
	}
	if r.Event.reserved() {
		return fmt.Errorf("audit: event %q is written by the Writer only", r.Event)
	}
	if !r.Outcome.Known() {
		return refused("outcome", string(r.Outcome), "success, failure or info")
	}
	if r.Actor == "" {
		return errors.New("audit: no actor")
	}
	return r.checkFields()
}

// checkFields checks every field but the Writer's own: Actor and Origin,
// which name people and places, by length, UTF-8 and a search for card
// numbers; every other field by its syntax, which leaves no room for one.
func (r *Record) checkFields() error {
	for _, f := range []struct{ name, v string }{{"actor", r.Actor}, {"origin", r.Origin}} {
		if len(f.v) > MaxFieldLen {
			return fmt.Errorf("audit: %s is longer than %d bytes", f.name, MaxFieldLen)
		}
		if !utf8.ValidString(f.v) {
			return fmt.Errorf("audit: %s is not valid UTF-8", f.name)
		}
		if pan.Contains(f.v) {
			return fmt.Errorf("%w: %s holds a card number; record refused", ErrCardData, f.name)
		}
	}
	if r.Reason != "" && !r.Reason.Known() {
		return refused("reason", string(r.Reason), "a known reason code")
	}
	if r.MaskedPAN != "" && !ValidMaskedPAN(r.MaskedPAN) {
		return fmt.Errorf("%w: masked_pan is not at most the first 6 and last 4 digits with the rest '*'; record refused", ErrCardData)
	}
	for _, f := range []struct {
		name, v string
		valid   func(string) bool
		want    string
	}{
		{"call_id", r.CallID, ValidID, "an id"},
		{"payment_id", r.PaymentID, ValidID, "an id"},
		{"field", r.Field, ValidField, "a field name"},
		{"state", r.State, ValidState, "a session state"},
		{"trunk", r.Trunk, ValidTrunk, "carrier or platform"},
		{"method", r.Method, ValidMethod, "a SIP or HTTP method"},
		{"route", r.Route, ValidRoute, "an API route pattern"},
		{"digest", r.Digest, ValidDigest, "64 lowercase hex digits"},
		{"version", r.Version, ValidVersion, "a Go module version or (devel)"},
		{"stan", r.STAN, ValidSTAN, "6 digits"},
		{"response_code", r.ResponseCode, ValidResponseCode, "2 digits or upper-case letters"},
	} {
		if f.v != "" && !f.valid(f.v) {
			return refused(f.name, f.v, f.want)
		}
	}
	if r.Status != 0 && !ValidStatus(r.Status) {
		return fmt.Errorf("audit: status %d is not a SIP or HTTP status (100 to 699); record refused", r.Status)
	}
	return nil
}

// refused is the error for a field whose value is not what it should be.
// The value is shown only when it is short and holds no card number: the
// error is logged.
func refused(name, v, want string) error {
	if pan.Contains(v) {
		return fmt.Errorf("%w: %s holds a card number; record refused", ErrCardData, name)
	}
	if len(v) > 40 || !utf8.ValidString(v) {
		return fmt.Errorf("audit: %s is not %s; record refused", name, want)
	}
	return fmt.Errorf("audit: %s %q is not %s; record refused", name, v, want)
}

// maxDigitRun is the longest run of digits a field other than Actor or
// Origin may hold outside its hashes: one less than the shortest card
// number (12 digits).
const maxDigitRun = 11

// shortDigitRuns reports whether s never holds more than maxDigitRun
// digits in a row. Spaces and dashes between digits do not break a row, as
// they do not in a card number typed in groups ("4111-1111-1111-1111").
func shortDigitRuns(s string) bool {
	n := 0
	for i := 0; i < len(s); i++ {
		switch c := s[i]; {
		case isDigit(c):
			if n++; n > maxDigitRun {
				return false
			}
		case c == ' ' || c == '-':
		default:
			n = 0
		}
	}
	return true
}

func isLower(c byte) bool { return 'a' <= c && c <= 'z' }
func isUpper(c byte) bool { return 'A' <= c && c <= 'Z' }

// ValidID reports whether s may be a CallID or PaymentID: a lowercase
// letter, then lowercase letters, digits, '-' or '_', at most MaxIDLen
// bytes, and never 12 digits in a row ("c-7f3a9e", "pay_k5bq...").
func ValidID(s string) bool {
	if len(s) == 0 || len(s) > MaxIDLen || !isLower(s[0]) {
		return false
	}
	for i := 1; i < len(s); i++ {
		if c := s[i]; !isLower(c) && !isDigit(c) && c != '-' && c != '_' {
			return false
		}
	}
	return shortDigitRuns(s)
}

// name reports whether s is 1 to 32 lowercase letters and '_', starting
// with a letter.
func name(s string) bool {
	if len(s) == 0 || len(s) > 32 || !isLower(s[0]) {
		return false
	}
	for i := 1; i < len(s); i++ {
		if !isLower(s[i]) && s[i] != '_' {
			return false
		}
	}
	return true
}

// ValidField reports whether s may be a Field: 1 to 32 lowercase letters
// and '_', starting with a letter ("card_number", "security_code").
func ValidField(s string) bool { return name(s) }

// ValidState reports whether s may be a State; the syntax of ValidField
// ("approved", "expired").
func ValidState(s string) bool { return name(s) }

// ValidTrunk reports whether s is one of the gateway's two SIP trunks.
func ValidTrunk(s string) bool { return s == "carrier" || s == "platform" }

// ValidMethod reports whether s may be a Method: 1 to 32 upper-case
// letters ("INVITE", "GET").
func ValidMethod(s string) bool {
	if len(s) == 0 || len(s) > 32 {
		return false
	}
	for i := 0; i < len(s); i++ {
		if !isUpper(s[i]) {
			return false
		}
	}
	return true
}

// ValidStatus reports whether n may be a Status: a SIP or HTTP status
// code, 100 to 699.
func ValidStatus(n int) bool { return 100 <= n && n <= 699 }

// ValidRoute reports whether s may be a Route: a method, one space and a
// path pattern of net/http's ServeMux, at most 128 bytes, whose segments
// are literals of lowercase letters, digits, '.', '-' and '_' or
// wildcards ("{id}", "{path...}", "{$}"), never 12 digits in a row:
// "GET /v1/payments/{id}". Only the pattern is recorded, never the path a
// client sent, whose ids are the client's text.
func ValidRoute(s string) bool {
	m, p, ok := strings.Cut(s, " ")
	if !ok || len(s) > 128 || !ValidMethod(m) || !strings.HasPrefix(p, "/") {
		return false
	}
	segs := strings.Split(p[1:], "/")
	for i, seg := range segs {
		switch {
		case seg == "":
			if i != len(segs)-1 { // only a trailing slash
				return false
			}
		case seg[0] == '{':
			w, ok := strings.CutSuffix(seg[1:], "}")
			if !ok {
				return false
			}
			if w == "$" && i == len(segs)-1 {
				continue
			}
			w, _ = strings.CutSuffix(w, "...")
			if !name(w) {
				return false
			}
		default:
			for j := 0; j < len(seg); j++ {
				if c := seg[j]; !isLower(c) && !isDigit(c) && c != '.' && c != '-' && c != '_' {
					return false
				}
			}
		}
	}
	return shortDigitRuns(p)
}

// ValidDigest reports whether s may be a Digest: a SHA-256 in lowercase
// hex. Its digits are not searched for card numbers: a hash is a machine
// word, and one in ten has a run of 12 digits or more.
func ValidDigest(s string) bool { return isHash(s) }

// ValidSTAN reports whether s may be a STAN: exactly 6 digits.
func ValidSTAN(s string) bool {
	if len(s) != 6 {
		return false
	}
	for i := 0; i < len(s); i++ {
		if !isDigit(s[i]) {
			return false
		}
	}
	return true
}

// ValidResponseCode reports whether s may be a ResponseCode: ISO 8583
// field 39, 2 digits or upper-case letters ("05", "N7").
func ValidResponseCode(s string) bool {
	return len(s) == 2 && (isDigit(s[0]) || isUpper(s[0])) && (isDigit(s[1]) || isUpper(s[1]))
}

// ValidVersion reports whether s may be a Version: "(devel)", or a Go
// module version as debug.ReadBuildInfo reports the main module's: a
// semantic version "vMAJOR.MINOR.PATCH" (each number at most 9 digits)
// with optional pre-release and build identifiers ("v1.4.0-rc.1",
// "v2.0.0+incompatible"), at most 128 bytes, never 12 digits in a row;
// except that a pseudo-version's 14-digit timestamp (which must be a date
// from 2000 to 2099) and 12-hex-digit revision are machine words, allowed
// as they are
// ("v0.0.0-20250101120000-abcdef123456", "...+dirty").
func ValidVersion(s string) bool {
	if s == "(devel)" {
		return true
	}
	rest, ok := strings.CutPrefix(s, "v")
	if !ok || len(s) > 128 {
		return false
	}
	rest, build, hasBuild := strings.Cut(rest, "+")
	core, pre, hasPre := strings.Cut(rest, "-")
	nums := strings.Split(core, ".")
	if len(nums) != 3 {
		return false
	}
	for _, n := range nums {
		if len(n) == 0 || len(n) > 9 || len(n) > 1 && n[0] == '0' || !allDigits(n) {
			return false
		}
	}
	if hasBuild && !identifiers(build) {
		return false
	}
	if hasPre {
		head, pseudo := cutPseudo(pre)
		switch {
		case !pseudo:
			return identifiers(pre)
		case head != "":
			return identifiers(strings.TrimSuffix(head, "."))
		}
	}
	return true
}

// cutPseudo cuts a pseudo-version's timestamp and revision
// ("yyyymmddhhmmss-abcdefabcdef") off the end of a pre-release: head is
// what comes before them, with its '.', if anything does.
func cutPseudo(pre string) (head string, ok bool) {
	const n = 14 + 1 + 12
	if len(pre) < n {
		return "", false
	}
	head, tail := pre[:len(pre)-n], pre[len(pre)-n:]
	if head != "" && !strings.HasSuffix(head, ".") {
		return "", false
	}
	ts, rev := tail[:14], tail[15:]
	if tail[14] != '-' || !allDigits(ts) || !isLowerHex(rev) {
		return "", false
	}
	// A date this century: a card number of 14 digits is a valid
	// timestamp too when it starts with a plausible year (4111...).
	if t, err := time.Parse("20060102150405", ts); err != nil || t.Year() < 2000 || t.Year() > 2099 {
		return "", false
	}
	return head, true
}

// identifiers reports whether s is dot-separated semver identifiers
// ([0-9A-Za-z-]+) with never 12 digits in a row.
func identifiers(s string) bool {
	for id := range strings.SplitSeq(s, ".") {
		if id == "" {
			return false
		}
		for i := 0; i < len(id); i++ {
			if c := id[i]; !isDigit(c) && !isLower(c) && !isUpper(c) && c != '-' {
				return false
			}
		}
	}
	return shortDigitRuns(s)
}

func allDigits(s string) bool {
	for i := 0; i < len(s); i++ {
		if !isDigit(s[i]) {
			return false
		}
	}
	return len(s) > 0
}

func isLowerHex(s string) bool {
	for i := 0; i < len(s); i++ {
		if c := s[i]; !isDigit(c) && !('a' <= c && c <= 'f') {
			return false
		}
	}
	return len(s) > 0
}

// ValidMaskedPAN reports whether s is a masked card number that shows at
// most the first 6 and the last 4 digits: 12 to 19 characters, 0 to 6
// digits, then one or more '*', then 0 to 4 digits ("411111******1111",
// "************1111", "378282*****0005").
func ValidMaskedPAN(s string) bool {
	if len(s) < 12 || len(s) > 19 {
		return false
	}
	i := 0
	for i < len(s) && i < 6 && isDigit(s[i]) {
		i++
	}
	j := len(s)
	for j > i && len(s)-j < 4 && isDigit(s[j-1]) {
		j--
	}
	if j <= i {
		return false
	}
	for k := i; k < j; k++ {
		if s[k] != '*' {
			return false
		}
	}
	return true
}

func isDigit(c byte) bool { return '0' <= c && c <= '9' }
