package tokenize

import (
	"context"
	"encoding/base64"
	"encoding/hex"
	"fmt"
	"strings"

	"github.com/hashicorp/vault/api"
	"github.com/tonevault/tonevault/internal/secret"
)

// How card data travels to and from Vault, and what stays behind.
//
// To Vault: the card bytes go into the request map as a []byte, which
// encoding/json writes as base64, which is exactly what transit wants for
// plaintext and input. No Go string of the card data is made. The JSON
// body buffer the vault client builds holds the base64 text until the
// garbage collector reuses it: it cannot be wiped from here.
//
// From Vault: decrypt and unwrap answers are parsed by the vault client
// into a map, so the base64 plaintext arrives as a Go string (and the raw
// response body in a buffer) that lives in memory until collected. That is
// unavoidable with github.com/hashicorp/vault/api. decodeSecret copies it
// into a Secret the caller wipes; the intermediate byte copy is wiped here.

// write is a Vault write with the retry policy.
func (v *Vault) write(ctx context.Context, op, path string, data map[string]any) (*api.Secret, error) {
	if v.closed.Load() {
		return nil, ErrClosed
	}
	var out *api.Secret
	err := v.retry.do(ctx, op, func(ctx context.Context) error {
		var err error
		out, err = v.client.Logical().WriteWithContext(ctx, path, data)
		return err
	})
	return out, err
}

// read is a Vault read with the retry policy; a missing path is
// ErrNotFound.
func (v *Vault) read(ctx context.Context, op, path string) (*api.Secret, error) {
	if v.closed.Load() {
		return nil, ErrClosed
	}
	var out *api.Secret
	err := v.retry.do(ctx, op, func(ctx context.Context) error {
		var err error
		out, err = v.client.Logical().ReadWithContext(ctx, path)
		if err == nil && out == nil {
			return &vaultError{kind: ErrNotFound, op: op}
		}
		return err
	})
	return out, err
}

func (v *Vault) transitPath(op, key string) string {
	return v.cfg.Transit.Mount + "/" + op + "/" + key
}

// batch sends one transit batch request and returns field of each result.
func (v *Vault) batch(ctx context.Context, op, path string, items []map[string]any, field string) ([]string, error) {
	s, err := v.write(ctx, op, path, map[string]any{"batch_input": items})
	if err != nil {
		return nil, err
	}
	results, _ := s.Data["batch_results"].([]any)
	if len(results) != len(items) {
		return nil, &vaultError{kind: ErrVault, op: op, msg: fmt.Sprintf("%d batch results for %d items", len(results), len(items))}
	}
	out := make([]string, len(items))
	for i, r := range results {
		m, _ := r.(map[string]any)
		if e, _ := m["error"].(string); e != "" {
			return nil, &vaultError{kind: ErrVault, op: op, msg: scrub(e)}
		}
		out[i], _ = m[field].(string)
		if out[i] == "" {
			return nil, &vaultError{kind: ErrVault, op: op, msg: "no " + field + " in batch result"}
		}
	}
	return out, nil
}

// encrypt encrypts each plaintext with the card key and returns the
// ciphertexts ("vault:vN:...").
func (v *Vault) encrypt(ctx context.Context, plain ...[]byte) ([]string, error) {
	items := make([]map[string]any, len(plain))
	for i, p := range plain {
		items[i] = map[string]any{"plaintext": p} // []byte: JSON base64
	}
	return v.batch(ctx, "transit encrypt", v.transitPath("encrypt", v.cfg.Transit.CardKey), items, "ciphertext")
}

// decrypt decrypts ciphertexts made by encrypt. The caller wipes the
// Secrets.
func (v *Vault) decrypt(ctx context.Context, cipher ...string) ([]secret.Secret, error) {
	items := make([]map[string]any, len(cipher))
	for i, c := range cipher {
		items[i] = map[string]any{"ciphertext": c}
	}
	plain, err := v.batch(ctx, "transit decrypt", v.transitPath("decrypt", v.cfg.Transit.CardKey), items, "plaintext")
	if err != nil {
		return nil, err
	}
	out := make([]secret.Secret, len(plain))
	for i, p := range plain {
		if out[i], err = decodeSecret(p); err != nil {
			for _, s := range out {
				s.Wipe()
			}
			return nil, &vaultError{kind: ErrVault, op: "transit decrypt", msg: "plaintext is not base64"}
		}
	}
	return out, nil
}

// rewrap re-encrypts ciphertexts with the latest card key version without
// the plaintext leaving Vault.
func (v *Vault) rewrap(ctx context.Context, cipher ...string) ([]string, error) {
	items := make([]map[string]any, len(cipher))
	for i, c := range cipher {
		items[i] = map[string]any{"ciphertext": c}
	}
	return v.batch(ctx, "transit rewrap", v.transitPath("rewrap", v.cfg.Transit.CardKey), items, "ciphertext")
}

// lookupKey is the hex HMAC-SHA256 of pan under the lookup key, at the
// pinned key version: the same card always gives the same key.
func (v *Vault) lookupKey(ctx context.Context, pan []byte) (string, error) {
	const op = "transit hmac"
	s, err := v.write(ctx, op, v.transitPath("hmac", v.cfg.Transit.HMACKey)+"/sha2-256", map[string]any{
		"input":       pan, // []byte: JSON base64
		"key_version": v.cfg.Transit.HMACKeyVersion,
	})
	if err != nil {
		return "", err
	}
	h, _ := s.Data["hmac"].(string)
	// "vault:v1:<base64>"
	i := strings.LastIndexByte(h, ':')
	mac, err := base64.StdEncoding.DecodeString(h[i+1:])
	if i < 0 || err != nil || len(mac) != 32 {
		return "", &vaultError{kind: ErrVault, op: op, msg: "unexpected hmac format"}
	}
	return hex.EncodeToString(mac), nil
}

// decodeSecret decodes base64 text from Vault into a new Secret.
func decodeSecret(b64 string) (secret.Secret, error) {
	src := []byte(b64)
	defer secret.Wipe(src)
	out := make([]byte, base64.StdEncoding.DecodedLen(len(src)))
	n, err := base64.StdEncoding.Decode(out, src)
	if err != nil {
		secret.Wipe(out)
		return secret.Secret{}, err
	}
	// Wipe the tail Decode may not have written, then cut it off.
	secret.Wipe(out[n:])
	return secret.Wrap(out[:n]), nil
}
