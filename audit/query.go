package audit

import (
	"encoding/csv"
	"fmt"
	"io"
	"iter"
	"strconv"
	"strings"
	"time"
)

// Filter selects records. Zero fields select everything.
type Filter struct {
	CallID    string
	PaymentID string
	Since     time.Time // records at or after Since
	Until     time.Time // records before Until
	// Events are event names ("field.failed") or areas ending in ".*"
	// ("field.*"); a record matches when its event matches any of them.
	Events []string
}

// Match reports whether r passes f.
func (f *Filter) Match(r *Record) bool {
	if f.CallID != "" && r.CallID != f.CallID {
		return false
	}
	if f.PaymentID != "" && r.PaymentID != f.PaymentID {
		return false
	}
	if !f.Since.IsZero() && r.Time.Before(f.Since) {
		return false
	}
	if !f.Until.IsZero() && !r.Time.Before(f.Until) {
		return false
	}
	if len(f.Events) == 0 {
		return true
	}
	for _, e := range f.Events {
		if area, ok := strings.CutSuffix(e, ".*"); ok {
			if strings.HasPrefix(string(r.Event), area+".") {
				return true
			}
		} else if string(r.Event) == e {
			return true
		}
	}
	return false
}

// CheckEventPattern reports an error unless p is a known event name or
// the area of one followed by ".*".
func CheckEventPattern(p string) error {
	if area, ok := strings.CutSuffix(p, ".*"); ok {
		for _, e := range events {
			if strings.HasPrefix(string(e), area+".") {
				return nil
			}
		}
		return fmt.Errorf("no event in area %q", area)
	}
	if !Event(p).Known() {
		return fmt.Errorf("unknown event %q", p)
	}
	return nil
}

// Records reads the records of a trail one by one, without verifying the
// chain (use Verify for that). It yields an error, and stops, at the first
// line that is not a well-formed record, with the line number.
func Records(r io.Reader) iter.Seq2[Record, error] {
	return func(yield func(Record, error) bool) {
		for e, err := range lines(r) {
			if !yield(e.rec, err) || err != nil {
				return
			}
		}
	}
}

// entry is a line's bytes (valid until the next one is read) and record.
type entry struct {
	line []byte
	rec  Record
}

// lines yields each line's bytes and record.
func lines(r io.Reader) iter.Seq2[entry, error] {
	return func(yield func(entry, error) bool) {
		lr := newLineReader(r)
		for n := 1; ; n++ {
			l, err := lr.read()
			if err == io.EOF {
				return
			}
			if err != nil {
				yield(entry{}, err)
				return
			}
			var rec Record
			switch {
			case !l.complete:
				err = fmt.Errorf("line %d: %w: no newline at the end", n, ErrTruncated)
			case l.tooLong:
				err = fmt.Errorf("line %d: %w: longer than %d bytes", n, ErrMalformed, MaxLineLen)
			default:
				rec, err = parseLine(l.b)
				if err != nil {
					err = fmt.Errorf("line %d: %w: %v", n, ErrMalformed, err)
				}
			}
			if !yield(entry{l.b, rec}, err) || err != nil {
				return
			}
			lr.release(l)
		}
	}
}

// Format is the output of Query.
type Format int

const (
	// JSONLines writes each matching line exactly as it is in the trail,
	// so that its hash still matches the next record's prev.
	JSONLines Format = iota
	// CSV writes RFC 4180 CSV with a header row: CSVHeader. A field that
	// starts with '=', '+', '-', '@', tab or carriage return gets a leading
	// "'" so that a spreadsheet shows it instead of evaluating it (OWASP
	// CSV injection); no field written by ToneVault itself starts so.
	CSV
)

// CSVHeader is the header row of CSV output, the order of its columns:
// the first thirteen as before typed fields existed, so that a column
// keeps its place; the typed fields after them, in the order of the line.
var CSVHeader = []string{"seq", "time", "actor", "origin", "call_id", "payment_id", "event", "outcome", "reason", "masked_pan", "key_id", "sig", "prev",
	"field", "state", "trunk", "method", "status", "route", "digest", "version", "stan", "response_code", "expires_at", "lost"}

// Query writes the records of the trail in r that match f to out, in the
// given format, and returns how many matched. It does not verify the
// chain: run Verify first when it matters. It stops at the first line that
// is not a well-formed record.
func Query(r io.Reader, f Filter, out io.Writer, format Format) (int, error) {
	var cw *csv.Writer
	switch format {
	case JSONLines:
	case CSV:
		cw = csv.NewWriter(out)
		if err := cw.Write(CSVHeader); err != nil {
			return 0, err
		}
	default:
		return 0, fmt.Errorf("audit: unknown format %d", format)
	}
	n := 0
	var row []string
	for e, err := range lines(r) {
		line, rec := e.line, e.rec
		if err != nil {
			if cw != nil {
				cw.Flush()
			}
			return n, err
		}
		if !f.Match(&rec) {
			continue
		}
		n++
		if cw == nil {
			if _, err := out.Write(append(line, '\n')); err != nil {
				return n, err
			}
			continue
		}
		status, expires, lost := "", "", ""
		if rec.Status != 0 {
			status = strconv.Itoa(rec.Status)
		}
		if !rec.ExpiresAt.IsZero() {
			expires = rec.ExpiresAt.Format(TimeLayout)
		}
		if rec.Lost != 0 {
			lost = strconv.FormatUint(rec.Lost, 10)
		}
		row = append(row[:0],
			strconv.FormatUint(rec.Seq, 10), rec.Time.Format(TimeLayout),
			rec.Actor, rec.Origin, rec.CallID, rec.PaymentID,
			string(rec.Event), string(rec.Outcome), string(rec.Reason), rec.MaskedPAN,
			rec.KeyID, rec.Sig, rec.Prev,
			rec.Field, rec.State, rec.Trunk, rec.Method, status, rec.Route, rec.Digest, rec.Version, rec.STAN, rec.ResponseCode, expires, lost)
		for i := range row {
			row[i] = csvSafe(row[i])
		}
		if err := cw.Write(row); err != nil {
			return n, err
		}
	}
	if cw != nil {
		cw.Flush()
		return n, cw.Error()
	}
	return n, nil
}

func csvSafe(s string) string {
	if s != "" && strings.IndexByte("=+-@\t\r", s[0]) >= 0 {
		return "'" + s
	}
	return s
}
