package sip

import (
	"errors"
	"strconv"
	"strings"
	"time"

	"github.com/emiago/sipgo/sip"

	"github.com/tonevault/tonevault/dtmf"
)

// allowMethods is what the gateway accepts (Allow header). PRACK is not
// in it: sipgo has no reliable provisional responses, so 100rel is
// taken out of Supported and Require on the way through (see doc.go).
const allowMethods = "INVITE, ACK, CANCEL, BYE, OPTIONS, INFO, UPDATE, MESSAGE, NOTIFY"

// acceptTypes is what the gateway reads in bodies (Accept header).
const acceptTypes = "application/sdp, application/dtmf-relay, application/dtmf"

// message is what the gateway reads and writes of requests and
// responses alike; sip.Message has fewer methods than both have.
type message interface {
	sip.Message
	RemoveHeader(name string) bool
	ContentType() *sip.ContentTypeHeader
	Contact() *sip.ContactHeader
}

// headerValue is the comma-joined value of every header called name.
func headerValue(m message, name string) string {
	var vals []string
	for _, h := range m.GetHeaders(name) {
		vals = append(vals, h.Value())
	}
	return strings.Join(vals, ", ")
}

// optionTags returns the option tags of every Supported or Require header
// (name) in m, without 100rel.
func optionTags(m message, name string) []string {
	var tags []string
	for _, h := range m.GetHeaders(name) {
		for t := range strings.SplitSeq(h.Value(), ",") {
			t = strings.TrimSpace(t)
			if t != "" && !strings.EqualFold(t, "100rel") {
				tags = append(tags, t)
			}
		}
	}
	return tags
}

// copyOptionTags puts src's Supported and Require (without 100rel) on dst.
func copyOptionTags(src, dst message) {
	for _, name := range []string{"Supported", "Require"} {
		dst.RemoveHeader(name)
		if tags := optionTags(src, name); len(tags) > 0 {
			dst.AppendHeader(sip.NewHeader(name, strings.Join(tags, ", ")))
		}
	}
}

// passHeaders are copied across the gateway as they are: session timers
// (RFC 4028) and the caller's asserted identity (RFC 3325).
var passHeaders = []string{"Session-Expires", "Min-SE", "P-Asserted-Identity"}

// copyHeaders copies every header called one of names from src to dst.
func copyHeaders(src, dst message, names []string) {
	for _, name := range names {
		dst.RemoveHeader(name)
		for _, h := range src.GetHeaders(name) {
			dst.AppendHeader(sip.NewHeader(h.Name(), h.Value()))
		}
	}
}

// contentType is m's media type, lower case, without parameters.
func contentType(m message) string {
	ct := m.ContentType()
	if ct == nil {
		return ""
	}
	t, _, _ := strings.Cut(ct.Value(), ";")
	return strings.ToLower(strings.TrimSpace(t))
}

func hasSDP(m message) bool {
	return len(m.Body()) > 0 && contentType(m) == "application/sdp"
}

// ErrBadDTMFInfo is a SIP INFO DTMF body the gateway cannot read.
var ErrBadDTMFInfo = errors.New("sip: INFO: no valid DTMF digit in body")

// isDTMFInfo reports whether an INFO body type carries a key press.
func isDTMFInfo(ct string) bool {
	return ct == "application/dtmf-relay" || ct == "application/dtmf"
}

// parseDTMFInfo reads the digit of an INFO body: application/dtmf-relay
// ("Signal=5\r\nDuration=160\r\n", the de facto format; Signal 10 and 11
// are * and # for some vendors) or application/dtmf (the digit alone).
// The duration is 0 when absent or unreadable.
func parseDTMFInfo(ct string, body []byte) (dtmf.Digit, time.Duration, error) {
	var sig string
	var dur time.Duration
	if ct == "application/dtmf" {
		sig = strings.TrimSpace(string(body))
	} else {
		for line := range strings.SplitSeq(string(body), "\n") {
			k, v, ok := strings.Cut(line, "=")
			if !ok {
				continue
			}
			v = strings.TrimSpace(v)
			switch strings.ToLower(strings.TrimSpace(k)) {
			case "signal":
				sig = v
			case "duration":
				if ms, err := strconv.Atoi(v); err == nil && ms > 0 && ms < 60000 {
					dur = time.Duration(ms) * time.Millisecond
				}
			}
		}
	}
	switch sig {
	case "10":
		sig = "*"
	case "11":
		sig = "#"
	}
	if len(sig) != 1 {
		return 0, 0, ErrBadDTMFInfo
	}
	d := dtmf.Digit(strings.ToUpper(sig)[0])
	if !d.Valid() {
		return 0, 0, ErrBadDTMFInfo
	}
	return d, dur, nil
}

// contentTypeRaw is m's Content-Type value as it is.
func contentTypeRaw(m message) string {
	if ct := m.ContentType(); ct != nil {
		return ct.Value()
	}
	return ""
}

// setBody sets a request's body and, with one, its Content-Type.
func setBody(m message, body []byte, ctype string) {
	if len(body) > 0 && ctype != "" {
		ct := sip.ContentTypeHeader(ctype)
		m.AppendHeader(&ct)
	}
	m.SetBody(body)
}
