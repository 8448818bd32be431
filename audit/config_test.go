package audit

import (
	"path/filepath"
	"strings"
	"testing"
	"time"
)

func TestConfigValidate(t *testing.T) {
	if err := DefaultConfig().Validate(); err != nil {
		t.Fatalf("default: %v", err)
	}
	for _, tc := range []struct {
		name string
		edit func(c *Config)
		key  string // "" valid
	}{
		{"no path", func(c *Config) { c.Path = "" }, "audit.path"},
		{"unknown signer", func(c *Config) { c.Signer = "rsa" }, "audit.signer"},
		{"interval too short", func(c *Config) { c.CheckpointInterval = 10 * time.Millisecond }, "audit.checkpoint_interval"},
		{"interval zero", func(c *Config) { c.CheckpointInterval = 0 }, "audit.checkpoint_interval"},
		{"interval too long", func(c *Config) { c.CheckpointInterval = 2 * time.Hour }, "audit.checkpoint_interval"},
		{"interval 100ms", func(c *Config) { c.CheckpointInterval = 100 * time.Millisecond }, ""},
		{"queue too small", func(c *Config) { c.QueueSize = 8 }, "audit.queue_size"},
		{"queue too large", func(c *Config) { c.QueueSize = 1 << 21 }, "audit.queue_size"},
		{"unknown anchor", func(c *Config) { c.Anchor = "s3" }, "audit.anchor"},
		{"no anchor", func(c *Config) { c.Anchor = "" }, "audit.anchor"},
		{"anchor file is the trail", func(c *Config) { c.AnchorFile = "./" + c.Path }, "audit.anchor_file"},
		{"anchor file with vault", func(c *Config) { c.Anchor, c.AnchorFile = AnchorVault, "/x/a.anchor" }, "audit.anchor_file"},
		{"vault anchor", func(c *Config) { c.Anchor = AnchorVault }, ""},
		{"anchor file elsewhere", func(c *Config) { c.AnchorFile = "/var/lib/anchor/audit.anchor" }, ""},
	} {
		t.Run(tc.name, func(t *testing.T) {
			c := DefaultConfig()
			tc.edit(&c)
			err := c.Validate()
			switch {
			case tc.key == "" && err != nil:
				t.Errorf("refused: %v", err)
			case tc.key != "" && (err == nil || !strings.HasPrefix(err.Error(), tc.key+":")):
				t.Errorf("Validate = %v, want an error naming %s", err, tc.key)
			}
		})
	}
}

func TestConfigFileAnchor(t *testing.T) {
	c := DefaultConfig()
	c.Path = filepath.Join("/srv", "audit.jsonl")
	if a, beside := c.FileAnchor(); !beside || a.Path != "/srv/audit.jsonl.anchor" {
		t.Errorf("default anchor %q beside %v", a.Path, beside)
	}
	c.AnchorFile = "/mnt/worm/audit.anchor"
	if a, beside := c.FileAnchor(); beside || a.Path != c.AnchorFile {
		t.Errorf("configured anchor %q beside %v", a.Path, beside)
	}
}
