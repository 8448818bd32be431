package capture

import (
	"context"
	"errors"
	"path/filepath"
	"sync"
	"testing"
	"time"

	"github.com/tonevault/tonevault/audit"
	"github.com/tonevault/tonevault/dtmf"
)

// t0 is the test clock's start: mid-June 2026, UTC.
var t0 = time.Date(2026, 6, 15, 12, 0, 0, 0, time.UTC)

type fakeClock struct {
	mu sync.Mutex
	t  time.Time
}

func (c *fakeClock) now() time.Time {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.t
}

func (c *fakeClock) advance(d time.Duration) time.Time {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.t = c.t.Add(d)
	return c.t
}

// recSink is the session's audit trail in tests: a real audit.Queue in
// front of a real audit.Writer on a temporary file. It also keeps every
// record the Queue took. A record the Queue refuses (card data, a field
// out of its syntax, an unknown reason code) is an error to the session,
// as in production, and fails the test (see newEnv). Its signer can be
// made to fail (down) or to hold (hold), for what a trail that cannot be
// written does to the sessions.
type recSink struct {
	q       *audit.Queue
	signer  *testSigner
	mu      sync.Mutex
	recs    []audit.Record
	refused []error
}

// testSigner is an HMAC signer that a test can make fail, or wait in
// Sign until released.
type testSigner struct {
	*audit.HMAC
	mu      sync.Mutex
	fail    error
	gate    chan struct{}
	entered chan struct{}
}

func (s *testSigner) Sign(ctx context.Context, data []byte) (string, string, error) {
	s.mu.Lock()
	fail, gate, entered := s.fail, s.gate, s.entered
	s.mu.Unlock()
	if entered != nil {
		entered <- struct{}{}
	}
	if gate != nil {
		<-gate
	}
	if fail != nil {
		return "", "", fail
	}
	return s.HMAC.Sign(ctx, data)
}

func newRecSink(t testing.TB) *recSink { return newRecSinkWith(t, 0, 0) }

// newRecSinkWith is newRecSink with a checkpoint after every `every`
// records and a queue of size records (0: the defaults).
func newRecSinkWith(t testing.TB, every, size int) *recSink {
	t.Helper()
	h, err := audit.NewHMAC(audit.HMACKey{ID: "test", Key: []byte("capture-test-key-0123456789abcdef")})
	if err != nil {
		t.Fatal(err)
	}
	sig := &testSigner{HMAC: h}
	dir := t.TempDir()
	w, err := audit.Open(context.Background(), filepath.Join(dir, "audit.jsonl"), audit.Options{
		Signer: sig, CheckpointEvery: every, Anchor: &audit.FileAnchor{Path: filepath.Join(dir, "audit.anchor")}})
	if err != nil {
		t.Fatal(err)
	}
	// Attempts after a failure come when the test asks (Checkpoint).
	q, err := audit.NewQueue(w, audit.QueueOptions{Size: size, RetryMin: time.Hour, RetryMax: time.Hour})
	if err != nil {
		t.Fatal(err)
	}
	r := &recSink{q: q, signer: sig}
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		defer cancel()
		sig.mu.Lock()
		sig.fail, sig.gate, sig.entered = nil, nil, nil
		sig.mu.Unlock()
		q.Close(ctx)
		r.mu.Lock()
		defer r.mu.Unlock()
		for _, err := range r.refused {
			t.Errorf("audit record refused: %v", err)
		}
	})
	return r
}

func (r *recSink) Append(ctx context.Context, rec audit.Record) (uint64, error) {
	r.mu.Lock()
	defer r.mu.Unlock()
	if _, err := r.q.Append(ctx, rec); err != nil {
		if !errors.Is(err, audit.ErrClosed) && !errors.Is(err, audit.ErrQueueFull) { // not a goroutine that outlived its test
			r.refused = append(r.refused, err)
		}
		return 0, err
	}
	r.recs = append(r.recs, rec)
	return uint64(len(r.recs)), nil
}

func (r *recSink) Err() error                     { return r.q.Err() }
func (r *recSink) Sync(ctx context.Context) error { return r.q.Sync(ctx) }
func (r *recSink) Watch(fn func(error)) func()    { return r.q.Watch(fn) }

// down makes the trail unwritable: the signer fails, and a checkpoint
// attempt finds it (Watch has been told when it returns).
func (r *recSink) down(t testing.TB) {
	t.Helper()
	r.signer.mu.Lock()
	r.signer.fail = errors.New("signer down (test)")
	r.signer.mu.Unlock()
	if _, err := r.q.Append(context.Background(), audit.Record{Actor: "test", Event: audit.EventConfigLoaded, Outcome: audit.Success, Reason: audit.ReasonConfigDefault}); err != nil {
		t.Fatal(err)
	}
	if err := r.q.Checkpoint(context.Background()); !errors.Is(err, audit.ErrUnavailable) {
		t.Fatalf("trail still writable with the signer down: %v", err)
	}
}

// up lets the signer work again and waits until the trail recovers.
func (r *recSink) up(t testing.TB) {
	t.Helper()
	r.signer.mu.Lock()
	r.signer.fail = nil
	r.signer.mu.Unlock()
	if err := r.q.Checkpoint(context.Background()); err != nil {
		t.Fatalf("trail did not recover: %v", err)
	}
}

func (r *recSink) events() []audit.Event {
	r.mu.Lock()
	defer r.mu.Unlock()
	out := make([]audit.Event, len(r.recs))
	for i, rec := range r.recs {
		out[i] = rec.Event
	}
	return out
}

func (r *recSink) records() []audit.Record {
	r.mu.Lock()
	defer r.mu.Unlock()
	return append([]audit.Record(nil), r.recs...)
}

// fakeProc is a Processor whose answers the test sets. Errors are taken
// from the queues in order, then nil.
type fakeProc struct {
	mu        sync.Mutex
	tokErrs   []error
	authErrs  []error
	res       Result
	token     string
	tokCalls  int
	authCalls int
	// authGate, when set, is received from inside Authorize (after
	// authEntered is signalled) so a test can act while it runs.
	authGate    chan struct{}
	authEntered chan struct{}
	seen        func(c *Card)
}

func (p *fakeProc) Tokenize(_ context.Context, c *Card, _ PaymentRequest) (string, error) {
	p.mu.Lock()
	defer p.mu.Unlock()
	p.tokCalls++
	if p.seen != nil {
		p.seen(c)
	}
	if len(p.tokErrs) > 0 {
		err := p.tokErrs[0]
		p.tokErrs = p.tokErrs[1:]
		if err != nil {
			return "", err
		}
	}
	if p.token == "" {
		return "tok_test", nil
	}
	return p.token, nil
}

func (p *fakeProc) Authorize(_ context.Context, c *Card, token string, _ PaymentRequest) (Result, error) {
	p.mu.Lock()
	p.authCalls++
	gate, entered := p.authGate, p.authEntered
	var err error
	if len(p.authErrs) > 0 {
		err = p.authErrs[0]
		p.authErrs = p.authErrs[1:]
	}
	res := p.res
	p.mu.Unlock()
	if entered != nil {
		entered <- struct{}{}
	}
	if gate != nil {
		<-gate
	}
	if c.PAN.Wiped() || c.CVV.Wiped() {
		return Result{}, errors.New("fake: card data wiped under the processor")
	}
	if err != nil {
		return Result{}, err
	}
	if token == "" {
		return Result{}, errors.New("fake: no token")
	}
	if res.Outcome == "" {
		res = Result{Outcome: OutcomeApproved, AuthCode: "A1B2C3", ResponseCode: "00"}
	}
	return res, nil
}

func (p *fakeProc) calls() (tok, auth int) {
	p.mu.Lock()
	defer p.mu.Unlock()
	return p.tokCalls, p.authCalls
}

type env struct {
	t     testing.TB
	m     *Manager
	clk   *fakeClock
	sink  *recSink
	trans []transition
	mu    sync.Mutex
}

type transition struct{ from, to State }

// newEnv builds a Manager with a fake clock and no timer goroutine. proc
// may be nil (no Processor).
func newEnv(t testing.TB, cfg Config, proc *fakeProc) *env {
	t.Helper()
	return newEnvSink(t, cfg, proc, newRecSink(t))
}

// newEnvSink is newEnv with the given trail.
func newEnvSink(t testing.TB, cfg Config, proc *fakeProc, sink *recSink) *env {
	t.Helper()
	e := &env{t: t, clk: &fakeClock{t: t0}, sink: sink}
	opts := Options{Audit: e.sink, Now: e.clk.now, TickInterval: -1}
	if proc != nil {
		opts.Processor = proc
	}
	m, err := NewManager(cfg, opts)
	if err != nil {
		t.Fatal(err)
	}
	m.transitionHook = func(from, to State) {
		e.mu.Lock()
		e.trans = append(e.trans, transition{from, to})
		e.mu.Unlock()
	}
	e.m = m
	t.Cleanup(m.Close)
	return e
}

var testReq = PaymentRequest{Amount: 4250, Currency: "GBP", MerchantRef: "order-77", Merchant: "shop"}

func (e *env) start(callID string) *Session {
	e.t.Helper()
	s, err := e.m.Start(callID, testReq, "agent:alice")
	if err != nil {
		e.t.Fatal(err)
	}
	return s
}

// keys presses each key on the call, 100 ms apart.
func (e *env) keys(callID, keys string) {
	for i := 0; i < len(keys); i++ {
		at := e.clk.advance(100 * time.Millisecond)
		e.m.Digit(callID, dtmf.Digit(keys[i]), at)
	}
}

func (e *env) transitions() []transition {
	e.mu.Lock()
	defer e.mu.Unlock()
	return append([]transition(nil), e.trans...)
}

// fieldView finds a field in a view.
func fieldView(t testing.TB, v View, name FieldName) FieldView {
	t.Helper()
	for _, f := range v.Fields {
		if f.Name == name {
			return f
		}
	}
	t.Fatalf("no field %s in view", name)
	return FieldView{}
}

// assertWiped fails unless every byte of every field's backing array is
// zero.
func assertWiped(t testing.TB, s *Session) {
	t.Helper()
	s.mu.Lock()
	defer s.mu.Unlock()
	for _, f := range s.fields {
		if b := f.buf[:cap(f.buf)]; !allZero(b) || len(f.buf) != 0 {
			t.Errorf("field %s not wiped (len %d)", f.name, len(f.buf))
		}
	}
}

func allZero(b []byte) bool {
	for _, c := range b {
		if c != 0 {
			return false
		}
	}
	return true
}

// genPAN returns a number of length n that starts with prefix and passes
// Luhn, computing the check digit independently of luhn().
func genPAN(prefix string, n int) string {
	b := []byte(prefix)
	for len(b) < n-1 {
		b = append(b, '0')
	}
	for c := byte('0'); c <= '9'; c++ {
		cand := append(append([]byte(nil), b...), c)
		sum := 0
		for i := range cand {
			d := int(cand[len(cand)-1-i] - '0')
			if i%2 == 1 {
				d = d * 2 % 9
				if d == 0 && cand[len(cand)-1-i] == '9' {
					d = 9
				}
			}
			sum += d
		}
		if sum%10 == 0 {
			return string(cand)
		}
	}
	panic("unreachable")
}
