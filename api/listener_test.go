package api

import (
	"io"
	"net"
	"net/http"
	"net/netip"
	"strings"
	"sync"
	"testing"
	"time"
)

// acceptAll accepts from ln until it closes, handing each connection on.
func acceptAll(ln net.Listener) <-chan net.Conn {
	ch := make(chan net.Conn, 64)
	go func() {
		defer close(ch)
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			ch <- c
		}
	}()
	return ch
}

func dialFrom(t *testing.T, from, to string) net.Conn {
	t.Helper()
	d := net.Dialer{LocalAddr: &net.TCPAddr{IP: net.ParseIP(from)}}
	c, err := d.Dial("tcp", to)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { c.Close() })
	return c
}

func accepted(t *testing.T, ch <-chan net.Conn) net.Conn {
	t.Helper()
	select {
	case c := <-ch:
		return c
	case <-time.After(10 * time.Second):
		t.Fatal("no connection accepted")
		return nil
	}
}

func TestLimitListenerTotal(t *testing.T) {
	raw, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	ln := LimitListener(raw, 3, 0, nil)
	defer ln.Close()
	ch := acceptAll(ln)
	for range 5 {
		dialFrom(t, "127.0.0.1", raw.Addr().String())
	}
	var got []net.Conn
	for range 3 {
		got = append(got, accepted(t, ch))
	}
	select {
	case <-ch:
		t.Fatal("a fourth connection was accepted while three were open")
	case <-time.After(200 * time.Millisecond):
	}
	got[0].Close()
	accepted(t, ch) // the fourth, now that one closed
}

func TestLimitListenerPerIP(t *testing.T) {
	raw, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	var mu sync.Mutex
	var refused []netip.Addr
	ln := LimitListener(raw, 0, 2, func(a netip.Addr) { mu.Lock(); refused = append(refused, a); mu.Unlock() })
	defer ln.Close()
	ch := acceptAll(ln)
	addr := raw.Addr().String()
	dialFrom(t, "127.0.0.1", addr)
	dialFrom(t, "127.0.0.1", addr)
	s1 := accepted(t, ch)
	accepted(t, ch)
	// The third from 127.0.0.1 is closed at once; 127.0.0.2 has places.
	a3 := dialFrom(t, "127.0.0.1", addr)
	a3.SetReadDeadline(time.Now().Add(10 * time.Second))
	if n, err := a3.Read(make([]byte, 1)); err == nil || n != 0 {
		t.Fatalf("third connection from one address: read %d, %v; want it closed", n, err)
	}
	dialFrom(t, "127.0.0.2", addr)
	if c := accepted(t, ch); c.RemoteAddr().(*net.TCPAddr).IP.String() != "127.0.0.2" {
		t.Fatalf("accepted %v, want the other address", c.RemoteAddr())
	}
	mu.Lock()
	if len(refused) != 1 || refused[0] != netip.MustParseAddr("127.0.0.1") {
		t.Errorf("refused %v", refused)
	}
	mu.Unlock()
	// A closed connection gives its place back, once.
	s1.Close()
	s1.Close()
	dialFrom(t, "127.0.0.1", addr)
	accepted(t, ch)
	l := ln.(*perIPListener)
	l.mu.Lock()
	defer l.mu.Unlock()
	if n := l.open[netip.MustParsePrefix("127.0.0.1/32")]; n != 2 {
		t.Errorf("127.0.0.1 counted %d open, want 2", n)
	}
}

func TestHTTPConfigServer(t *testing.T) {
	s := HTTPConfig{}.Server(nil)
	if s.ReadHeaderTimeout != DefaultReadHeaderTimeout || s.ReadTimeout != DefaultReadTimeout || s.WriteTimeout != DefaultWriteTimeout ||
		s.IdleTimeout != DefaultIdleTimeout || s.MaxHeaderBytes != DefaultMaxHeaderBytes {
		t.Errorf("zero config: %+v", s)
	}
	s = HTTPConfig{IdleTimeout: time.Second, MaxHeaderBytes: 100}.Server(nil)
	if s.IdleTimeout != time.Second || s.MaxHeaderBytes != 100 {
		t.Errorf("set values: %+v", s)
	}
	for _, tc := range []struct {
		cfg                  HTTPConfig
		budget, total, perIP int
	}{
		{HTTPConfig{}, 1000, 1000, 500},
		{HTTPConfig{MaxConns: 200}, 1000, 200, 100},
		{HTTPConfig{MaxConns: 5000}, 1000, 1000, 500},
		{HTTPConfig{MaxConnsPerIP: 64}, 1000, 1000, 64},
		{HTTPConfig{MaxConnsPerIP: 2000}, 1000, 1000, 500},
		{HTTPConfig{}, 1, 1, 1},
	} {
		if total, perIP := tc.cfg.ConnLimits(tc.budget); total != tc.total || perIP != tc.perIP {
			t.Errorf("%+v with %d: %d, %d; want %d, %d", tc.cfg, tc.budget, total, perIP, tc.total, tc.perIP)
		}
	}
	for _, bad := range []HTTPConfig{{IdleTimeout: -1}, {ReadTimeout: -1}, {MaxConns: -1}, {MaxHeaderBytes: -1}} {
		bad.Listen = netip.MustParseAddrPort("127.0.0.1:0")
		if err := bad.Validate(); err == nil {
			t.Errorf("%+v accepted", bad)
		}
	}
}

// TestIdleConnectionsClosed: a keep-alive connection that sends nothing
// more is closed after IdleTimeout, and one that never sends a request
// after ReadHeaderTimeout.
func TestIdleConnectionsClosed(t *testing.T) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	srv := HTTPConfig{IdleTimeout: 100 * time.Millisecond, ReadHeaderTimeout: 100 * time.Millisecond}.Server(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Write([]byte("ok"))
	}))
	go srv.Serve(ln)
	t.Cleanup(func() { srv.Close() })
	for _, send := range []string{"GET / HTTP/1.1\r\nHost: x\r\n\r\n", ""} {
		c := dialFrom(t, "127.0.0.1", ln.Addr().String())
		if send != "" {
			c.Write([]byte(send))
		}
		c.SetReadDeadline(time.Now().Add(10 * time.Second))
		b, err := io.ReadAll(c)
		if ne, ok := err.(net.Error); ok && ne.Timeout() {
			t.Errorf("after %q the server kept the connection open", send)
		}
		if send != "" && !strings.HasSuffix(string(b), "ok") {
			t.Errorf("answer %q", b)
		}
	}
}
