package audit

import (
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	dto "github.com/prometheus/client_model/go"

	"github.com/tonevault/tonevault/internal/testutil"
)

// ctlSigner is an HMAC signer a test can make fail, or hold inside Sign
// until it lets go.
type ctlSigner struct {
	*HMAC
	mu      sync.Mutex
	fail    error
	gate    chan struct{} // when set, Sign waits for it
	entered chan struct{} // when set, Sign says it waits
}

func (s *ctlSigner) Sign(ctx context.Context, data []byte) (string, string, error) {
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

func (s *ctlSigner) set(fail error, gate, entered chan struct{}) {
	s.mu.Lock()
	s.fail, s.gate, s.entered = fail, gate, entered
	s.mu.Unlock()
}

type queueEnv struct {
	q       *Queue
	w       *Writer
	path    string
	anchor  Anchor
	signer  *ctlSigner
	reg     *prometheus.Registry
	changes chan error // what Watch saw
	ticks   chan time.Time
}

// newQueueEnv opens a trail at dir/audit.jsonl, anchored in anchor (a
// FileAnchor in its own directory when nil), behind a Queue.
func newQueueEnv(t *testing.T, dir string, anchor Anchor, every int, opts QueueOptions) *queueEnv {
	t.Helper()
	e := &queueEnv{path: filepath.Join(dir, "audit.jsonl"), anchor: anchor, signer: &ctlSigner{HMAC: testHMAC(t)},
		reg: prometheus.NewRegistry(), changes: make(chan error, 16), ticks: make(chan time.Time)}
	if e.anchor == nil {
		e.anchor = &FileAnchor{Path: filepath.Join(t.TempDir(), "audit.anchor")}
	}
	var err error
	e.w, err = Open(context.Background(), e.path, Options{Signer: e.signer, CheckpointEvery: every, Anchor: e.anchor})
	if err != nil {
		t.Fatal(err)
	}
	opts.Registerer, opts.ticks = e.reg, e.ticks
	opts.RetryMin, opts.RetryMax = time.Hour, time.Hour // attempts come from Checkpoint only
	e.q, err = NewQueue(e.w, opts)
	if err != nil {
		t.Fatal(err)
	}
	e.q.Watch(func(err error) { e.changes <- err })
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		defer cancel()
		e.q.Close(ctx)
	})
	return e
}

func (e *queueEnv) close(t *testing.T) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	if err := e.q.Close(ctx); err != nil {
		t.Fatal(err)
	}
}

// records reads the trail's records.
func (e *queueEnv) records(t *testing.T) []Record {
	t.Helper()
	var out []Record
	for r, err := range Records(mustOpen(t, e.path)) {
		if err != nil {
			t.Fatal(err)
		}
		out = append(out, r)
	}
	return out
}

func (e *queueEnv) verify(t *testing.T) Summary {
	t.Helper()
	sum, err := VerifyAnchored(context.Background(), mustOpen(t, e.path), testHMAC(t), e.anchor)
	if err != nil {
		t.Fatalf("VerifyAnchored: %v", err)
	}
	return sum
}

// change returns what Watch was told next, or fails if it was told
// nothing (Watch runs before the attempt that changed the state answers).
func (e *queueEnv) change(t *testing.T) error {
	t.Helper()
	select {
	case err := <-e.changes:
		return err
	default:
		t.Fatal("Watch was not told of the change")
		return nil
	}
}

func (e *queueEnv) noChange(t *testing.T) {
	t.Helper()
	select {
	case err := <-e.changes:
		t.Fatalf("Watch was told %v", err)
	default:
	}
}

// value reads a counter or gauge.
func value(t *testing.T, m prometheus.Metric) float64 {
	t.Helper()
	var d dto.Metric
	if err := m.Write(&d); err != nil {
		t.Fatal(err)
	}
	if c := d.GetCounter(); c != nil {
		return c.GetValue()
	}
	return d.GetGauge().GetValue()
}

// gathered reads the one value of a metric from a registry.
func gathered(t *testing.T, reg *prometheus.Registry, name string) float64 {
	t.Helper()
	mfs, err := reg.Gather()
	if err != nil {
		t.Fatal(err)
	}
	for _, mf := range mfs {
		if mf.GetName() == name && len(mf.GetMetric()) == 1 {
			m := mf.GetMetric()[0]
			if m.GetGauge() != nil {
				return m.GetGauge().GetValue()
			}
			return m.GetCounter().GetValue()
		}
	}
	t.Fatalf("metric %s not registered", name)
	return 0
}

func rec(actor string, i int) Record {
	return Record{Actor: actor, Event: EventFieldCompleted, Outcome: Success, Field: "expiry", STAN: fmt.Sprintf("%06d", i)}
}

// TestQueueOrder: records from many goroutines reach the trail each in
// the order its goroutine appended them, stamped with the time they were
// handed over, and Sync waits until they are on disk.
func TestQueueOrder(t *testing.T) {
	ctx := context.Background()
	e := newQueueEnv(t, t.TempDir(), nil, 50, QueueOptions{})
	const goroutines, each = 8, 300
	var wg sync.WaitGroup
	for g := range goroutines {
		wg.Go(func() {
			for i := range each {
				if _, err := e.q.Append(ctx, rec(fmt.Sprintf("g%d", g), i)); err != nil {
					t.Error(err)
				}
			}
		})
	}
	wg.Wait()
	if err := e.q.Sync(ctx); err != nil {
		t.Fatal(err)
	}
	if d := e.q.Depth(); d != 0 {
		t.Errorf("Depth after Sync = %d", d)
	}
	last := map[string]int{}
	lastTime := map[string]time.Time{}
	n := 0
	for _, r := range e.records(t) {
		if r.Event != EventFieldCompleted {
			continue
		}
		n++
		i := 0
		fmt.Sscanf(r.STAN, "%d", &i)
		if prev, ok := last[r.Actor]; ok && i != prev+1 {
			t.Fatalf("%s: record %d after %d", r.Actor, i, prev)
		}
		if r.Time.Before(lastTime[r.Actor]) {
			t.Fatalf("%s: record %d stamped before the one appended before it", r.Actor, i)
		}
		last[r.Actor], lastTime[r.Actor] = i, r.Time
	}
	if n != goroutines*each {
		t.Fatalf("%d records on disk after Sync, want %d", n, goroutines*each)
	}
	if got := value(t, e.q.m.written); got != goroutines*each {
		t.Errorf("records_written_total = %v", got)
	}
	e.close(t)
	if sum := e.verify(t); !sum.Closed || sum.Anchored != sum.LastSeq {
		t.Errorf("summary %+v, want closed and anchored to its end", sum)
	}
}

// TestQueueRefusesBadRecords: a refused record is an error at once, and
// never queued.
func TestQueueRefusesBadRecords(t *testing.T) {
	e := newQueueEnv(t, t.TempDir(), nil, 1000, QueueOptions{})
	if _, err := e.q.Append(context.Background(), Record{Actor: "4111 1111 1111 1111", Event: EventSessionStarted, Outcome: Success}); !errors.Is(err, ErrCardData) {
		t.Errorf("Append(card number) = %v", err)
	}
	if _, err := e.q.Append(context.Background(), Record{Actor: "x", Event: EventAuditResumed, Outcome: Info}); err == nil {
		t.Error("Append(audit.resumed) accepted")
	}
	if d := e.q.Depth(); d != 0 {
		t.Errorf("Depth = %d", d)
	}
}

// TestQueueDiskFull: the trail's file system fills up. The queue keeps
// taking records, says the trail is down (Err, Sync, Watch, metrics), and
// once space is freed writes every record it held, in order, then an
// audit.resumed record; the trail verifies against its anchor.
func TestQueueDiskFull(t *testing.T) {
	ctx := context.Background()
	dir := testutil.SmallFS(t, 64<<10)
	e := newQueueEnv(t, dir, nil, 1000, QueueOptions{})
	for i := range 3 {
		e.q.Append(ctx, rec("before", i))
	}
	if err := e.q.Sync(ctx); err != nil {
		t.Fatal(err)
	}
	filler := testutil.Fill(t, dir)
	const during = 80 // far more than the last page's slack
	for i := range during {
		if _, err := e.q.Append(ctx, rec("during", i)); err != nil {
			t.Fatalf("Append while the disk is full = %v, want the record queued", err)
		}
	}
	err := e.q.Checkpoint(ctx)
	if !errors.Is(err, ErrUnavailable) || !errors.Is(err, syscall.ENOSPC) {
		t.Fatalf("Checkpoint on a full disk = %v, want ErrUnavailable with ENOSPC", err)
	}
	if err := e.change(t); !errors.Is(err, ErrUnavailable) {
		t.Errorf("Watch told %v", err)
	}
	if err := e.q.Err(); !errors.Is(err, ErrUnavailable) {
		t.Errorf("Err = %v", err)
	}
	if err := e.q.Sync(ctx); !errors.Is(err, ErrUnavailable) {
		t.Errorf("Sync = %v, want ErrUnavailable at once", err)
	}
	if got := value(t, e.q.m.errors.WithLabelValues("disk_full")); got < 1 {
		t.Errorf("tonevault_audit_errors_total{reason=disk_full} = %v", got)
	}
	if got := value(t, e.q.m.up); got != 0 {
		t.Errorf("tonevault_audit_up = %v", got)
	}
	if d := e.q.Depth(); d == 0 {
		t.Error("Depth = 0 while the disk is full")
	}
	if got := gathered(t, e.reg, "tonevault_audit_queue_depth"); got != float64(e.q.Depth()) {
		t.Errorf("tonevault_audit_queue_depth = %v, Depth %d", got, e.q.Depth())
	}
	// Still full: another attempt fails the same way, and Watch hears
	// nothing new.
	if err := e.q.Checkpoint(ctx); !errors.Is(err, syscall.ENOSPC) {
		t.Fatalf("second attempt = %v", err)
	}
	e.noChange(t)

	if err := os.Remove(filler); err != nil {
		t.Fatal(err)
	}
	if err := e.q.Checkpoint(ctx); err != nil {
		t.Fatalf("Checkpoint after freeing space = %v", err)
	}
	if err := e.change(t); err != nil {
		t.Errorf("Watch told %v, want nil (recovered)", err)
	}
	if err := e.q.Err(); err != nil {
		t.Errorf("Err after recovery = %v", err)
	}
	e.q.Append(ctx, rec("after", 0))
	if err := e.q.Sync(ctx); err != nil {
		t.Fatal(err)
	}
	e.close(t)
	var got []string
	resumed := 0
	for _, r := range e.records(t) {
		switch r.Event {
		case EventFieldCompleted:
			got = append(got, r.Actor+r.STAN)
		case EventAuditResumed:
			resumed++
			if r.Reason != ReasonDiskFull || r.Lost != 0 || len(got) != 3+during {
				t.Errorf("audit.resumed %+v after %d records, want reason disk_full, nothing lost, after the records held", r, len(got))
			}
		}
	}
	var want []string
	for i := range 3 {
		want = append(want, fmt.Sprintf("before%06d", i))
	}
	for i := range during {
		want = append(want, fmt.Sprintf("during%06d", i))
	}
	want = append(want, "after000000")
	if !slices.Equal(got, want) || resumed != 1 {
		t.Fatalf("records %v (%d audit.resumed), want %v and one audit.resumed", got, resumed, want)
	}
	e.verify(t)
}

// TestQueueSignerDown: while checkpoints cannot be signed the trail is
// down, though records still reach the disk; it comes back with the
// signer.
func TestQueueSignerDown(t *testing.T) {
	ctx := context.Background()
	e := newQueueEnv(t, t.TempDir(), nil, 1000, QueueOptions{})
	e.q.Append(ctx, rec("a", 0))
	e.signer.set(errors.New("vault: connection refused"), nil, nil)
	err := e.q.Checkpoint(ctx)
	if !errors.Is(err, ErrUnavailable) || !errors.Is(err, ErrSigner) {
		t.Fatalf("Checkpoint with the signer down = %v", err)
	}
	if err := e.change(t); err == nil {
		t.Error("Watch told nil")
	}
	if got := value(t, e.q.m.errors.WithLabelValues("signer_unavailable")); got != 1 {
		t.Errorf("errors_total{signer_unavailable} = %v", got)
	}
	e.q.Append(ctx, rec("a", 1))
	if err := e.q.Sync(ctx); !errors.Is(err, ErrUnavailable) {
		t.Errorf("Sync with the signer down = %v", err)
	}
	e.signer.set(nil, nil, nil)
	if err := e.q.Checkpoint(ctx); err != nil {
		t.Fatal(err)
	}
	if err := e.change(t); err != nil {
		t.Errorf("Watch told %v", err)
	}
	e.close(t)
	var events []Event
	for _, r := range e.records(t) {
		events = append(events, r.Event)
		if r.Event == EventAuditResumed && r.Reason != ReasonSignerUnavailable {
			t.Errorf("audit.resumed reason %s", r.Reason)
		}
	}
	want := []Event{EventAuditStarted, EventFieldCompleted, EventFieldCompleted, EventAuditCheckpoint, EventAuditResumed, EventAuditCheckpoint}
	if !slices.Equal(events, want) {
		t.Errorf("events %v, want %v", events, want)
	}
	e.verify(t)
}

// TestQueueAnchorDown: a checkpoint that cannot be anchored makes the
// trail down too; once the anchor takes it again, every checkpoint
// verifies against it.
func TestQueueAnchorDown(t *testing.T) {
	ctx := context.Background()
	kv := &mapKV{}
	e := newQueueEnv(t, t.TempDir(), KVAnchor{KV: kv, Prefix: "p"}, 1000, QueueOptions{})
	e.q.Append(ctx, rec("a", 0))
	kv.setFail(errors.New("vault sealed"))
	if err := e.q.Checkpoint(ctx); !errors.Is(err, ErrAnchor) {
		t.Fatalf("Checkpoint with the anchor down = %v", err)
	}
	if err := e.change(t); err == nil {
		t.Error("Watch told nil")
	}
	if got := value(t, e.q.m.errors.WithLabelValues("anchor_unavailable")); got != 1 {
		t.Errorf("errors_total{anchor_unavailable} = %v", got)
	}
	kv.setFail(nil)
	if err := e.q.Checkpoint(ctx); err != nil {
		t.Fatal(err)
	}
	e.close(t)
	if sum := e.verify(t); sum.Anchored != sum.LastSeq {
		t.Errorf("summary %+v, want anchored to the end", sum)
	}
}

// TestQueueFull: while the Writer is held (a signer that does not
// answer), Append never waits: the queue fills, then drops records, says
// so, and the trail reports how many once it resumes.
func TestQueueFull(t *testing.T) {
	ctx := context.Background()
	e := newQueueEnv(t, t.TempDir(), nil, 1, QueueOptions{Size: 16})
	gate, entered := make(chan struct{}), make(chan struct{}, 1)
	e.signer.set(nil, gate, entered)
	e.q.Append(ctx, rec("a", 0))
	<-entered // the queue's goroutine is signing the checkpoint after it
	for i := 1; i < 16; i++ {
		if _, err := e.q.Append(ctx, rec("a", i)); err != nil {
			t.Fatalf("Append %d = %v", i, err)
		}
	}
	for i := 16; i < 19; i++ {
		if _, err := e.q.Append(ctx, rec("a", i)); !errors.Is(err, ErrQueueFull) {
			t.Fatalf("Append %d to a full queue = %v, want ErrQueueFull", i, err)
		}
	}
	if err := e.q.Err(); !errors.Is(err, ErrQueueFull) {
		t.Errorf("Err = %v", err)
	}
	if d := e.q.Depth(); d != 16 {
		t.Errorf("Depth = %d", d)
	}
	if got := value(t, e.q.m.dropped); got != 3 {
		t.Errorf("records_dropped_total = %v", got)
	}
	e.signer.set(nil, nil, nil)
	close(gate)
	if err := e.q.Checkpoint(ctx); err != nil {
		t.Fatal(err)
	}
	e.close(t)
	n, resumed := 0, 0
	for _, r := range e.records(t) {
		switch r.Event {
		case EventFieldCompleted:
			n++
		case EventAuditResumed:
			resumed++
			if r.Reason != ReasonQueueFull || r.Lost != 3 {
				t.Errorf("audit.resumed %+v, want queue_full, lost 3", r)
			}
		}
	}
	if n != 16 || resumed != 1 {
		t.Errorf("%d records and %d audit.resumed, want 16 and 1", n, resumed)
	}
	e.verify(t)
}

// TestQueueTimerCheckpoint: each tick of the timer writes a checkpoint
// when records came since the last one, and none otherwise.
func TestQueueTimerCheckpoint(t *testing.T) {
	ctx := context.Background()
	e := newQueueEnv(t, t.TempDir(), nil, 1000, QueueOptions{})
	checkpoints := func() int {
		n := 0
		for _, r := range e.records(t) {
			if r.Event == EventAuditCheckpoint {
				n++
			}
		}
		return n
	}
	e.q.Append(ctx, rec("a", 0))
	e.q.Sync(ctx)
	if n := checkpoints(); n != 0 {
		t.Fatalf("%d checkpoints before the tick", n)
	}
	e.ticks <- time.Now()
	e.q.Checkpoint(ctx) // returns after the tick's work, and adds none
	if n := checkpoints(); n != 1 {
		t.Fatalf("%d checkpoints after a tick, want 1", n)
	}
	e.ticks <- time.Now()
	e.q.Checkpoint(ctx)
	if n := checkpoints(); n != 1 {
		t.Fatalf("%d checkpoints after a quiet tick, want still 1", n)
	}
	if sum := e.verify(t); sum.Anchored != sum.Checkpointed || sum.Checkpointed != sum.LastSeq {
		t.Errorf("summary %+v, want checkpointed and anchored to the end", sum)
	}
}

// TestQueueClose: Close writes what the queue holds; later Appends fail.
func TestQueueClose(t *testing.T) {
	ctx := context.Background()
	e := newQueueEnv(t, t.TempDir(), nil, 1000, QueueOptions{})
	for i := range 100 {
		e.q.Append(ctx, rec("a", i))
	}
	e.close(t)
	if _, err := e.q.Append(ctx, rec("a", 100)); !errors.Is(err, ErrClosed) {
		t.Errorf("Append after Close = %v", err)
	}
	if err := e.q.Err(); !errors.Is(err, ErrClosed) {
		t.Errorf("Err after Close = %v", err)
	}
	if sum := e.verify(t); sum.Records != 102 || !sum.Closed {
		t.Errorf("summary %+v, want 100 records between started and close", sum)
	}
}
