package capture

import (
	"strings"
	"time"
)

type fieldKind int

const (
	kindPAN fieldKind = iota
	kindExpiry
	kindCVV
	kindExtra
)

// field is one field of a session. Its digits live in buf, allocated once
// at its largest size so that append never copies card data to a new
// array (the old one would stay unwiped).
type field struct {
	name     FieldName
	label    string
	kind     fieldKind
	min, max int // extra fields
	buf      []byte
	status   FieldStatus
	attempts int
	err      string
	brand    Brand  // card number: once known
	masked   string // card number: the view mask, set when valid
	auditPAN string // card number: the audit mask, set when valid
}

func newField(name FieldName, label string, kind fieldKind, min, max int) *field {
	return &field{name: name, label: label, kind: kind, min: min, max: max,
		buf: make([]byte, 0, max), status: FieldPending}
}

// wipe zeroes the whole backing array and empties the field. It reports
// whether there was anything to wipe.
func (f *field) wipe() bool {
	had := len(f.buf) > 0
	clear(f.buf[:cap(f.buf)])
	f.buf = f.buf[:0]
	f.brand, f.masked, f.auditPAN = "", "", ""
	return had
}

// check is the context a field is validated in.
type check struct {
	now       time.Time
	cfg       *Config
	merchant  string
	cardBrand Brand // for the security code length
}

// verdict of a digit or an end of field.
type verdict struct {
	done   bool   // the field ended: valid when reason is ""
	reason string // why the field is invalid
	// rest: the field was refused before the entry could be complete
	// (month 13 is refused at its second digit); the customer may still
	// type this many digits of that same entry.
	rest int
}

var more = verdict{}

func invalid(reason string) verdict { return verdict{done: true, reason: reason} }

// early refuses an entry that is not complete yet: up to rest more digits
// may follow that belong to it.
func early(reason string, rest int) verdict {
	return verdict{done: true, reason: reason, rest: max(rest, 0)}
}

// add appends one digit ('0'-'9') and checks what can be checked so far;
// it ends the field by itself at the largest length the field can have.
func (f *field) add(d byte, c *check) verdict {
	if len(f.buf) == cap(f.buf) { // cannot happen: the field ends at its maximum
		return f.end(c)
	}
	f.buf = append(f.buf, d)
	n := len(f.buf)
	switch f.kind {
	case kindPAN:
		b, st := detectBrand(f.buf)
		switch st {
		case brandNone:
			return early(ReasonUnknownBrand, maxPANLen-n)
		case brandKnown:
			f.brand = b
			if !c.cfg.accepted(c.merchant, b) {
				return early(ReasonBrandNotAccepted, maxLen(b)-n)
			}
			if n >= maxLen(b) {
				return f.end(c)
			}
		}
		if n >= maxPANLen {
			return f.end(c)
		}
	case kindExpiry:
		if n == 2 && !validMonth(f.buf) {
			return early(ReasonMonth, 4-n)
		}
		if n == 4 {
			return f.end(c)
		}
	case kindCVV:
		if n >= cvvLen(c.cardBrand) {
			return f.end(c)
		}
	case kindExtra:
		if n >= f.max {
			return f.end(c)
		}
	}
	return more
}

// end validates the field as it is ('#', an inter-digit timeout, or the
// maximum length reached).
func (f *field) end(c *check) verdict {
	n := len(f.buf)
	switch f.kind {
	case kindPAN:
		b, st := detectBrand(f.buf)
		switch {
		case st != brandKnown:
			return invalid(ReasonUnknownBrand)
		case !c.cfg.accepted(c.merchant, b):
			return invalid(ReasonBrandNotAccepted)
		case !validLen(b, n):
			return invalid(ReasonLength)
		case !luhn(f.buf):
			return invalid(ReasonLuhn)
		}
		f.brand = b
		f.masked, f.auditPAN = maskPAN(f.buf, c.cfg.MaskStyle)
	case kindExpiry:
		if n != 4 {
			return invalid(ReasonLength)
		}
		if !validMonth(f.buf) {
			return invalid(ReasonMonth)
		}
		if expired(f.buf, c.now) {
			return invalid(ReasonExpired)
		}
	case kindCVV:
		if n != cvvLen(c.cardBrand) {
			return invalid(ReasonLength)
		}
	case kindExtra:
		if n < f.min || n > f.max {
			return invalid(ReasonLength)
		}
	}
	return verdict{done: true}
}

func validMonth(mmyy []byte) bool {
	m := int(mmyy[0]-'0')*10 + int(mmyy[1]-'0')
	return m >= 1 && m <= 12
}

// expired reports whether a card valid through the end of month MM of
// 20YY has expired at now. Card expiry has no time zone; UTC is used, so a
// card is accepted until the last day of its month ends in UTC.
func expired(mmyy []byte, now time.Time) bool {
	m := int(mmyy[0]-'0')*10 + int(mmyy[1]-'0')
	y := 2000 + int(mmyy[2]-'0')*10 + int(mmyy[3]-'0')
	now = now.UTC()
	return y < now.Year() || y == now.Year() && m < int(now.Month())
}

// maskPAN returns the view mask and the audit mask of a complete card
// number: first 6 and last 4 ("bin_last4") or last 4 only ("last4").
func maskPAN(pan []byte, style string) (view, audit string) {
	n := len(pan)
	head := 6
	if style == MaskLast4 {
		head = 0
	}
	var v, a strings.Builder
	for i, c := range pan {
		if i < head || i >= n-4 {
			v.WriteByte(c)
			a.WriteByte(c)
			continue
		}
		v.WriteString(dot)
		a.WriteByte('*')
	}
	return v.String(), a.String()
}

const dot = "•"

// view is the field as a View shows it.
func (f *field) view(maxAttempts int) FieldView {
	fv := FieldView{
		Name: f.name, Label: f.label, Status: f.status, Entered: len(f.buf),
		Valid: f.status == FieldValid, Attempts: f.attempts, MaxAttempts: maxAttempts, Error: f.err,
	}
	if f.kind == kindPAN && f.brand != "" {
		fv.Brand = f.brand
	}
	if f.masked != "" {
		fv.Masked = f.masked
	} else {
		fv.Masked = strings.Repeat(dot, len(f.buf))
	}
	return fv
}
