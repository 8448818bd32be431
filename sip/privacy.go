package sip

import (
	"strings"

	"github.com/emiago/sipgo/sip"
)

// withheld reports whether m asks for its sender's identity to be kept
// from whoever is not in the trust domain: a Privacy header (RFC 3323)
// with id (RFC 3325), user or header. none and critical alone do not.
func withheld(m message) bool {
	for _, h := range m.GetHeaders("Privacy") {
		for v := range strings.FieldsFuncSeq(h.Value(), func(r rune) bool { return r == ';' || r == ',' }) {
			switch strings.ToLower(strings.TrimSpace(v)) {
			case "id", "user", "header":
				return true
			}
		}
	}
	return false
}

// copyIdentity carries the sender's asserted identity from src to dst,
// a message the gateway sends on trunk to: Privacy always, so the other
// side knows the identity is withheld, and P-Asserted-Identity unless
// src withholds it and to is not trusted (RFC 3325 section 5).
func copyIdentity(src, dst message, to *trunk) {
	copyHeaders(src, dst, []string{"Privacy"})
	if withheld(src) && !to.cfg.Trusted {
		dst.RemoveHeader("P-Asserted-Identity")
		return
	}
	copyHeaders(src, dst, []string{"P-Asserted-Identity"})
}

// anonymousURI is the From of a caller whose identity is withheld (RFC
// 3323 section 4.1.1.3).
var anonymousURI = sip.Uri{Scheme: "sip", User: "anonymous", Host: "anonymous.invalid"}

const anonymousName = "Anonymous"

// normalizeParams makes From and To parameters comparable: RFC 3261 allows
// whitespace around "=" and ";" (RFC 4475 3.1.1.1) and makes parameter
// names case-insensitive, and sipgo keeps both as they came, so that
// "tag = x" would not be a tag.
func normalizeParams(req message) {
	if f := req.From(); f != nil {
		f.Params = cleanParams(f.Params)
	}
	if t := req.To(); t != nil {
		t.Params = cleanParams(t.Params)
	}
}

func cleanParams(p sip.HeaderParams) sip.HeaderParams {
	out := sip.NewParams()
	for _, kv := range p {
		k := strings.ToLower(strings.TrimSpace(kv.K))
		if k == "" {
			continue
		}
		out.Add(k, strings.TrimSpace(kv.V))
	}
	return out
}
