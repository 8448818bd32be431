package tokenize

import (
	"context"
	"crypto/subtle"
	"encoding/json"
	"errors"
	"fmt"
	"strings"
	"time"

	"github.com/tonevault/tonevault/internal/secret"
)

// Token is what the gateway hands out for a card: safe to store, log and
// show (it holds at most the card's first 6 and last 4 digits).
type Token struct {
	Value   string
	Brand   string
	Last4   string
	Created time.Time
}

// maxCreateTries bounds the token candidates tried for one card (each
// taken by another card costs a read), and the updates of one record that
// keeps changing under us. A same-length digits token has at least nine
// times as many values as there are cards with its kept digits, so eight
// taken candidates in a row are a one in 10^7 event or worse.
const maxCreateTries = 8

// record is a token's KV entry. expMAC tells whether a new expiry is the
// stored one without decrypting it (see macs); records written before it
// existed have none, and get one with their next expiry.
type record struct {
	pan, exp, expMAC, brand, last4, format, lookup string
	created                                        time.Time
	version                                        int // KV version, for check-and-set
}

func (r record) data() map[string]any {
	return map[string]any{
		"pan": r.pan, "exp": r.exp, "exp_mac": r.expMAC, "brand": r.brand, "last4": r.last4,
		"format": r.format, "lookup": r.lookup, "created": r.created.UTC().Format(time.RFC3339Nano),
	}
}

func (r record) token(value string) Token {
	return Token{Value: value, Brand: r.brand, Last4: r.last4, Created: r.created}
}

// of reports whether r is the record of the card with lookup key lookup in
// format f, rather than another card's whose candidate is the same token.
func (r record) of(lookup string, f Format) bool {
	return r.lookup == lookup && r.format == f.id()
}

// Tokenize stores a card and returns its token. The same card (for the
// same token format) always gets the same token; a different expiry or
// brand replaces the stored one. pan is 12 to 19 digits passing the Luhn
// check, expiry 4 or 6 digits (MMYY, MMYYYY); the caller keeps ownership of
// both and wipes them. merchant chooses the token format
// (Config.MerchantFormats).
//
// The token's record lives at a path made from the card's lookup key
// (Format.candidate), so a known card costs Vault two calls (the HMACs and
// the record) and a new one four (and the index read while the store may
// hold tokens made before; see Vault.indexMayExist): the HMACs, the read
// that finds nothing, the encryption and one write.
func (v *Vault) Tokenize(ctx context.Context, pan, expiry secret.Secret, brand, merchant string) (Token, error) {
	if err := checkCard(pan, expiry, brand); err != nil {
		return Token{}, err
	}
	f := v.cfg.formatFor(merchant)
	lookup, expMAC, err := v.macs(ctx, pan, expiry)
	if err != nil {
		return Token{}, err
	}
	indexChecked := false
	var ct []string // the card's ciphertexts, once made
	for n := 0; n < maxCreateTries; n++ {
		tok, err := f.candidate(pan.Bytes(), lookup, n)
		if err != nil {
			return Token{}, err
		}
		rec, err := v.readRecord(ctx, tok)
		switch {
		case err == nil && rec.of(lookup, f):
			return v.update(ctx, tok, rec, expiry, expMAC, brand)
		case err == nil:
			continue // another card's token
		case !errors.Is(err, ErrNotFound):
			return Token{}, err
		}
		if !indexChecked {
			indexChecked = true
			t, rec, err := v.indexed(ctx, f, lookup)
			if err == nil {
				return v.update(ctx, t, rec, expiry, expMAC, brand)
			}
			if !errors.Is(err, ErrNotFound) {
				return Token{}, err
			}
		}
		if ct == nil {
			if ct, err = v.encrypt(ctx, pan.Bytes(), expiry.Bytes()); err != nil {
				return Token{}, err
			}
		}
		rec = record{pan: ct[0], exp: ct[1], expMAC: expMAC, brand: brand, last4: string(pan.Bytes()[pan.Len()-4:]),
			format: f.id(), lookup: lookup, created: v.now().UTC()}
		// cas 0: write only if the path holds nothing. It fails when a
		// concurrent tokenization of this card wrote first (or our own
		// try whose answer was lost did), or another card took this
		// token since the read.
		_, err = v.write(ctx, "kv write token", v.kvPath("data", "tokens", tok), casData(rec.data(), 0))
		if err == nil {
			return rec.token(tok), nil
		}
		if !isCASMismatch(err) {
			return Token{}, err
		}
		rec, err = v.readRecord(ctx, tok)
		switch {
		case err == nil && rec.of(lookup, f):
			return v.update(ctx, tok, rec, expiry, expMAC, brand)
		case err != nil && !errors.Is(err, ErrNotFound):
			return Token{}, err
		}
		// Another card's, or a record an operator deleted (its path keeps
		// its versions, so cas 0 fails): the next candidate.
	}
	return Token{}, &vaultError{kind: ErrVault, op: "create token", msg: "every token candidate is taken"}
}

// indexMayExist reports whether this store may hold lookup index entries:
// <kv mount>/data/<prefix>/index/<format>/<hex hmac> → token, written for
// tokens made before their paths came from the card's lookup key. Those
// tokens keep working, so a card not found at its own path is looked up
// there too, unless the store's layout marker (<prefix>/layout, written
// by Setup on a store with no index) says there is none. The answer is
// read once.
func (v *Vault) indexMayExist(ctx context.Context) (bool, error) {
	switch v.layout.Load() {
	case layoutNoIndex:
		return false, nil
	case layoutIndex:
		return true, nil
	}
	const op = "kv read layout"
	s, err := v.read(ctx, op, v.kvPath("data", layoutKey))
	if err != nil && !errors.Is(err, ErrNotFound) {
		return true, err
	}
	state := int32(layoutIndex)
	if err == nil {
		data, _ := s.Data["data"].(map[string]any)
		if idx, _ := data["index"].(string); idx == layoutIndexNone {
			state = layoutNoIndex
		}
	}
	v.layout.Store(state)
	return state == layoutIndex, nil
}

// Layout marker states (Vault.layout) and the marker's value.
const (
	layoutUnknown = iota
	layoutIndex
	layoutNoIndex

	layoutIndexNone = "none"
)

// indexed finds a card's token in the lookup index (see indexMayExist),
// with its record; ErrNotFound if it has none there, or its record is gone.
func (v *Vault) indexed(ctx context.Context, f Format, lookup string) (string, record, error) {
	may, err := v.indexMayExist(ctx)
	if err != nil {
		return "", record{}, err
	}
	if !may {
		return "", record{}, &vaultError{kind: ErrNotFound, op: "kv read index", msg: "this store has no index"}
	}
	idx, err := v.read(ctx, "kv read index", v.kvPath("data", "index", f.id(), lookup))
	if err != nil {
		return "", record{}, err
	}
	tok := indexToken(idx.Data)
	if !validToken(tok) {
		return "", record{}, &vaultError{kind: ErrVault, op: "kv read index", msg: "malformed token in index"}
	}
	rec, err := v.readRecord(ctx, tok)
	return tok, rec, err
}

// update returns the token tok, whose record rec was just read, first
// replacing its expiry and brand when they differ from the given ones. The
// expiries are compared by their MACs: the gateway cannot decrypt what it
// stored.
func (v *Vault) update(ctx context.Context, tok string, rec record, expiry secret.Secret, expMAC, brand string) (Token, error) {
	var expCT string // the new expiry's ciphertext, once made
	for try := 0; ; try++ {
		same := subtle.ConstantTimeCompare([]byte(rec.expMAC), []byte(expMAC)) == 1
		if same && rec.brand == brand {
			return rec.token(tok), nil
		}
		if try == maxCreateTries {
			return Token{}, &vaultError{kind: ErrVault, op: "update token", msg: "token kept changing"}
		}
		if !same {
			if expCT == "" {
				ct, err := v.encrypt(ctx, expiry.Bytes())
				if err != nil {
					return Token{}, err
				}
				expCT = ct[0]
			}
			rec.exp, rec.expMAC = expCT, expMAC
		}
		rec.brand = brand
		_, err := v.write(ctx, "kv write token", v.kvPath("data", "tokens", tok), casData(rec.data(), rec.version))
		if err == nil {
			return rec.token(tok), nil
		}
		if !isCASMismatch(err) {
			return Token{}, err
		}
		// A concurrent update won: read it and compare again.
		if rec, err = v.readRecord(ctx, tok); err != nil {
			return Token{}, err
		}
	}
}

// Rewrap re-encrypts a token's stored card data with the latest version of
// the card key, inside Vault (the gateway never sees the plaintext). Run it
// over all tokens after a key rotation, before raising the key's
// min_decryption_version.
func (v *Vault) Rewrap(ctx context.Context, token string) error {
	if !validToken(token) {
		return fmt.Errorf("%w: malformed token", ErrInvalidInput)
	}
	for try := 0; try < maxCreateTries; try++ {
		rec, err := v.readRecord(ctx, token)
		if err != nil {
			return err
		}
		ct, err := v.rewrap(ctx, rec.pan, rec.exp)
		if err != nil {
			return err
		}
		rec.pan, rec.exp = ct[0], ct[1]
		_, err = v.write(ctx, "kv write token", v.kvPath("data", "tokens", token), casData(rec.data(), rec.version))
		if !isCASMismatch(err) {
			return err
		}
	}
	return &vaultError{kind: ErrVault, op: "rewrap", msg: "token kept changing"}
}

func (v *Vault) readRecord(ctx context.Context, tok string) (record, error) {
	const op = "kv read token"
	s, err := v.read(ctx, op, v.kvPath("data", "tokens", tok))
	if err != nil {
		return record{}, err
	}
	data, _ := s.Data["data"].(map[string]any)
	if data == nil { // latest version deleted
		return record{}, &vaultError{kind: ErrNotFound, op: op}
	}
	str := func(k string) string { s, _ := data[k].(string); return s }
	r := record{pan: str("pan"), exp: str("exp"), expMAC: str("exp_mac"), brand: str("brand"), last4: str("last4"),
		format: str("format"), lookup: str("lookup"), version: kvVersion(s.Data)}
	r.created, _ = time.Parse(time.RFC3339Nano, str("created"))
	if r.pan == "" || r.exp == "" {
		return record{}, &vaultError{kind: ErrVault, op: op, msg: "token record incomplete"}
	}
	return r, nil
}

// kvPath is mount/kind/prefix/parts... for KV v2 (kind data or metadata).
func (v *Vault) kvPath(kind string, parts ...string) string {
	return v.cfg.KV.Mount + "/" + kind + "/" + v.cfg.KV.Prefix + "/" + strings.Join(parts, "/")
}

func casData(data map[string]any, cas int) map[string]any {
	return map[string]any{"options": map[string]any{"cas": cas}, "data": data}
}

func isCASMismatch(err error) bool {
	var ve *vaultError
	return errors.As(err, &ve) && ve.status == 400 && strings.Contains(ve.msg, "check-and-set")
}

// indexToken reads an index entry's token.
func indexToken(d map[string]any) string {
	data, _ := d["data"].(map[string]any)
	tok, _ := data["token"].(string)
	return tok
}

func kvVersion(d map[string]any) int {
	md, _ := d["metadata"].(map[string]any)
	n, _ := md["version"].(json.Number)
	i, _ := n.Int64()
	return int(i)
}

// checkCard validates input without ever putting it in an error.
func checkCard(pan, expiry secret.Secret, brand string) error {
	p, e := pan.Bytes(), expiry.Bytes()
	if len(p) < 12 || len(p) > 19 || !allDigits(p) {
		return fmt.Errorf("%w: card number: want 12 to 19 digits", ErrInvalidInput)
	}
	if !luhnValid(p) {
		return fmt.Errorf("%w: card number fails the Luhn check", ErrInvalidInput)
	}
	if (len(e) != 4 && len(e) != 6) || !allDigits(e) {
		return fmt.Errorf("%w: expiry: want MMYY or MMYYYY digits", ErrInvalidInput)
	}
	if len(brand) > 32 || (brand != "" && !validName(brand)) {
		return fmt.Errorf("%w: brand: want up to 32 letters, digits, '-', '_'", ErrInvalidInput)
	}
	return nil
}
