package audit

import (
	"bytes"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"time"

	"github.com/tonevault/tonevault/internal/pan"
)

// Record is one line of the audit trail.
//
// A caller of Writer.Append fills Actor, Origin, CallID, PaymentID, Event,
// Outcome, Reason, MaskedPAN and the typed fields that fit the event; the
// Writer sets Seq, Time and Prev, and KeyID and Sig on the checkpoints it
// writes. Apart from Actor and Origin, no field holds free text: each has
// a syntax (see the Valid functions) that Append checks, so that nothing a
// field may hold can be a card number.
type Record struct {
	Seq       uint64    // 1 for the first record of a file, then +1, no gaps
	Time      time.Time // when the Writer wrote it, UTC
	Actor     string    // who: an API key's name, "system", "sip:<peer>", "widget:<key name>", ...
	Origin    string    // from where: an IP address or host:port; may be empty for "system"
	CallID    string    // the call the event belongs to, if any (ValidID)
	PaymentID string    // the payment session, if any (ValidID)
	Event     Event
	Outcome   Outcome
	Reason    Reason // why, or how it ended: a code from Reasons()
	MaskedPAN string // at most the first 6 and last 4 digits, the rest '*': "411111******1111"

	// Typed fields; each is left out of the line when zero.
	Field        string    // a payment session's field: "card_number", "expiry", ... (ValidField)
	State        string    // a payment session's final state: "approved", "declined", ... (ValidState)
	Trunk        string    // a SIP trunk: "carrier" or "platform" (ValidTrunk)
	Method       string    // a SIP or HTTP method: "INVITE", "GET" (ValidMethod)
	Status       int       // a SIP or HTTP status code, 100 to 699
	Route        string    // an API route pattern: "GET /v1/payments/{id}" (ValidRoute)
	Digest       string    // lowercase hex SHA-256, of a configuration file (ValidDigest)
	Version      string    // the binary's Go module version: "v1.4.0", "(devel)" (ValidVersion)
	STAN         string    // an ISO 8583 system trace audit number: 6 digits (ValidSTAN)
	ResponseCode string    // an ISO 8583 response code (field 39): "05", "N7" (ValidResponseCode)
	ExpiresAt    time.Time // when what the event issued expires (a widget token); written like Time
	Lost         uint64    // audit.resumed only: records dropped, never written, while the trail could not take them

	KeyID string // checkpoints only: the signing key
	Sig   string // checkpoints only: the signature
	Prev  string // lowercase hex SHA-256 of the previous line; GenesisPrev for Seq 1
}

// GenesisPrev is the Prev of a file's first record: 64 zeros.
const GenesisPrev = "0000000000000000000000000000000000000000000000000000000000000000"

// TimeLayout is how Time is written: RFC 3339 in UTC, always with 9
// fractional digits, so that the text sorts like the time.
const TimeLayout = "2006-01-02T15:04:05.000000000Z"

// Limits on what a record may hold, in bytes.
const (
	MaxFieldLen = 256   // Actor, Origin
	MaxIDLen    = 64    // CallID, PaymentID
	MaxLineLen  = 16384 // a whole line; room for every field at its limit with every byte JSON-escaped, and for the free-text reasons of trails written before reason codes; longer lines are malformed
)

// ErrCardData is returned (wrapped, naming the field but never its value)
// by Writer.Append for a record that holds a card number, or a masked
// number that shows more than the first 6 and last 4 digits. Nothing is
// written.
var ErrCardData = errors.New("audit: record holds card data")

// wire is a record as written: the field order here is the order on the
// line, and a line must be exactly json.Marshal of its wire form. Fields
// added later go after masked_pan and are omitted when empty, so that the
// lines of older trails keep their canonical form.
type wire struct {
	Seq          uint64  `json:"seq"`
	Time         string  `json:"time"`
	Actor        string  `json:"actor"`
	Origin       string  `json:"origin,omitempty"`
	CallID       string  `json:"call_id,omitempty"`
	PaymentID    string  `json:"payment_id,omitempty"`
	Event        Event   `json:"event"`
	Outcome      Outcome `json:"outcome"`
	Reason       Reason  `json:"reason,omitempty"`
	MaskedPAN    string  `json:"masked_pan,omitempty"`
	Field        string  `json:"field,omitempty"`
	State        string  `json:"state,omitempty"`
	Trunk        string  `json:"trunk,omitempty"`
	Method       string  `json:"method,omitempty"`
	Status       int     `json:"status,omitempty"`
	Route        string  `json:"route,omitempty"`
	Digest       string  `json:"digest,omitempty"`
	Version      string  `json:"version,omitempty"`
	STAN         string  `json:"stan,omitempty"`
	ResponseCode string  `json:"response_code,omitempty"`
	ExpiresAt    string  `json:"expires_at,omitempty"`
	Lost         uint64  `json:"lost,omitempty"`
	KeyID        string  `json:"key_id,omitempty"`
	Sig          string  `json:"sig,omitempty"`
	Prev         string  `json:"prev"`
}

func (r *Record) wire() wire {
	w := wire{
		Seq: r.Seq, Time: r.Time.UTC().Format(TimeLayout),
		Actor: r.Actor, Origin: r.Origin, CallID: r.CallID, PaymentID: r.PaymentID,
		Event: r.Event, Outcome: r.Outcome, Reason: r.Reason, MaskedPAN: r.MaskedPAN,
		Field: r.Field, State: r.State, Trunk: r.Trunk, Method: r.Method, Status: r.Status,
		Route: r.Route, Digest: r.Digest, Version: r.Version, STAN: r.STAN, ResponseCode: r.ResponseCode,
		Lost: r.Lost, KeyID: r.KeyID, Sig: r.Sig, Prev: r.Prev,
	}
	if !r.ExpiresAt.IsZero() {
		w.ExpiresAt = r.ExpiresAt.UTC().Format(TimeLayout)
	}
	return w
}

func (w *wire) record() (Record, error) {
	t, err := time.Parse(TimeLayout, w.Time)
	if err != nil {
		return Record{}, fmt.Errorf("time %q is not %s", w.Time, TimeLayout)
	}
	var exp time.Time
	if w.ExpiresAt != "" {
		if exp, err = time.Parse(TimeLayout, w.ExpiresAt); err != nil {
			return Record{}, fmt.Errorf("expires_at %q is not %s", w.ExpiresAt, TimeLayout)
		}
	}
	return Record{
		Seq: w.Seq, Time: t,
		Actor: w.Actor, Origin: w.Origin, CallID: w.CallID, PaymentID: w.PaymentID,
		Event: w.Event, Outcome: w.Outcome, Reason: w.Reason, MaskedPAN: w.MaskedPAN,
		Field: w.Field, State: w.State, Trunk: w.Trunk, Method: w.Method, Status: w.Status,
		Route: w.Route, Digest: w.Digest, Version: w.Version, STAN: w.STAN, ResponseCode: w.ResponseCode,
		ExpiresAt: exp, Lost: w.Lost,
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
