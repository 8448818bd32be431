package capture

import (
	"bytes"
	"encoding/json"
	"strings"
	"sync"
	"testing"
	"time"

	"go.uber.org/zap"
	"go.uber.org/zap/zapcore"

	"github.com/tonevault/tonevault/audit"
)

// syncBuf is a bytes.Buffer for a logger that several goroutines use.
type syncBuf struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (s *syncBuf) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.Write(p)
}

func (s *syncBuf) String() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.String()
}

// newFaultEnv is newEnv with a JSON logger into log.
func newFaultEnv(t *testing.T, proc *fakeProc, log *syncBuf) *env {
	t.Helper()
	e := &env{t: t, clk: &fakeClock{t: t0}, sink: newRecSink(t)}
	opts := Options{Audit: e.sink, Now: e.clk.now, TickInterval: -1,
		Logger: zap.New(zapcore.NewCore(zapcore.NewJSONEncoder(logConfig()), zapcore.AddSync(log), zap.DebugLevel))}
	if proc != nil {
		opts.Processor = proc
	}
	m, err := NewManager(Config{}, opts)
	if err != nil {
		t.Fatal(err)
	}
	e.m = m
	t.Cleanup(m.Close)
	return e
}

// setFault installs f as the sessions' test hook until the test ends.
func setFault(t *testing.T, f func(where, paymentID string)) {
	t.Helper()
	testFault.Store(&f)
	t.Cleanup(func() { testFault.Store(nil) })
}

// checkFaulted checks that s failed with reason, its card data wiped
// and recorded so, and that nothing the test can see holds the card
// data typed.
func checkFaulted(t *testing.T, e *env, s *Session, reason string, log *syncBuf, typed ...string) {
	t.Helper()
	v := s.View()
	if v.State != StateFailed || v.Reason != reason {
		t.Errorf("%s: state %s reason %q, want failed %s", s.ID(), v.State, v.Reason, reason)
	}
	assertWiped(t, s)
	var ended, wiped int
	for _, r := range e.sink.records() {
		if r.PaymentID != s.ID() {
			continue
		}
		switch {
		case r.Event == audit.EventSessionEnded && string(r.Reason) == reason && r.State == string(StateFailed):
			ended++
		case r.Event == audit.EventCardDataWiped && r.Field == string(FieldCardNumber) && r.Reason == audit.ReasonSessionEnded:
			wiped++
		}
	}
	if ended != 1 || wiped != 1 {
		t.Errorf("%s: %d session.ended (%s) and %d card_data.wiped of the card number, want 1 and 1", s.ID(), ended, reason, wiped)
	}
	recs, _ := json.Marshal(e.sink.records())
	vs, _ := json.Marshal(v)
	for _, out := range []string{log.String(), string(recs), string(vs)} {
		for _, d := range typed {
			if strings.Contains(out, d) {
				t.Errorf("card data %q found in the output", d[:4]+"…")
			}
		}
	}
}

// TestDigitPanicEndsSession: a panic taking one session's key press
// (on the relay's thread) fails that session, wipes its card data and
// goes no further: Digit returns, and the other call's session takes
// its digits to the end.
func TestDigitPanicEndsSession(t *testing.T) {
	var log syncBuf
	e := newFaultEnv(t, nil, &log)
	a, b := e.start("call-a"), e.start("call-b")
	e.keys("call-a", "41111111")
	e.keys("call-b", "41111111")
	setFault(t, func(where, id string) {
		if where == "digit" && id == a.ID() {
			panic("test fault taking a key press")
		}
	})
	e.keys("call-a", "1") // must not panic here
	checkFaulted(t, e, a, ReasonCaptureFault, &log, visa[:8], visa)
	if !strings.Contains(log.String(), `"where":"digit"`) || !strings.Contains(log.String(), "capture.TestDigitPanicEndsSession") {
		t.Errorf("the log does not say where it panicked, with the stack:\n%s", log.String())
	}
	e.keys("call-b", "11111111#"+expiry+cvv)
	if v := b.View(); v.State != StateComplete {
		t.Errorf("other session %s (%s), want complete", v.State, v.Reason)
	}
	if e.m.Faults() != 1 {
		t.Errorf("Faults = %d, want 1", e.m.Faults())
	}
	if e.m.Active("call-a") {
		t.Error("faulted session still active on its call")
	}
}

// TestTickPanicEndsSession: a panic in one session's timers fails that
// session, and Tick goes on with the others' (the other's inter-digit
// timeout still ends its field).
func TestTickPanicEndsSession(t *testing.T) {
	var log syncBuf
	e := newFaultEnv(t, nil, &log)
	a, b := e.start("call-a"), e.start("call-b")
	e.keys("call-a", "5555555555")
	e.keys("call-b", "411")
	setFault(t, func(where, id string) {
		if where == "tick" && id == a.ID() {
			panic("test fault in a session's timer")
		}
	})
	e.m.Tick(e.clk.advance(time.Minute))
	checkFaulted(t, e, a, ReasonCaptureFault, &log, "5555555555")
	if f := fieldView(t, b.View(), FieldCardNumber); f.Error != ReasonTimeout {
		t.Errorf("other session's card number: error %q, want its timeout (Tick went on)", f.Error)
	}
	if v := b.View(); !v.State.Live() {
		t.Errorf("other session %s", v.State)
	}
}

// TestFaulted: an API request that panicked on a session ends it
// (api_fault), card data wiped; while the processor holds the card data,
// nothing is wiped under it, and the session ends when it returns
// without an outcome.
func TestFaulted(t *testing.T) {
	t.Run("collecting", func(t *testing.T) {
		var log syncBuf
		e := newFaultEnv(t, nil, &log)
		s := e.start("call-a")
		e.keys("call-a", visa+"#"+expiry)
		s.Faulted()
		checkFaulted(t, e, s, ReasonAPIFault, &log, visa, expiry)
	})
	t.Run("processor running", func(t *testing.T) {
		var log syncBuf
		gate, entered := make(chan struct{}), make(chan struct{}, 1)
		proc := &fakeProc{authGate: gate, authEntered: entered, authErrs: []error{ErrUnavailable}}
		e := newFaultEnv(t, proc, &log)
		s := e.start("call-a")
		e.keys("call-a", visa+"#"+expiry+cvv)
		done := make(chan error, 1)
		go func() {
			_, err := s.Submit(t.Context(), "agent:alice")
			done <- err
		}()
		<-entered
		s.Faulted()
		if v := s.View(); v.State != StateSubmitting {
			t.Errorf("state %s while the processor runs, want submitting", v.State)
		}
		close(gate) // the processor saw the card data intact (fakeProc checks)
		<-done
		checkFaulted(t, e, s, ReasonAPIFault, &log, visa, cvv)
	})
}
