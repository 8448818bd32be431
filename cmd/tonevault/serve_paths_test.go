package main

import (
	"bufio"
	"context"
	"fmt"
	"io"
	"net"
	"net/http"
	"testing"
)

// TestServeCleanPaths: serve's outer handler redirects nothing: an
// unclean path, or "/v1" without its slash, is a 404 problem, whichever
// handler it would have reached.
func TestServeCleanPaths(t *testing.T) {
	cfgPath, _ := testConfig(t)
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	var stdout, stderr syncBuffer
	done := make(chan int, 1)
	go func() { done <- serveContext(ctx, []string{"--config", cfgPath}, &stdout, &stderr) }()
	addr := listeners(t, &stdout, done)["http"]

	for _, tc := range []struct {
		path string
		code int
	}{
		{"/v1//calls", 404}, {"/v1/./calls", 404}, {"/v1/../v1/calls", 404}, {"//v1/calls", 404},
		{"/v1/calls%2Fx", 404}, {"/v1/%2e%2e/healthz", 404}, {"/healthz/../metrics", 404}, {"//healthz", 404},
		{"/v1", 404}, {"/nope", 404}, {"/widget/..//v1/calls", 404},
		{"/v1/calls", 200}, {"/healthz", 200},
	} {
		c, err := net.Dial("tcp", addr)
		if err != nil {
			t.Fatal(err)
		}
		fmt.Fprintf(c, "GET %s HTTP/1.1\r\nHost: %s\r\nAuthorization: Bearer %s\r\nConnection: close\r\n\r\n", tc.path, addr, serveTestKey)
		res, err := http.ReadResponse(bufio.NewReader(c), nil)
		if err != nil {
			t.Fatalf("GET %s: %v", tc.path, err)
		}
		b, _ := io.ReadAll(res.Body)
		res.Body.Close()
		c.Close()
		if res.StatusCode != tc.code || res.Header.Get("Location") != "" {
			t.Errorf("GET %s = %d (Location %q) %.200s; want %d", tc.path, res.StatusCode, res.Header.Get("Location"), b, tc.code)
		}
		if tc.code == 404 && res.Header.Get("Content-Type") != "application/problem+json" {
			t.Errorf("GET %s: Content-Type %q, want a problem", tc.path, res.Header.Get("Content-Type"))
		}
	}
	cancel()
	if code := <-done; code != 0 {
		t.Fatalf("serve exit %d; stderr:\n%s", code, stderr.String())
	}
}
