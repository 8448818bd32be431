package tokenize

import (
	"context"
	"crypto/tls"
	"net"
	"net/http"

	"github.com/tonevault/tonevault/internal/secret"
)

// wipingConn zeroes what it was given to write once it is written. Below
// net/http, what it is given is the connection's write buffer (a
// bufio.Writer of 4 KiB that lives as long as the connection): request
// headers and bodies, some with card data in base64, that would otherwise
// stay there until a later request overwrote them, and a short request
// after a long one overwrites only its start.
//
// io.Writer asks Write not to modify its argument. The callers here are
// bufio.Writer.Flush, which never reads the written bytes again (on a
// short write it keeps only the bytes after n, which are not wiped), and
// io.Copy's scratch buffer, refilled before each Write.
type wipingConn struct{ net.Conn }

func (c wipingConn) Write(p []byte) (int, error) {
	n, err := c.Conn.Write(p)
	secret.Wipe(p[:n])
	return n, err
}

// wipeWrites makes tr's connections wipingConns. For HTTPS it does the TLS
// handshake itself, so that the wipingConn sits above TLS, where the
// plaintext is; it offers HTTP/1.1 only, since net/http's HTTP/2 keeps
// request bodies in buffers of its own (pooled, and per connection) that
// this cannot reach.
func wipeWrites(tr *http.Transport) {
	dial := tr.DialContext
	if dial == nil {
		dial = (&net.Dialer{}).DialContext
	}
	tr.DialContext = func(ctx context.Context, network, addr string) (net.Conn, error) {
		c, err := dial(ctx, network, addr)
		if err != nil {
			return nil, err
		}
		return wipingConn{c}, nil
	}
	tr.DialTLSContext = func(ctx context.Context, network, addr string) (net.Conn, error) {
		raw, err := dial(ctx, network, addr)
		if err != nil {
			return nil, err
		}
		cfg := tr.TLSClientConfig.Clone()
		if cfg == nil {
			cfg = &tls.Config{MinVersion: tls.VersionTLS12}
		}
		cfg.NextProtos = []string{"http/1.1"}
		if cfg.ServerName == "" {
			host, _, err := net.SplitHostPort(addr)
			if err != nil {
				host = addr
			}
			cfg.ServerName = host
		}
		tc := tls.Client(raw, cfg)
		if err := tc.HandshakeContext(ctx); err != nil {
			raw.Close()
			return nil, err
		}
		return wipingConn{tc}, nil
	}
	tr.ForceAttemptHTTP2 = false
	tr.TLSNextProto = map[string]func(string, *tls.Conn) http.RoundTripper{}
}
