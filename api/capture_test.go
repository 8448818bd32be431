package api

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"regexp"
	"strings"
	"sync"
	"testing"
	"time"

	"go.uber.org/zap"
	"go.uber.org/zap/zapcore"

	"github.com/tonevault/tonevault/capture"
	"github.com/tonevault/tonevault/dtmf"
	"github.com/tonevault/tonevault/internal/testutil"
	"github.com/tonevault/tonevault/store"
)

// The card this file's tests type. Test card numbers only.
const (
	testPAN    = "4111111111111111"
	testExpiry = "1230"
	testCVV    = "737"
)

// approver is a Processor that approves every card; it keeps nothing of
// the card data it is lent.
type approver struct{}

func (approver) Tokenize(ctx context.Context, c *capture.Card, req capture.PaymentRequest) (string, error) {
	return "tok_4f2a9c", nil
}

func (approver) Authorize(ctx context.Context, c *capture.Card, token string, req capture.PaymentRequest) (capture.Result, error) {
	return capture.Result{Outcome: capture.OutcomeApproved, Token: token, AuthCode: "A1B2C3", ResponseCode: "00"}, nil
}

type syncBuf = testutil.SyncBuffer

// realEnv runs the API on a real capture.Manager with a fixed clock (so
// no timestamp can contain the test card's digits by chance), which only
// advance moves.
type realEnv struct {
	*testEnv
	m       *capture.Manager
	mu      sync.Mutex
	clock   time.Time
	logs    *syncBuf
	hooks   chan []byte
	secret  []byte
	journal *capture.Journal
	// capAudit gets capture's own audit records.
	capAudit *recAudit
}

func newRealEnv(t *testing.T, proc capture.Processor) *realEnv {
	t.Helper()
	return newRealEnvOn(t, proc, nil)
}

// newRealEnvOn is newRealEnv on store st (nil: a new one): a second env
// on the first's store is the gateway started again.
func newRealEnvOn(t *testing.T, proc capture.Processor, st *store.Store) *realEnv {
	t.Helper()
	re := &realEnv{clock: time.Date(2026, 11, 23, 10, 0, 0, 0, time.UTC), logs: &syncBuf{}, hooks: make(chan []byte, 16), secret: []byte(strings.Repeat("w", 32))}
	logger := zap.New(zapcore.NewCore(zapcore.NewJSONEncoder(zap.NewProductionEncoderConfig()), zapcore.AddSync(re.logs), zap.DebugLevel))
	now := re.now
	capAudit := newRecAudit(t)
	re.capAudit = capAudit
	if st == nil {
		st, _ = newTestStore(t)
	}
	calls := fakeCalls{
		"call-1": {ID: "call-1", State: "answered", Caller: "+447700900001", Callee: "agent", Correlation: map[string]string{"X-Interaction-ID": "int-1"}},
		"call-2": {ID: "call-2", State: "answered", Caller: "+447700900002", Callee: "agent", Correlation: map[string]string{"X-Interaction-ID": "int-2"}},
	}
	cfg := testConfig()
	receiver := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		b, _ := io.ReadAll(r.Body)
		if err := verifyWebhookAt(re.secret, r.Header, b, time.Minute, re.now()); err != nil {
			t.Errorf("webhook signature: %v", err)
		}
		re.hooks <- b
	}))
	t.Cleanup(receiver.Close)
	cfg.Webhook = WebhookConfig{URL: receiver.URL, SecretFile: "unused", MaxAttempts: 3}
	// As the gateway wires it: the Journal keeps the sessions and queues
	// the webhook of an outcome with it.
	re.journal = capture.NewJournal(st, capture.JournalOptions{Logger: logger, Events: WebhookEvents(cfg, logger),
		Correlation: func(id string) map[string]string { return calls[id].Correlation }})
	m, err := capture.NewManager(capture.Config{}, capture.Options{Processor: proc, Audit: capAudit, Now: now, Logger: logger, TickInterval: -1, Journal: re.journal})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(m.Close)
	re.m = m
	re.testEnv = newEnv(t, cfg, Deps{Payments: CaptureManager(m), Calls: calls, Store: st, History: re.journal, Now: now, Logger: logger, WebhookSecret: re.secret})
	return re
}

func (re *realEnv) now() time.Time {
	re.mu.Lock()
	defer re.mu.Unlock()
	return re.clock
}

// advance moves the clock on.
func (re *realEnv) advance(d time.Duration) {
	re.mu.Lock()
	defer re.mu.Unlock()
	re.clock = re.clock.Add(d)
}

func (re *realEnv) press(callID, digits string) {
	for i := 0; i < len(digits); i++ {
		re.m.Digit(callID, dtmf.Digit(digits[i]), re.now().Add(time.Second))
	}
}

var (
	cardRE = regexp.MustCompile(`(^|[^0-9A-Za-z])(` + testExpiry + `|12/30|` + testCVV + `)([^0-9A-Za-z]|$)`)
	runRE  = regexp.MustCompile(`[0-9]{12,19}`)
)

// cardDataFindings lists what of the test card (number, expiry, security
// code) or any 12-19 digit run that passes the Luhn check out holds.
func cardDataFindings(out string) []string {
	var found []string
	if strings.Contains(out, testPAN) {
		found = append(found, "the card number")
	}
	if m := cardRE.FindString(out); m != "" {
		found = append(found, fmt.Sprintf("the expiry or security code (%q)", m))
	}
	for _, run := range runRE.FindAllString(out, -1) {
		if luhn([]byte(run)) {
			found = append(found, "a card-like number "+run)
		}
	}
	return found
}

func assertNoCardData(t *testing.T, what, out string) {
	t.Helper()
	for _, f := range cardDataFindings(out) {
		t.Errorf("%s holds %s", what, f)
	}
}

// TestNoCardDataAnywhere drives a whole payment through the API on the
// real capture.Manager and greps every response, SSE event, webhook body,
// log line and audit record for the card data.
func TestNoCardDataAnywhere(t *testing.T) {
	re := newRealEnv(t, approver{})
	var out strings.Builder
	record := func(resp *http.Response) []byte {
		b := readBody(t, resp)
		out.Write(b)
		for k, vs := range resp.Header {
			fmt.Fprintf(&out, "%s: %s\n", k, strings.Join(vs, ","))
		}
		return b
	}

	resp := re.do(t, "POST", "/v1/calls/call-1/payments", testKey, `{"amount":1999,"currency":"GBP","merchant_reference":"ORD-7"}`, "Idempotency-Key", "nocard")
	b := record(resp)
	if resp.StatusCode != 201 {
		t.Fatalf("start: %d %s", resp.StatusCode, b)
	}
	v := decodeView(t, b)

	// A widget token streams the events, as the browser does.
	resp = re.do(t, "POST", "/v1/widget-tokens", testKey, `{"call_id":"call-1"}`)
	var tok widgetTokenResponse
	if err := json.Unmarshal(record(resp), &tok); err != nil || resp.StatusCode != 201 {
		t.Fatalf("widget token: %d %v", resp.StatusCode, err)
	}
	sse, err := http.Get(re.ts.URL + "/v1/payments/" + v.ID + "/events?access_token=" + tok.Token)
	if err != nil || sse.StatusCode != 200 || sse.Header.Get("Content-Type") != "text/event-stream" {
		t.Fatalf("events: %v %v", err, sse)
	}
	var stream syncBuf
	events := readEvents(io.TeeReader(sse.Body, &stream))
	waitFor := func(pred func(capture.View) bool) capture.View {
		t.Helper()
		timeout := time.After(20 * time.Second)
		for {
			select {
			case ev, ok := <-events:
				if !ok {
					t.Fatal("stream ended early")
				}
				if ev.comment {
					continue
				}
				if ev.event != "payment" {
					t.Fatalf("event %q", ev.event)
				}
				got := decodeView(t, []byte(ev.data))
				if ev.id != fmt.Sprint(got.Version) {
					t.Fatalf("id %s for version %d", ev.id, got.Version)
				}
				if pred(got) {
					return got
				}
			case <-timeout:
				t.Fatal("timed out waiting for an event")
			}
		}
	}
	first := waitFor(func(capture.View) bool { return true })
	if first.ID != v.ID || first.State != "collecting" {
		t.Fatalf("snapshot %+v", first)
	}

	re.press("call-1", testPAN[:6])
	typing := waitFor(func(v capture.View) bool { return v.Fields[0].Entered == 6 })
	if typing.Fields[0].Masked != "••••••" || typing.Fields[0].Brand != "visa" {
		t.Errorf("while typing: %+v", typing.Fields[0])
	}
	re.press("call-1", testPAN[6:]+"#")
	pan := waitFor(func(v capture.View) bool { return v.Fields[0].Valid })
	// At most the first 6 and last 4 digits (PCI DSS 3.4.1).
	if m := []rune(pan.Fields[0].Masked); len(m) != 16 || string(m[:6]) != testPAN[:6] || string(m[12:]) != testPAN[12:] || strings.ContainsAny(string(m[6:12]), "0123456789") {
		t.Errorf("masked PAN %q", pan.Fields[0].Masked)
	}
	re.press("call-1", testExpiry+testCVV)
	done := waitFor(func(v capture.View) bool { return v.State == "complete" })
	for _, f := range done.Fields {
		if !f.Valid {
			t.Errorf("field %s not valid: %+v", f.Name, f)
		}
	}
	resp = re.do(t, "GET", "/v1/payments/"+v.ID, testKey, nil)
	record(resp)

	resp = re.do(t, "POST", "/v1/payments/"+v.ID+"/submit", testKey, nil)
	b = record(resp)
	if got := decodeView(t, b); resp.StatusCode != 200 || got.State != "approved" || got.Result == nil || got.Result.Token != "tok_4f2a9c" {
		t.Fatalf("submit: %d %s", resp.StatusCode, b)
	}
	final := waitFor(func(v capture.View) bool { return v.State.Final() })
	if final.State != "approved" {
		t.Errorf("final %s", final.State)
	}
	// The stream ends after the final state.
	for ev := range events {
		if !ev.comment {
			t.Errorf("event after the final state: %+v", ev)
		}
	}
	select {
	case hook := <-re.hooks:
		var ev WebhookEvent
		if err := json.Unmarshal(hook, &ev); err != nil || ev.Type != "payment.approved" || ev.Payment.ID != v.ID {
			t.Errorf("webhook %s: %v", hook, err)
		}
		out.Write(hook)
	case <-time.After(20 * time.Second):
		t.Fatal("no webhook")
	}
	re.srv.Close()

	assertNoCardData(t, "API responses and webhook", out.String())
	assertNoCardData(t, "SSE stream", stream.String())
	assertNoCardData(t, "logs", re.logs.String())
	recs := append(re.audit.records(), re.capAudit.records()...)
	if len(recs) < 5 {
		t.Errorf("only %d audit records: is capture's audit wired?", len(recs))
	}
	for _, r := range recs {
		b, _ := json.Marshal(r)
		assertNoCardData(t, "audit record "+string(r.Event), string(b))
	}
}

// TestSubmitNotConfigured: with no processor, submit ends the session
// failed with reason not_configured, and the response says so.
func TestSubmitNotConfigured(t *testing.T) {
	re := newRealEnv(t, nil)
	v := re.startPayment(t, testKey, "call-1")
	re.press("call-1", testPAN+"#"+testExpiry+testCVV)
	if got := decodeView(t, readBody(t, re.do(t, "GET", "/v1/payments/"+v.ID, testKey, nil))); got.State != "complete" {
		t.Fatalf("state %s", got.State)
	}
	resp := re.do(t, "POST", "/v1/payments/"+v.ID+"/submit", testKey, nil)
	b := readBody(t, resp)
	got := decodeView(t, b)
	if resp.StatusCode != 200 || got.State != "failed" || got.Reason != "not_configured" {
		t.Fatalf("submit: %d %s", resp.StatusCode, b)
	}
	if got.Result != nil && got.Result.Outcome == "approved" {
		t.Fatal("approved without a processor")
	}
	select {
	case hook := <-re.hooks:
		if !strings.Contains(string(hook), `"type":"payment.failed"`) {
			t.Errorf("webhook %s", hook)
		}
	case <-time.After(20 * time.Second):
		t.Fatal("no webhook")
	}
	assertNoCardData(t, "submit", string(b))
}

// unavailable fails like a Vault that is down.
type unavailable struct{}

func (unavailable) Tokenize(context.Context, *capture.Card, capture.PaymentRequest) (string, error) {
	return "", fmt.Errorf("vault: %w", capture.ErrUnavailable)
}

func (unavailable) Authorize(context.Context, *capture.Card, string, capture.PaymentRequest) (capture.Result, error) {
	return capture.Result{}, capture.ErrUnavailable
}

func TestSubmitUnavailableRealCapture(t *testing.T) {
	re := newRealEnv(t, unavailable{})
	v := re.startPayment(t, testKey, "call-1")
	re.press("call-1", testPAN+"#"+testExpiry+testCVV)
	resp := re.do(t, "POST", "/v1/payments/"+v.ID+"/submit", testKey, nil)
	problem(t, resp, 503)
	if resp.Header.Get("Retry-After") == "" {
		t.Error("no Retry-After")
	}
	got := decodeView(t, readBody(t, re.do(t, "GET", "/v1/payments/"+v.ID, testKey, nil)))
	if got.State.Final() {
		t.Errorf("session ended on a temporary failure: %s", got.State)
	}
}
