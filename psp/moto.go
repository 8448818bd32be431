package psp

import (
	"fmt"
	"maps"
	"strings"

	"github.com/tonevault/tonevault/internal/pan"
)

// MOTO is what marks an authorization as a telephone order, in a brand's
// terms. Fields 22 and 25 go in every 0100/0200; fields 60 and 61 only
// when set. The acquirer's specification has the last word on every
// value: Config.MOTO overrides these per brand.
type MOTO struct {
	// EntryMode is field 22, POS entry mode: "01" manual key entry, then
	// "2" no PIN entry capability. Empty: "012".
	EntryMode string `yaml:"entry_mode"`
	// Condition is field 25, POS condition code: "08" mail/telephone
	// order. Empty: "08".
	Condition string `yaml:"condition"`
	// Field60 is Visa's additional POS information; positions 9-10
	// (60.8) say what kind of order: "01" a single mail/telephone order
	// ("08" there is a non-secure e-commerce order). Empty: not sent.
	Field60 string `yaml:"field_60"`
	// Field61 is Mastercard's POS data (DE 61): subfield 4, position 4,
	// "3" phone order; subfield 5, position 5, "1" card not present.
	// Empty: not sent.
	Field61 string `yaml:"field_61"`
}

// Values of a MOTO entry left empty.
const (
	DefaultEntryMode = "012" // manual key entry, no PIN entry capability
	DefaultCondition = "08"  // mail/telephone order
)

// DefaultMOTO holds the built-in indicators of the brands that have them;
// any other brand gets fields 22 and 25 alone (OtherMOTO).
//
// Visa, field 60: positions 1-8 zero (terminal type unspecified, entry
// capability unknown, no chip data), 9-10 "01" single mail/telephone
// order. Mastercard, DE 61 subfields 1-9, the mandatory ones: "2" no
// terminal used (voice/ARU), "0" reserved, "3" no terminal used, "3"
// cardholder not present: phone order, "1" card not present, "0" no card
// capture, "0" normal request, "0" no security concern, "0" reserved.
// Subfields 10 and on (terminal level, input capability, authorization
// life cycle, country and postal code) are left to the acquirer's
// specification.
var DefaultMOTO = map[string]MOTO{
	"visa":       {EntryMode: DefaultEntryMode, Condition: DefaultCondition, Field60: "0000000001"},
	"mastercard": {EntryMode: DefaultEntryMode, Condition: DefaultCondition, Field61: "203310000"},
}

// OtherMOTO is what a brand without an entry of its own gets.
var OtherMOTO = MOTO{EntryMode: DefaultEntryMode, Condition: DefaultCondition}

// withDefaults fills an entry's empty fields 22 and 25.
func (m MOTO) withDefaults() MOTO {
	if m.EntryMode == "" {
		m.EntryMode = DefaultEntryMode
	}
	if m.Condition == "" {
		m.Condition = DefaultCondition
	}
	return m
}

// validate names the key of the first value that cannot be sent. A value
// holding what passes for a card number is refused too: the store, which
// keeps these with the payment, refuses any such value.
func (m MOTO) validate(key string) error {
	if m.EntryMode != "" && (len(m.EntryMode) != 3 || !digits(m.EntryMode)) {
		return fmt.Errorf("%s.entry_mode: %q: want 3 digits (field 22), such as 012", key, m.EntryMode)
	}
	if m.Condition != "" && (len(m.Condition) != 2 || !digits(m.Condition)) {
		return fmt.Errorf("%s.condition: %q: want 2 digits (field 25), such as 08", key, m.Condition)
	}
	for _, f := range []struct{ name, v string }{{"field_60", m.Field60}, {"field_61", m.Field61}} {
		if len(f.v) > 999 || !printable(f.v) {
			return fmt.Errorf("%s.%s: want up to 999 printable characters", key, f.name)
		}
		if pan.Contains(f.v) {
			return fmt.Errorf("%s.%s: its digits pass for a card number (Luhn), which the store refuses to keep", key, f.name)
		}
	}
	return nil
}

// motoTable is Config.MOTO over DefaultMOTO, brands in lower case, every
// entry complete.
func motoTable(conf map[string]MOTO) map[string]MOTO {
	t := maps.Clone(DefaultMOTO)
	for b, m := range conf {
		t[strings.ToLower(b)] = m
	}
	for b, m := range t {
		t[b] = m.withDefaults()
	}
	return t
}

func (c *Config) moto(brand string) MOTO {
	if m, ok := c.MOTO[strings.ToLower(brand)]; ok {
		return m
	}
	return OtherMOTO
}
