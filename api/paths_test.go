package api

import (
	"bufio"
	"fmt"
	"net"
	"net/http"
	"net/http/httptest"
	"testing"
)

// rawGet sends path exactly as written (Go's client would clean some of
// them) and returns the status line's code and the headers.
func rawGet(t *testing.T, addr, path, cred string) (*http.Response, string) {
	t.Helper()
	c, err := net.Dial("tcp", addr)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	fmt.Fprintf(c, "GET %s HTTP/1.1\r\nHost: %s\r\nAuthorization: Bearer %s\r\nConnection: close\r\n\r\n", path, addr, cred)
	resp, err := http.ReadResponse(bufio.NewReader(c), nil)
	if err != nil {
		t.Fatalf("GET %s: %v", path, err)
	}
	b := readBody(t, resp)
	return resp, string(b)
}

// TestCleanPaths: every way of writing a route other than its own is a
// 404 problem, never a redirect, from the API and from CleanPaths around
// an ordinary mux (what serve's outer handler is).
func TestCleanPaths(t *testing.T) {
	e := newEnv(t, testConfig(), Deps{})
	outer := http.NewServeMux()
	outer.HandleFunc("GET /healthz", func(w http.ResponseWriter, r *http.Request) { w.Write([]byte("ok")) })
	outer.Handle("/v1/", e.srv)
	wrapped := httptest.NewServer(CleanPaths(outer))
	t.Cleanup(wrapped.Close)
	bare := httptest.NewServer(outer)
	t.Cleanup(bare.Close)

	unclean := []string{
		"/v1//calls", "//v1/calls", "/v1/./calls", "/v1/../v1/calls", "/v1/calls/.", "/v1/calls/call-1/..",
		"/v1/%2e/calls", "/v1/%2E%2E/v1/calls", "/v1/calls%2Fcall-1", "/v1/calls%2fcall-1", "/v1/calls/call-1%5C..",
		"/v1/calls/call%01", "/healthz/../v1/calls", "/v1/calls//",
	}
	for _, srv := range []struct {
		name string
		addr string
	}{{"api", e.ts.Listener.Addr().String()}, {"outer", wrapped.Listener.Addr().String()}} {
		for _, p := range unclean {
			resp, body := rawGet(t, srv.addr, p, testKey)
			if resp.StatusCode != 404 || resp.Header.Get("Location") != "" || resp.Header.Get("Content-Type") != "application/problem+json" {
				t.Errorf("%s: GET %s = %d (Location %q) %s, want a 404 problem", srv.name, p, resp.StatusCode, resp.Header.Get("Location"), body)
			}
		}
		for _, p := range []string{"/v1/calls", "/v1/calls/call-1"} {
			if resp, body := rawGet(t, srv.addr, p, testKey); resp.StatusCode != 200 {
				t.Errorf("%s: GET %s = %d %s", srv.name, p, resp.StatusCode, body)
			}
		}
	}
	// The control: without CleanPaths the mux redirects, which is what
	// this guards against.
	if resp, _ := rawGet(t, bare.Listener.Addr().String(), "/v1//calls", testKey); resp.StatusCode/100 != 3 {
		t.Errorf("bare mux: GET /v1//calls = %d; the control expected a redirect", resp.StatusCode)
	}
	if resp, _ := rawGet(t, wrapped.Listener.Addr().String(), "/healthz", ""); resp.StatusCode != 200 {
		t.Errorf("GET /healthz through CleanPaths = %d", resp.StatusCode)
	}
}
