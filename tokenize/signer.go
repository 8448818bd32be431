package tokenize

import (
	"context"
	"fmt"
	"strings"

	"github.com/hashicorp/vault/api"
	"github.com/tonevault/tonevault/audit"
)

// TransitSigner signs audit checkpoints with a Vault transit ed25519 key
// that the gateway may use but not export (see configs/vault). It is an
// audit.Signer and an audit.Verifier. The key id written on checkpoints is
// "vault-transit:<mount>/<key>"; the signature is Vault's
// "vault:v<N>:<base64>", which names the key version, so verification
// still works after the key is rotated.
type TransitSigner struct {
	client     *api.Client
	mount, key string
	keyID      string
	retry      retryPolicy
}

var (
	_ audit.Signer   = (*TransitSigner)(nil)
	_ audit.Verifier = (*TransitSigner)(nil)
)

// KeyIDPrefix starts the key id of checkpoints signed by a TransitSigner.
const KeyIDPrefix = "vault-transit:"

// NewTransitSigner returns a signer using the transit key mount/key.
// client must be logged in (Vault.Client, or a root client in tests).
func NewTransitSigner(client *api.Client, mount, key string) (*TransitSigner, error) {
	if client == nil {
		return nil, fmt.Errorf("%w: nil vault client", ErrInvalidInput)
	}
	if !validName(mount) || !validName(key) {
		return nil, fmt.Errorf("%w: transit mount %q / key %q: want letters, digits, '-', '_'", ErrInvalidInput, mount, key)
	}
	return &TransitSigner{
		client: client, mount: mount, key: key,
		keyID: KeyIDPrefix + mount + "/" + key,
		retry: retryPolicy{timeout: DefaultTimeout, retries: DefaultRetries, backoff: DefaultBackoff},
	}, nil
}

// KeyID is the key id the signer writes on checkpoints.
func (s *TransitSigner) KeyID() string { return s.keyID }

func (s *TransitSigner) write(ctx context.Context, op, path string, data map[string]any) (*api.Secret, error) {
	var out *api.Secret
	err := s.retry.do(ctx, op, func(ctx context.Context) error {
		var err error
		out, err = s.client.Logical().WriteWithContext(ctx, path, data)
		return err
	})
	return out, err
}

// Sign implements audit.Signer with transit/sign.
func (s *TransitSigner) Sign(ctx context.Context, data []byte) (string, string, error) {
	const op = "transit sign"
	out, err := s.write(ctx, op, s.mount+"/sign/"+s.key, map[string]any{"input": data})
	if err != nil {
		return "", "", err
	}
	sig, _ := out.Data["signature"].(string)
	if !strings.HasPrefix(sig, "vault:v") {
		return "", "", &vaultError{kind: ErrVault, op: op, msg: "no signature in answer"}
	}
	return sig, s.keyID, nil
}

// Verify implements audit.Verifier with transit/verify. A key id other
// than this signer's is audit.ErrUnknownKey; a signature Vault rejects is
// audit.ErrBadSignature. Vault being unavailable is ErrUnavailable, not a
// bad signature.
func (s *TransitSigner) Verify(ctx context.Context, data []byte, sig, keyID string) error {
	const op = "transit verify"
	if keyID != s.keyID {
		return fmt.Errorf("%w %q (this verifier has %q)", audit.ErrUnknownKey, keyID, s.keyID)
	}
	if !strings.HasPrefix(sig, "vault:v") || len(sig) > 512 {
		return fmt.Errorf("%w: not a Vault transit signature", audit.ErrBadSignature)
	}
	out, err := s.write(ctx, op, s.mount+"/verify/"+s.key, map[string]any{"input": data, "signature": sig})
	if err != nil {
		if ve, ok := err.(*vaultError); ok && ve.kind == ErrVault {
			// 400: malformed signature or unknown key version.
			return fmt.Errorf("%w: %v", audit.ErrBadSignature, err)
		}
		return err
	}
	if ok, _ := out.Data["valid"].(bool); !ok {
		return fmt.Errorf("%w: Vault transit key %s/%s does not verify it", audit.ErrBadSignature, s.mount, s.key)
	}
	return nil
}
