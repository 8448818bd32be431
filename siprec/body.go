package siprec

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

// ErrBadBody is a SIPREC message body ReadBody refuses; ErrNotSIPREC a
// body with no recording metadata where one was required.
var (
	ErrBadBody   = errors.New("siprec: malformed message body")
	ErrNotSIPREC = errors.New("siprec: no recording metadata (application/rs-metadata+xml) in the body")
)

const (
	maxBody  = 64 << 10
	maxParts = 4
)

// Body is an INVITE's body for a recording session (RFC 7866 section
// 9.1): multipart/mixed, the SDP then the metadata with
// Content-Disposition recording-session. It returns the body and its
// Content-Type.
func Body(sdp, metadata []byte) ([]byte, string) {
	var b bytes.Buffer
	w := multipart.NewWriter(&b)
	h := textproto.MIMEHeader{}
	h.Set("Content-Type", "application/sdp")
	pw, _ := w.CreatePart(h)
	_, _ = pw.Write(sdp)
	h = textproto.MIMEHeader{}
	h.Set("Content-Type", ContentType)
	h.Set("Content-Disposition", Disposition)
	pw, _ = w.CreatePart(h)
	_, _ = pw.Write(metadata)
	_ = w.Close()
	return b.Bytes(), "multipart/mixed;boundary=" + w.Boundary()
}

// ReadBody splits a message body of Content-Type ct into its SDP and
// its recording metadata: multipart/mixed with both (an INVITE from an
// SRC), or application/sdp alone (an SRS's answer; metadata nil). Other
// parts are skipped. Errors never quote the body.
func ReadBody(ct string, body []byte) (sdp, metadata []byte, err error) {
	if len(body) > maxBody {
		return nil, nil, fmt.Errorf("%w: %d bytes", ErrBadBody, len(body))
	}
	t, params, err := mime.ParseMediaType(ct)
	if err != nil {
		return nil, nil, fmt.Errorf("%w: unreadable Content-Type", ErrBadBody)
	}
	switch {
	case t == "application/sdp":
		return body, nil, nil
	case t != "multipart/mixed":
		return nil, nil, fmt.Errorf("%w: Content-Type %s is neither application/sdp nor multipart/mixed", ErrBadBody, safeType(t))
	}
	boundary := params["boundary"]
	if boundary == "" {
		return nil, nil, fmt.Errorf("%w: multipart without boundary", ErrBadBody)
	}
	r := multipart.NewReader(bytes.NewReader(body), boundary)
	for n := 0; ; n++ {
		p, err := r.NextRawPart()
		if errors.Is(err, io.EOF) {
			break
		}
		if err != nil || n >= maxParts {
			return nil, nil, fmt.Errorf("%w: unreadable multipart body", ErrBadBody)
		}
		b, err := io.ReadAll(io.LimitReader(p, maxBody))
		if err != nil {
			return nil, nil, fmt.Errorf("%w: unreadable multipart part", ErrBadBody)
		}
		pt, _, err := mime.ParseMediaType(p.Header.Get("Content-Type"))
		if err != nil {
			continue
		}
		switch {
		case pt == "application/sdp" && sdp == nil:
			sdp = b
			if !bytes.HasSuffix(sdp, []byte("\n")) {
				// The CRLF before a boundary belongs to the boundary
				// (RFC 2046 5.1.1); SDP wants its last line ended.
				sdp = append(sdp, '\r', '\n')
			}
		case pt == ContentType && metadata == nil:
			metadata = b
		}
	}
	if sdp == nil {
		return nil, nil, fmt.Errorf("%w: no application/sdp part", ErrBadBody)
	}
	if metadata == nil {
		return sdp, nil, ErrNotSIPREC
	}
	return sdp, metadata, nil
}

// safeType is a media type for an error: letters and a few marks only
// (no digits: a peer chose it), or a placeholder.
func safeType(t string) string {
	if len(t) > 64 || strings.IndexFunc(t, func(r rune) bool {
		return !(r >= 'a' && r <= 'z' || strings.ContainsRune("/+.-", r))
	}) >= 0 {
		return "(unprintable)"
	}
	return t
}
