package api

import (
	"crypto/tls"
	"errors"
	"fmt"
	"net/http"
	"net/netip"
	"time"
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

	// The server's timeouts; 0 takes the default. ReadHeaderTimeout
	// bounds a request's headers (and a new connection's silence),
	// ReadTimeout the whole request with its body, WriteTimeout the
	// answer (event streams set their own deadline per write), and
	// IdleTimeout how long a keep-alive connection may wait for its next
	// request.
	ReadHeaderTimeout time.Duration `yaml:"read_header_timeout"`
	ReadTimeout       time.Duration `yaml:"read_timeout"`
	WriteTimeout      time.Duration `yaml:"write_timeout"`
	IdleTimeout       time.Duration `yaml:"idle_timeout"`
	// MaxHeaderBytes caps a request's header block.
	MaxHeaderBytes int `yaml:"max_header_bytes"`
	// MaxConns caps the connections open at once; past it new clients
	// wait in the listen backlog. 0: as many as the file descriptor
	// limit leaves after the reserve for calls (see `tonevault serve
	// --help`); a value above that is lowered to it.
	MaxConns int `yaml:"max_conns"`
	// MaxConnsPerIP caps the connections of one client address (an IPv6
	// /64); more are closed at once. 0: half of the connection cap.
	MaxConnsPerIP int `yaml:"max_conns_per_ip"`
}

// The HTTP server's defaults.
const (
	DefaultReadHeaderTimeout = 10 * time.Second
	DefaultReadTimeout       = 30 * time.Second
	DefaultWriteTimeout      = 30 * time.Second
	DefaultIdleTimeout       = 60 * time.Second
	DefaultMaxHeaderBytes    = 32 << 10
)

// DefaultHTTPConfig listens on http://127.0.0.1:8080.
func DefaultHTTPConfig() HTTPConfig {
	return HTTPConfig{
		Listen:            netip.MustParseAddrPort("127.0.0.1:8080"),
		ReadHeaderTimeout: DefaultReadHeaderTimeout,
		ReadTimeout:       DefaultReadTimeout,
		WriteTimeout:      DefaultWriteTimeout,
		IdleTimeout:       DefaultIdleTimeout,
		MaxHeaderBytes:    DefaultMaxHeaderBytes,
	}
}

// Server is an http.Server for h with the configured timeouts and
// header cap (defaults for zero values). Serve it on a listener wrapped
// by LimitListener.
func (c HTTPConfig) Server(h http.Handler) *http.Server {
	or := func(v, d time.Duration) time.Duration {
		if v > 0 {
			return v
		}
		return d
	}
	mhb := c.MaxHeaderBytes
	if mhb <= 0 {
		mhb = DefaultMaxHeaderBytes
	}
	return &http.Server{
		Handler:           h,
		ReadHeaderTimeout: or(c.ReadHeaderTimeout, DefaultReadHeaderTimeout),
		ReadTimeout:       or(c.ReadTimeout, DefaultReadTimeout),
		WriteTimeout:      or(c.WriteTimeout, DefaultWriteTimeout),
		IdleTimeout:       or(c.IdleTimeout, DefaultIdleTimeout),
		MaxHeaderBytes:    mhb,
	}
}

// ConnLimits are the listener's caps for a budget of file descriptors
// the HTTP side may use: MaxConns, lowered to the budget (0 takes the
// budget), and MaxConnsPerIP (0: half of that).
func (c HTTPConfig) ConnLimits(budget int) (total, perIP int) {
	total = budget
	if c.MaxConns > 0 && c.MaxConns < budget {
		total = c.MaxConns
	}
	perIP = c.MaxConnsPerIP
	if perIP <= 0 || perIP > total {
		perIP = max(1, total/2)
	}
	return total, perIP
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
	for _, d := range []struct {
		key string
		v   time.Duration
	}{{"read_header_timeout", c.ReadHeaderTimeout}, {"read_timeout", c.ReadTimeout}, {"write_timeout", c.WriteTimeout}, {"idle_timeout", c.IdleTimeout}} {
		if d.v < 0 {
			return fmt.Errorf("http.%s: negative", d.key)
		}
	}
	if c.MaxHeaderBytes < 0 || c.MaxConns < 0 || c.MaxConnsPerIP < 0 {
		return errors.New("http.max_header_bytes, max_conns and max_conns_per_ip: negative")
	}
	if c.Pprof && !c.Listen.Addr().IsLoopback() {
		return fmt.Errorf("http.pprof: only on a loopback http.listen, not %s", c.Listen.Addr())
	}
	return nil
}
