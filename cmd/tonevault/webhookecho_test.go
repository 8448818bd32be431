package main

import (
	"bytes"
	"context"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/tonevault/tonevault/api"
	"github.com/tonevault/tonevault/capture"
	"github.com/tonevault/tonevault/store"
)

var echoSecret = []byte(strings.Repeat("e", 32))

func TestWebhookEchoHandler(t *testing.T) {
	body := []byte(`{"id":"evt_pay_a_4","type":"payment.cancelled","created_at":"2026-12-06T10:00:00Z","payment":{"id":"pay_a","state":"cancelled"}}`)
	signed := func(secret []byte, ts int64) http.Header {
		h := http.Header{}
		h.Set(api.HeaderTimestamp, strconv.FormatInt(ts, 10))
		h.Set(api.HeaderSignature, api.SignWebhook(secret, ts, body))
		return h
	}
	now := time.Now().Unix()
	tests := []struct {
		name     string
		method   string
		header   http.Header
		body     []byte
		status   int
		stdout   string // "" : nothing printed
		stderr   string
		notPrint bool
	}{
		{"valid", "POST", signed(echoSecret, now), body, 204, "payment.cancelled pay_a (evt_pay_a_4), signature ok", "", false},
		{"retry of the same event", "POST", signed(echoSecret, now), body, 204, "", "evt_pay_a_4 again", false},
		{"wrong secret", "POST", signed([]byte(strings.Repeat("x", 32)), now), body, 401, "", "bad signature", true},
		{"no signature", "POST", http.Header{api.HeaderTimestamp: {strconv.FormatInt(now, 10)}}, body, 401, "", "bad signature", true},
		{"old timestamp", "POST", signed(echoSecret, now-3600), body, 401, "", "timestamp missing or more than 5m0s from now", true},
		{"GET", "GET", signed(echoSecret, now), nil, 405, "", "webhooks are POSTed", true},
		{"too big", "POST", signed(echoSecret, now), bytes.Repeat([]byte("x"), maxWebhookBody+1), 413, "", "over 1 MiB", true},
	}
	var out, errw syncBuffer
	h := &echoHandler{secret: echoSecret, tolerance: 5 * time.Minute, out: &out, errw: &errw, seen: map[string]bool{}}
	srv := httptest.NewServer(h)
	defer srv.Close()
	for _, tc := range tests {
		before, beforeErr := len(out.String()), len(errw.String())
		req, err := http.NewRequest(tc.method, srv.URL+"/", bytes.NewReader(tc.body))
		if err != nil {
			t.Fatal(err)
		}
		req.Header = tc.header
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		gotOut, gotErr := out.String()[before:], errw.String()[beforeErr:]
		if resp.StatusCode != tc.status {
			t.Errorf("%s: status %d, want %d", tc.name, resp.StatusCode, tc.status)
		}
		if (tc.stdout == "") != (gotOut == "") || !strings.Contains(gotOut, tc.stdout) {
			t.Errorf("%s: stdout %q, want %q", tc.name, gotOut, tc.stdout)
		}
		if !strings.Contains(gotErr, tc.stderr) || (tc.stderr == "") != (gotErr == "") {
			t.Errorf("%s: stderr %q, want %q", tc.name, gotErr, tc.stderr)
		}
		if tc.notPrint && strings.Contains(gotOut+gotErr, "payment.cancelled") {
			t.Errorf("%s: printed the body of a refused request", tc.name)
		}
	}
}

func TestWebhookEchoUsage(t *testing.T) {
	short := filepath.Join(t.TempDir(), "short")
	if err := os.WriteFile(short, []byte("too short\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	tests := []struct {
		args []string
		code int
		want string
	}{
		{[]string{"--help"}, 0, "Usage: tonevault webhook-echo"},
		{nil, 2, "--secret-file is required"},
		{[]string{"--secret-file", short, "extra"}, 2, "unexpected argument"},
		{[]string{"--secret-file", short, "--tolerance", "0s"}, 2, "--tolerance"},
		{[]string{"--secret-file", short}, 1, "at least 32 bytes"},
		{[]string{"--secret-file", filepath.Join(t.TempDir(), "none")}, 1, "no such file"},
	}
	for _, tc := range tests {
		var out, errb bytes.Buffer
		code := run(append([]string{"webhook-echo"}, tc.args...), &out, &errb)
		if code != tc.code || !strings.Contains(out.String()+errb.String(), tc.want) {
			t.Errorf("%v: exit %d, want %d with %q:\n%s%s", tc.args, code, tc.code, tc.want, out.String(), errb.String())
		}
	}
}

// echoCalls is the one answered call the gateway's API sees.
type echoCalls struct{}

func (echoCalls) List(api.CallFilter) []api.CallView {
	return []api.CallView{{ID: "c-1", State: "answered"}}
}

func (echoCalls) Get(id string) (api.CallView, bool) {
	return api.CallView{ID: id, State: "answered"}, id == "c-1"
}

// TestWebhookEchoFromGateway: the API's own webhook sender posts to a
// running webhook-echo. Signed with the secret file the receiver reads,
// the event is printed; signed with another secret, it is refused with
// 401 and not printed.
func TestWebhookEchoFromGateway(t *testing.T) {
	dir := t.TempDir()
	secretFile := filepath.Join(dir, "webhook.secret")
	if err := os.WriteFile(secretFile, append(echoSecret, '\n'), 0o600); err != nil {
		t.Fatal(err)
	}
	wrongFile := filepath.Join(dir, "other.secret")
	if err := os.WriteFile(wrongFile, []byte(strings.Repeat("o", 40)), 0o600); err != nil {
		t.Fatal(err)
	}
	var out, errw syncBuffer
	ctx, cancel := context.WithCancel(context.Background())
	addr := make(chan string, 1)
	exit := make(chan int, 1)
	go func() {
		exit <- webhookEcho(ctx, []string{"--listen", "127.0.0.1:0", "--secret-file", secretFile}, &out, &errw, func(a string) { addr <- a })
	}()
	var url string
	select {
	case a := <-addr:
		url = "http://" + a + "/"
	case code := <-exit:
		t.Fatalf("webhook-echo exited %d: %s", code, errw.String())
	}

	const key = "tvk_webhook-echo-test-key"
	// waitFor waits for the receiver to print want: the API's Close
	// would cancel a delivery still under way.
	waitFor := func(b *syncBuffer, want string) bool {
		for deadline := time.Now().Add(20 * time.Second); time.Now().Before(deadline); time.Sleep(20 * time.Millisecond) {
			if strings.Contains(b.String(), want) {
				return true
			}
		}
		return false
	}
	pay := func(secretFile string, printed *syncBuffer, want func(id string) string) string {
		t.Helper()
		m, err := capture.NewManager(capture.Config{}, capture.Options{Audit: testAuditQueue(t), TickInterval: -1})
		if err != nil {
			t.Fatal(err)
		}
		defer m.Close()
		srv, err := api.NewServer(api.Config{
			Keys:    []api.Key{{Name: "crm", Hash: api.HashKey(key)}},
			Webhook: api.WebhookConfig{URL: url, SecretFile: secretFile, MaxAttempts: 1},
		}, api.Deps{Payments: api.CaptureManager(m), Calls: echoCalls{}, Store: openTestStore(t)})
		if err != nil {
			t.Fatal(err)
		}
		ts := httptest.NewServer(srv)
		defer ts.Close()
		post := func(path, body string) []byte {
			t.Helper()
			req, _ := http.NewRequest("POST", ts.URL+path, strings.NewReader(body))
			req.Header.Set("Authorization", "Bearer "+key)
			req.Header.Set("Content-Type", "application/json")
			req.Header.Set("Idempotency-Key", "k-"+path)
			resp, err := http.DefaultClient.Do(req)
			if err != nil {
				t.Fatal(err)
			}
			defer resp.Body.Close()
			var b bytes.Buffer
			_, _ = b.ReadFrom(resp.Body)
			if resp.StatusCode/100 != 2 {
				t.Fatalf("POST %s: %d %s", path, resp.StatusCode, b.String())
			}
			return b.Bytes()
		}
		b := post("/v1/calls/c-1/payments", `{"amount":1999,"currency":"GBP"}`)
		id, _, _ := strings.Cut(strings.TrimPrefix(string(b), `{"id":"`), `"`)
		post("/v1/payments/"+id+"/cancel", "")
		if !waitFor(printed, want(id)) {
			t.Errorf("webhook-echo did not print %q:\nstdout %s\nstderr %s", want(id), out.String(), errw.String())
		}
		srv.Close()
		return id
	}

	pay(secretFile, &out, func(id string) string { return "payment.cancelled " + id + " (evt_" + id + "_" })
	bad := pay(wrongFile, &errw, func(string) string { return "401, bad signature" })
	if strings.Contains(out.String(), bad) {
		t.Errorf("an event signed with another secret was printed:\n%s", out.String())
	}
	cancel()
	if code := <-exit; code != 0 || !strings.Contains(errw.String(), "stopped after 1 events") {
		t.Errorf("exit %d:\n%s", code, errw.String())
	}
}

// openTestStore opens a store in a temporary SQLite file.
func openTestStore(t *testing.T) *store.Store {
	t.Helper()
	cfg := store.DefaultConfig()
	cfg.SQLite.Path = filepath.Join(t.TempDir(), "tonevault.db")
	st, err := store.Open(context.Background(), cfg)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { st.Close() })
	return st
}
