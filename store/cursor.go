package store

import (
	"encoding/base64"
	"fmt"
	"strconv"
	"strings"
)

// A cursor names the last row of a page: its kind (so that a cursor of
// one list is refused by another), its time and its id, which together
// order the rows. It is opaque to clients: base64url of
// "kind.nanoseconds.id".
const (
	cursorPayments = "p1"
	cursorOutbox   = "o1"
)

func encodeCursor(kind string, at int64, id string) string {
	return base64.RawURLEncoding.EncodeToString([]byte(kind + "." + strconv.FormatInt(at, 10) + "." + id))
}

func decodeCursor(kind, c string) (int64, string, error) {
	b, err := base64.RawURLEncoding.DecodeString(c)
	if err != nil || len(c) > 512 {
		return 0, "", ErrBadCursor
	}
	k, rest, ok1 := strings.Cut(string(b), ".")
	n, id, ok2 := strings.Cut(rest, ".")
	at, err := strconv.ParseInt(n, 10, 64)
	if !ok1 || !ok2 || k != kind || err != nil || at < 0 || id == "" {
		return 0, "", fmt.Errorf("%w", ErrBadCursor)
	}
	return at, id, nil
}
