package sip

import (
	"strings"

	"github.com/emiago/sipgo/sip"
)

// allowMethods is what the gateway accepts (Allow header) on the
// platform trunk; allowCarrier on the carrier trunk, where an in-dialog
// MESSAGE would take the customer's text to the agent. PRACK is in
// neither: sipgo has no reliable provisional responses, so 100rel is
// taken out of Supported and Require on the way through (see doc.go).
const (
	allowMethods = "INVITE, ACK, CANCEL, BYE, OPTIONS, INFO, UPDATE, MESSAGE, NOTIFY"
	allowCarrier = "INVITE, ACK, CANCEL, BYE, OPTIONS, INFO, UPDATE, NOTIFY"
)

// acceptTypes is what the gateway reads in bodies (Accept header).
const acceptTypes = "application/sdp, multipart/mixed, " + digitAccept

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
// (RFC 4028). The asserted identity goes by copyIdentity.
var passHeaders = []string{"Session-Expires", "Min-SE"}

// copyHeaders copies every header called one of names from src to dst.
func copyHeaders(src, dst message, names []string) {
	for _, name := range names {
		dst.RemoveHeader(name)
		for _, h := range src.GetHeaders(name) {
			dst.AppendHeader(sip.NewHeader(h.Name(), h.Value()))
		}
	}
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
