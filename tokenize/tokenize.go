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

// maxCreateTries bounds token generation when generated tokens collide
// with existing ones.
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

// Tokenize stores a card and returns its token. The same card (for the
// same token format) always gets the same token; a different expiry or
// brand replaces the stored one. pan is 12 to 19 digits passing the Luhn
// check, expiry 4 or 6 digits (MMYY, MMYYYY); the caller keeps ownership of
// both and wipes them. merchant chooses the token format
// (Config.MerchantFormats).
func (v *Vault) Tokenize(ctx context.Context, pan, expiry secret.Secret, brand, merchant string) (Token, error) {
	if err := checkCard(pan, expiry, brand); err != nil {
		return Token{}, err
	}
	f := v.cfg.formatFor(merchant)
	lookup, expMAC, err := v.macs(ctx, pan, expiry)
	if err != nil {
		return Token{}, err
	}
	idxPath := v.kvPath("data", "index", f.id(), lookup)
	idxVersion := 0
	idx, err := v.read(ctx, "kv read index", idxPath)
	switch {
	case err == nil:
		var tok string
		tok, idxVersion = indexToken(idx.Data)
		t, err := v.refresh(ctx, tok, expiry, expMAC, brand)
		if !errors.Is(err, ErrNotFound) {
			return t, err
		}
		// The index points at a token that is gone: make a new one.
	case !errors.Is(err, ErrNotFound):
		return Token{}, err
	}
	return v.create(ctx, pan, expiry, expMAC, brand, f, lookup, idxPath, idxVersion)
}

// create stores a new token for a card that has none.
func (v *Vault) create(ctx context.Context, pan, expiry secret.Secret, expMAC, brand string, f Format, lookup, idxPath string, idxVersion int) (Token, error) {
	ct, err := v.encrypt(ctx, pan.Bytes(), expiry.Bytes())
	if err != nil {
		return Token{}, err
	}
	rec := record{pan: ct[0], exp: ct[1], expMAC: expMAC, brand: brand, last4: string(pan.Bytes()[pan.Len()-4:]),
		format: f.id(), lookup: lookup, created: v.now().UTC()}
	var tok string
	for try := 0; ; try++ {
		if try == maxCreateTries {
			return Token{}, &vaultError{kind: ErrVault, op: "create token", msg: "every generated token collided"}
		}
		if tok, err = f.generate(pan.Bytes()); err != nil {
			return Token{}, err
		}
		// cas 0: write only if no such token exists. A collision (or our
		// own write whose answer was lost) fails it; try another token.
		_, err = v.write(ctx, "kv write token", v.kvPath("data", "tokens", tok), casData(rec.data(), 0))
		if err == nil {
			break
		}
		if !isCASMismatch(err) {
			return Token{}, err
		}
	}
	_, err = v.write(ctx, "kv write index", idxPath, casData(map[string]any{"token": tok}, idxVersion))
	if err == nil {
		return rec.token(tok), nil
	}
	if !isCASMismatch(err) {
		v.forget(ctx, tok)
		return Token{}, err
	}
	// Someone indexed this card first (a concurrent Tokenize), or our own
	// earlier try did: use the indexed token.
	idx, err := v.read(ctx, "kv read index", idxPath)
	if err != nil {
		v.forget(ctx, tok)
		return Token{}, err
	}
	winner, _ := indexToken(idx.Data)
	if winner == tok {
		return rec.token(tok), nil
	}
	v.forget(ctx, tok)
	return v.refresh(ctx, winner, expiry, expMAC, brand)
}

// forget deletes a token record that lost a race, best effort: an orphan
// record is harmless (nothing points to it) but keeps a ciphertext.
func (v *Vault) forget(ctx context.Context, tok string) {
	_, _ = v.client.Logical().DeleteWithContext(ctx, v.kvPath("metadata", "tokens", tok))
}

// refresh returns the stored token tok, first replacing its expiry and
// brand when they differ from the given ones. The expiries are compared by
// their MACs: the gateway cannot decrypt what it stored.
func (v *Vault) refresh(ctx context.Context, tok string, expiry secret.Secret, expMAC, brand string) (Token, error) {
	for try := 0; try < maxCreateTries; try++ {
		rec, err := v.readRecord(ctx, tok)
		if err != nil {
			return Token{}, err
		}
		same := subtle.ConstantTimeCompare([]byte(rec.expMAC), []byte(expMAC)) == 1
		if same && rec.brand == brand {
			return rec.token(tok), nil
		}
		if !same {
			ct, err := v.encrypt(ctx, expiry.Bytes())
			if err != nil {
				return Token{}, err
			}
			rec.exp, rec.expMAC = ct[0], expMAC
		}
		rec.brand = brand
		_, err = v.write(ctx, "kv write token", v.kvPath("data", "tokens", tok), casData(rec.data(), rec.version))
		if err == nil {
			return rec.token(tok), nil
		}
		if !isCASMismatch(err) {
			return Token{}, err
		}
		// A concurrent update won: read it and compare again.
	}
	return Token{}, &vaultError{kind: ErrVault, op: "update token", msg: "token kept changing"}
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

// indexToken reads an index entry's token and KV version.
func indexToken(d map[string]any) (string, int) {
	data, _ := d["data"].(map[string]any)
	tok, _ := data["token"].(string)
	return tok, kvVersion(d)
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
