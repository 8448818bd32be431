package audit

import (
	"bytes"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"time"
	"unicode/utf8"

	"github.com/tonevault/tonevault/internal/pan"
)

// Record is one line of the audit trail.
//
// A caller of Writer.Append fills Actor, Origin, CallID, PaymentID, Event,
// Outcome, Reason and MaskedPAN; the Writer sets Seq, Time and Prev, and
// KeyID and Sig on the checkpoints it writes.
type Record struct {
	Seq       uint64    // 1 for the first record of a file, then +1, no gaps
	Time      time.Time // when the Writer wrote it, UTC
	Actor     string    // who: an API key's name, "system", "sip:<peer>", "widget:<key name>", ...
	Origin    string    // from where: an IP address or host:port; may be empty for "system"
	CallID    string    // the call the event belongs to, if any
	PaymentID string    // the payment session, if any
	Event     Event
	Outcome   Outcome
	Reason    string // free text for humans; never card data
	MaskedPAN string // at most the first 6 and last 4 digits, the rest '*': "411111******1111"
	KeyID     string // checkpoints only: the signing key
	Sig       string // checkpoints only: the signature
	Prev      string // lowercase hex SHA-256 of the previous line; GenesisPrev for Seq 1
}

// GenesisPrev is the Prev of a file's first record: 64 zeros.
const GenesisPrev = "0000000000000000000000000000000000000000000000000000000000000000"

// TimeLayout is how Time is written: RFC 3339 in UTC, always with 9
// fractional digits, so that the text sorts like the time.
const TimeLayout = "2006-01-02T15:04:05.000000000Z"

// Limits on what a record may hold, in bytes.
const (
	MaxFieldLen  = 256   // Actor, Origin, CallID, PaymentID
	MaxReasonLen = 1024  // Reason
	MaxLineLen   = 16384 // a whole line, room for every field at its limit with every byte JSON-escaped; longer lines are malformed
)

// ErrCardData is returned (wrapped, naming the field but never its value)
// by Writer.Append for a record that holds a card number, or a masked
// number that shows more than the first 6 and last 4 digits. Nothing is
// written.
var ErrCardData = errors.New("audit: record holds card data")

// wire is a record as written: the field order here is the order on the
// line, and a line must be exactly json.Marshal of its wire form.
type wire struct {
	Seq       uint64  `json:"seq"`
	Time      string  `json:"time"`
	Actor     string  `json:"actor"`
	Origin    string  `json:"origin,omitempty"`
	CallID    string  `json:"call_id,omitempty"`
	PaymentID string  `json:"payment_id,omitempty"`
	Event     Event   `json:"event"`
	Outcome   Outcome `json:"outcome"`
	Reason    string  `json:"reason,omitempty"`
	MaskedPAN string  `json:"masked_pan,omitempty"`
	KeyID     string  `json:"key_id,omitempty"`
	Sig       string  `json:"sig,omitempty"`
	Prev      string  `json:"prev"`
}

func (r *Record) wire() wire {
	return wire{
		Seq: r.Seq, Time: r.Time.UTC().Format(TimeLayout),
		Actor: r.Actor, Origin: r.Origin, CallID: r.CallID, PaymentID: r.PaymentID,
		Event: r.Event, Outcome: r.Outcome, Reason: r.Reason, MaskedPAN: r.MaskedPAN,
		KeyID: r.KeyID, Sig: r.Sig, Prev: r.Prev,
	}
}

func (w *wire) record() (Record, error) {
	t, err := time.Parse(TimeLayout, w.Time)
	if err != nil {
		return Record{}, fmt.Errorf("time %q is not %s", w.Time, TimeLayout)
	}
	return Record{
		Seq: w.Seq, Time: t,
		Actor: w.Actor, Origin: w.Origin, CallID: w.CallID, PaymentID: w.PaymentID,
		Event: w.Event, Outcome: w.Outcome, Reason: w.Reason, MaskedPAN: w.MaskedPAN,
		KeyID: w.KeyID, Sig: w.Sig, Prev: w.Prev,
	}, nil
}

// MarshalJSON writes r exactly as on a line of the trail.
func (r Record) MarshalJSON() ([]byte, error) {
	w := r.wire()
	return json.Marshal(&w)
}

// UnmarshalJSON reads a record as written on a line of the trail.
func (r *Record) UnmarshalJSON(b []byte) error {
	var w wire
	if err := json.Unmarshal(b, &w); err != nil {
		return err
	}
	rec, err := w.record()
	if err != nil {
		return err
	}
	*r = rec
	return nil
}

// parseLine reads one line (without its newline) and checks that it is in
// canonical form: the line must be exactly what the Writer would write for
// the record it holds, so that no byte can change unnoticed, even in the
// last line of a file where no later hash covers it.
func parseLine(line []byte) (Record, error) {
	if len(line) == 0 {
		return Record{}, errors.New("empty line")
	}
	var w wire
	// Unknown or duplicate fields, other spellings of the keys, spaces:
	// all make the line differ from its canonical form below.
	if err := json.Unmarshal(line, &w); err != nil {
		return Record{}, fmt.Errorf("not a record: %v", jsonErr(err))
	}
	rec, err := w.record()
	if err != nil {
		return Record{}, err
	}
	canon, err := json.Marshal(&w)
	if err != nil {
		return Record{}, err
	}
	if !bytes.Equal(canon, line) {
		return rec, errNotCanonical
	}
	if !isHash(rec.Prev) {
		return rec, fmt.Errorf("prev %q is not a lowercase hex SHA-256", rec.Prev)
	}
	if rec.Seq == 0 {
		return rec, errors.New("seq 0")
	}
	if rec.Event == EventAuditCheckpoint {
		if rec.KeyID == "" || rec.Sig == "" {
			return rec, errors.New("checkpoint without key_id or sig")
		}
	} else if rec.KeyID != "" || rec.Sig != "" {
		return rec, errors.New("key_id or sig on a record that is not a checkpoint")
	}
	return rec, nil
}

var errNotCanonical = errors.New("not in canonical form (bytes added, removed or reformatted)")

// jsonErr shortens encoding/json's errors, which may quote the input; a
// tampered line could hold anything, and the message stays one line.
func jsonErr(err error) string {
	var se *json.SyntaxError
	var te *json.UnmarshalTypeError
	switch {
	case errors.As(err, &se):
		return fmt.Sprintf("invalid JSON at byte %d", se.Offset)
	case errors.As(err, &te):
		return fmt.Sprintf("field %q has the wrong type", te.Field)
	}
	s := err.Error()
	if len(s) > 80 {
		s = s[:80] + "..."
	}
	return pan.Redact(s)
}

func isHash(s string) bool {
	if len(s) != 64 {
		return false
	}
	for i := 0; i < len(s); i++ {
		c := s[i]
		if !('0' <= c && c <= '9' || 'a' <= c && c <= 'f') {
			return false
		}
	}
	return true
}

// hashLine is what the next record's Prev holds: the SHA-256 of a line's
// exact bytes, without its newline.
func hashLine(line []byte) [32]byte { return sha256.Sum256(line) }

func hexHash(h [32]byte) string { return hex.EncodeToString(h[:]) }

// checkNew checks a record given to Writer.Append.
func (r *Record) checkNew() error {
	if r.Seq != 0 || !r.Time.IsZero() || r.Prev != "" || r.KeyID != "" || r.Sig != "" {
		return errors.New("audit: Seq, Time, Prev, KeyID and Sig are set by the Writer")
	}
	if !r.Event.Known() {
		return fmt.Errorf("audit: unknown event %q", r.Event)
	}
	if r.Event.reserved() {
		return fmt.Errorf("audit: event %q is written by the Writer only", r.Event)
	}
	if !r.Outcome.Known() {
		return fmt.Errorf("audit: outcome %q is not success, failure or info", r.Outcome)
	}
	if r.Actor == "" {
		return errors.New("audit: no actor")
	}
	return r.checkFields()
}

// checkFields checks the free-text fields of any record, the Writer's own
// included: length, UTF-8, and no card data.
func (r *Record) checkFields() error {
	for _, f := range []struct {
		name, v string
		max     int
	}{
		{"actor", r.Actor, MaxFieldLen},
		{"origin", r.Origin, MaxFieldLen},
		{"call_id", r.CallID, MaxFieldLen},
		{"payment_id", r.PaymentID, MaxFieldLen},
		{"event", string(r.Event), MaxFieldLen},
		{"reason", r.Reason, MaxReasonLen},
		{"masked_pan", r.MaskedPAN, MaxFieldLen},
	} {
		if len(f.v) > f.max {
			return fmt.Errorf("audit: %s is longer than %d bytes", f.name, f.max)
		}
		if !utf8.ValidString(f.v) {
			return fmt.Errorf("audit: %s is not valid UTF-8", f.name)
		}
		if pan.Contains(f.v) {
			return fmt.Errorf("%w: %s holds a card number; record refused", ErrCardData, f.name)
		}
	}
	if r.MaskedPAN != "" && !ValidMaskedPAN(r.MaskedPAN) {
		return fmt.Errorf("%w: masked_pan is not at most the first 6 and last 4 digits with the rest '*'; record refused", ErrCardData)
	}
	return nil
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
