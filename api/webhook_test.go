package api

import (
	"io"
	"net/http"
	"net/http/httptest"
	"strconv"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/tonevault/tonevault/capture"
)

func TestVerifyWebhook(t *testing.T) {
	secret := []byte(strings.Repeat("s", 32))
	body := []byte(`{"id":"evt_1"}`)
	now := time.Unix(1_800_000_000, 0)
	sig := SignWebhook(secret, now.Unix(), body)
	h := func(ts int64, sig string) http.Header {
		hd := http.Header{}
		if ts != 0 {
			hd.Set(HeaderTimestamp, strconv.FormatInt(ts, 10))
		}
		if sig != "" {
			hd.Set(HeaderSignature, sig)
		}
		return hd
	}
	tests := []struct {
		name   string
		header http.Header
		body   []byte
		secret []byte
		want   error
	}{
		{"valid", h(now.Unix(), sig), body, secret, nil},
		{"rotation list", h(now.Unix(), "v1=00, "+sig), body, secret, nil},
		{"body changed", h(now.Unix(), sig), []byte(`{"id":"evt_2"}`), secret, ErrWebhookSignature},
		{"other secret", h(now.Unix(), sig), body, []byte(strings.Repeat("t", 32)), ErrWebhookSignature},
		{"timestamp changed", h(now.Unix()+1, sig), body, secret, ErrWebhookSignature},
		{"too old", h(now.Unix()-301, SignWebhook(secret, now.Unix()-301, body)), body, secret, ErrWebhookTimestamp},
		{"from the future", h(now.Unix()+301, SignWebhook(secret, now.Unix()+301, body)), body, secret, ErrWebhookTimestamp},
		{"no timestamp", h(0, sig), body, secret, ErrWebhookTimestamp},
		{"no signature", h(now.Unix(), ""), body, secret, ErrWebhookSignature},
	}
	for _, tc := range tests {
		if err := verifyWebhookAt(tc.secret, tc.header, tc.body, 5*time.Minute, now); err != tc.want {
			t.Errorf("%s: %v, want %v", tc.name, err, tc.want)
		}
	}
	if !strings.HasPrefix(sig, "v1=") || len(sig) != 3+64 {
		t.Errorf("signature %q", sig)
	}
}

// TestWebhookRetries: failures are retried until a 2xx, with the same
// event id and a fresh, valid signature each time.
func TestWebhookRetries(t *testing.T) {
	secret := []byte(strings.Repeat("s", 32))
	var calls atomic.Int32
	got := make(chan string, 8)
	receiver := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		b, _ := io.ReadAll(r.Body)
		if err := VerifyWebhook(secret, r.Header, b, time.Minute); err != nil {
			t.Errorf("attempt %d: %v", calls.Load()+1, err)
		}
		got <- r.Header.Get(HeaderEventID)
		if calls.Add(1) < 3 {
			http.Error(w, "busy", http.StatusServiceUnavailable)
			return
		}
		w.WriteHeader(http.StatusNoContent)
	}))
	defer receiver.Close()
	cfg := testConfig()
	cfg.Webhook = WebhookConfig{URL: receiver.URL, SecretFile: "x", MaxAttempts: 5}
	e := newEnv(t, cfg, Deps{WebhookSecret: secret, WebhookBackoff: time.Millisecond})
	v := e.startPayment(t, testKey, "call-1")
	if err := e.pay.sessions[v.ID].Cancel("t"); err != nil {
		t.Fatal(err)
	}
	var ids []string
	for len(ids) < 3 {
		select {
		case id := <-got:
			ids = append(ids, id)
		case <-time.After(20 * time.Second):
			t.Fatalf("%d deliveries", len(ids))
		}
	}
	if ids[0] == "" || ids[0] != ids[1] || ids[1] != ids[2] {
		t.Errorf("event ids %v", ids)
	}
	e.srv.Close()
	if n := calls.Load(); n != 3 {
		t.Errorf("%d attempts, want 3 (stop after the first 2xx)", n)
	}
}

func TestWebhookGivesUp(t *testing.T) {
	for _, tc := range []struct {
		status, tries int
		want          int32
	}{
		{http.StatusInternalServerError, 4, 4}, // retried up to max_attempts
		{http.StatusBadRequest, 4, 1},          // the receiver refuses: no retry
		{http.StatusTooManyRequests, 2, 2},
	} {
		var calls atomic.Int32
		receiver := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			calls.Add(1)
			w.WriteHeader(tc.status)
		}))
		h := newWebhooks(t.Context(), WebhookConfig{URL: receiver.URL, MaxAttempts: tc.tries, Timeout: 5 * time.Second},
			[]byte(strings.Repeat("s", 32)), Deps{Now: time.Now, WebhookBackoff: time.Millisecond}, nopLogger())
		h.send(capture.View{ID: "pay_1", State: capture.StateDeclined, Version: 4})
		h.wait()
		receiver.Close()
		if n := calls.Load(); n != tc.want {
			t.Errorf("status %d: %d attempts, want %d", tc.status, n, tc.want)
		}
	}
}

func TestWebhookBackoff(t *testing.T) {
	h := &webhooks{backoff: time.Second}
	for attempt, max := range map[int]time.Duration{1: time.Second, 2: 2 * time.Second, 4: 8 * time.Second, 30: maxBackoff} {
		for i := 0; i < 50; i++ {
			if d := h.delay(attempt); d < max/2 || d > max {
				t.Fatalf("delay(%d) = %v, want in [%v, %v]", attempt, d, max/2, max)
			}
		}
	}
}
