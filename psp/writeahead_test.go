package psp_test

import (
	"context"
	"errors"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/tonevault/tonevault/psp"
	"github.com/tonevault/tonevault/psp/sim"
	"github.com/tonevault/tonevault/store"
)

var errDead = errors.New("test: the process is gone")

// faultyStore is a psp.Store that a test can break: once dead, every call
// fails, as a process that was killed makes no more; failAcks fails that
// many AckReversal calls first.
type faultyStore struct {
	psp.Store
	dead     atomic.Bool
	failAcks atomic.Int32
	// onEnqueue runs before each EnqueueReversal.
	onEnqueue func(store.Reversal)
}

func (f *faultyStore) EnqueueReversal(ctx context.Context, r store.Reversal) (bool, error) {
	if f.onEnqueue != nil {
		f.onEnqueue(r)
	}
	if f.dead.Load() {
		return false, errDead
	}
	return f.Store.EnqueueReversal(ctx, r)
}

func (f *faultyStore) LeaseReversals(ctx context.Context, owner string, max int, d time.Duration) ([]store.Reversal, error) {
	if f.dead.Load() {
		return nil, errDead
	}
	return f.Store.LeaseReversals(ctx, owner, max, d)
}

func (f *faultyStore) AckReversal(ctx context.Context, id, owner string) error {
	if f.dead.Load() {
		return errDead
	}
	if f.failAcks.Add(-1) >= 0 {
		return errors.New("test: the store failed this once")
	}
	return f.Store.AckReversal(ctx, id, owner)
}

func (f *faultyStore) ReleaseReversal(ctx context.Context, id, owner, reason string, next time.Time) error {
	if f.dead.Load() {
		return errDead
	}
	return f.Store.ReleaseReversal(ctx, id, owner, reason, next)
}

func (f *faultyStore) RetryReversal(ctx context.Context, id, owner string, next time.Time) error {
	if f.dead.Load() {
		return errDead
	}
	return f.Store.RetryReversal(ctx, id, owner, next)
}

func (f *faultyStore) AdvanceCounter(ctx context.Context, name string, by, atLeast int64) (int64, error) {
	if f.dead.Load() {
		return 0, errDead
	}
	return f.Store.AdvanceCounter(ctx, name, by, atLeast)
}

// TestReversalWrittenAhead: the reversal is in the store before the 0100
// leaves. Connector A sends a request the acquirer holds, and "dies"
// while it is out (from then on it reaches the store no more, as a killed
// process); connector B on the same store (A restarted, or another
// gateway) sends the reversal once A's lease on it runs out.
func TestReversalWrittenAhead(t *testing.T) {
	var mu sync.Mutex
	var acked []psp.Reversal
	e := newEnv(t, sim.Config{}, func(c *psp.Config) {
		c.Timeout = 2 * time.Second
		c.LeaseMargin = 100 * time.Millisecond
		c.OnReversal = func(r psp.Reversal) {
			mu.Lock()
			acked = append(acked, r)
			mu.Unlock()
		}
	})
	fs := &faultyStore{Store: e.st}
	var enqueuedAfterSend atomic.Bool
	fs.onEnqueue = func(store.Reversal) {
		if !fs.dead.Load() && e.sim.Stats().NoAnswer > 0 {
			enqueuedAfterSend.Store(true)
		}
	}
	a, err := psp.NewISO(e.cfg, fs)
	if err != nil {
		t.Fatal(err)
	}
	defer a.Close()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	if err := a.WaitReady(ctx); err != nil {
		t.Fatal(err)
	}

	done := make(chan psp.Response, 1)
	go func() {
		r := request("4000000000000119", 1000)
		resp, _ := a.Authorize(context.Background(), r)
		r.PAN.Wipe()
		r.Expiry.Wipe()
		r.CVV.Wipe()
		done <- resp
	}()
	eventually(t, "the acquirer holding the 0100", func() bool { return e.sim.Stats().NoAnswer == 1 })
	pending, err := e.st.ListReversals(context.Background())
	if err != nil || len(pending) != 1 || pending[0].OrigMTI != "0100" || pending[0].LeaseOwner == "" ||
		pending[0].Reason != psp.ReasonConnectionLost {
		t.Fatalf("with the 0100 at the acquirer the store holds %+v, %v; want its reversal, written ahead", pending, err)
	}
	if enqueuedAfterSend.Load() {
		t.Fatal("the reversal was written after the acquirer had the request")
	}
	fs.dead.Store(true) // A is killed.
	resp := <-done
	if resp.STAN != pending[0].STAN {
		t.Fatalf("A answered %+v for the intent of STAN %s", resp, pending[0].STAN)
	}
	eventually(t, "the reversal sent by B", func() bool { return e.reversed(resp.STAN) })
	eventually(t, "B's acknowledgement", func() bool {
		mu.Lock()
		defer mu.Unlock()
		return len(acked) == 1
	})
	mu.Lock()
	if r := acked[0]; r.STAN != resp.STAN || r.Reason != psp.ReasonConnectionLost || r.Attempts != 0 {
		t.Errorf("B reversed %+v", r)
	}
	mu.Unlock()
	eventually(t, "queue empty", func() bool {
		p, err := e.conn.PendingReversals()
		return err == nil && len(p) == 0
	})
}

// TestWriteAheadRefusedNothingSent: when the store cannot take the
// intent, the request does not leave, and the caller may try again.
func TestWriteAheadRefusedNothingSent(t *testing.T) {
	e := newEnv(t, sim.Config{}, nil)
	fs := &faultyStore{Store: e.st}
	a, err := psp.NewISO(e.cfg, fs)
	if err != nil {
		t.Fatal(err)
	}
	defer a.Close()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	if err := a.WaitReady(ctx); err != nil {
		t.Fatal(err)
	}
	fs.onEnqueue = func(store.Reversal) { fs.dead.Store(true) }
	r := request("4111111111111111", 1000)
	resp, err := a.Authorize(context.Background(), r)
	r.PAN.Wipe()
	if !errors.Is(err, psp.ErrUnavailable) || resp.Outcome != psp.Error || resp.Reason != psp.ReasonUnavailable {
		t.Fatalf("%+v, %v; want ErrUnavailable", resp, err)
	}
	if st := e.sim.Stats(); st.Approved+st.Declined+st.NoAnswer != 0 {
		t.Errorf("a request left without its reversal written ahead: %+v", st)
	}
}

// TestApprovalNotKeptWithoutClearing: an approval whose intent the store
// cannot clear is reversed, and reported as an error: the customer is
// told what the acquirer ends with.
func TestApprovalNotKeptWithoutClearing(t *testing.T) {
	e := newEnv(t, sim.Config{}, nil)
	fs := &faultyStore{Store: e.st}
	fs.failAcks.Store(1)
	e.conn.Close()
	a, err := psp.NewISO(e.cfg, fs)
	if err != nil {
		t.Fatal(err)
	}
	e.conn = a
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	if err := a.WaitReady(ctx); err != nil {
		t.Fatal(err)
	}
	resp, err := e.authorize(request("4111111111111111", 1000))
	if err != nil || resp.Outcome != psp.Error || resp.AuthCode != "" || resp.Reason != psp.ReasonTimeout {
		t.Fatalf("%+v, %v; want an error without an auth code", resp, err)
	}
	if e.sim.Stats().Approved != 1 {
		t.Fatalf("the acquirer did not approve: %+v", e.sim.Stats())
	}
	eventually(t, "the approval reversed", func() bool { return e.reversed(resp.STAN) })
}
