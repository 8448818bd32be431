package sip

import (
	"strings"

	"github.com/emiago/sipgo/sip"
)

// allowMethods is what the gateway accepts (Allow header) on the
// platform trunk; allowCarrier on the carrier trunk, where an in-dialog
// MESSAGE would take the customer's text to the agent and REFER is
// always refused. PRACK is the gateway's own on each leg (RFC 3262): it
// acknowledges the gateway's reliable provisional responses and goes
// nowhere else.
const (
	allowMethods = "INVITE, ACK, CANCEL, BYE, OPTIONS, INFO, UPDATE, MESSAGE, NOTIFY, PRACK, REFER"
	allowCarrier = "INVITE, ACK, CANCEL, BYE, OPTIONS, INFO, UPDATE, NOTIFY, PRACK"
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

// optionTags returns the option tags of every header called name in m
// (Supported, Require; Supported's compact form is k).
func optionTags(m message, name string) []string {
	hs := m.GetHeaders(name)
	if strings.EqualFold(name, "Supported") {
		hs = append(hs, m.GetHeaders("k")...)
	}
	var tags []string
	for _, h := range hs {
		for t := range strings.SplitSeq(h.Value(), ",") {
			if t = strings.TrimSpace(t); t != "" {
				tags = append(tags, t)
			}
		}
	}
	return tags
}

// hasTag reports whether a Supported or Require header (name) of m
// names tag.
func hasTag(m message, name, tag string) bool {
	for _, t := range optionTags(m, name) {
		if strings.EqualFold(t, tag) {
			return true
		}
	}
	return false
}

// supports reports whether m's sender does the extension tag: it is in
// its Supported or its Require.
func supports(m message, tag string) bool {
	return hasTag(m, "Supported", tag) || hasTag(m, "Require", tag)
}

// unsupportedRequire is the first option tag of m's Require that the
// gateway does not do (RFC 3261 8.2.2.3: 420 with Unsupported), or "".
func unsupportedRequire(m message) string {
	for _, tag := range optionTags(m, "Require") {
		if !supportedRequire[strings.ToLower(tag)] {
			return tag
		}
	}
	return ""
}

// allows reports whether m's Allow names method; known is false when m
// has no Allow.
func allows(m message, method sip.RequestMethod) (ok, known bool) {
	hs := m.GetHeaders("Allow")
	for _, h := range hs {
		for v := range strings.SplitSeq(h.Value(), ",") {
			if strings.EqualFold(strings.TrimSpace(v), string(method)) {
				return true, true
			}
		}
	}
	return false, len(hs) > 0
}

// setHeader replaces every header called name on m with one of value.
func setHeader(m message, name, value string) {
	for m.RemoveHeader(name) {
	}
	m.AppendHeader(sip.NewHeader(name, value))
}

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
