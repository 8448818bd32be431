package cluster

import (
	"crypto/tls"
	"net"
	"net/http"
	"path/filepath"
	"strings"
	"sync/atomic"
	"testing"
	"time"
)

func node(name string, peers ...Peer) Config {
	c := DefaultConfig()
	c.Node, c.Listen, c.Peers = name, "127.0.0.1:9443", peers
	c.CertFile, c.KeyFile, c.CAFile = "n.pem", "n.key", "ca.pem"
	return c
}

func TestValidate(t *testing.T) {
	tests := []struct {
		name    string
		edit    func(c *Config)
		wantErr string
	}{
		{"alone", func(c *Config) { *c = DefaultConfig() }, ""},
		{"node", func(c *Config) {}, ""},
		{"peers without a name", func(c *Config) { c.Node = "" }, "cluster.node: a node"},
		{"upper case", func(c *Config) { c.Node = "GW1" }, "cluster.node"},
		{"starts with a digit", func(c *Config) { c.Node = "1gw" }, "cluster.node"},
		{"card-like digits", func(c *Config) { c.Node = "n4111111" }, "cluster.node"},
		{"too long", func(c *Config) { c.Node = strings.Repeat("a", 33) }, "cluster.node"},
		{"no listen", func(c *Config) { c.Listen = "" }, "cluster.listen"},
		{"any address", func(c *Config) { c.Listen = ":9443" }, "cluster.listen"},
		{"no ca", func(c *Config) { c.CAFile = "" }, "cluster.ca_file"},
		{"peer twice", func(c *Config) { c.Peers = []Peer{{"b", "h:1"}, {"b", "h:2"}} }, "cluster.peers[1].name"},
		{"peer is self", func(c *Config) { c.Peers = []Peer{{"a", "h:1"}} }, "cluster.peers[0].name"},
		{"peer addr", func(c *Config) { c.Peers = []Peer{{"b", "h"}} }, "cluster.peers[0].addr"},
		{"probe too fast", func(c *Config) { c.ProbeInterval = time.Millisecond }, "cluster.probe_interval"},
		{"dead too soon", func(c *Config) { c.DeadAfter = c.ProbeInterval }, "cluster.dead_after"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			c := node("a", Peer{"b", "127.0.0.1:9444"})
			tt.edit(&c)
			err := c.Validate()
			switch {
			case tt.wantErr == "" && err != nil:
				t.Fatalf("unexpected error: %v", err)
			case tt.wantErr != "" && (err == nil || !strings.Contains(err.Error(), tt.wantErr)):
				t.Fatalf("error %v, want one with %q", err, tt.wantErr)
			}
		})
	}
}

func TestCallNode(t *testing.T) {
	tests := map[string]string{
		"c-gw1-abcdefghijklmnop":       "gw1",
		"c-gw-east-1-abcdefghijklmnop": "gw-east-1",
		"c-abcdefghijklmnop":           "", // a gateway alone
		"c-GW1-abcdefghijklmnop":       "",
		"pay_gw1-abcdefghijklmnop":     "",
		"c--abcdefghijklmnop":          "",
		"":                             "",
	}
	for id, want := range tests {
		if got := CallNode(id); got != want {
			t.Errorf("CallNode(%q) = %q, want %q", id, got, want)
		}
	}
}

// pair is two nodes' TLS with certificates from one CA.
func pair(t *testing.T, nodes ...string) map[string]*TLS {
	t.Helper()
	dir := t.TempDir()
	if err := DevCerts(dir, nodes, time.Hour); err != nil {
		t.Fatal(err)
	}
	out := map[string]*TLS{}
	for _, n := range nodes {
		c := DefaultConfig()
		c.Node, c.CertFile, c.KeyFile, c.CAFile = n, filepath.Join(dir, n+".pem"), filepath.Join(dir, n+".key"), filepath.Join(dir, "ca.pem")
		for _, p := range nodes {
			if p != n {
				c.Peers = append(c.Peers, Peer{Name: p, Addr: "127.0.0.1:1"})
			}
		}
		tl, err := LoadTLS(c)
		if err != nil {
			t.Fatal(err)
		}
		out[n] = tl
	}
	return out
}

func TestMutualTLS(t *testing.T) {
	a := pair(t, "a", "b")
	// "x" holds a certificate of the same CA that names no peer of a's.
	x := pair(t, "a", "x") // another CA: refused outright
	ln, err := tls.Listen("tcp", "127.0.0.1:0", a["a"].Server())
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	go func() {
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			go func() {
				_ = c.(*tls.Conn).Handshake()
				c.Close()
			}()
		}
	}()
	dial := func(cfg *tls.Config) error {
		c, err := tls.DialWithDialer(&net.Dialer{Timeout: 2 * time.Second}, "tcp", ln.Addr().String(), cfg)
		if err != nil {
			return err
		}
		defer c.Close()
		// TLS 1.3: the server's verdict on the client comes with the first read.
		_ = c.SetDeadline(time.Now().Add(2 * time.Second))
		_, err = c.Read(make([]byte, 1))
		if err != nil && strings.Contains(err.Error(), "EOF") {
			return nil // accepted, then closed by the test server
		}
		return err
	}
	if err := dial(a["b"].Client("a")); err != nil {
		t.Fatalf("peer b refused: %v", err)
	}
	if err := dial(a["b"].Client("c")); err == nil {
		t.Error("b dialled a certificate that does not name the node it meant")
	}
	if err := dial(x["x"].Client("a")); err == nil {
		t.Error("a certificate of another CA was taken")
	}
	self := a["a"].Client("a") // a's own certificate names no peer of a's
	if err := dial(self); err == nil {
		t.Error("a client certificate naming no peer was taken")
	}
}

func TestPeersOnDead(t *testing.T) {
	tl := pair(t, "a", "b")
	var healthy atomic.Bool
	healthy.Store(true)
	srv := &http.Server{Handler: http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.URL.Path != healthPath || !healthy.Load() {
			http.Error(w, "no", http.StatusServiceUnavailable)
			return
		}
		w.Write([]byte("ok\n"))
	}), TLSConfig: tl["b"].Server()}
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	go srv.ServeTLS(ln, "", "")
	defer srv.Close()

	c := DefaultConfig()
	c.Node, c.ProbeInterval, c.DeadAfter = "a", 100*time.Millisecond, 300*time.Millisecond
	c.Peers = []Peer{{Name: "b", Addr: ln.Addr().String()}}
	dead := make(chan string, 4)
	p := NewPeers(c, tl["a"], Options{OnDead: func(n string) { dead <- n }})
	p.Start()
	defer p.Close()
	waitFor(t, func() bool { return p.Up("b") })
	select {
	case n := <-dead:
		t.Fatalf("%s taken for dead while it answers", n)
	case <-time.After(500 * time.Millisecond):
	}
	healthy.Store(false)
	select {
	case n := <-dead:
		if n != "b" {
			t.Fatalf("dead %q", n)
		}
	case <-time.After(5 * time.Second):
		t.Fatal("b never taken for dead")
	}
	select {
	case <-dead:
		t.Fatal("one death reported twice")
	case <-time.After(500 * time.Millisecond):
	}
	healthy.Store(true)
	waitFor(t, func() bool { return p.Up("b") })
	healthy.Store(false)
	select {
	case <-dead:
	case <-time.After(5 * time.Second):
		t.Fatal("a second death not reported")
	}
}

func waitFor(t *testing.T, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(5 * time.Second)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatal("condition not met in 5s")
		}
		time.Sleep(20 * time.Millisecond)
	}
}
