package api

import (
	"crypto/tls"
	"errors"
	"fmt"
	"net/netip"
)

// HTTPConfig is the "http:" section of the configuration: the one HTTP
// listener that serves the API, the widget, /metrics, /healthz and
// /readyz.
type HTTPConfig struct {
	Listen netip.AddrPort `yaml:"listen"`
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

// DefaultHTTPConfig listens on http://127.0.0.1:8080.
func DefaultHTTPConfig() HTTPConfig {
	return HTTPConfig{Listen: netip.MustParseAddrPort("127.0.0.1:8080")}
}

// TLS reports whether the listener serves HTTPS.
func (c HTTPConfig) TLS() bool { return c.TLSCertFile != "" }

// Validate reports a setting that cannot work, naming its key. It loads
// the certificate, so that a wrong file stops the start, not the first
// client.
func (c HTTPConfig) Validate() error {
	if !c.Listen.Addr().IsValid() {
		return errors.New("http.listen: no address")
	}
	if (c.TLSCertFile == "") != (c.TLSKeyFile == "") {
		return errors.New("http.tls_cert_file and http.tls_key_file go together")
	}
	if c.TLSCertFile != "" {
		if _, err := tls.LoadX509KeyPair(c.TLSCertFile, c.TLSKeyFile); err != nil {
			return fmt.Errorf("http.tls_cert_file/tls_key_file: %w", err)
		}
	}
	if c.Pprof && !c.Listen.Addr().IsLoopback() {
		return fmt.Errorf("http.pprof: only on a loopback http.listen, not %s", c.Listen.Addr())
	}
	return nil
}
