package audit

import (
	"crypto/rand"
	"errors"
	"fmt"
	"os"
)

// Config is the "audit:" section of the configuration.
type Config struct {
	// Path is the trail's file (JSON Lines, append-only).
	Path string `yaml:"path"`
	// Signer says who signs checkpoints: SignerHMAC with KeyFile, or
	// SignerVault with the gateway's transit ed25519 key
	// (vault.transit.signing_key), which it can use but not export.
	Signer string `yaml:"signer"`
	// KeyFile is the HMAC-SHA256 key for checkpoint signatures, at least
	// MinHMACKeyLen bytes. Empty: a development key kept beside the trail
	// (Path + ".devkey"), created on first start.
	KeyFile string `yaml:"key_file"`
	// KeyID names the HMAC key in checkpoints (default "dev").
	KeyID string `yaml:"key_id"`
}

// Signers of Config.Signer.
const (
	SignerHMAC  = "hmac"
	SignerVault = "vault"
)

// DefaultConfig is the development default: tonevault-audit.jsonl in the
// working directory, signed with a development HMAC key beside it.
func DefaultConfig() Config {
	return Config{Path: "tonevault-audit.jsonl", Signer: SignerHMAC, KeyID: "dev"}
}

// Validate reports a setting that cannot work, naming its key.
func (c Config) Validate() error {
	if c.Path == "" {
		return errors.New("audit.path: empty")
	}
	if c.Signer != SignerHMAC && c.Signer != SignerVault {
		return fmt.Errorf("audit.signer: %q: want %s or %s", c.Signer, SignerHMAC, SignerVault)
	}
	if c.KeyID != "" && !validKeyID(c.KeyID) {
		return fmt.Errorf("audit.key_id: %q: want 1 to 64 printable ASCII characters, no spaces", c.KeyID)
	}
	return nil
}

// HMACSigner is the signer of Signer "hmac": the key of KeyFile, or
// without one a development key beside the trail, created when missing.
// devKey names that file when it is used: the caller should say loudly
// that production needs a real key.
func (c Config) HMACSigner() (s *HMAC, devKey string, err error) {
	keyFile := c.KeyFile
	if keyFile == "" {
		keyFile = c.Path + ".devkey"
		devKey = keyFile
		if _, err := os.Stat(keyFile); errors.Is(err, os.ErrNotExist) {
			key := make([]byte, 32)
			_, _ = rand.Read(key)
			if err := os.WriteFile(keyFile, key, 0o600); err != nil {
				return nil, "", fmt.Errorf("audit: write development key: %w", err)
			}
		}
	}
	key, err := LoadHMACKey(keyFile)
	if err != nil {
		return nil, "", fmt.Errorf("audit.key_file: %w", err)
	}
	defer clear(key)
	keyID := c.KeyID
	if keyID == "" {
		keyID = "dev"
	}
	h, err := NewHMAC(HMACKey{ID: keyID, Key: key})
	if err != nil {
		return nil, "", fmt.Errorf("audit: %w", err)
	}
	return h, devKey, nil
}
