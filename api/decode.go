package api

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"mime"
	"net/http"
	"regexp"
	"strings"
)

// decodeError is a request body that cannot be used; status and slug say
// how to answer. Its message never quotes the body: the body is the
// client's and could hold anything, card data included.
type decodeError struct {
	status int
	slug   string
	msg    string
}

func (e *decodeError) Error() string { return e.msg }

// decodeBody reads exactly one JSON object from r's body into dst: no
// unknown fields, nothing after it, at most limit bytes, Content-Type
// application/json. allowEmpty accepts a missing body (actions without
// parameters), leaving dst as it is.
func decodeBody(w http.ResponseWriter, r *http.Request, limit int64, dst any, allowEmpty bool) error {
	body := http.MaxBytesReader(w, r.Body, limit)
	defer body.Close()
	raw, err := io.ReadAll(body)
	if err != nil {
		return jsonError(err)
	}
	if len(raw) == 0 {
		if allowEmpty {
			return nil
		}
		return &decodeError{http.StatusBadRequest, "bad-request", "the body is empty; this request needs a JSON object"}
	}
	mt, params, err := mime.ParseMediaType(r.Header.Get("Content-Type"))
	if err != nil || mt != "application/json" {
		return &decodeError{http.StatusUnsupportedMediaType, "unsupported-media-type", "Content-Type must be application/json"}
	}
	if cs, ok := params["charset"]; ok && !strings.EqualFold(cs, "utf-8") {
		return &decodeError{http.StatusUnsupportedMediaType, "unsupported-media-type", "the only charset accepted is utf-8"}
	}
	return decodeJSON(bytes.NewReader(raw), dst)
}

// decodeJSON is the strict part of decodeBody, separate so it can be
// fuzzed without HTTP.
func decodeJSON(rd io.Reader, dst any) error {
	dec := json.NewDecoder(rd)
	dec.DisallowUnknownFields()
	if err := dec.Decode(dst); err != nil {
		return jsonError(err)
	}
	var extra json.RawMessage
	if err := dec.Decode(&extra); !errors.Is(err, io.EOF) {
		var mbe *http.MaxBytesError
		if errors.As(err, &mbe) {
			return jsonError(err)
		}
		return &decodeError{http.StatusBadRequest, "bad-request", "the body must hold exactly one JSON value"}
	}
	return nil
}

func jsonError(err error) error {
	var (
		mbe *http.MaxBytesError
		se  *json.SyntaxError
		ute *json.UnmarshalTypeError
	)
	switch {
	case errors.As(err, &mbe):
		return &decodeError{http.StatusRequestEntityTooLarge, "payload-too-large", fmt.Sprintf("the body must be at most %d bytes", mbe.Limit)}
	case errors.Is(err, io.EOF):
		return &decodeError{http.StatusBadRequest, "bad-request", "the body is empty"}
	case errors.Is(err, io.ErrUnexpectedEOF):
		return &decodeError{http.StatusBadRequest, "bad-request", "the body is cut short"}
	case errors.As(err, &se):
		return &decodeError{http.StatusBadRequest, "bad-request", fmt.Sprintf("malformed JSON at byte %d", se.Offset)}
	case errors.As(err, &ute):
		return &decodeError{http.StatusBadRequest, "bad-request", fmt.Sprintf("field %q must be %s", ute.Field, ute.Type)}
	case strings.HasPrefix(err.Error(), "json: unknown field "):
		// Name the field only when it looks like a field name: the key is
		// the client's text and must not carry anything (a card number
		// sent as a key, say) back out.
		name := strings.Trim(strings.TrimPrefix(err.Error(), "json: unknown field "), `"`)
		if !fieldNameRE.MatchString(name) {
			return &decodeError{http.StatusBadRequest, "bad-request", "unknown field"}
		}
		return &decodeError{http.StatusBadRequest, "bad-request", fmt.Sprintf("unknown field %q", name)}
	default:
		return &decodeError{http.StatusBadRequest, "bad-request", "the body is not valid JSON for this request"}
	}
}

var fieldNameRE = regexp.MustCompile(`^[A-Za-z_]{1,40}$`)
