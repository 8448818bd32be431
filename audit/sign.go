package audit

import (
	"context"
	"crypto/hmac"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"os"
)

// Signer signs checkpoints. Sign returns the signature as text and the id
// of the key that made it; both are written on the checkpoint line.
// Implementations: HMAC now, Vault transit (ed25519) later.
type Signer interface {
	Sign(ctx context.Context, data []byte) (sig string, keyID string, err error)
}

// Verifier checks a checkpoint signature made by a Signer. It returns nil
// when sig is a valid signature of data by the key keyID.
type Verifier interface {
	Verify(ctx context.Context, data []byte, sig, keyID string) error
}

// Errors a Verifier returns (wrapped).
var (
	ErrUnknownKey   = errors.New("unknown key id")
	ErrBadSignature = errors.New("bad checkpoint signature")
)

// signPrefix separates checkpoint signatures from any other use of the
// same key.
const signPrefix = "tonevault audit checkpoint v1\n"

// signedData is what a checkpoint's signature covers: the prefix, then the
// checkpoint's canonical line with key_id and sig left out. The line holds
// prev, the hash of everything before it, so the signature covers the
// whole file up to and including the checkpoint.
func signedData(r Record) ([]byte, error) {
	r.KeyID, r.Sig = "", ""
	b, err := r.MarshalJSON()
	if err != nil {
		return nil, err
	}
	return append([]byte(signPrefix), b...), nil
}

// MinHMACKeyLen is the shortest HMAC key accepted, in bytes.
const MinHMACKeyLen = 32

// HMACKey is a key for HMAC-SHA256 checkpoint signatures.
type HMACKey struct {
	ID  string // written on each checkpoint; printable, no spaces
	Key []byte // at least MinHMACKeyLen bytes
}

// HMAC signs checkpoints with HMAC-SHA256 and verifies them. It is a Signer
// and a Verifier; signatures are lowercase hex. It is safe for concurrent
// use.
type HMAC struct {
	signID string
	keys   map[string][]byte
}

// NewHMAC returns an HMAC that signs with signing and verifies signatures
// made by signing or by any of older (keys rotated out). Key bytes are
// copied.
func NewHMAC(signing HMACKey, older ...HMACKey) (*HMAC, error) {
	h := &HMAC{signID: signing.ID, keys: map[string][]byte{}}
	for _, k := range append([]HMACKey{signing}, older...) {
		if !validKeyID(k.ID) {
			return nil, fmt.Errorf("audit: HMAC key id %q: want 1 to 64 printable ASCII characters, no spaces", k.ID)
		}
		if len(k.Key) < MinHMACKeyLen {
			return nil, fmt.Errorf("audit: HMAC key %q is %d bytes, want at least %d", k.ID, len(k.Key), MinHMACKeyLen)
		}
		if _, dup := h.keys[k.ID]; dup {
			return nil, fmt.Errorf("audit: HMAC key id %q given twice", k.ID)
		}
		h.keys[k.ID] = append([]byte(nil), k.Key...)
	}
	return h, nil
}

func validKeyID(id string) bool {
	if id == "" || len(id) > 64 {
		return false
	}
	for i := 0; i < len(id); i++ {
		if id[i] <= ' ' || id[i] > '~' {
			return false
		}
	}
	return true
}

func (h *HMAC) mac(key, data []byte) []byte {
	m := hmac.New(sha256.New, key)
	m.Write(data)
	return m.Sum(nil)
}

// Sign implements Signer.
func (h *HMAC) Sign(_ context.Context, data []byte) (string, string, error) {
	return hex.EncodeToString(h.mac(h.keys[h.signID], data)), h.signID, nil
}

// Verify implements Verifier.
func (h *HMAC) Verify(_ context.Context, data []byte, sig, keyID string) error {
	key, ok := h.keys[keyID]
	if !ok {
		return fmt.Errorf("%w %q", ErrUnknownKey, keyID)
	}
	got, err := hex.DecodeString(sig)
	if err != nil || !hmac.Equal(got, h.mac(key, data)) {
		return fmt.Errorf("%w: HMAC-SHA256 with key id %q does not match", ErrBadSignature, keyID)
	}
	return nil
}

// LoadHMACKey reads an HMAC key file: the key is the file's bytes, exactly
// (a trailing newline included), and must be at least MinHMACKeyLen bytes.
// The gateway and 'tonevault audit verify' both read keys through it, so a
// key file means the same to both. Create one with, for example,
// 'head -c 32 /dev/urandom > audit.key'.
func LoadHMACKey(path string) ([]byte, error) {
	b, err := os.ReadFile(path)
	if err != nil {
		return nil, err
	}
	if len(b) < MinHMACKeyLen {
		return nil, fmt.Errorf("audit: HMAC key file %s: %d bytes, want at least %d", path, len(b), MinHMACKeyLen)
	}
	return b, nil
}
