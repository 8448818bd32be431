package audit

import (
	"crypto/rand"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"time"
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
	// CheckpointInterval is how often a checkpoint is written and
	// anchored while records come: at most that much of the trail's end
	// can be cut off unnoticed.
	CheckpointInterval time.Duration `yaml:"checkpoint_interval"`
	// QueueSize is how many records wait in memory while the trail is
	// slow or cannot be written; more are dropped, counted and reported
	// in the trail.
	QueueSize int `yaml:"queue_size"`
	// Anchor says where each checkpoint is copied outside the trail:
	// AnchorFile (AnchorFile below) or AnchorVault (Vault KV v2, under
	// vault.kv.prefix + "/audit-anchor/").
	Anchor string `yaml:"anchor"`
	// AnchorFile is the append-only anchor file for Anchor "file", on
	// another path than the trail (another file system or host, ideally).
	// Empty: a development anchor beside the trail (Path + ".anchor").
	AnchorFile string `yaml:"anchor_file"`
}

// Signers of Config.Signer.
const (
	SignerHMAC  = "hmac"
	SignerVault = "vault"
)

// Anchors of Config.Anchor.
const (
	AnchorFile  = "file"
	AnchorVault = "vault"
)

// DefaultConfig is the development default: tonevault-audit.jsonl in the
// working directory, signed with a development HMAC key beside it,
// checkpoints anchored in a file beside it every 10 s.
func DefaultConfig() Config {
	return Config{Path: "tonevault-audit.jsonl", Signer: SignerHMAC, KeyID: "dev",
		CheckpointInterval: DefaultCheckpointInterval, QueueSize: DefaultQueueSize, Anchor: AnchorFile}
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
	if c.CheckpointInterval < 100*time.Millisecond || c.CheckpointInterval > time.Hour {
		return fmt.Errorf("audit.checkpoint_interval: %v: want 100ms to 1h", c.CheckpointInterval)
	}
	if c.QueueSize < 16 || c.QueueSize > 1<<20 {
		return fmt.Errorf("audit.queue_size: %d: want 16 to 1048576", c.QueueSize)
	}
	switch c.Anchor {
	case AnchorFile:
		if c.AnchorFile != "" && filepath.Clean(c.AnchorFile) == filepath.Clean(c.Path) {
			return fmt.Errorf("audit.anchor_file: %q is the trail itself; the anchor must be on another path", c.AnchorFile)
		}
	case AnchorVault:
		if c.AnchorFile != "" {
			return fmt.Errorf("audit.anchor_file: set, but audit.anchor is %s", AnchorVault)
		}
	default:
		return fmt.Errorf("audit.anchor: %q: want %s or %s", c.Anchor, AnchorFile, AnchorVault)
	}
	return nil
}

// FileAnchor is the anchor of Anchor "file": AnchorFile, or without one
// a development anchor beside the trail. beside says that it is the
// latter: the caller should say loudly that whoever can cut the trail can
// cut that file too.
func (c Config) FileAnchor() (a *FileAnchor, beside bool) {
	if c.AnchorFile == "" {
		return &FileAnchor{Path: c.Path + ".anchor"}, true
	}
	return &FileAnchor{Path: c.AnchorFile}, false
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
