package tokenize

import (
	"errors"
	"fmt"
	"net/url"
	"os"
	"strconv"
	"strings"
	"time"
)

// Config is the "vault:" section of the gateway's configuration.
type Config struct {
	// Address of the Vault server. Default http://127.0.0.1:8200 (the dev
	// server); production uses https.
	Address string `yaml:"address"`
	// Addresses are every node of an HA cluster (integrated storage):
	// the gateway starts at Address and, whenever Vault is unavailable,
	// moves to the node that is active (see follower). Empty: Address
	// alone.
	Addresses []string `yaml:"addresses"`
	Auth      Auth     `yaml:"auth"`
	// CAFile is a PEM file of CA certificates to verify Vault's TLS
	// certificate with. Empty: the system roots.
	CAFile string `yaml:"ca_file"`
	// Insecure would skip TLS verification. It is always refused (as is
	// VAULT_SKIP_VERIFY in the environment); it exists so that a config
	// that sets it fails loudly instead of being silently ignored.
	Insecure bool `yaml:"insecure"`

	Transit Transit `yaml:"transit"`
	KV      KV      `yaml:"kv"`

	// Timeout bounds one attempt of one Vault call. Default 5s.
	Timeout time.Duration `yaml:"timeout"`
	// Retries is how many times a call that failed because Vault was
	// unavailable is tried again, with exponential backoff from Backoff.
	// Default 2 (three tries).
	Retries int `yaml:"retries"`
	// Backoff is the first wait between tries; it doubles each time, up to
	// 2s. Default 100ms.
	Backoff time.Duration `yaml:"backoff"`

	// TokenFormat is the default format of new tokens; MerchantFormats
	// overrides it per merchant id.
	TokenFormat     Format            `yaml:"token_format"`
	MerchantFormats map[string]Format `yaml:"merchant_formats"`
}

// Auth says how the gateway logs in to Vault.
type Auth struct {
	// Method is "token" (dev) or "approle" (production). Default token.
	Method string `yaml:"method"`
	// TokenFile holds the Vault token for method token. Empty: the
	// VAULT_TOKEN environment variable.
	TokenFile string `yaml:"token_file"`
	// RoleID and SecretIDFile are the AppRole credentials. The secret id is
	// read from the file at each login, so an operator can rotate it.
	RoleID       string `yaml:"role_id"`
	SecretIDFile string `yaml:"secret_id_file"`
	// Mount of the AppRole auth method. Default approle.
	Mount string `yaml:"mount"`
}

// Transit names the transit mount and keys.
type Transit struct {
	Mount string `yaml:"mount"` // default tonevault-transit
	// CardKey encrypts card numbers and expiry dates (aes256-gcm96,
	// rotatable). Default tonevault-card.
	CardKey string `yaml:"card_key"`
	// HMACKey makes the lookup index (same card, same token). Default
	// tonevault-lookup. Never rotate it: see HMACKeyVersion.
	HMACKey string `yaml:"hmac_key"`
	// HMACKeyVersion pins the version of HMACKey used for the index, so a
	// rotation by mistake does not give known cards new tokens. Default 1.
	HMACKeyVersion int `yaml:"hmac_key_version"`
	// SigningKey (ed25519) signs audit checkpoints. Default tonevault-audit.
	SigningKey string `yaml:"signing_key"`
}

// KV names the KV v2 mount and the path prefix under which tokens and the
// lookup index live.
type KV struct {
	Mount  string `yaml:"mount"`  // default tonevault-kv
	Prefix string `yaml:"prefix"` // default tonevault
}

// Config defaults.
const (
	DefaultAddress = "http://127.0.0.1:8200"
	DefaultTimeout = 5 * time.Second
	DefaultRetries = 2
	DefaultBackoff = 100 * time.Millisecond
	maxBackoff     = 2 * time.Second
	// MaxRetries bounds Retries: a gateway waiting on a dead Vault must
	// answer 503 soon, not after minutes.
	MaxRetries = 10
)

// DefaultConfig returns the configuration for a local dev server with the
// objects Setup creates.
func DefaultConfig() Config {
	return Config{
		Address: DefaultAddress,
		Auth:    Auth{Method: "token", Mount: "approle"},
		Transit: Transit{
			Mount:          "tonevault-transit",
			CardKey:        "tonevault-card",
			HMACKey:        "tonevault-lookup",
			HMACKeyVersion: 1,
			SigningKey:     "tonevault-audit",
		},
		KV:          KV{Mount: "tonevault-kv", Prefix: "tonevault"},
		Timeout:     DefaultTimeout,
		Retries:     DefaultRetries,
		Backoff:     DefaultBackoff,
		TokenFormat: Format{Kind: KindDigits, KeepFirst: 6, KeepLast: 4},
	}
}

// Validate reports the first problem in c.
func (c Config) Validate() error {
	u, err := url.Parse(c.Address)
	if err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" {
		return fmt.Errorf("tokenize: vault.address %q: want http(s)://host:port", c.Address)
	}
	for i, a := range c.Addresses {
		u, err := url.Parse(a)
		if err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" || (u.Path != "" && u.Path != "/") {
			return fmt.Errorf("tokenize: vault.addresses[%d] %q: want http(s)://host:port", i, a)
		}
	}
	if c.Insecure {
		return errors.New("tokenize: vault.insecure is set: skipping TLS verification is refused; give vault.ca_file instead")
	}
	if v := os.Getenv("VAULT_SKIP_VERIFY"); v != "" {
		if b, err := strconv.ParseBool(v); err != nil || b {
			return errors.New("tokenize: VAULT_SKIP_VERIFY is set in the environment: skipping TLS verification is refused; unset it and give vault.ca_file instead")
		}
	}
	if c.CAFile != "" {
		if _, err := os.Stat(c.CAFile); err != nil {
			return fmt.Errorf("tokenize: vault.ca_file: %w", err)
		}
	}
	switch c.Auth.Method {
	case "token":
	case "approle":
		if c.Auth.RoleID == "" || c.Auth.SecretIDFile == "" {
			return errors.New("tokenize: vault.auth: method approle needs role_id and secret_id_file")
		}
		if !validName(c.Auth.Mount) {
			return fmt.Errorf("tokenize: vault.auth.mount %q: want a path segment of letters, digits, '-', '_'", c.Auth.Mount)
		}
	default:
		return fmt.Errorf("tokenize: vault.auth.method %q: want token or approle", c.Auth.Method)
	}
	for name, v := range map[string]string{
		"transit.mount": c.Transit.Mount, "transit.card_key": c.Transit.CardKey,
		"transit.hmac_key": c.Transit.HMACKey, "transit.signing_key": c.Transit.SigningKey,
		"kv.mount": c.KV.Mount, "kv.prefix": c.KV.Prefix,
	} {
		if !validName(v) {
			return fmt.Errorf("tokenize: vault.%s %q: want 1 to 64 letters, digits, '-', '_'", name, v)
		}
	}
	if c.Transit.HMACKeyVersion < 1 {
		return fmt.Errorf("tokenize: vault.transit.hmac_key_version %d: want 1 or more", c.Transit.HMACKeyVersion)
	}
	if c.Timeout <= 0 {
		return fmt.Errorf("tokenize: vault.timeout %v: want more than 0", c.Timeout)
	}
	if c.Retries < 0 || c.Retries > MaxRetries {
		return fmt.Errorf("tokenize: vault.retries %d: want 0 to %d", c.Retries, MaxRetries)
	}
	if c.Backoff < 0 || c.Backoff > maxBackoff {
		return fmt.Errorf("tokenize: vault.backoff %v: want 0 to %v", c.Backoff, maxBackoff)
	}
	if err := c.TokenFormat.Validate(); err != nil {
		return fmt.Errorf("tokenize: vault.token_format: %w", err)
	}
	for m, f := range c.MerchantFormats {
		if m == "" {
			return errors.New("tokenize: vault.merchant_formats: empty merchant id")
		}
		if err := f.Validate(); err != nil {
			return fmt.Errorf("tokenize: vault.merchant_formats[%q]: %w", m, err)
		}
	}
	return nil
}

// formatFor is the token format for a merchant.
func (c Config) formatFor(merchant string) Format {
	if f, ok := c.MerchantFormats[merchant]; ok {
		return f
	}
	return c.TokenFormat
}

// validName accepts Vault path segments we build paths and policies from:
// nothing that could escape a path or an HCL string.
func validName(s string) bool {
	if s == "" || len(s) > 64 {
		return false
	}
	return strings.IndexFunc(s, func(r rune) bool {
		return !(r >= 'a' && r <= 'z' || r >= 'A' && r <= 'Z' || r >= '0' && r <= '9' || r == '-' || r == '_')
	}) < 0
}
