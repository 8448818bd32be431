package cluster

import (
	"crypto/tls"
	"crypto/x509"
	"errors"
	"fmt"
	"os"
	"slices"
)

// TLS holds a node's side of mutual TLS with its peers.
type TLS struct {
	self  string
	peers []string
	cert  tls.Certificate
	roots *x509.CertPool
}

// LoadTLS reads the node's certificate, key and CA (c.Enabled must hold).
func LoadTLS(c Config) (*TLS, error) {
	cert, err := tls.LoadX509KeyPair(c.CertFile, c.KeyFile)
	if err != nil {
		return nil, fmt.Errorf("cluster.cert_file, key_file: %w", err)
	}
	ca, err := os.ReadFile(c.CAFile)
	if err != nil {
		return nil, fmt.Errorf("cluster.ca_file: %w", err)
	}
	roots := x509.NewCertPool()
	if !roots.AppendCertsFromPEM(ca) {
		return nil, errors.New("cluster.ca_file: no PEM certificate in it")
	}
	leaf, err := x509.ParseCertificate(cert.Certificate[0])
	if err != nil {
		return nil, fmt.Errorf("cluster.cert_file: %w", err)
	}
	if err := leaf.VerifyHostname(c.Node); err != nil {
		return nil, fmt.Errorf("cluster.cert_file: the certificate must name this node (%q) in its SAN: %w", c.Node, err)
	}
	t := &TLS{self: c.Node, cert: cert, roots: roots}
	for _, p := range c.Peers {
		t.peers = append(t.peers, p.Name)
	}
	return t, nil
}

// Server is the peer listener's configuration: a client must present a
// certificate from the CA that names one of the peers.
func (t *TLS) Server() *tls.Config {
	return &tls.Config{
		MinVersion:   tls.VersionTLS13,
		Certificates: []tls.Certificate{t.cert},
		ClientAuth:   tls.RequireAndVerifyClientCert,
		ClientCAs:    t.roots,
		VerifyPeerCertificate: func(_ [][]byte, chains [][]*x509.Certificate) error {
			if len(chains) == 0 || len(chains[0]) == 0 {
				return errors.New("cluster: no verified client certificate")
			}
			if !slices.ContainsFunc(t.peers, func(p string) bool { return chains[0][0].VerifyHostname(p) == nil }) {
				return errors.New("cluster: the client certificate names no peer of this node")
			}
			return nil
		},
	}
}

// Client is the configuration to reach peer: its certificate must come
// from the CA and name it, whatever address it was reached at.
func (t *TLS) Client(peer string) *tls.Config {
	return &tls.Config{
		MinVersion:   tls.VersionTLS13,
		Certificates: []tls.Certificate{t.cert},
		RootCAs:      t.roots,
		ServerName:   peer,
	}
}
