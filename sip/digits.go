package sip

import (
	"bytes"
	"encoding/xml"
	"errors"
	"io"
	"strconv"
	"strings"
	"time"

	"github.com/tonevault/tonevault/dtmf"
)

// ErrBadDTMFInfo is a key-press body (SIP INFO or NOTIFY) the gateway
// cannot read. Like every error here it never holds the body: the body is
// a key press.
var ErrBadDTMFInfo = errors.New("sip: no valid DTMF digit in body")

// digitFormat is a way of carrying key presses in a SIP body.
type digitFormat uint8

const (
	formatNone      digitFormat = iota
	formatRelay                 // application/dtmf-relay: "Signal=5\r\nDuration=160"
	formatDTMF                  // application/dtmf: the digit or its event code alone
	formatNortel                // application/vnd.nortelnetworks.digits: "d=5"
	formatEvent                 // audio/telephone-event: RFC 4733 event blocks
	formatKPMLReply             // application/kpml-response+xml (RFC 4730)
)

// digitTypes are the body types that carry key presses. Every one of
// them, alone or as a part of a multipart body, is taken off the
// carrier's signalling.
var digitTypes = map[string]digitFormat{
	"application/dtmf-relay":                formatRelay,
	"application/dtmf-info":                 formatRelay, // some SIP stacks' name for the same body
	"application/dtmf":                      formatDTMF,
	"application/vnd.nortelnetworks.digits": formatNortel,
	"audio/telephone-event":                 formatEvent,
	"application/kpml-response+xml":         formatKPMLReply,
}

// digitAccept is the Accept header of a 415 to an INFO or NOTIFY from the
// carrier.
const digitAccept = "application/dtmf-relay, application/dtmf-info, application/dtmf, application/vnd.nortelnetworks.digits, audio/telephone-event, application/kpml-response+xml, multipart/mixed"

// maxDigitBody bounds a key-press body: real ones are under 300 bytes,
// KPML responses included.
const maxDigitBody = 4 << 10

// digitReport is one key press read from a body, or, for RFC 4733 event
// blocks (event set), one report of a press that senders may spread over
// several messages: pressTracker makes those one digit.
type digitReport struct {
	digit dtmf.Digit
	// dur is the press's length, 0 when not said. In an RFC 4733 report
	// without the E bit it is how long the press may still last: a
	// bound, not a length.
	dur   time.Duration
	event bool // an RFC 4733 block
	end   bool // its E bit: the press is over
}

// length is the press length to give the de-duplicator: only a final
// report's duration is one.
func (r digitReport) length() time.Duration {
	if r.event && !r.end {
		return 0
	}
	return r.dur
}

// digitBody finds the key-press part of a body: the body itself, or the
// first part of a multipart body whose type carries key presses. ok is
// false when no part does.
func digitBody(parts []bodyPart) (bodyPart, digitFormat, bool) {
	for _, p := range parts {
		if f := digitTypes[p.ctype]; f != formatNone {
			return p, f, true
		}
	}
	return bodyPart{}, formatNone, false
}

// parseDigits reads the key presses of a body in format f; rate is the
// clock of a telephone-event body's duration (parseEventBody). One INFO
// is one key press in every format but KPML, whose responses list every
// digit collected since the last one.
func parseDigits(f digitFormat, body []byte, rate int) ([]digitReport, error) {
	if len(body) > maxDigitBody {
		return nil, ErrBadDTMFInfo
	}
	switch f {
	case formatRelay, formatDTMF, formatNortel:
		d, dur, err := parseDigitText(f, body)
		if err != nil {
			return nil, err
		}
		return []digitReport{{digit: d, dur: dur}}, nil
	case formatEvent:
		r, err := parseEventBody(body, rate)
		if err != nil {
			return nil, err
		}
		return []digitReport{r}, nil
	case formatKPMLReply:
		return parseKPMLResponse(body)
	}
	return nil, ErrBadDTMFInfo
}

// parseDigitText reads the text formats. application/dtmf-relay has
// "Signal=" and "Duration=" (ms) lines, application/vnd.nortelnetworks.
// digits a "d=" line, application/dtmf the digit alone. Names are
// case-insensitive and whitespace around "=" is allowed; a signal is a
// keypad symbol or its RFC 4733 event code (10 is *, 11 #, 12-15 A-D).
func parseDigitText(f digitFormat, body []byte) (dtmf.Digit, time.Duration, error) {
	var sig string
	var dur time.Duration
	if f == formatDTMF {
		sig = strings.TrimSpace(string(body))
	} else {
		key := "signal"
		if f == formatNortel {
			key = "d"
		}
		for line := range strings.SplitSeq(string(body), "\n") {
			k, v, ok := strings.Cut(line, "=")
			if !ok {
				continue
			}
			// Some senders put both on one line: "Signal=5 Duration=160".
			fields := strings.Fields(v)
			if len(fields) == 0 {
				continue
			}
			v = fields[0]
			switch strings.ToLower(strings.TrimSpace(k)) {
			case key:
				if sig != "" {
					return 0, 0, ErrBadDTMFInfo // two signals: which one?
				}
				sig = v
			case "duration":
				if ms, err := strconv.Atoi(v); err == nil && ms > 0 && ms < 60000 {
					dur = time.Duration(ms) * time.Millisecond
				}
			}
		}
	}
	d, ok := signalDigit(sig)
	if !ok {
		return 0, 0, ErrBadDTMFInfo
	}
	return d, dur, nil
}

// signalDigit reads a keypad symbol or an RFC 4733 event code (0-15).
func signalDigit(s string) (dtmf.Digit, bool) {
	if len(s) == 2 && s[0] == '1' && s[1] >= '0' && s[1] <= '5' {
		return dtmf.Digit(dtmf.Digits[10+s[1]-'0']), true
	}
	if len(s) != 1 {
		return 0, false
	}
	d := dtmf.Digit(strings.ToUpper(s)[0])
	return d, d.Valid()
}

// parseEventBody reads an audio/telephone-event body: one RFC 4733 event
// block (a longer body is several blocks of one report; the first one
// counts). rate is the clock of its duration field: the RTP clock (8000)
// for INFO bodies as RFC 4733 has it, milliseconds (1000) in Cisco's
// NOTIFY.
func parseEventBody(body []byte, rate int) (digitReport, error) {
	if len(body)%dtmf.TelephoneEventSize != 0 || rate <= 0 {
		return digitReport{}, ErrBadDTMFInfo
	}
	ev, err := dtmf.DecodeTelephoneEvent(body)
	if err != nil {
		return digitReport{}, ErrBadDTMFInfo
	}
	d, ok := ev.Digit()
	if !ok {
		return digitReport{}, ErrBadDTMFInfo
	}
	return digitReport{digit: d, dur: time.Duration(ev.Duration) * time.Second / time.Duration(rate), event: true, end: ev.End}, nil
}

// kpmlResponse is the one element of an application/kpml-response+xml
// body (RFC 4730 section 6).
type kpmlResponse struct {
	XMLName xml.Name `xml:"kpml-response"`
	Code    string   `xml:"code,attr"`
	Digits  string   `xml:"digits,attr"`
}

// parseKPMLResponse reads the digits of a KPML response. Every symbol
// of its digits attribute is a key press, whatever the code: a 423
// (inter-digit timeout) still reports what was typed before it. An
// unreadable document or a symbol that is not a key is an error, and
// nothing of the body is taken.
func parseKPMLResponse(body []byte) ([]digitReport, error) {
	dec := xml.NewDecoder(io.LimitReader(bytes.NewReader(body), maxDigitBody))
	// No entities or external references: only XML's own.
	dec.Strict = true
	dec.Entity = nil
	var r kpmlResponse
	if err := dec.Decode(&r); err != nil {
		return nil, ErrBadDTMFInfo
	}
	if r.XMLName.Space != "" && r.XMLName.Space != "urn:ietf:params:xml:ns:kpml-response" {
		return nil, ErrBadDTMFInfo
	}
	if c, err := strconv.Atoi(r.Code); err != nil || c < 100 || c > 699 {
		return nil, ErrBadDTMFInfo
	}
	out := make([]digitReport, 0, len(r.Digits))
	for i := 0; i < len(r.Digits); i++ {
		d, ok := signalDigit(r.Digits[i : i+1])
		if !ok {
			return nil, ErrBadDTMFInfo
		}
		out = append(out, digitReport{digit: d})
	}
	return out, nil
}

// pressSlack is how long after the duration a telephone-event report
// announced a report of the same digit still belongs to the same press.
const pressSlack = 500 * time.Millisecond

// maxPressWait bounds how long an unfinished press stays open.
const maxPressWait = 10 * time.Second

// pressTracker makes RFC 4733 event reports carried in SIP (Cisco's
// NOTIFY, INFO with audio/telephone-event) one digit per press. Senders
// differ: some send one report per press, some a start report (no E bit,
// the longest duration they will wait), refreshes while the key is held
// and an end report (E bit). A report without the E bit opens a press;
// reports of the same digit while it is open (within its announced
// duration plus pressSlack) belong to it, and one with the E bit closes
// it. Any other report is a new press. The zero value is ready; the
// caller serialises use.
type pressTracker struct {
	open     bool
	digit    dtmf.Digit
	deadline time.Time
}

// add takes a report at now and says whether it is a new press.
func (p *pressTracker) add(r digitReport, now time.Time) bool {
	same := p.open && r.digit == p.digit && now.Before(p.deadline)
	if r.end {
		p.open = false
		return !same
	}
	wait := min(r.dur+pressSlack, maxPressWait)
	p.open, p.digit, p.deadline = true, r.digit, now.Add(wait)
	return !same
}
