// Package configs holds ToneVault's default configuration (tonevault.yaml,
// embedded) and reads configuration files.
//
// A file is read on top of the default, so it only needs the keys it
// changes; lists replace the default's list whole. Decoding is strict: an
// unknown key, a second YAML document or a value of the wrong type is an
// error naming the file and line. Each top-level section is one field of
// Config, so a new section is a new field and a new block in the YAML.
package configs

import (
	"crypto/tls"
	_ "embed"
	"errors"
	"fmt"
	"io"
	"net/netip"
	"os"
	"strings"
	"time"

	"go.yaml.in/yaml/v3"

	"github.com/tonevault/tonevault/api"
	"github.com/tonevault/tonevault/capture"
	"github.com/tonevault/tonevault/psp"
	"github.com/tonevault/tonevault/tokenize"
)

// Default is the embedded tonevault.yaml.
//
//go:embed tonevault.yaml
var Default []byte

// Config is the whole configuration file.
type Config struct {
	SIP   SIP   `yaml:"sip"`
	Media Media `yaml:"media"`
	HTTP  HTTP  `yaml:"http"`
	Log   Log   `yaml:"log"`
	Audit Audit `yaml:"audit"`
	// Capture is the payment session (package capture).
	Capture capture.Config `yaml:"capture"`
	// API is the CRM API and the agent widget (package api).
	API api.Config `yaml:"api"`
	// Vault is tokenization (package tokenize).
	Vault tokenize.Config `yaml:"vault"`
	// PSP is the acquirer connection (package psp).
	PSP PSP `yaml:"psp"`
}

// PSP is the ISO 8583 connector (psp.Config). No addrs: submit ends in a
// clear "not configured" failure.
type PSP struct {
	Addrs          []string          `yaml:"addrs"`
	Kind           string            `yaml:"kind"`   // authorization (0100) or sale (0200)
	Header         string            `yaml:"header"` // binary2 or ascii4
	CAFile         string            `yaml:"ca_file"`
	CertFile       string            `yaml:"cert_file"`
	KeyFile        string            `yaml:"key_file"`
	ConnectTimeout time.Duration     `yaml:"connect_timeout"`
	Timeout        time.Duration     `yaml:"timeout"`
	EchoInterval   time.Duration     `yaml:"echo_interval"`
	TerminalID     string            `yaml:"terminal_id"`
	MerchantID     string            `yaml:"merchant_id"`
	MCC            string            `yaml:"mcc"`
	MOTOIndicators map[string]string `yaml:"moto_indicators"`
	StateDir       string            `yaml:"state_dir"`
}

// SIP is the B2BUA (package sip).
type SIP struct {
	Trunks              Trunks        `yaml:"trunks"`
	RejectUninspectable bool          `yaml:"reject_uninspectable"`
	CorrelationHeaders  []string      `yaml:"correlation_headers"`
	RingTimeout         time.Duration `yaml:"ring_timeout"`
}

// Trunks are the two sides of the gateway.
type Trunks struct {
	Carrier  Trunk `yaml:"carrier"`
	Platform Trunk `yaml:"platform"`
}

// Trunk is one side's SIP listener and routing.
type Trunk struct {
	Listen     string   `yaml:"listen"`
	Transports []string `yaml:"transports"`
	Allow      []string `yaml:"allow"`
	Target     string   `yaml:"target"`
}

// Media is the RTP relay (package sip/media, media.Config).
type Media struct {
	BindIP       string        `yaml:"bind_ip"`
	PortMin      int           `yaml:"port_min"`
	PortMax      int           `yaml:"port_max"`
	LookAhead    time.Duration `yaml:"look_ahead"`
	Mask         string        `yaml:"mask"`
	Policy       string        `yaml:"policy"`
	MediaTimeout time.Duration `yaml:"media_timeout"`
	MaxDuration  time.Duration `yaml:"max_duration"`
	IO           string        `yaml:"io"`
}

// HTTP is the HTTP listener (metrics, health, API).
type HTTP struct {
	Listen string `yaml:"listen"`
	// Pprof serves Go's profiler at /debug/pprof/ on this listener: for
	// measuring, never on an address others can reach (profiles show
	// memory, which may hold card data).
	Pprof bool `yaml:"pprof"`
	// TLSCertFile and TLSKeyFile (PEM) serve the listener over HTTPS: the
	// API carries bearer keys and the widget its tokens, so anything but
	// loopback wants them.
	TLSCertFile string `yaml:"tls_cert_file"`
	TLSKeyFile  string `yaml:"tls_key_file"`
}

// Log is the operational log.
type Log struct {
	Level    string `yaml:"level"`
	SIPLevel string `yaml:"sip_level"`
}

// Audit is the audit trail.
type Audit struct {
	// Signer signs checkpoints: "hmac" with KeyFile, or "vault" with the
	// transit ed25519 key vault.transit.signing_key.
	Signer  string `yaml:"signer"`
	Path    string `yaml:"path"`
	KeyFile string `yaml:"key_file"`
	KeyID   string `yaml:"key_id"`
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
	var c Config
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

func decode(data []byte, c *Config) error {
	dec := yaml.NewDecoder(strings.NewReader(string(data)))
	dec.KnownFields(true)
	if err := dec.Decode(c); err != nil {
		if errors.Is(err, io.EOF) {
			return nil // empty file: nothing changed
		}
		return err
	}
	var extra any
	if err := dec.Decode(&extra); !errors.Is(err, io.EOF) {
		return errors.New("more than one YAML document")
	}
	return nil
}

// Validate checks values that decode but cannot work, naming their keys.
func (c Config) Validate() error {
	for _, t := range []struct {
		key string
		t   Trunk
	}{{"sip.trunks.carrier", c.SIP.Trunks.Carrier}, {"sip.trunks.platform", c.SIP.Trunks.Platform}} {
		if _, err := t.t.ListenAddr(); err != nil {
			return fmt.Errorf("%s.listen: %w", t.key, err)
		}
		if _, err := t.t.AllowPrefixes(); err != nil {
			return fmt.Errorf("%s.allow: %w", t.key, err)
		}
		for _, tp := range t.t.Transports {
			if tp != "udp" && tp != "tcp" {
				return fmt.Errorf("%s.transports: %q: want udp or tcp", t.key, tp)
			}
		}
		if t.t.Target != "" && !strings.HasPrefix(t.t.Target, "sip:") {
			return fmt.Errorf("%s.target: %q is not a sip: URI", t.key, t.t.Target)
		}
	}
	if c.SIP.RingTimeout < 0 {
		return errors.New("sip.ring_timeout: negative")
	}
	if _, err := netip.ParseAddr(c.Media.BindIP); err != nil {
		return fmt.Errorf("media.bind_ip: %w", err)
	}
	hl, err := netip.ParseAddrPort(c.HTTP.Listen)
	if err != nil {
		return fmt.Errorf("http.listen: %w", err)
	}
	if (c.HTTP.TLSCertFile == "") != (c.HTTP.TLSKeyFile == "") {
		return errors.New("http.tls_cert_file and http.tls_key_file go together")
	}
	if c.HTTP.TLSCertFile != "" {
		if _, err := tls.LoadX509KeyPair(c.HTTP.TLSCertFile, c.HTTP.TLSKeyFile); err != nil {
			return fmt.Errorf("http.tls_cert_file/tls_key_file: %w", err)
		}
	}
	if c.HTTP.Pprof && !hl.Addr().IsLoopback() {
		return fmt.Errorf("http.pprof: only on a loopback http.listen, not %s", hl.Addr())
	}
	for _, l := range []struct{ key, v string }{{"log.level", c.Log.Level}, {"log.sip_level", c.Log.SIPLevel}} {
		switch l.v {
		case "debug", "info", "warn", "error":
		default:
			return fmt.Errorf("%s: %q: want debug, info, warn or error", l.key, l.v)
		}
	}
	if c.Audit.Path == "" {
		return errors.New("audit.path: empty")
	}
	if c.Audit.Signer != "hmac" && c.Audit.Signer != "vault" {
		return fmt.Errorf("audit.signer: %q: want hmac or vault", c.Audit.Signer)
	}
	if err := c.Vault.Validate(); err != nil {
		return err
	}
	if len(c.PSP.Addrs) > 0 {
		if _, err := psp.ParseHeader(c.PSP.Header); err != nil {
			return fmt.Errorf("psp.header: %w", err)
		}
		if c.PSP.Kind != "authorization" && c.PSP.Kind != "sale" {
			return fmt.Errorf("psp.kind: %q: want authorization or sale", c.PSP.Kind)
		}
		if c.PSP.StateDir == "" {
			return errors.New("psp.state_dir: empty (the reversal queue and the STAN counter live there)")
		}
	}
	return nil
}

// ListenAddr is the trunk's listen address.
func (t Trunk) ListenAddr() (netip.AddrPort, error) {
	return netip.ParseAddrPort(t.Listen)
}

// AllowPrefixes parses the allow list; a bare address is one host.
func (t Trunk) AllowPrefixes() ([]netip.Prefix, error) {
	var out []netip.Prefix
	for _, s := range t.Allow {
		if !strings.Contains(s, "/") {
			a, err := netip.ParseAddr(s)
			if err != nil {
				return nil, err
			}
			out = append(out, netip.PrefixFrom(a, a.BitLen()))
			continue
		}
		p, err := netip.ParsePrefix(s)
		if err != nil {
			return nil, err
		}
		out = append(out, p.Masked())
	}
	return out, nil
}
