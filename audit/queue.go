package audit

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"time"

	"github.com/cenkalti/backoff/v4"
	"github.com/prometheus/client_golang/prometheus"
)

// Defaults of QueueOptions.
const (
	DefaultQueueSize          = 8192
	DefaultCheckpointInterval = 10 * time.Second
	defaultRetryMin           = 100 * time.Millisecond
	defaultRetryMax           = 5 * time.Second
	// maxBatch bounds the records one fsync covers.
	maxBatch = 256
)

// QueueOptions configure a Queue.
type QueueOptions struct {
	// Size is how many records the queue holds while the Writer is busy
	// or failing; 0 means DefaultQueueSize. A record that finds it full
	// is dropped (ErrQueueFull), counted, and reported in the trail by
	// the next audit.resumed record (lost).
	Size int
	// CheckpointInterval is how often a checkpoint is written (and
	// anchored) when records came since the last one; 0 means
	// DefaultCheckpointInterval.
	CheckpointInterval time.Duration
	// Registerer gets the metrics (tonevault_audit_*); nil: none.
	Registerer prometheus.Registerer
	// RetryMin and RetryMax bound the backoff between attempts while the
	// trail cannot be written; 0: 100 ms and 5 s.
	RetryMin, RetryMax time.Duration

	// ticks replaces the checkpoint timer (tests).
	ticks <-chan time.Time
}

// Errors of a Queue.
var (
	// ErrUnavailable: the trail cannot be written now (Queue.Err and
	// Queue.Sync wrap it with the cause). Records are still taken, up to
	// the queue's size, and written once it can be.
	ErrUnavailable = errors.New("audit: trail cannot be written")
	// ErrQueueFull: Append dropped the record: the queue is full.
	ErrQueueFull = errors.New("audit: queue full, record dropped")
)

// Queue stands between the gateway and its Writer, so that no caller
// waits for a disk or a signer: Append checks a record, stamps its time
// and queues it without blocking; one goroutine writes the records in the
// order they came, a batch per fsync, and writes a checkpoint every
// CheckpointInterval.
//
// When the trail cannot be written (a failed write or fsync, a full file
// system, a signer or an anchor that fails), the Queue says so (Err, Sync,
// Watch, the metrics), keeps the records it holds, and tries again with
// exponential backoff: Writer.Recover, the records, then a checkpoint
// (signed and anchored). Once that works it is available again and
// writes an audit.resumed record naming what failed and how many records,
// if any, were dropped meanwhile.
type Queue struct {
	w      *Writer
	size   int
	every  time.Duration
	now    func() time.Time
	bo     func() backoff.BackOff
	ticks  <-chan time.Time
	m      queueMetrics
	wake   chan struct{}
	reqs   chan chan error
	stop   chan struct{}
	done   chan struct{}
	closeC context.Context // the Close's context, for the last attempts

	mu       sync.Mutex
	buf      []Record // ring: buf[head], ..., n records
	head, n  int
	in, out  uint64        // records taken, records written
	err      error         // nil while the trail can be written
	progress chan struct{} // closed and replaced when out or err changes
	closed   bool
	gap      Reason // why records were late or lost since the last audit.resumed; "" for none
	lost     uint64 // records dropped since the last audit.resumed
	watchers map[int]func(error)
	nextW    int
	batch    []Record // the queue goroutine's copy of a batch
}

// NewQueue starts the queue's goroutine in front of w. Close it, not w.
func NewQueue(w *Writer, opts QueueOptions) (*Queue, error) {
	if w == nil {
		return nil, errors.New("audit: NewQueue: no Writer")
	}
	if opts.Size < 0 || opts.CheckpointInterval < 0 || opts.RetryMin < 0 || opts.RetryMax < 0 {
		return nil, errors.New("audit: NewQueue: negative size, interval or retry")
	}
	q := &Queue{
		w: w, size: opts.Size, every: opts.CheckpointInterval, now: w.now, ticks: opts.ticks,
		wake: make(chan struct{}, 1), reqs: make(chan chan error), stop: make(chan struct{}), done: make(chan struct{}),
		progress: make(chan struct{}), watchers: map[int]func(error){},
	}
	if q.size == 0 {
		q.size = DefaultQueueSize
	}
	if q.every == 0 {
		q.every = DefaultCheckpointInterval
	}
	lo, hi := opts.RetryMin, opts.RetryMax
	if lo == 0 {
		lo = defaultRetryMin
	}
	if hi == 0 {
		hi = defaultRetryMax
	}
	q.bo = func() backoff.BackOff {
		return backoff.NewExponentialBackOff(
			backoff.WithInitialInterval(lo), backoff.WithMaxInterval(max(lo, hi)),
			backoff.WithMaxElapsedTime(0)) // until it works or Close
	}
	q.buf = make([]Record, q.size)
	var err error
	if q.m, err = newQueueMetrics(opts.Registerer, q); err != nil {
		return nil, err
	}
	go q.run()
	return q, nil
}

// Append checks r like Writer.Append, stamps its time (when it was handed
// over) and queues it. It never blocks. The seq it returns is always 0:
// the record has none until it is written. It returns ErrQueueFull when
// the queue is full (the record is dropped, and counted) and ErrClosed
// after Close; a refused record (ErrCardData, an unknown code) is an error
// as with Writer.Append. While the trail cannot be written, records are
// still taken: they are written, in order, once it can.
func (q *Queue) Append(_ context.Context, r Record) (uint64, error) {
	if err := r.checkNew(); err != nil {
		return 0, err
	}
	q.mu.Lock()
	if q.closed {
		q.mu.Unlock()
		return 0, ErrClosed
	}
	if q.n == len(q.buf) {
		q.lost++
		if q.gap == "" {
			q.gap = ReasonQueueFull
		}
		q.mu.Unlock()
		q.m.dropped.Inc()
		q.m.errors.WithLabelValues(string(ReasonQueueFull)).Inc()
		return 0, ErrQueueFull
	}
	r.Time = q.now().UTC()
	q.buf[(q.head+q.n)%len(q.buf)] = r
	q.n++
	q.in++
	q.mu.Unlock()
	select {
	case q.wake <- struct{}{}:
	default:
	}
	return 0, nil
}

// Err is nil while the trail can be written and the queue has room. It
// wraps ErrUnavailable with the cause while it cannot, and is
// ErrQueueFull while the queue is full, ErrClosed after Close.
func (q *Queue) Err() error {
	q.mu.Lock()
	defer q.mu.Unlock()
	switch {
	case q.closed:
		return ErrClosed
	case q.err != nil:
		return q.err
	case q.n == len(q.buf):
		return ErrQueueFull
	}
	return nil
}

// Depth is the number of records waiting to be written.
func (q *Queue) Depth() int {
	q.mu.Lock()
	defer q.mu.Unlock()
	return q.n
}

// Sync returns once every record appended before it is on disk and the
// trail can be written. It returns the error at once (wrapping
// ErrUnavailable) when the trail cannot be written, or becomes so while
// it waits (its records may be on disk, but a checkpoint cannot be signed
// or anchored), and ctx's error when ctx ends first.
func (q *Queue) Sync(ctx context.Context) error {
	q.mu.Lock()
	target := q.in
	for {
		switch {
		case q.err != nil:
			err := q.err
			q.mu.Unlock()
			return err
		case q.out >= target:
			q.mu.Unlock()
			return nil
		}
		ch := q.progress
		q.mu.Unlock()
		select {
		case <-ch:
		case <-q.done:
			q.mu.Lock()
			if q.out >= target {
				q.mu.Unlock()
				return nil
			}
			q.mu.Unlock()
			return ErrClosed
		case <-ctx.Done():
			return ctx.Err()
		}
		q.mu.Lock()
	}
}

// Checkpoint asks the queue's goroutine to write what it holds and a
// checkpoint now (none if no record came since the last), and returns
// what came of it. While the trail cannot be written it is an attempt
// ahead of the backoff.
func (q *Queue) Checkpoint(ctx context.Context) error {
	ch := make(chan error, 1)
	select {
	case q.reqs <- ch:
	case <-q.done:
		return ErrClosed
	case <-ctx.Done():
		return ctx.Err()
	}
	select {
	case err := <-ch:
		return err
	case <-ctx.Done():
		return ctx.Err()
	}
}

// Watch calls fn each time the trail stops being writable (err wraps
// ErrUnavailable) or becomes writable again (nil), on the queue's
// goroutine, before the queue goes on: fn must be quick and must not wait
// for the queue (Sync, Checkpoint, Close). It returns a function that
// stops the calls.
func (q *Queue) Watch(fn func(err error)) (stop func()) {
	q.mu.Lock()
	id := q.nextW
	q.nextW++
	q.watchers[id] = fn
	q.mu.Unlock()
	return func() {
		q.mu.Lock()
		delete(q.watchers, id)
		q.mu.Unlock()
	}
}

// Close stops taking records, writes those it holds (trying until ctx
// ends while the trail cannot be written) and closes the Writer, which
// writes its final checkpoint. It reports records left unwritten.
func (q *Queue) Close(ctx context.Context) error {
	q.mu.Lock()
	if q.closed {
		q.mu.Unlock()
		return ErrClosed
	}
	q.closed = true
	q.closeC = ctx
	q.mu.Unlock()
	close(q.stop)
	<-q.done
	q.mu.Lock()
	left, cause := q.n, q.err
	q.mu.Unlock()
	var err error
	if left > 0 {
		err = fmt.Errorf("audit: %d records not written: %w", left, cause)
	}
	return errors.Join(err, q.w.Close(ctx))
}

func (q *Queue) run() {
	defer close(q.done)
	ctx := context.Background()
	tick := q.ticks
	if tick == nil {
		t := time.NewTicker(q.every)
		defer t.Stop()
		tick = t.C
	}
	bo := q.bo()
	var retry <-chan time.Time
	for {
		var req chan error
		checkpoint := false
		select {
		case <-q.wake:
		case <-tick:
			checkpoint = true
		case req = <-q.reqs:
			checkpoint = true
		case <-retry:
			retry = nil
		case <-q.stop:
			q.last(bo)
			return
		}
		if retry != nil && req == nil {
			continue // failing: wait for the next attempt
		}
		err := q.settle(q.step(ctx, checkpoint))
		if err != nil {
			retry = time.After(bo.NextBackOff())
		} else {
			bo.Reset()
			retry = nil
		}
		if req != nil {
			req <- err
		}
	}
}

// last writes what is left, trying until the Close's context ends (once,
// if it never ends).
func (q *Queue) last(bo backoff.BackOff) {
	ctx := q.closeC
	for {
		err := q.step(ctx, false)
		q.settle(err)
		if err == nil || ctx.Done() == nil {
			return
		}
		select {
		case <-ctx.Done():
			return
		case <-time.After(bo.NextBackOff()):
		}
	}
}

// step writes what is queued; then, if checkpoint is set or the last
// attempt failed, a checkpoint when records came since the last one;
// then the audit.resumed record a gap calls for.
func (q *Queue) step(ctx context.Context, checkpoint bool) error {
	q.mu.Lock()
	failing := q.err != nil
	q.mu.Unlock()
	if err := q.w.Recover(ctx); err != nil {
		return err
	}
	if err := q.drain(ctx); err != nil {
		return err
	}
	if q.w.anchorBehind() {
		if err := q.w.Anchor(ctx); err != nil {
			return err
		}
	}
	if (checkpoint || failing) && q.w.pending() > 0 {
		// After a failure this proves the whole path: disk, signer,
		// anchor.
		if err := q.w.Checkpoint(ctx); err != nil {
			return err
		}
	}
	return q.resume(ctx)
}

// drain writes the queued records, a batch at a time.
func (q *Queue) drain(ctx context.Context) error {
	for {
		q.mu.Lock()
		k := min(q.n, maxBatch)
		q.batch = q.batch[:0]
		for i := range k {
			q.batch = append(q.batch, q.buf[(q.head+i)%len(q.buf)])
		}
		q.mu.Unlock()
		if k == 0 {
			return nil
		}
		written, skipped, err := q.w.appendBatch(ctx, q.batch)
		if written {
			// With an error (the checkpoint after them failed), Sync's
			// waiters hear of it from settle, not before.
			q.pop(k, skipped, err == nil)
		}
		if err != nil {
			return err
		}
	}
}

// pop forgets the first k records, written (but skipped of them, which
// could not be); notify wakes Sync's waiters.
func (q *Queue) pop(k, skipped int, notify bool) {
	q.mu.Lock()
	for i := range k {
		q.buf[(q.head+i)%len(q.buf)] = Record{}
	}
	q.head = (q.head + k) % len(q.buf)
	q.n -= k
	q.out += uint64(k)
	if skipped > 0 {
		q.lost += uint64(skipped)
		if q.gap == "" {
			q.gap = ReasonIOError
		}
	}
	if notify {
		close(q.progress)
		q.progress = make(chan struct{})
	}
	q.mu.Unlock()
	q.m.written.Add(float64(k - skipped))
}

// resume writes the audit.resumed record of a gap, if there was one.
func (q *Queue) resume(ctx context.Context) error {
	q.mu.Lock()
	gap, lost := q.gap, q.lost
	q.mu.Unlock()
	if gap == "" {
		return nil
	}
	r := Record{Actor: "system", Event: EventAuditResumed, Outcome: Info, Reason: gap, Lost: lost, Time: q.now().UTC()}
	written, _, err := q.w.appendBatch(ctx, []Record{r})
	if written {
		q.mu.Lock()
		q.lost -= lost
		if q.lost == 0 {
			q.gap = ""
		} else {
			q.gap = ReasonQueueFull // more were dropped meanwhile
		}
		q.mu.Unlock()
	}
	return err
}

// settle records the outcome of an attempt, tells the watchers when the
// trail's state changed, and returns the error as Err says it.
func (q *Queue) settle(err error) error {
	q.mu.Lock()
	was := q.err
	if err != nil {
		reason := failureReason(err)
		q.m.errors.WithLabelValues(string(reason)).Inc()
		q.err = fmt.Errorf("%w (%s): %w", ErrUnavailable, reason, err)
		if q.gap == "" || q.gap == ReasonQueueFull {
			// An outage explains the records it made the queue drop.
			q.gap = reason
		}
	} else {
		q.err = nil
	}
	changed := (was == nil) != (q.err == nil)
	now := q.err
	var fns []func(error)
	if err != nil || changed {
		close(q.progress)
		q.progress = make(chan struct{})
	}
	if changed {
		for _, fn := range q.watchers {
			fns = append(fns, fn)
		}
	}
	q.mu.Unlock()
	if !changed {
		return now
	}
	if now == nil {
		q.m.up.Set(1)
	} else {
		q.m.up.Set(0)
	}
	for _, fn := range fns {
		fn(now)
	}
	return now
}

// failureReason is the code of what made an attempt fail.
func failureReason(err error) Reason {
	switch {
	case errors.Is(err, ErrSigner):
		return ReasonSignerUnavailable
	case errors.Is(err, ErrAnchor):
		return ReasonAnchorUnavailable
	case diskFull(err):
		return ReasonDiskFull
	}
	return ReasonIOError
}

// queueMetrics are the Queue's Prometheus metrics.
type queueMetrics struct {
	errors  *prometheus.CounterVec
	dropped prometheus.Counter
	written prometheus.Counter
	up      prometheus.Gauge
}

func newQueueMetrics(reg prometheus.Registerer, q *Queue) (queueMetrics, error) {
	m := queueMetrics{
		errors: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "tonevault_audit_errors_total",
			Help: "Failed attempts to write the audit trail (reason: disk_full, io_error, signer_unavailable, anchor_unavailable), and records dropped on a full queue (queue_full).",
		}, []string{"reason"}),
		dropped: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "tonevault_audit_records_dropped_total",
			Help: "Audit records dropped because the queue in front of the trail was full.",
		}),
		written: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "tonevault_audit_records_written_total",
			Help: "Audit records written to the trail and synced (checkpoints and the Writer's own records not included).",
		}),
		up: prometheus.NewGauge(prometheus.GaugeOpts{
			Name: "tonevault_audit_up",
			Help: "1 while the audit trail can be written, 0 while it cannot (payments are refused then).",
		}),
	}
	m.up.Set(1)
	for _, r := range []Reason{ReasonDiskFull, ReasonIOError, ReasonSignerUnavailable, ReasonAnchorUnavailable, ReasonQueueFull} {
		m.errors.WithLabelValues(string(r))
	}
	if reg == nil {
		return m, nil
	}
	depth := prometheus.NewGaugeFunc(prometheus.GaugeOpts{
		Name: "tonevault_audit_queue_depth",
		Help: "Audit records waiting to be written.",
	}, func() float64 { return float64(q.Depth()) })
	size := prometheus.NewGauge(prometheus.GaugeOpts{
		Name: "tonevault_audit_queue_capacity",
		Help: "Audit records the queue holds at most (audit.queue_size).",
	})
	size.Set(float64(q.size))
	for _, c := range []prometheus.Collector{m.errors, m.dropped, m.written, m.up, depth, size} {
		if err := reg.Register(c); err != nil {
			return m, fmt.Errorf("audit: metrics: %w", err)
		}
	}
	return m, nil
}
