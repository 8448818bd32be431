// Package configs holds ToneVault's default configuration (tonevault.yaml,
// embedded) and reads configuration files.
//
// Each section of the file belongs to the package that uses it: that
// package declares the section's Config type with its YAML keys, its
// defaults (DefaultConfig) and a Validate method whose errors name the
// keys. This package only composes them: Config has one field per
// section, and Load reads a file on top of the embedded default.
//
// A file only needs the keys it changes; a list or map it gives replaces
// the default's whole. Decoding is strict: an unknown key, a key given
// twice, a second YAML document or a value of the wrong type is an error
// naming the file, the key and the line.
package configs

import (
	_ "embed"
	"fmt"
	"os"
	"strings"

	"github.com/tonevault/tonevault/agents"
	"github.com/tonevault/tonevault/api"
	"github.com/tonevault/tonevault/audit"
	"github.com/tonevault/tonevault/capture"
	"github.com/tonevault/tonevault/cluster"
	"github.com/tonevault/tonevault/internal/oplog"
	"github.com/tonevault/tonevault/media"
	"github.com/tonevault/tonevault/media/webrtc"
	"github.com/tonevault/tonevault/psp"
	"github.com/tonevault/tonevault/sip"
	"github.com/tonevault/tonevault/store"
	"github.com/tonevault/tonevault/tokenize"
)

// Default is the embedded tonevault.yaml.
//
//go:embed tonevault.yaml
var Default []byte

// Config is the whole configuration file, one field per section.
type Config struct {
	SIP     sip.Config      `yaml:"sip"`     // the B2BUA
	Media   media.Config    `yaml:"media"`   // the RTP relay and masking
	HTTP    api.HTTPConfig  `yaml:"http"`    // the HTTP listener
	Log     oplog.Config    `yaml:"log"`     // the operational log
	Audit   audit.Config    `yaml:"audit"`   // the audit trail
	Capture capture.Config  `yaml:"capture"` // the payment session
	API     api.Config      `yaml:"api"`     // the CRM API and the agent widget
	Vault   tokenize.Config `yaml:"vault"`   // tokenization
	PSP     psp.Config      `yaml:"psp"`     // the acquirer connection
	Store   store.Config    `yaml:"store"`   // the database
	Agents  agents.Config   `yaml:"agents"`  // pools of browser agents
	WebRTC  webrtc.Config   `yaml:"webrtc"`  // browser agents' media
	Cluster cluster.Config  `yaml:"cluster"` // several gateways as one
}

// Defaults is every package's DefaultConfig: what the embedded
// tonevault.yaml says too (a test keeps them equal).
func Defaults() Config {
	return Config{
		SIP:     sip.DefaultConfig(),
		Media:   media.DefaultConfig(),
		HTTP:    api.DefaultHTTPConfig(),
		Log:     oplog.DefaultConfig(),
		Audit:   audit.DefaultConfig(),
		Capture: capture.DefaultConfig(),
		API:     api.DefaultConfig(),
		Vault:   tokenize.DefaultConfig(),
		PSP:     psp.DefaultConfig(),
		Store:   store.DefaultConfig(),
		Agents:  agents.DefaultConfig(),
		WebRTC:  webrtc.DefaultConfig(),
		Cluster: cluster.DefaultConfig(),
	}
}

// Load reads the file at path on top of the default; path "" is the
// default alone.
func Load(path string) (Config, error) {
	if path == "" {
		return Parse(nil, "")
	}
	b, err := os.ReadFile(path)
	if err != nil {
		return Config{}, fmt.Errorf("configs: %w", err)
	}
	return Parse(b, path)
}

// Parse reads data (named name in errors) on top of the default and
// checks the result.
func Parse(data []byte, name string) (Config, error) {
	c := Defaults()
	if err := decode(Default, &c); err != nil {
		return Config{}, fmt.Errorf("configs: embedded default: %w", err)
	}
	if len(data) > 0 {
		if err := decode(data, &c); err != nil {
			return Config{}, fmt.Errorf("configs: %s: %w", name, err)
		}
	}
	if err := c.Validate(); err != nil {
		if name == "" {
			name = "default"
		}
		return Config{}, fmt.Errorf("configs: %s: %w", name, err)
	}
	return c, nil
}

// Validate checks every section, then what sections must agree on.
func (c Config) Validate() error {
	for _, v := range []interface{ Validate() error }{c.SIP, c.Media, c.HTTP, c.Log, c.Audit, c.Capture, c.API, c.Vault, c.PSP, c.Store, c.Agents, c.WebRTC, c.Cluster} {
		if err := v.Validate(); err != nil {
			return err
		}
	}
	// The API refuses to let out a masked number that shows more than its
	// mask_style allows: a stricter API than capture would refuse every
	// valid card.
	if c.API.MaskStyle != "" && c.Capture.MaskStyle != "" && c.API.MaskStyle != c.Capture.MaskStyle {
		return fmt.Errorf("api.mask_style %q and capture.mask_style %q differ: set both to the same style", c.API.MaskStyle, c.Capture.MaskStyle)
	}
	// Every pool a target names must exist.
	for _, t := range append([]string{c.SIP.Trunks.Platform.Target}, routeTargets(c.SIP.Routes)...) {
		if name, ok := strings.CutPrefix(t, "agents:"); ok {
			if _, ok := c.Agents.Pools[name]; !ok {
				return fmt.Errorf("%s: no pool %q in agents.pools", t, name)
			}
		}
	}
	// Nodes share payments, revocations and reversals: one SQLite file
	// per gateway cannot.
	if c.Cluster.Enabled() && c.Store.Driver != store.DriverPostgres {
		return fmt.Errorf("cluster.node %q: a cluster shares its store: set store.driver to postgres", c.Cluster.Node)
	}
	return nil
}

func routeTargets(rs []sip.Route) []string {
	out := make([]string, len(rs))
	for i, r := range rs {
		out[i] = r.Target
	}
	return out
}
