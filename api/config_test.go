package api

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"go.yaml.in/yaml/v3"
)

func TestNewRefusesBadConfig(t *testing.T) {
	good := HashKey("k")
	st, _ := newTestStore(t)
	deps := Deps{Payments: newFakePayments(), Calls: fakeCalls{}, Store: st}
	tests := []struct {
		name string
		cfg  Config
		deps Deps
		want string
	}{
		{"hash without prefix", Config{Keys: []Key{{Name: "a", Hash: strings.TrimPrefix(good, "sha256:")}}}, deps, "sha256:"},
		{"short hash", Config{Keys: []Key{{Name: "a", Hash: "sha256:abcd"}}}, deps, "64 hex"},
		{"no name", Config{Keys: []Key{{Hash: good}}}, deps, "name"},
		{"name with colon", Config{Keys: []Key{{Name: "a:b", Hash: good}}}, deps, "name"},
		{"duplicate name", Config{Keys: []Key{{Name: "a", Hash: good}, {Name: "a", Hash: HashKey("j")}}}, deps, "duplicate"},
		{"webhook without secret", Config{Webhook: WebhookConfig{URL: "https://crm.example/hook"}}, deps, "secret_file"},
		{"webhook not http", Config{Webhook: WebhookConfig{URL: "ftp://x", SecretFile: "s"}}, deps, "http(s)"},
		{"mask style", Config{MaskStyle: "none"}, deps, "mask_style"},
		{"no payments", Config{}, Deps{Calls: fakeCalls{}, Store: st}, "required"},
		{"no store", Config{}, Deps{Payments: newFakePayments(), Calls: fakeCalls{}}, "required"},
		{"short widget secret", Config{}, Deps{Payments: newFakePayments(), Calls: fakeCalls{}, Store: st, WidgetSecret: []byte("short")}, "32 bytes"},
		{"missing secret file", Config{WidgetSecretFile: filepath.Join(t.TempDir(), "nope")}, deps, "secret file"},
		{"frame ancestor with path", Config{FrameAncestors: []string{"https://crm.example.com/app"}}, deps, "frame_ancestors[0]"},
		{"frame ancestor without scheme", Config{FrameAncestors: []string{"crm.example.com"}}, deps, "frame_ancestors[0]"},
		{"frame ancestor adding a directive", Config{FrameAncestors: []string{"'self'", "https://a.example; script-src *"}}, deps, "frame_ancestors[1]"},
		{"frame ancestor with user", Config{FrameAncestors: []string{"https://u@a.example"}}, deps, "frame_ancestors[0]"},
		{"frame ancestor javascript", Config{FrameAncestors: []string{"javascript:alert(1)"}}, deps, "frame_ancestors[0]"},
		{"frame ancestor unquoted self", Config{FrameAncestors: []string{"self"}}, deps, "frame_ancestors[0]"},
		{"frame ancestors none and more", Config{FrameAncestors: []string{"'none'", "'self'"}}, deps, "stands alone"},
	}
	for _, tc := range tests {
		_, err := New(tc.cfg, tc.deps)
		if err == nil || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("%s: %v, want an error about %q", tc.name, err, tc.want)
		}
	}
	// A good secret file is read, trailing newline dropped.
	path := filepath.Join(t.TempDir(), "widget.key")
	if err := os.WriteFile(path, []byte(strings.Repeat("z", 32)+"\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	s, err := NewServer(Config{WidgetSecretFile: path}, deps)
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	if string(s.tokens.secret) != strings.Repeat("z", 32) {
		t.Errorf("secret %q", s.tokens.secret)
	}
	if s.cfg.MaxBodyBytes != 16<<10 || s.cfg.WidgetTokenTTL.Minutes() != 15 || s.cfg.Heartbeat.Seconds() != 15 {
		t.Errorf("defaults %+v", s.cfg)
	}
}

func TestConfigYAML(t *testing.T) {
	const doc = `
keys:
  - name: crm
    hash: "sha256:0000000000000000000000000000000000000000000000000000000000000000"
rate_limit:
  requests_per_second: 5
  burst: 10
max_body_bytes: 8192
widget_token_ttl: 10m
widget_secret_file: /etc/tonevault/widget.key
webhook:
  url: https://crm.example/tonevault
  secret_file: /etc/tonevault/webhook.key
  max_attempts: 6
  timeout: 5s
mask_style: last4
sse_heartbeat: 20s
`
	var c Config
	dec := yaml.NewDecoder(strings.NewReader(doc))
	dec.KnownFields(true)
	if err := dec.Decode(&c); err != nil {
		t.Fatal(err)
	}
	if c.Keys[0].Name != "crm" || c.RateLimit.PerSecond != 5 || c.RateLimit.Burst != 10 || c.MaxBodyBytes != 8192 ||
		c.WidgetTokenTTL != 10*time.Minute || c.Webhook.MaxAttempts != 6 || c.Webhook.Timeout != 5*time.Second ||
		c.MaskStyle != "last4" || c.Heartbeat != 20*time.Second || c.WidgetSecretFile == "" || c.Webhook.SecretFile == "" {
		t.Errorf("decoded %+v", c)
	}
	if err := c.Validate(); err != nil {
		t.Error(err)
	}
}
