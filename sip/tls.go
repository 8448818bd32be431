package sip

import (
	"crypto/tls"
	"crypto/x509"
	"errors"
	"fmt"
	"log/slog"
	"net/netip"
	"os"
	"sync"
	"time"
)

// TLSConfig is a trunk's SIP over TLS (sip.trunks.*.tls), used when its
// transports include "tls".
type TLSConfig struct {
	// Port is the TLS listening port on the trunk's listen address (5061
	// on the carrier side by default; 0: a free port, for tests).
	Port uint16 `yaml:"port"`
	// CertFile and KeyFile are the trunk's certificate chain and key
	// (PEM). Both are read again when either file changes, at the next
	// handshake: a renewed certificate needs no restart. The certificate
	// also identifies the gateway to servers that ask for a client
	// certificate.
	CertFile string `yaml:"cert_file"`
	KeyFile  string `yaml:"key_file"`
	// CAFile verifies the servers the trunk connects to (PEM); empty: the
	// system's roots.
	CAFile string `yaml:"ca_file"`
	// ClientCAFile, when set, makes TLS mutual: a peer connecting to the
	// trunk must present a certificate that chains to one of these (PEM,
	// read again when the file changes).
	ClientCAFile string `yaml:"client_ca_file"`
	// MinVersion is the lowest TLS version accepted: "1.2" (the default)
	// or "1.3".
	MinVersion string `yaml:"min_version"`
}

func (c TLSConfig) minVersion() (uint16, error) {
	switch c.MinVersion {
	case "", "1.2":
		return tls.VersionTLS12, nil
	case "1.3":
		return tls.VersionTLS13, nil
	}
	return 0, fmt.Errorf("%q: want 1.2 or 1.3", c.MinVersion)
}

func (c TLSConfig) validate(key string) error {
	if c.CertFile == "" || c.KeyFile == "" {
		return fmt.Errorf("%s.tls.cert_file, %s.tls.key_file: TLS needs a certificate and its key", key, key)
	}
	if _, err := c.minVersion(); err != nil {
		return fmt.Errorf("%s.tls.min_version: %w", key, err)
	}
	return nil
}

// fileStamp tells whether a file changed since it was read.
type fileStamp struct {
	mod  time.Time
	size int64
}

func stampOf(path string) (fileStamp, error) {
	fi, err := os.Stat(path)
	if err != nil {
		return fileStamp{}, err
	}
	return fileStamp{fi.ModTime(), fi.Size()}, nil
}

// tlsFiles holds a trunk's certificate and client CAs as last read, and
// reads them again when their files change. A file that fails to load
// keeps the last good one in use (and is logged), so a half-written
// renewal does not stop the trunk.
type tlsFiles struct {
	cfg  TLSConfig
	key  string // the config key, for errors
	log  *slog.Logger
	min  uint16
	mu   sync.Mutex
	cert *tls.Certificate
	cs   [2]fileStamp // cert, key
	cas  *x509.CertPool
	cas0 fileStamp
	// roots verifies servers the trunk connects to; nil: the system's.
	roots *x509.CertPool
}

func newTLSFiles(cfg TLSConfig, key string, log *slog.Logger) (*tlsFiles, error) {
	if err := cfg.validate(key); err != nil {
		return nil, err
	}
	f := &tlsFiles{cfg: cfg, key: key, log: log}
	f.min, _ = cfg.minVersion()
	if err := f.loadCert(); err != nil {
		return nil, err
	}
	if cfg.ClientCAFile != "" {
		if err := f.loadClientCAs(); err != nil {
			return nil, err
		}
	}
	if cfg.CAFile != "" {
		pool, err := readPool(cfg.CAFile)
		if err != nil {
			return nil, fmt.Errorf("%s.tls.ca_file: %w", key, err)
		}
		f.roots = pool
	}
	return f, nil
}

func (f *tlsFiles) loadCert() error {
	cs, err1 := stampOf(f.cfg.CertFile)
	ks, err2 := stampOf(f.cfg.KeyFile)
	if err := errors.Join(err1, err2); err != nil {
		return fmt.Errorf("%s.tls.cert_file, %s.tls.key_file: %w", f.key, f.key, err)
	}
	c, err := tls.LoadX509KeyPair(f.cfg.CertFile, f.cfg.KeyFile)
	if err != nil {
		return fmt.Errorf("%s.tls.cert_file, %s.tls.key_file: %w", f.key, f.key, err)
	}
	f.cert, f.cs = &c, [2]fileStamp{cs, ks}
	return nil
}

func (f *tlsFiles) loadClientCAs() error {
	st, err := stampOf(f.cfg.ClientCAFile)
	if err != nil {
		return fmt.Errorf("%s.tls.client_ca_file: %w", f.key, err)
	}
	pool, err := readPool(f.cfg.ClientCAFile)
	if err != nil {
		return fmt.Errorf("%s.tls.client_ca_file: %w", f.key, err)
	}
	f.cas, f.cas0 = pool, st
	return nil
}

func readPool(path string) (*x509.CertPool, error) {
	b, err := os.ReadFile(path)
	if err != nil {
		return nil, err
	}
	pool := x509.NewCertPool()
	if !pool.AppendCertsFromPEM(b) {
		return nil, errors.New("no PEM certificate in the file")
	}
	return pool, nil
}

// current returns the certificate and client CAs, read again first if
// their files changed.
func (f *tlsFiles) current() (*tls.Certificate, *x509.CertPool) {
	f.mu.Lock()
	defer f.mu.Unlock()
	cs, err1 := stampOf(f.cfg.CertFile)
	ks, err2 := stampOf(f.cfg.KeyFile)
	if err1 == nil && err2 == nil && (cs != f.cs[0] || ks != f.cs[1]) {
		if err := f.loadCert(); err != nil {
			f.log.Warn("TLS certificate not reloaded; the previous one stays in use", "error", err)
			f.cs = [2]fileStamp{cs, ks} // not again until the files change again
		} else {
			f.log.Info("TLS certificate reloaded", "file", f.cfg.CertFile)
		}
	}
	if f.cfg.ClientCAFile != "" {
		if st, err := stampOf(f.cfg.ClientCAFile); err == nil && st != f.cas0 {
			if err := f.loadClientCAs(); err != nil {
				f.log.Warn("TLS client CAs not reloaded; the previous ones stay in use", "error", err)
				f.cas0 = st
			}
		}
	}
	return f.cert, f.cas
}

// serverConfig is the TLS configuration of the trunk's listener.
func (f *tlsFiles) serverConfig() *tls.Config {
	return &tls.Config{
		MinVersion: f.min,
		GetConfigForClient: func(*tls.ClientHelloInfo) (*tls.Config, error) {
			cert, cas := f.current()
			c := &tls.Config{MinVersion: f.min, Certificates: []tls.Certificate{*cert}}
			if cas != nil {
				c.ClientAuth, c.ClientCAs = tls.RequireAndVerifyClientCert, cas
			}
			return c, nil
		},
	}
}

// clientConfig is the TLS configuration of the connections the trunk
// opens: the server is verified against CAFile (or the system's roots)
// and the host of the target URI, and the trunk's certificate is shown
// when the server asks for one.
func (f *tlsFiles) clientConfig() *tls.Config {
	return &tls.Config{
		MinVersion: f.min,
		RootCAs:    f.roots,
		GetClientCertificate: func(*tls.CertificateRequestInfo) (*tls.Certificate, error) {
			cert, _ := f.current()
			return cert, nil
		},
	}
}

// AddrTLS is the bound SIP over TLS address of trunk "carrier" or
// "platform"; invalid when the trunk has no TLS.
func (g *Gateway) AddrTLS(trunk string) netip.AddrPort {
	switch trunk {
	case "carrier":
		return g.carrier.tlsAddr
	case "platform":
		return g.platform.tlsAddr
	}
	return netip.AddrPort{}
}
