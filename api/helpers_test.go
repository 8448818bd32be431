package api

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/tonevault/tonevault/audit"
	"github.com/tonevault/tonevault/capture"
	"github.com/tonevault/tonevault/store"
)

const (
	testKey  = "tvk_test_3f9a1c2b7d4e8f60a1b2c3d4e5f60718"
	otherKey = "tvk_test_other_00000000000000000000000000"
)

// recAudit keeps the records, and hands each to a real audit.Queue in
// front of a real audit.Writer first, so that a record the trail would
// refuse fails the test. fail, when set, is what Err and Sync say: a
// trail that cannot be written.
type recAudit struct {
	q       *audit.Queue
	mu      sync.Mutex
	recs    []audit.Record
	refused []error
	fail    error
}

func newRecAudit(t *testing.T) *recAudit {
	t.Helper()
	h, err := audit.NewHMAC(audit.HMACKey{ID: "test", Key: []byte("api-test-key-0123456789abcdef0123")})
	if err != nil {
		t.Fatal(err)
	}
	dir := t.TempDir()
	w, err := audit.Open(context.Background(), filepath.Join(dir, "audit.jsonl"), audit.Options{Signer: h, Anchor: &audit.FileAnchor{Path: filepath.Join(dir, "audit.anchor")}})
	if err != nil {
		t.Fatal(err)
	}
	q, err := audit.NewQueue(w, audit.QueueOptions{})
	if err != nil {
		t.Fatal(err)
	}
	a := &recAudit{q: q}
	t.Cleanup(func() {
		q.Close(context.Background())
		a.mu.Lock()
		defer a.mu.Unlock()
		for _, err := range a.refused {
			t.Errorf("audit record refused: %v", err)
		}
	})
	return a
}

func (a *recAudit) Append(ctx context.Context, r audit.Record) (uint64, error) {
	a.mu.Lock()
	defer a.mu.Unlock()
	if _, err := a.q.Append(ctx, r); err != nil {
		if !errors.Is(err, audit.ErrClosed) { // not a request that outlived its test
			a.refused = append(a.refused, fmt.Errorf("%s: %w", r.Event, err))
		}
		return 0, err
	}
	a.recs = append(a.recs, r)
	return uint64(len(a.recs)), nil
}

func (a *recAudit) Err() error {
	a.mu.Lock()
	defer a.mu.Unlock()
	if a.fail != nil {
		return a.fail
	}
	return a.q.Err()
}

func (a *recAudit) Sync(ctx context.Context) error {
	if err := a.Err(); err != nil {
		return err
	}
	return a.q.Sync(ctx)
}

func (a *recAudit) Watch(fn func(error)) func() { return a.q.Watch(fn) }

func (a *recAudit) records() []audit.Record {
	a.mu.Lock()
	defer a.mu.Unlock()
	return append([]audit.Record(nil), a.recs...)
}

type testEnv struct {
	srv    *Server
	ts     *httptest.Server
	pay    *fakePayments
	audit  *recAudit
	st     *store.Store
	stPath string // the store's SQLite file
}

// newTestStore opens a store in a temporary SQLite file, with webhook
// retries a few milliseconds apart.
func newTestStore(t testing.TB) (*store.Store, string) {
	t.Helper()
	return newTestStoreAt(t, nil)
}

func testStoreOnly(t testing.TB) *store.Store {
	st, _ := newTestStore(t)
	return st
}

// newTestStoreAt is newTestStore on the clock now (nil: time.Now).
func newTestStoreAt(t testing.TB, now func() time.Time) (*store.Store, string) {
	t.Helper()
	cfg := store.DefaultConfig()
	cfg.Now = now
	cfg.SQLite.Path = filepath.Join(t.TempDir(), "tonevault.db")
	cfg.Outbox = store.OutboxConfig{Backoff: 2 * time.Millisecond, MaxBackoff: 10 * time.Millisecond}
	st, err := store.Open(context.Background(), cfg)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { st.Close() })
	return st, cfg.SQLite.Path
}

// testKeyring holds testConfig's keys.
func testKeyring(t testing.TB) *keyring {
	t.Helper()
	k, err := newKeyring(testConfig().Keys)
	if err != nil {
		t.Fatal(err)
	}
	return k
}

func testConfig() Config {
	return Config{Keys: []Key{{Name: "crm", Hash: HashKey(testKey)}, {Name: "other", Hash: HashKey(otherKey)}}}
}

func newEnv(t *testing.T, cfg Config, deps Deps) *testEnv {
	t.Helper()
	e := &testEnv{audit: newRecAudit(t)}
	if deps.Payments == nil {
		e.pay = newFakePayments()
		deps.Payments = e.pay
	}
	if deps.Calls == nil {
		deps.Calls = fakeCalls{
			"call-1": {ID: "call-1", State: "answered", Caller: "+447700900001", Callee: "agent", Correlation: map[string]string{"crm": "case-9"}},
			"call-2": {ID: "call-2", State: "ringing", Caller: "+447700900002", Callee: "agent"},
		}
	}
	deps.Audit = e.audit
	if deps.Store == nil {
		deps.Store, e.stPath = newTestStore(t)
	}
	if deps.OutboxPoll == 0 {
		deps.OutboxPoll = 5 * time.Millisecond
	}
	e.st = deps.Store
	srv, err := NewServer(cfg, deps)
	if err != nil {
		t.Fatal(err)
	}
	e.srv = srv
	e.ts = httptest.NewServer(srv)
	t.Cleanup(func() {
		e.ts.Close()
		srv.Close()
	})
	return e
}

// do sends a request; body may be a string (sent as JSON) or nil.
func (e *testEnv) do(t *testing.T, method, path, cred string, body any, hdr ...string) *http.Response {
	t.Helper()
	var rd io.Reader
	if s, ok := body.(string); ok {
		rd = strings.NewReader(s)
	}
	req, err := http.NewRequest(method, e.ts.URL+path, rd)
	if err != nil {
		t.Fatal(err)
	}
	if rd != nil {
		req.Header.Set("Content-Type", "application/json")
	}
	if cred != "" {
		req.Header.Set("Authorization", "Bearer "+cred)
	}
	for i := 0; i+1 < len(hdr); i += 2 {
		if hdr[i+1] == "" {
			req.Header.Del(hdr[i])
		} else {
			req.Header.Set(hdr[i], hdr[i+1])
		}
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	return resp
}

func readBody(t *testing.T, resp *http.Response) []byte {
	t.Helper()
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	if err != nil {
		t.Fatal(err)
	}
	return b
}

// problem reads a response that must be a problem document with status.
func problem(t *testing.T, resp *http.Response, status int) Problem {
	t.Helper()
	b := readBody(t, resp)
	if resp.StatusCode != status {
		t.Fatalf("status %d, want %d: %s", resp.StatusCode, status, b)
	}
	if ct := resp.Header.Get("Content-Type"); ct != "application/problem+json" {
		t.Fatalf("Content-Type %q, want application/problem+json", ct)
	}
	var p Problem
	dec := json.NewDecoder(bytes.NewReader(b))
	dec.DisallowUnknownFields()
	if err := dec.Decode(&p); err != nil {
		t.Fatalf("problem body %s: %v", b, err)
	}
	if p.Status != status || !strings.HasPrefix(p.Type, problemBase) || p.Title == "" || p.Instance == "" {
		t.Fatalf("incomplete problem: %+v", p)
	}
	return p
}

func decodeView(t *testing.T, b []byte) capture.View {
	t.Helper()
	var v capture.View
	if err := json.Unmarshal(b, &v); err != nil {
		t.Fatalf("view %s: %v", b, err)
	}
	return v
}

// startPayment starts a payment on call as cred and returns its View.
func (e *testEnv) startPayment(t *testing.T, cred, call string) capture.View {
	t.Helper()
	resp := e.do(t, "POST", "/v1/calls/"+call+"/payments", cred, `{"amount":1999,"currency":"GBP","merchant_reference":"ORD-1","description":"order"}`, "Idempotency-Key", "k-"+call+"-"+time.Now().Format("150405.000000000"))
	b := readBody(t, resp)
	if resp.StatusCode != http.StatusCreated {
		t.Fatalf("start: %d %s", resp.StatusCode, b)
	}
	return decodeView(t, b)
}

// sseEvent is one event of a stream.
type sseEvent struct {
	id, event, data string
	comment         bool
}

// readEvents parses an SSE stream into a channel until it ends.
func readEvents(r io.Reader) <-chan sseEvent {
	ch := make(chan sseEvent, 64)
	go func() {
		defer close(ch)
		sc := bufio.NewScanner(r)
		sc.Buffer(make([]byte, 64<<10), 1<<20)
		var ev sseEvent
		have := false
		for sc.Scan() {
			line := sc.Text()
			switch {
			case line == "":
				if have {
					ch <- ev
				}
				ev, have = sseEvent{}, false
			case strings.HasPrefix(line, ":"):
				ch <- sseEvent{comment: true, data: line}
			case strings.HasPrefix(line, "id: "):
				ev.id, have = line[4:], true
			case strings.HasPrefix(line, "event: "):
				ev.event, have = line[7:], true
			case strings.HasPrefix(line, "data: "):
				ev.data, have = line[6:], true
			}
		}
	}()
	return ch
}
