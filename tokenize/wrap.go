package tokenize

import (
	"context"
	"fmt"
	"net/http"
	"strconv"
	"time"

	"github.com/hashicorp/vault/api"
	"github.com/tonevault/tonevault/internal/secret"
)

// wrapTTLHeader asks Vault to wrap the answer of one request.
const wrapTTLHeader = "X-Vault-Wrap-TTL"

// MaxWrapTTL is the longest a wrapped security code may live. The code is
// sensitive authentication data: it only has to survive until the
// authorization, and is never stored (PCI DSS 3.3.1).
const MaxWrapTTL = 5 * time.Minute

// WrapCVV hands a security code to Vault's response wrapping and returns
// the single-use wrapping token, for when the code must cross a process
// boundary before authorization. Vault keeps it in the wrapping token's
// cubbyhole, never in KV or transit, and destroys it on the first unwrap or
// when ttl (1 s to MaxWrapTTL) runs out. The caller wipes cvv.
func (v *Vault) WrapCVV(ctx context.Context, cvv secret.Secret, ttl time.Duration) (string, error) {
	if cvv.Len() < 3 || cvv.Len() > 4 || !allDigits(cvv.Bytes()) {
		return "", fmt.Errorf("%w: security code: want 3 or 4 digits", ErrInvalidInput)
	}
	if ttl < time.Second || ttl > MaxWrapTTL {
		return "", fmt.Errorf("%w: wrap TTL %v: want 1s to %v", ErrInvalidInput, ttl, MaxWrapTTL)
	}
	if v.closed.Load() {
		return "", ErrClosed
	}
	const op = "wrap"
	var tok string
	err := v.retry.do(ctx, op, func(ctx context.Context) error {
		// The wrap TTL as a header of this request: SetWrappingLookupFunc
		// would change it for every caller of the shared client.
		req := api.NewLogicalWriteRequest("sys/wrapping/wrap",
			map[string]any{"cvv": cvv.Bytes()}, // []byte: JSON base64
			http.Header{wrapTTLHeader: {strconv.Itoa(int(ttl/time.Second)) + "s"}})
		s, err := v.client.Logical().WriteWithRequest(ctx, req)
		if err != nil {
			return err
		}
		if s == nil || s.WrapInfo == nil || s.WrapInfo.Token == "" {
			return &vaultError{kind: ErrVault, op: op, msg: "no wrapping token in answer"}
		}
		tok = s.WrapInfo.Token
		return nil
	})
	return tok, err
}

// UnwrapCVV returns the security code behind a wrapping token made by
// WrapCVV, once: Vault destroys it on this first unwrap, and a second
// unwrap, or one after the TTL, is ErrNotFound. The caller wipes the
// Secret right after authorization.
func (v *Vault) UnwrapCVV(ctx context.Context, wrapToken string) (secret.Secret, error) {
	const op = "unwrap"
	if wrapToken == "" || len(wrapToken) > 256 {
		return secret.Secret{}, fmt.Errorf("%w: malformed wrapping token", ErrInvalidInput)
	}
	// Not retried: if the first try reached Vault, the code is already
	// gone, and a retry could only fail.
	ctx, cancel := context.WithTimeout(ctx, v.cfg.Timeout)
	defer cancel()
	// A write to the unwrap endpoint rather than Logical().Unwrap, which
	// makes the wrapping token the shared client's own token when that is
	// empty (after Close).
	if v.closed.Load() || v.client.Token() == "" {
		return secret.Secret{}, ErrClosed
	}
	s, err := v.client.Logical().WriteWithContext(ctx, "sys/wrapping/unwrap", map[string]any{"token": wrapToken})
	if err != nil {
		err = classify(op, err)
		if isUnwrapGone(err) {
			return secret.Secret{}, &vaultError{kind: ErrNotFound, op: op, msg: "wrapping token used, expired or unknown"}
		}
		return secret.Secret{}, err
	}
	if s == nil {
		return secret.Secret{}, &vaultError{kind: ErrVault, op: op, msg: "unreadable answer"}
	}
	b64, _ := s.Data["cvv"].(string)
	cvv, err := decodeSecret(b64)
	if err != nil || cvv.Len() == 0 {
		cvv.Wipe()
		return secret.Secret{}, &vaultError{kind: ErrVault, op: op, msg: "wrapped data is not a security code"}
	}
	return cvv, nil
}

// isUnwrapGone: Vault answers 400 "wrapping token is not valid or does not
// exist" for a used or expired token.
func isUnwrapGone(err error) bool {
	ve, ok := err.(*vaultError)
	return ok && ve.status == http.StatusBadRequest
}
