package psp_test

import (
	"context"
	"errors"
	"strings"
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
	// onEnqueue runs before each EnqueueReversal, beforeAck before each
	// AckReversal.
	onEnqueue func(store.Reversal)
	beforeAck func(id, owner string)
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
	if f.beforeAck != nil {
		f.beforeAck(id, owner)
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

// TestAnswerAfterTheLease: an answer handled only after its intent's
// lease ran out, when the connector's own worker has taken the intent to
// send the reversal, does not stand: the approval is reported as an error
// and the reversal goes out.
func TestAnswerAfterTheLease(t *testing.T) {
	e := newEnv(t, sim.Config{SlowDelay: 100 * time.Millisecond}, func(c *psp.Config) {
		c.Timeout = 300 * time.Millisecond
		c.LeaseMargin = time.Millisecond
	})
	fs := &faultyStore{Store: e.st}
	fs.beforeAck = func(string, string) {
		// Hold the clearing of the intent until the worker leased it (and
		// maybe sent it already).
		eventually(t, "the worker taking the intent", func() bool {
			rs, err := e.st.ListReversals(context.Background())
			return err == nil && (len(rs) == 0 || rs[0].LeaseOwner != "" && !strings.HasSuffix(rs[0].LeaseOwner, "-ahead"))
		})
		fs.beforeAck = nil
	}
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
	resp, err := e.authorize(request("4111111111111111", 10202)) // approved after SlowDelay
	if err != nil || resp.Outcome != psp.Error || resp.AuthCode != "" {
		t.Fatalf("%+v, %v; want an error without an auth code", resp, err)
	}
	eventually(t, "the approval reversed", func() bool { return e.reversed(resp.STAN) })
}

// TestTwoGatewaysOneQueue: two connectors on one store, as two gateways
// on one PostgreSQL database: each reversal is sent by exactly one of
// them, once, and the STANs they hand out never meet.
func TestTwoGatewaysOneQueue(t *testing.T) {
	const n = 6
	var mu sync.Mutex
	by := map[string][]string{} // original STAN → connectors that got its 0410
	onReversal := func(name string) func(psp.Reversal) {
		return func(r psp.Reversal) {
			mu.Lock()
			by[r.STAN] = append(by[r.STAN], name)
			mu.Unlock()
		}
	}
	e := newEnv(t, sim.Config{}, func(c *psp.Config) {
		c.Timeout = 300 * time.Millisecond
		c.OnReversal = onReversal("a")
	})
	cb := e.cfg
	cb.OnReversal = onReversal("b")
	b, err := psp.NewISO(cb, e.st)
	if err != nil {
		t.Fatal(err)
	}
	defer b.Close()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	if err := b.WaitReady(ctx); err != nil {
		t.Fatal(err)
	}
	stans := map[string]bool{}
	var wg sync.WaitGroup
	var smu sync.Mutex
	for i := range n {
		conn := []*psp.ISO{e.conn, b}[i%2]
		wg.Add(1)
		go func() {
			defer wg.Done()
			r := request("4000000000000119", 1000)
			resp, err := conn.Authorize(context.Background(), r)
			r.PAN.Wipe()
			if err != nil || resp.Reason != psp.ReasonTimeout {
				t.Errorf("%+v, %v", resp, err)
				return
			}
			smu.Lock()
			if stans[resp.STAN] {
				t.Errorf("STAN %s handed out twice", resp.STAN)
			}
			stans[resp.STAN] = true
			smu.Unlock()
		}()
	}
	wg.Wait()
	eventually(t, "every reversal acknowledged", func() bool {
		mu.Lock()
		defer mu.Unlock()
		return len(by) == n
	})
	eventually(t, "queue empty", func() bool {
		p, err := b.PendingReversals()
		return err == nil && len(p) == 0
	})
	mu.Lock()
	defer mu.Unlock()
	for stan, who := range by {
		if len(who) != 1 || !stans[stan] {
			t.Errorf("reversal of STAN %s acknowledged to %v", stan, who)
		}
	}
	if st := e.sim.Stats(); st.Reversals != n {
		t.Errorf("the acquirer got %d reversals for %d originals: %+v", st.Reversals, n, st)
	}
	t.Logf("acknowledged to: %v", by)
}
