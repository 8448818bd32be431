package sip

import (
	"bytes"
	"errors"
	"fmt"
	"io"
	"mime"
	"mime/multipart"
	"net/textproto"
	"strings"
)

// Errors of the body readers. ErrBadBody leads to 400 Bad Request,
// ErrUnsupportedBody to 415 Unsupported Media Type with an Accept header.
// Neither ever carries body bytes: a body may be a key press.
var (
	ErrBadBody         = errors.New("sip: malformed message body")
	ErrUnsupportedBody = errors.New("sip: message body of a type the gateway does not take")
)

// Limits on what the body readers take: real multipart bodies (SIP-I,
// INFO with alternatives) have two or three parts and no nesting.
const (
	maxBody      = 64 << 10
	maxParts     = 8
	maxPartDepth = 2
)

// bodyPart is one part of a message body, or the whole body when it is
// not multipart.
type bodyPart struct {
	ctype string // media type, lower case, without parameters
	raw   string // Content-Type as received, parameters kept
	disp  string // Content-Disposition as received ("" when absent)
	body  []byte
}

// required reports whether the part's Content-Disposition says
// handling=required. RFC 3261 20.11 makes required the default, but
// real SIP-I and SIP-T senders mark what matters and many mark nothing;
// only an explicit required is honoured.
func (p bodyPart) required() bool {
	_, params, err := mime.ParseMediaType("x/" + p.disp)
	if p.disp == "" || err != nil {
		return false
	}
	return strings.EqualFold(params["handling"], "required")
}

// mediaType is a Content-Type's media type, lower case, and its
// parameters.
func mediaType(ct string) (string, map[string]string, error) {
	t, params, err := mime.ParseMediaType(ct)
	if err != nil {
		// err quotes the value, which the peer chose: not in the error.
		return "", nil, fmt.Errorf("%w: unreadable Content-Type", ErrBadBody)
	}
	return t, params, nil
}

// bodyParts splits a body of Content-Type ct into its parts: one for a
// single body, each leaf part for multipart/* (nested up to
// maxPartDepth). An empty body has no parts.
func bodyParts(ct string, body []byte) ([]bodyPart, error) {
	if len(body) == 0 {
		return nil, nil
	}
	if len(body) > maxBody {
		return nil, fmt.Errorf("%w: body of %d bytes", ErrBadBody, len(body))
	}
	if strings.TrimSpace(ct) == "" {
		// RFC 3261 7.4.1: a body has a Content-Type; a body whose type is
		// unknown cannot be taken.
		return nil, fmt.Errorf("%w: body without Content-Type", ErrUnsupportedBody)
	}
	var out []bodyPart
	if err := appendParts(&out, ct, "", body, 0); err != nil {
		return nil, err
	}
	return out, nil
}

func appendParts(out *[]bodyPart, ct, disp string, body []byte, depth int) error {
	t, params, err := mediaType(ct)
	if err != nil {
		return err
	}
	if !strings.HasPrefix(t, "multipart/") {
		if len(*out) >= maxParts {
			return fmt.Errorf("%w: more than %d parts", ErrBadBody, maxParts)
		}
		*out = append(*out, bodyPart{ctype: t, raw: ct, disp: disp, body: body})
		return nil
	}
	if depth >= maxPartDepth {
		return fmt.Errorf("%w: multipart nested too deep", ErrBadBody)
	}
	boundary := params["boundary"]
	if boundary == "" {
		return fmt.Errorf("%w: multipart without boundary", ErrBadBody)
	}
	r := multipart.NewReader(bytes.NewReader(body), boundary)
	n := 0
	for {
		p, err := r.NextRawPart()
		if errors.Is(err, io.EOF) {
			break
		}
		if err != nil {
			return fmt.Errorf("%w: unreadable multipart body", ErrBadBody)
		}
		b, err := io.ReadAll(io.LimitReader(p, maxBody+1))
		if err != nil {
			return fmt.Errorf("%w: unreadable multipart part", ErrBadBody)
		}
		n++
		pct := p.Header.Get("Content-Type")
		if pct == "" {
			// RFC 2046 5.1: a part without one is text/plain.
			pct = "text/plain"
		}
		if err := appendParts(out, pct, p.Header.Get("Content-Disposition"), b, depth+1); err != nil {
			return err
		}
	}
	if n == 0 {
		return fmt.Errorf("%w: multipart without parts", ErrBadBody)
	}
	return nil
}

// session is what a message body holds for the offer/answer: the SDP,
// and the ISUP part of a SIP-I/SIP-T body.
type session struct {
	sdp  []byte
	isup *bodyPart
}

// sessionAccept is the Accept header for bodies of INVITE, UPDATE and
// ACK.
const sessionAccept = "application/sdp, multipart/mixed"

// readSession reads the session body of an INVITE, UPDATE, ACK or of a
// response to one: application/sdp, or a multipart body with an
// application/sdp part (the first one) and maybe an application/isup
// part. Other parts are ignored unless marked handling=required. No
// body is no session and no error.
func readSession(m message) (session, error) {
	parts, err := bodyParts(contentTypeRaw(m), m.Body())
	if err != nil {
		return session{}, err
	}
	var s session
	for i := range parts {
		p := &parts[i]
		switch {
		case p.ctype == "application/sdp" && s.sdp == nil:
			s.sdp = p.body
			if len(parts) > 1 && !bytes.HasSuffix(s.sdp, []byte("\n")) {
				// The CRLF before a boundary belongs to the boundary
				// (RFC 2046 5.1.1), so an SDP part's last line often
				// comes without one; SDP wants it.
				s.sdp = append(s.sdp[:len(s.sdp):len(s.sdp)], '\r', '\n')
			}
		case p.ctype == "application/isup" && s.isup == nil:
			s.isup = p
		case len(parts) == 1 || p.required():
			return session{}, ErrUnsupportedBody
		}
	}
	if s.sdp == nil && s.isup == nil && len(parts) > 0 {
		return session{}, fmt.Errorf("%w: no application/sdp part", ErrUnsupportedBody)
	}
	return s, nil
}

// sessionBody is the body and Content-Type the gateway sends for an
// SDP and, when isup is not nil, the ISUP part beside it (multipart/mixed,
// as SIP-I and SIP-T have it).
func sessionBody(sdp []byte, isup *bodyPart) ([]byte, string) {
	if isup == nil {
		if sdp == nil {
			return nil, ""
		}
		return sdp, "application/sdp"
	}
	var b bytes.Buffer
	w := multipart.NewWriter(&b)
	if sdp != nil {
		h := textproto.MIMEHeader{}
		h.Set("Content-Type", "application/sdp")
		pw, _ := w.CreatePart(h)
		_, _ = pw.Write(sdp)
	}
	h := textproto.MIMEHeader{}
	h.Set("Content-Type", isup.raw)
	disp := isup.disp
	if disp == "" {
		disp = "signal;handling=optional"
	}
	h.Set("Content-Disposition", disp)
	pw, _ := w.CreatePart(h)
	_, _ = pw.Write(isup.body)
	_ = w.Close()
	return b.Bytes(), "multipart/mixed;boundary=" + w.Boundary()
}
