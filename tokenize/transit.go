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

// How card data travels to Vault, and what stays behind.
//
// To Vault: the card bytes go into the request map as a []byte, which
// encoding/json writes as base64, which is exactly what transit wants for
// plaintext and input. No Go string of the card data is made. The JSON
// body buffer the vault client builds holds the base64 text until the
// garbage collector reuses it: it cannot be wiped from here.
//
// From Vault: nothing. The gateway never decrypts: it compares expiries
// by MAC (macs), and its policy has no decrypt.

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

// rewrap re-encrypts ciphertexts with the latest card key version without
// the plaintext leaving Vault.
func (v *Vault) rewrap(ctx context.Context, cipher ...string) ([]string, error) {
	items := make([]map[string]any, len(cipher))
	for i, c := range cipher {
		items[i] = map[string]any{"ciphertext": c}
	}
	return v.batch(ctx, "transit rewrap", v.transitPath("rewrap", v.cfg.Transit.CardKey), items, "ciphertext")
}

// macs returns, as hex, the HMAC-SHA256 under the lookup key (at the
// pinned version) of the card number, which is the lookup key: the same
// card always gives the same one; and of "exp:" + card number + ":" +
// expiry, which tells a new expiry from the stored one without decrypting
// it. The prefix keeps the second from ever being a card number's lookup
// key, and the card number keeps two cards' MACs apart when their expiries
// are the same.
func (v *Vault) macs(ctx context.Context, pan, expiry secret.Secret) (lookup, expMAC string, err error) {
	const op = "transit hmac"
	p, e := pan.Bytes(), expiry.Bytes()
	expInput := make([]byte, 0, len("exp:")+len(p)+1+len(e))
	expInput = append(append(append(append(expInput, "exp:"...), p...), ':'), e...)
	defer secret.Wipe(expInput)
	s, err := v.write(ctx, op, v.transitPath("hmac", v.cfg.Transit.HMACKey)+"/sha2-256", map[string]any{
		"batch_input": []map[string]any{{"input": p}, {"input": expInput}}, // []byte: JSON base64
		"key_version": v.cfg.Transit.HMACKeyVersion,
	})
	if err != nil {
		return "", "", err
	}
	results, _ := s.Data["batch_results"].([]any)
	var out [2]string
	for i := range out {
		if len(results) != len(out) {
			break
		}
		m, _ := results[i].(map[string]any)
		if e, _ := m["error"].(string); e != "" {
			return "", "", &vaultError{kind: ErrVault, op: op, msg: scrub(e)}
		}
		h, _ := m["hmac"].(string)
		// "vault:v1:<base64>"
		j := strings.LastIndexByte(h, ':')
		mac, err := base64.StdEncoding.DecodeString(h[j+1:])
		if j < 0 || err != nil || len(mac) != 32 {
			break
		}
		out[i] = hex.EncodeToString(mac)
	}
	if out[0] == "" || out[1] == "" {
		return "", "", &vaultError{kind: ErrVault, op: op, msg: "unexpected hmac answer"}
	}
	return out[0], out[1], nil
}
