package api

import (
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"net/url"
	"slices"
	"strings"
	"time"
)

// Config is the "api:" section of configs/tonevault.yaml.
type Config struct {
	// Keys are the API keys, stored as "sha256:<hex>" of the key (see
	// HashKey and `tonevault api-key`); a key's Name is the actor in the
	// audit trail.
	Keys []Key `yaml:"keys"`
	// RateLimit applies per API key (and per widget token's key).
	RateLimit RateLimit `yaml:"rate_limit"`
	// MaxBodyBytes caps request bodies (default 16 KiB).
	MaxBodyBytes int64 `yaml:"max_body_bytes"`
	// WidgetTokenTTL is how long a widget token lives (default 15m).
	WidgetTokenTTL time.Duration `yaml:"widget_token_ttl"`
	// AgentTokenTTL is how long an agent token (POST /v1/agent-tokens)
	// signs a browser agent in (default 1h); the agent page's event
	// stream ends when it expires or is revoked.
	AgentTokenTTL time.Duration `yaml:"agent_token_ttl"`
	// WidgetSecretFile holds the HMAC key for widget tokens (at least 32
	// bytes). Empty: a random key per process, so tokens die at restart.
	WidgetSecretFile string `yaml:"widget_secret_file"`
	// Webhook delivers final outcomes; no URL, no webhooks.
	Webhook WebhookConfig `yaml:"webhook"`
	// MaskStyle is capture's mask_style ("bin_last4", the default, or
	// "last4"): capture masks, and the API refuses to let out any masked
	// card number that shows more digits than the style allows.
	MaskStyle string `yaml:"mask_style"`
	// Heartbeat is the SSE comment interval (default 15s).
	Heartbeat time.Duration `yaml:"sse_heartbeat"`
	// FrameAncestors are the origins that may show the widget (and the
	// agent page) in a frame: the CRM's, as "https://crm.example.com"
	// ("*." may start the host), or 'self' or 'none'. They become the
	// pages' Content-Security-Policy frame-ancestors (default 'self').
	FrameAncestors []string `yaml:"frame_ancestors"`
	// MaxStreamsPerKey caps the event streams (SSE) open at once per API
	// key, its widget tokens' included (default 1000); one more gets 429.
	MaxStreamsPerKey int `yaml:"max_streams_per_key"`
}

// Key is one API key.
type Key struct {
	Name string `yaml:"name"`
	Hash string `yaml:"hash"` // "sha256:<64 hex>"
}

// RateLimit is a token bucket: Burst requests at once, refilled at
// PerSecond. Zero PerSecond: defaults (10/s, burst 20).
type RateLimit struct {
	PerSecond float64 `yaml:"requests_per_second"`
	Burst     int     `yaml:"burst"`
}

// WebhookConfig says where final outcomes are posted.
type WebhookConfig struct {
	URL         string `yaml:"url"`
	SecretFile  string `yaml:"secret_file"`
	MaxAttempts int    `yaml:"max_attempts"` // default 8
	// Timeout per attempt (default 10s).
	Timeout time.Duration `yaml:"timeout"`
}

const (
	defaultMaxBody        = 16 << 10
	defaultWidgetTTL      = 15 * time.Minute
	defaultHeartbeat      = 15 * time.Second
	defaultRate           = 10
	defaultBurst          = 20
	defaultWebhookTries   = 8
	defaultWebhookTimeout = 10 * time.Second
	defaultStreamsPerKey  = 1000
	defaultAgentTTL       = time.Hour
)

func (c *Config) applyDefaults() {
	if c.MaxBodyBytes <= 0 {
		c.MaxBodyBytes = defaultMaxBody
	}
	if c.WidgetTokenTTL <= 0 {
		c.WidgetTokenTTL = defaultWidgetTTL
	}
	if c.Heartbeat <= 0 {
		c.Heartbeat = defaultHeartbeat
	}
	if c.AgentTokenTTL <= 0 {
		c.AgentTokenTTL = defaultAgentTTL
	}
	if c.RateLimit.PerSecond <= 0 {
		c.RateLimit.PerSecond = defaultRate
	}
	if c.RateLimit.Burst <= 0 {
		c.RateLimit.Burst = max(defaultBurst, int(c.RateLimit.PerSecond))
	}
	if c.Webhook.MaxAttempts <= 0 {
		c.Webhook.MaxAttempts = defaultWebhookTries
	}
	if c.Webhook.Timeout <= 0 {
		c.Webhook.Timeout = defaultWebhookTimeout
	}
	if len(c.FrameAncestors) == 0 {
		c.FrameAncestors = []string{"'self'"}
	}
	if c.MaxStreamsPerKey <= 0 {
		c.MaxStreamsPerKey = defaultStreamsPerKey
	}
}

// DefaultConfig is the "api:" section of the embedded default
// configuration: no keys (every request refused until one is added), 20
// requests/s per key with bursts of 40, no webhooks.
func DefaultConfig() Config {
	return Config{
		RateLimit:        RateLimit{PerSecond: 20, Burst: 40},
		MaxBodyBytes:     defaultMaxBody,
		WidgetTokenTTL:   defaultWidgetTTL,
		AgentTokenTTL:    defaultAgentTTL,
		MaskStyle:        "bin_last4",
		Heartbeat:        defaultHeartbeat,
		Webhook:          WebhookConfig{MaxAttempts: defaultWebhookTries, Timeout: defaultWebhookTimeout},
		FrameAncestors:   []string{"'self'"},
		MaxStreamsPerKey: defaultStreamsPerKey,
	}
}

// Validate reports a setting that cannot work, naming its key.
func (c Config) Validate() error {
	names := map[string]bool{}
	for i, k := range c.Keys {
		if k.Name == "" || strings.ContainsAny(k.Name, " \t\r\n:") {
			return fmt.Errorf("api.keys[%d].name: must be non-empty without spaces or ':'", i)
		}
		if names[k.Name] {
			return fmt.Errorf("api.keys[%d].name: duplicate name %q", i, k.Name)
		}
		names[k.Name] = true
		if _, err := parseHash(k.Hash); err != nil {
			return fmt.Errorf("api.keys[%d].hash (%s): %w", i, k.Name, err)
		}
	}
	switch c.MaskStyle {
	case "", "bin_last4", "last4":
	default:
		return fmt.Errorf("api.mask_style: %q: want bin_last4 or last4", c.MaskStyle)
	}
	for i, o := range c.FrameAncestors {
		if !validFrameAncestor(o) {
			return fmt.Errorf("api.frame_ancestors[%d]: %q: want an origin such as https://crm.example.com, or 'self' or 'none'", i, o)
		}
	}
	if len(c.FrameAncestors) > 1 && slices.Contains(c.FrameAncestors, "'none'") {
		return errors.New("api.frame_ancestors: 'none' stands alone")
	}
	if c.Webhook.URL != "" {
		u, err := url.Parse(c.Webhook.URL)
		if err != nil || (u.Scheme != "https" && u.Scheme != "http") || u.Host == "" {
			return errors.New("api.webhook.url: must be an http(s) URL")
		}
		if c.Webhook.SecretFile == "" {
			return errors.New("api.webhook.secret_file: required with api.webhook.url")
		}
	}
	return nil
}

// validFrameAncestor reports whether o may go into a CSP frame-ancestors
// list as it stands: 'self', 'none', or an http(s) origin without path,
// query, user or anything else (a space or ';' would add directives).
func validFrameAncestor(o string) bool {
	if o == "'self'" || o == "'none'" {
		return true
	}
	u, err := url.Parse(o)
	if err != nil || (u.Scheme != "https" && u.Scheme != "http") || u.Host == "" || u.User != nil ||
		u.Path != "" || u.RawQuery != "" || u.Fragment != "" || u.Opaque != "" || strings.HasSuffix(o, "?") || strings.HasSuffix(o, "#") {
		return false
	}
	host := strings.TrimPrefix(u.Hostname(), "*.")
	if host == "" {
		return false
	}
	for _, c := range host {
		if !(c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c >= '0' && c <= '9' || c == '-' || c == '.' || c == ':' || c == '[' || c == ']') {
			return false
		}
	}
	return u.Scheme+"://"+u.Host == o
}

// HashKey returns the form an API key is stored in the configuration:
// "sha256:" and the lowercase hex SHA-256 of the key. Keys are random and
// long (see `tonevault api-key`), so a plain hash is enough: there is
// nothing to brute-force.
func HashKey(key string) string {
	sum := sha256.Sum256([]byte(key))
	return "sha256:" + hex.EncodeToString(sum[:])
}

func parseHash(h string) ([sha256.Size]byte, error) {
	var out [sha256.Size]byte
	hexPart, ok := strings.CutPrefix(h, "sha256:")
	if !ok {
		return out, fmt.Errorf("hash must start with \"sha256:\"")
	}
	b, err := hex.DecodeString(hexPart)
	if err != nil || len(b) != sha256.Size {
		return out, fmt.Errorf("hash must be sha256: and 64 hex digits")
	}
	copy(out[:], b)
	return out, nil
}
