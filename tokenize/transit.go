package tokenize

import (
	"context"
	"encoding/base64"
	"encoding/hex"
	"fmt"
	"strconv"
	"strings"

	"github.com/hashicorp/vault/api"
	"github.com/tonevault/tonevault/internal/secret"
)

// How card data travels to Vault, and what stays behind.
//
// To Vault: a request that carries card data (encrypt, hmac) has its JSON
// body written here, with the card bytes in base64 (what transit wants
// for plaintext and input), into one buffer made at its final size; the
// vault client sends those bytes as they are (Logical().WriteBytes), and
// the buffer is wiped when the try returns. No Go string of the card data
// is made, and no JSON encoder copies it. On the way out, net/http copies
// the body into the connection's write buffer, which the connection
// wipes once written (see wipingConn).
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

// writeCard is write for a body that holds card data: body makes it, and
// it is wiped after each try (a retry makes it again, so a try that wiped
// what it sent cannot send zeros next).
func (v *Vault) writeCard(ctx context.Context, op, path string, body func() []byte) (*api.Secret, error) {
	if v.closed.Load() {
		return nil, ErrClosed
	}
	var out *api.Secret
	err := v.retry.do(ctx, op, func(ctx context.Context) error {
		b := body()
		defer secret.Wipe(b)
		var err error
		out, err = v.client.Logical().WriteBytesWithContext(ctx, path, b)
		return err
	})
	return out, err
}

// batchBody is {"batch_input":[{"<field>":"<base64>"},...]<extra>}, in one
// buffer made at its final size, so that no copy of an item is left
// behind by a growing append. extra is more JSON members, without card
// data, each starting with a comma.
func batchBody(field string, extra string, items ...[]byte) []byte {
	const head, tail = `{"batch_input":[`, `]}`
	n := len(head) + len(extra) + len(tail) + max(len(items)-1, 0) // commas
	for _, it := range items {
		n += len(`{"":""}`) + len(field) + base64.StdEncoding.EncodedLen(len(it))
	}
	b := make([]byte, 0, n)
	b = append(b, head...)
	for i, it := range items {
		if i > 0 {
			b = append(b, ',')
		}
		b = append(append(append(b, `{"`...), field...), `":"`...)
		b = base64.StdEncoding.AppendEncode(b, it)
		b = append(b, `"}`...)
	}
	b = append(b, ']')
	b = append(b, extra...)
	return append(b, '}')
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

// batchResults returns field of each of the n results of a transit batch
// answer.
func batchResults(op string, s *api.Secret, n int, field string) ([]string, error) {
	var results []any
	if s != nil {
		results, _ = s.Data["batch_results"].([]any)
	}
	if len(results) != n {
		return nil, &vaultError{kind: ErrVault, op: op, msg: fmt.Sprintf("%d batch results for %d items", len(results), n)}
	}
	out := make([]string, n)
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
	const op = "transit encrypt"
	s, err := v.writeCard(ctx, op, v.transitPath("encrypt", v.cfg.Transit.CardKey), func() []byte {
		return batchBody("plaintext", "", plain...)
	})
	if err != nil {
		return nil, err
	}
	return batchResults(op, s, len(plain), "ciphertext")
}

// rewrap re-encrypts ciphertexts with the latest card key version without
// the plaintext leaving Vault.
func (v *Vault) rewrap(ctx context.Context, cipher ...string) ([]string, error) {
	const op = "transit rewrap"
	items := make([]map[string]any, len(cipher))
	for i, c := range cipher {
		items[i] = map[string]any{"ciphertext": c}
	}
	s, err := v.write(ctx, op, v.transitPath("rewrap", v.cfg.Transit.CardKey), map[string]any{"batch_input": items})
	if err != nil {
		return nil, err
	}
	return batchResults(op, s, len(cipher), "ciphertext")
}

// macs returns, as hex, the HMAC-SHA256 under the lookup key (at the
// pinned version) of the card number, which is the lookup key: the same
// card always gives the same one; and of "exp:" + card number + ":" +
// expiry, which tells a new expiry from the stored one without decrypting
// it. The prefix keeps the second from ever being a card number's lookup
// key, and the card number keeps two cards' MACs apart when their expiries
// are the same. One batch call makes both.
func (v *Vault) macs(ctx context.Context, pan, expiry secret.Secret) (lookup, expMAC string, err error) {
	const op = "transit hmac"
	p, e := pan.Bytes(), expiry.Bytes()
	expInput := expMACInput(p, e)
	defer secret.Wipe(expInput)
	version := `,"key_version":` + strconv.Itoa(v.cfg.Transit.HMACKeyVersion)
	s, err := v.writeCard(ctx, op, v.transitPath("hmac", v.cfg.Transit.HMACKey)+"/sha2-256", func() []byte {
		return batchBody("input", version, p, expInput)
	})
	if err != nil {
		return "", "", err
	}
	hs, err := batchResults(op, s, 2, "hmac")
	if err != nil {
		return "", "", err
	}
	var out [2]string
	for i, h := range hs {
		// "vault:v1:<base64>"
		j := strings.LastIndexByte(h, ':')
		mac, err := base64.StdEncoding.DecodeString(h[j+1:])
		if j < 0 || err != nil || len(mac) != 32 {
			return "", "", &vaultError{kind: ErrVault, op: op, msg: "unexpected hmac format"}
		}
		out[i] = hex.EncodeToString(mac)
	}
	return out[0], out[1], nil
}

// expMACInput is "exp:" + pan + ":" + expiry, in a buffer on the heap
// (secret.Alloc): made here with make, it was small enough for the
// compiler to put on macs' stack, and the Vault call below it grows that
// stack, which leaves the old one, input in clear, in freed memory.
func expMACInput(pan, expiry []byte) []byte {
	b := secret.Alloc(len("exp:") + len(pan) + 1 + len(expiry))
	return append(append(append(append(b, "exp:"...), pan...), ':'), expiry...)
}
