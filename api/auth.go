package api

import (
	"context"
	"crypto/hmac"
	"crypto/rand"
	"crypto/sha256"
	"crypto/subtle"
	"encoding/base64"
	"encoding/binary"
	"errors"
	"fmt"
	"net/http"
	"strings"
	"time"
)

// principal is who made a request: an API key, or a widget token minted
// by one and scoped to a call.
type principal struct {
	key    string // the API key's name
	callID string // widget tokens only: the one call it may act on
}

func (p principal) widget() bool { return p.callID != "" }

// actor is the audit trail's "who".
func (p principal) actor() string {
	if p.widget() {
		return "widget:" + p.key
	}
	return p.key
}

type ctxKey struct{}

func principalFrom(ctx context.Context) (principal, bool) {
	p, ok := ctx.Value(ctxKey{}).(principal)
	return p, ok
}

// keyring checks API keys against their configured hashes.
type keyring struct {
	names  []string
	hashes [][sha256.Size]byte
}

func newKeyring(keys []Key) (*keyring, error) {
	k := &keyring{}
	for _, key := range keys {
		h, err := parseHash(key.Hash)
		if err != nil {
			return nil, err
		}
		k.names = append(k.names, key.Name)
		k.hashes = append(k.hashes, h)
	}
	return k, nil
}

// lookup returns the name of the key whose hash matches. Every configured
// hash is compared, in constant time, so the time taken says nothing
// about which key came close.
func (k *keyring) lookup(presented string) (string, bool) {
	sum := sha256.Sum256([]byte(presented))
	found := -1
	for i := range k.hashes {
		if subtle.ConstantTimeCompare(sum[:], k.hashes[i][:]) == 1 {
			found = i
		}
	}
	if found < 0 {
		return "", false
	}
	return k.names[found], true
}

// Widget tokens: "wt1." + base64url(payload) + "." + base64url(HMAC-SHA256
// of "wt1." + the encoded payload). Payload: 8 bytes expiry (Unix
// seconds, big endian), 1 byte key name length, key name, call id. No
// JSON, so there is nothing to be lenient about when parsing.
const widgetPrefix = "wt1."

type tokenSigner struct {
	secret []byte
	ttl    time.Duration
	now    func() time.Time
}

func newSecret() ([]byte, error) {
	b := make([]byte, 32)
	if _, err := rand.Read(b); err != nil {
		return nil, err
	}
	return b, nil
}

func (s *tokenSigner) mint(key, callID string) (string, time.Time, error) {
	if len(key) > 255 || callID == "" || len(callID) > 512 {
		return "", time.Time{}, errors.New("api: key name or call id too long for a token")
	}
	exp := s.now().Add(s.ttl).Truncate(time.Second)
	payload := make([]byte, 9, 9+len(key)+len(callID))
	binary.BigEndian.PutUint64(payload, uint64(exp.Unix()))
	payload[8] = byte(len(key))
	payload = append(payload, key...)
	payload = append(payload, callID...)
	body := widgetPrefix + base64.RawURLEncoding.EncodeToString(payload)
	return body + "." + base64.RawURLEncoding.EncodeToString(s.mac(body)), exp, nil
}

func (s *tokenSigner) mac(body string) []byte {
	m := hmac.New(sha256.New, s.secret)
	m.Write([]byte(body))
	return m.Sum(nil)
}

var (
	errTokenInvalid = errors.New("invalid widget token")
	errTokenExpired = fmt.Errorf("%w: expired", errTokenInvalid)
)

// verify returns the token's principal if its signature is good and it
// has not expired.
func (s *tokenSigner) verify(tok string) (principal, error) {
	if !strings.HasPrefix(tok, widgetPrefix) || len(tok) > 2048 {
		return principal{}, errTokenInvalid
	}
	dot := strings.LastIndexByte(tok, '.')
	if dot <= len(widgetPrefix) {
		return principal{}, errTokenInvalid
	}
	body, sig64 := tok[:dot], tok[dot+1:]
	sig, err := base64.RawURLEncoding.DecodeString(sig64)
	if err != nil || !hmac.Equal(sig, s.mac(body)) {
		return principal{}, errTokenInvalid
	}
	payload, err := base64.RawURLEncoding.DecodeString(body[len(widgetPrefix):])
	if err != nil || len(payload) < 9 {
		return principal{}, errTokenInvalid
	}
	exp := time.Unix(int64(binary.BigEndian.Uint64(payload)), 0)
	n := int(payload[8])
	if len(payload) < 9+n+1 {
		return principal{}, errTokenInvalid
	}
	if !s.now().Before(exp) {
		return principal{}, errTokenExpired
	}
	return principal{key: string(payload[9 : 9+n]), callID: string(payload[9+n:])}, nil
}

// bearer returns the credential of an "Authorization: Bearer" header.
func bearer(r *http.Request) (string, bool) {
	h := r.Header.Get("Authorization")
	scheme, cred, ok := strings.Cut(h, " ")
	if !ok || !strings.EqualFold(scheme, "Bearer") {
		return "", false
	}
	cred = strings.TrimSpace(cred)
	return cred, cred != ""
}
