package api

import (
	"context"
	"crypto/hmac"
	"crypto/rand"
	"crypto/sha256"
	"crypto/subtle"
	"encoding/base32"
	"encoding/base64"
	"encoding/binary"
	"errors"
	"fmt"
	"net/http"
	"strings"
	"time"

	"github.com/tonevault/tonevault/store"
)

// principal is who made a request: an API key, or a widget token minted
// by one and scoped to a call.
type principal struct {
	key     string // the API key's name
	callID  string // widget tokens only: the one call it may act on
	tokenID string // widget and agent tokens: the token's id (rate limits, revocation)
	// Agent tokens only (agenttokens.go): the agent, its pools, and when
	// the token expires.
	agent   string
	pools   []string
	expires time.Time
}

func (p principal) widget() bool { return p.callID != "" }

// actor is the audit trail's "who".
func (p principal) actor() string {
	if p.widget() {
		return "widget:" + p.key
	}
	if p.agent != "" {
		return "agent:" + p.key + ":" + p.agent
	}
	return p.key
}

// bucket is the rate limiter's key: each API key has its own bucket, and
// so has each widget token, so that one busy agent does not slow the
// others down and one leaked token cannot use up its key's requests.
func (p principal) bucket() string {
	if p.widget() || p.agent != "" {
		return "widget-token\x00" + p.tokenID
	}
	return "key\x00" + p.key
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

// binding is what a widget token carries of the key that minted it: a
// digest of the key's configured hash. A token whose key is no longer
// configured, or was replaced by another under the same name, no longer
// matches and is refused.
type binding [8]byte

func (k *keyring) binding(name string) (binding, bool) {
	for i, n := range k.names {
		if n == name {
			m := sha256.New()
			m.Write([]byte("tonevault widget token key binding\x00"))
			m.Write(k.hashes[i][:])
			var b binding
			copy(b[:], m.Sum(nil))
			return b, true
		}
	}
	return binding{}, false
}

// Widget tokens: "wt2." + base64url(payload) + "." + base64url(HMAC-SHA256
// of "wt2." + the encoded payload). Payload, fixed fields first:
//
//	15 bytes  id: 10 random bytes and a 5-byte tag (see idTag)
//	 8 bytes  issued at, Unix seconds, big endian
//	 8 bytes  expiry, Unix seconds, big endian
//	 8 bytes  the minting key's binding
//	 1 byte   length of the key's name, then the name
//	 the rest the call id
//
// No JSON, so there is nothing to be lenient about when parsing. Version
// 1 tokens (no id, no binding, no issue time) are refused.
const widgetPrefix = "wt2."

const (
	tokenRandLen = 10
	tokenTagLen  = 5
	tokenIDLen   = tokenRandLen + tokenTagLen
	tokenFixed   = tokenIDLen + 8 + 8 + len(binding{}) + 1
	// tokenSkew is how far in the future a token's issue time may be:
	// another node's clock may be a little ahead.
	tokenSkew = time.Minute
)

type tokenSigner struct {
	secret []byte
	ttl    time.Duration // at mint, and the longest lifetime accepted at verify
	now    func() time.Time
	keys   *keyring
	// st keeps the revoked token ids (their SHA-256), for every gateway
	// on the database and past a restart.
	st *store.Store
}

func newSecret() ([]byte, error) {
	b := make([]byte, 32)
	if _, err := rand.Read(b); err != nil {
		return nil, err
	}
	return b, nil
}

// idTag ties a token id to the key that minted it, so that DELETE
// /v1/widget-tokens/{id} can tell, without keeping a list of the tokens
// it minted, that the id is one the calling key minted (with this
// secret): no key can revoke another's tokens.
func (s *tokenSigner) idTag(b binding, rnd []byte) []byte {
	m := hmac.New(sha256.New, s.secret)
	m.Write([]byte("tonevault widget token id\x00"))
	m.Write(b[:])
	m.Write(rnd)
	return m.Sum(nil)[:tokenTagLen]
}

var tokenIDEncoding = base32.StdEncoding.WithPadding(base32.NoPadding)

// tokenIDString is how the API shows a token id: "wt_" and 24 lowercase
// base32 characters.
func tokenIDString(id []byte) string {
	return "wt_" + strings.ToLower(tokenIDEncoding.EncodeToString(id))
}

func parseTokenID(s string) ([]byte, bool) {
	rest, ok := strings.CutPrefix(s, "wt_")
	if !ok || len(rest) != 24 {
		return nil, false
	}
	b, err := tokenIDEncoding.DecodeString(strings.ToUpper(rest))
	if err != nil || len(b) != tokenIDLen {
		return nil, false
	}
	return b, true
}

// mint makes a token for key (a configured key's name) and callID. It
// returns the token, its id and its expiry.
func (s *tokenSigner) mint(key, callID string) (tok, id string, exp time.Time, err error) {
	if len(key) > 255 || callID == "" || len(callID) > 512 {
		return "", "", time.Time{}, errors.New("api: key name or call id too long for a token")
	}
	b, ok := s.keys.binding(key)
	if !ok {
		return "", "", time.Time{}, errors.New("api: no such key")
	}
	var rnd [tokenRandLen]byte
	if _, err := rand.Read(rnd[:]); err != nil {
		return "", "", time.Time{}, err
	}
	now := s.now().Truncate(time.Second)
	exp = now.Add(s.ttl).Truncate(time.Second)
	payload := make([]byte, 0, tokenFixed+len(key)+len(callID))
	payload = append(payload, rnd[:]...)
	payload = append(payload, s.idTag(b, rnd[:])...)
	payload = binary.BigEndian.AppendUint64(payload, uint64(now.Unix()))
	payload = binary.BigEndian.AppendUint64(payload, uint64(exp.Unix()))
	payload = append(payload, b[:]...)
	payload = append(payload, byte(len(key)))
	payload = append(payload, key...)
	payload = append(payload, callID...)
	body := widgetPrefix + base64.RawURLEncoding.EncodeToString(payload)
	return body + "." + base64.RawURLEncoding.EncodeToString(s.mac(body)), tokenIDString(payload[:tokenIDLen]), exp, nil
}

func (s *tokenSigner) mac(body string) []byte {
	m := hmac.New(sha256.New, s.secret)
	m.Write([]byte(body))
	return m.Sum(nil)
}

var (
	errTokenInvalid    = errors.New("invalid widget token")
	errTokenExpired    = fmt.Errorf("%w: expired", errTokenInvalid)
	errTokenRevoked    = fmt.Errorf("%w: revoked", errTokenInvalid)
	errTokenKeyRemoved = fmt.Errorf("%w: its API key is no longer configured", errTokenInvalid)
	// errTokenUnchecked: the store could not say whether the token is
	// revoked; the request is refused, but the token is not at fault.
	errTokenUnchecked = errors.New("widget token revocation not checked")
)

// verify returns the token's principal if open accepts it, it holds a
// call id and it was not revoked.
func (s *tokenSigner) verify(ctx context.Context, tok string) (principal, error) {
	id, _, key, rest, err := s.open(tok, widgetPrefix, s.ttl)
	if err != nil {
		return principal{}, err
	}
	if len(rest) == 0 {
		return principal{}, errTokenInvalid
	}
	p := principal{key: key, callID: string(rest), tokenID: tokenIDString(id)}
	if err := s.checkRevoked(ctx, p.tokenID); err != nil {
		return principal{}, err
	}
	return p, nil
}

// open checks what widget and agent tokens share: the prefix, the
// signature, a lifetime within ttl (a token minted under a longer TTL, by
// an older configuration, is refused) that has not run out, and the key
// that minted it, still configured with the same hash. It returns the
// token's id, expiry and key, and the payload's fields after the key.
func (s *tokenSigner) open(tok, prefix string, ttl time.Duration) (id []byte, exp time.Time, key string, rest []byte, err error) {
	fail := func(err error) ([]byte, time.Time, string, []byte, error) { return nil, time.Time{}, "", nil, err }
	if !strings.HasPrefix(tok, prefix) || len(tok) > 2048 {
		return fail(errTokenInvalid)
	}
	dot := strings.LastIndexByte(tok, '.')
	if dot <= len(prefix) {
		return fail(errTokenInvalid)
	}
	body, sig64 := tok[:dot], tok[dot+1:]
	sig, err := base64.RawURLEncoding.DecodeString(sig64)
	if err != nil || !hmac.Equal(sig, s.mac(body)) {
		return fail(errTokenInvalid)
	}
	payload, err := base64.RawURLEncoding.DecodeString(body[len(prefix):])
	if err != nil || len(payload) < tokenFixed {
		return fail(errTokenInvalid)
	}
	id = payload[:tokenIDLen]
	iat := time.Unix(int64(binary.BigEndian.Uint64(payload[tokenIDLen:])), 0)
	exp = time.Unix(int64(binary.BigEndian.Uint64(payload[tokenIDLen+8:])), 0)
	var b binding
	copy(b[:], payload[tokenIDLen+16:])
	n := int(payload[tokenFixed-1])
	if len(payload) < tokenFixed+n {
		return fail(errTokenInvalid)
	}
	key, rest = string(payload[tokenFixed:tokenFixed+n]), payload[tokenFixed+n:]
	now := s.now()
	if !now.Before(exp) || exp.Sub(iat) > ttl || iat.After(now.Add(tokenSkew)) {
		return fail(errTokenExpired)
	}
	if want, ok := s.keys.binding(key); !ok || subtle.ConstantTimeCompare(want[:], b[:]) != 1 {
		return fail(errTokenKeyRemoved)
	}
	return id, exp, key, rest, nil
}

// checkRevoked refuses a revoked token, and any token while the store
// cannot say.
func (s *tokenSigner) checkRevoked(ctx context.Context, tokenID string) error {
	revoked, err := s.st.TokenRevoked(ctx, tokenID)
	if err != nil {
		return fmt.Errorf("%w: %w", errTokenUnchecked, err)
	}
	if revoked {
		return errTokenRevoked
	}
	return nil
}

// revoke refuses the token with id from now on, if key minted it: false
// when the id is not one of key's tokens. The store keeps the id's
// SHA-256 until no token with it can still be accepted.
func (s *tokenSigner) revoke(ctx context.Context, key, id string) (bool, error) {
	raw, ok := parseTokenID(id)
	if !ok {
		return false, nil
	}
	b, ok := s.keys.binding(key)
	if !ok || !hmac.Equal(raw[tokenRandLen:], s.idTag(b, raw[:tokenRandLen])) {
		return false, nil
	}
	// No token with this id outlives the longest lifetime verify accepts,
	// counted from now: after that, the entry has nothing left to refuse.
	if err := s.st.RevokeToken(ctx, id, s.now().Add(s.ttl+tokenSkew)); err != nil {
		return false, err
	}
	return true, nil
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
