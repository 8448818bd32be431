package api

import (
	"context"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"github.com/tonevault/tonevault/capture"
)

// openStream opens the events of payment id as cred on base and returns
// the response (the caller closes it) and its parsed events.
func openStream(t *testing.T, ctx context.Context, base, id, cred string) (*http.Response, <-chan sseEvent) {
	t.Helper()
	req, _ := http.NewRequestWithContext(ctx, "GET", base+"/v1/payments/"+id+"/events", nil)
	req.Header.Set("Authorization", "Bearer "+cred)
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	return resp, readEvents(resp.Body)
}

// TestSSEOutlivesServerTimeouts: with read and write timeouts far shorter
// than the stream, the stream keeps delivering: the handler sets a write
// deadline per write.
func TestSSEOutlivesServerTimeouts(t *testing.T) {
	cfg := testConfig()
	cfg.Heartbeat = 30 * time.Millisecond
	e := newEnv(t, cfg, Deps{})
	e.srv.streamWrite = 150 * time.Millisecond
	ts := httptest.NewUnstartedServer(e.srv)
	ts.Config.ReadTimeout = 150 * time.Millisecond
	ts.Config.WriteTimeout = 150 * time.Millisecond
	ts.Start()
	t.Cleanup(ts.Close)
	v := e.startPayment(t, testKey, "call-1")
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	resp, events := openStream(t, ctx, ts.URL, v.ID, testKey)
	defer resp.Body.Close()
	if resp.StatusCode != 200 {
		t.Fatalf("status %d", resp.StatusCode)
	}
	// Well past both timeouts, heartbeats still arrive...
	beats := 0
	for until := time.After(time.Second); until != nil; {
		select {
		case ev, ok := <-events:
			if !ok {
				t.Fatalf("the stream ended after %d heartbeats", beats)
			}
			if ev.comment {
				beats++
			}
		case <-until:
			until = nil
		}
	}
	// ...and so do changes.
	e.pay.sessions[v.ID].change(func(v *capture.View) { v.Fields[0].Entered = 2; v.Fields[0].Masked = "••" })
	for {
		ev, ok := <-events
		if !ok {
			t.Fatal("the stream ended before the change")
		}
		if !ev.comment && decodeView(t, []byte(ev.data)).Fields[0].Entered == 2 {
			break
		}
	}
}

// TestSSEStreamsPerKey: a key's streams, its widget tokens' included, stop
// at the cap with a 429; another key is not affected; a closed stream
// frees its place.
func TestSSEStreamsPerKey(t *testing.T) {
	cfg := testConfig()
	cfg.MaxStreamsPerKey = 2
	e := newEnv(t, cfg, Deps{})
	v := e.startPayment(t, testKey, "call-1")
	tok := mintFull(t, e, testKey, "call-1").Token
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	first, _ := openStream(t, ctx, e.ts.URL, v.ID, testKey)
	ctx2, cancel2 := context.WithCancel(context.Background())
	second, _ := openStream(t, ctx2, e.ts.URL, v.ID, tok)
	for _, r := range []*http.Response{first, second} {
		if r.StatusCode != 200 {
			t.Fatalf("stream within the cap: %d", r.StatusCode)
		}
	}
	for _, cred := range []string{testKey, tok} {
		resp, _ := openStream(t, ctx, e.ts.URL, v.ID, cred)
		p := problem(t, resp, 429)
		if resp.Header.Get("Retry-After") == "" || p.Type != problemBase+"rate-limited" {
			t.Errorf("over the cap: %+v %v", p, resp.Header)
		}
	}
	// Another key has its own count.
	resp, _ := openStream(t, ctx, e.ts.URL, v.ID, otherKey)
	resp.Body.Close()
	if resp.StatusCode != 200 {
		t.Errorf("another key's stream: %d", resp.StatusCode)
	}
	cancel2()
	second.Body.Close()
	for i := 0; ; i++ {
		resp, _ := openStream(t, ctx, e.ts.URL, v.ID, testKey)
		if resp.StatusCode == 200 {
			break
		}
		readBody(t, resp)
		if i > 500 {
			t.Fatal("a closed stream did not free its place")
		}
		time.Sleep(10 * time.Millisecond)
	}
}

// TestCaptureCapacity: past capture.max_live_sessions, starting a payment
// is a 503 problem with Retry-After, and one ending makes room.
func TestCaptureCapacity(t *testing.T) {
	m, err := capture.NewManager(capture.Config{MaxLiveSessions: 1}, capture.Options{Audit: newRecAudit(t), TickInterval: -1})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(m.Close)
	e := newEnv(t, testConfig(), Deps{Payments: CaptureManager(m)})
	first := e.startPayment(t, testKey, "call-1")
	resp := e.do(t, "POST", "/v1/calls/call-2/payments", testKey, `{"amount":1,"currency":"GBP"}`, "Idempotency-Key", "cap-1")
	if p := problem(t, resp, 503); p.Type != problemBase+"unavailable" || !strings.Contains(p.Detail, "max_live_sessions") || resp.Header.Get("Retry-After") == "" {
		t.Errorf("at capacity: %+v %v", p, resp.Header)
	}
	if b := readBody(t, e.do(t, "POST", "/v1/payments/"+first.ID+"/cancel", testKey, nil)); !strings.Contains(string(b), "cancelled") {
		t.Fatalf("cancel: %s", b)
	}
	e.startPayment(t, testKey, "call-2")
}

// slowApprover approves after a delay longer than the server's write
// timeout.
type slowApprover struct{ d time.Duration }

func (s slowApprover) Tokenize(ctx context.Context, c *capture.Card, req capture.PaymentRequest) (string, error) {
	time.Sleep(s.d)
	return "tok_slow", nil
}

func (slowApprover) Authorize(ctx context.Context, c *capture.Card, token string, req capture.PaymentRequest) (capture.Result, error) {
	return capture.Result{Outcome: capture.OutcomeApproved, Token: token, AuthCode: "S1", ResponseCode: "00"}, nil
}

// TestSubmitOutlivesWriteTimeout: a submit whose authorization takes
// longer than the server's write timeout still gets its answer.
func TestSubmitOutlivesWriteTimeout(t *testing.T) {
	re := newRealEnv(t, slowApprover{300 * time.Millisecond})
	ts := httptest.NewUnstartedServer(re.srv)
	ts.Config.WriteTimeout = 100 * time.Millisecond
	ts.Start()
	t.Cleanup(ts.Close)
	v := re.startPayment(t, testKey, "call-1")
	re.press("call-1", testPAN+"#"+testExpiry+"#"+testCVV+"#")
	req, _ := http.NewRequest("POST", ts.URL+"/v1/payments/"+v.ID+"/submit", nil)
	req.Header.Set("Authorization", "Bearer "+testKey)
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatalf("submit: %v", err)
	}
	b := readBody(t, resp)
	if resp.StatusCode != 200 || !strings.Contains(string(b), `"approved"`) {
		t.Fatalf("submit: %d %s", resp.StatusCode, b)
	}
	assertNoCardData(t, "the submit answer", string(b))
	assertNoCardData(t, "the log", re.logs.String())
}
