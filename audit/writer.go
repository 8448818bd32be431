package audit

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"sync"
	"time"
)

// SyncPolicy says when the Writer makes records durable with fsync.
type SyncPolicy int

const (
	// SyncEveryRecord: Append returns once its record is on disk. Appends
	// from many goroutines share fsyncs (group commit): one fsync covers
	// every record written before it started. The default.
	SyncEveryRecord SyncPolicy = iota
	// SyncOnCheckpoint: fsync after each checkpoint and at Close only. A
	// crash can lose the records written since the last checkpoint.
	SyncOnCheckpoint
)

// DefaultCheckpointEvery is the number of records between two checkpoints
// when Options.CheckpointEvery is 0.
const DefaultCheckpointEvery = 1000

// Options configure a Writer.
type Options struct {
	// Signer signs checkpoints. Required.
	Signer Signer
	// Verifier checks the last checkpoint of a file that is continued.
	// Nil: the Signer, if it is also a Verifier (HMAC is); otherwise the
	// signature is not checked, only the chain after it.
	Verifier Verifier
	// CheckpointEvery is the number of records after which a checkpoint is
	// written; 0 means DefaultCheckpointEvery. A checkpoint is also
	// written by Checkpoint and Close.
	CheckpointEvery int
	// Sync is the fsync policy; the zero value is SyncEveryRecord.
	Sync SyncPolicy
	// Now is the clock; nil means time.Now. Times are written in UTC.
	Now func() time.Time
	// Anchor keeps a copy of each checkpoint outside the trail, once the
	// checkpoint is on disk, so that VerifyAnchored can tell a trail cut
	// after a checkpoint (or replaced by an older copy) from a whole one.
	// Nil: checkpoints are not anchored.
	Anchor Anchor
}

// Errors from Open and the Writer's methods.
var (
	ErrClosed = errors.New("audit: writer closed")
	// ErrLocked: another Writer (in this or another process) has the file
	// open.
	ErrLocked = errors.New("audit: file is locked by another writer")
	// ErrCheckpoint: the record was written (the seq returned is valid) but
	// the checkpoint due after it could not be signed or written. The
	// next Append tries again.
	ErrCheckpoint = errors.New("audit: checkpoint failed")
	// ErrSigner: the Signer failed; nothing was written for the
	// checkpoint. Wrapped with the Signer's error.
	ErrSigner = errors.New("audit: checkpoint not signed")
	// ErrAnchor: a checkpoint is on disk but the Anchor did not take it;
	// the next checkpoint, or Writer.Anchor, tries again. Wrapped with
	// the Anchor's error.
	ErrAnchor = errors.New("audit: checkpoint not anchored")
)

// Writer appends records to an audit trail file. It is safe for concurrent
// use. It never logs: every failure is returned to the caller.
//
// After a failed write or fsync the Writer stops: every later call returns
// the same error, because the state of the file's end is no longer known,
// until Recover cuts the file back to where it is known to be whole.
// Opening the file again checks its tail.
type Writer struct {
	f     *os.File
	every int
	sync  SyncPolicy
	sign  Signer
	now   func() time.Time
	anc   Anchor

	mu       sync.Mutex
	next     uint64   // seq of the next record
	prev     [32]byte // hash of the last line
	since    int      // records since the last checkpoint
	size     int64    // bytes in the file
	written  uint64   // seq of the last record written
	closed   bool
	err      error     // sticky write or sync failure
	failSync bool      // err came from fsync: what was written since the last good one is in doubt
	cutTo    *position // err came from a batch: Recover cuts back to its start
	buf      []byte
	trail    string      // TrailID: hex SHA-256 of the file's first line
	durable  position    // where the file stood after the last good fsync
	lastCP   AnchorPoint // the last checkpoint written
	cpOnDisk AnchorPoint // the last checkpoint known to be on disk

	syncMu sync.Mutex
	synced uint64 // seq of the last record known to be on disk

	anchorMu sync.Mutex
	anchored uint64 // seq of the last checkpoint the Anchor took
	// opened is where a continued file ended when it was opened, for
	// checking it against its anchor before anchoring anything (checked
	// once that was done).
	opened  *tailState
	checked bool
}

// position is where the chain stands at the end of the file.
type position struct {
	size  int64
	next  uint64
	prev  [32]byte
	since int
}

func (w *Writer) position() position {
	return position{size: w.size, next: w.next, prev: w.prev, since: w.since}
}

// Open opens the trail at path for appending, creating it with mode 0600
// if it does not exist, and writes an audit.started record.
//
// An existing file is continued: Open reads it backwards to its last
// checkpoint, verifies that checkpoint's signature (see Options.Verifier)
// and the chain from there to the end, and refuses the file (a
// *VerifyError, wrapped) when that tail does not verify, including when its
// last line is cut short. Only the tail is read, so that opening stays
// fast however long the file: damage before the last checkpoint is found
// by Verify, not by Open. A refused file is left as it is, for an operator
// to look at; the gateway should then start a new file. With an Anchor,
// a continued file is also checked against the last checkpoint anchored
// for it, and refused when its end was cut off (ErrCut) or that
// checkpoint differs (ErrAnchorMismatch); when the anchor cannot be read
// then, the check comes before the first anchoring, which fails (ErrAnchor)
// until it passes. A file that is writable by group or others, or
// not a regular file, is refused too. The file is locked (flock) while the
// Writer has it open.
func Open(ctx context.Context, path string, opts Options) (*Writer, error) {
	if opts.Signer == nil {
		return nil, errors.New("audit: Options.Signer is required")
	}
	if opts.CheckpointEvery < 0 {
		return nil, errors.New("audit: Options.CheckpointEvery is negative")
	}
	if opts.Sync != SyncEveryRecord && opts.Sync != SyncOnCheckpoint {
		return nil, fmt.Errorf("audit: unknown sync policy %d", opts.Sync)
	}
	w := &Writer{
		every: opts.CheckpointEvery,
		sync:  opts.Sync,
		sign:  opts.Signer,
		now:   opts.Now,
		anc:   opts.Anchor,
		next:  1,
	}
	if w.every == 0 {
		w.every = DefaultCheckpointEvery
	}
	if w.now == nil {
		w.now = time.Now
	}
	ver := opts.Verifier
	if ver == nil {
		ver, _ = opts.Signer.(Verifier)
	}

	created := true
	f, err := os.OpenFile(path, os.O_RDWR|os.O_APPEND|os.O_CREATE|os.O_EXCL, 0o600)
	if errors.Is(err, os.ErrExist) {
		created = false
		f, err = os.OpenFile(path, os.O_RDWR|os.O_APPEND, 0)
	}
	if err != nil {
		return nil, fmt.Errorf("audit: %w", err)
	}
	fail := func(err error) (*Writer, error) {
		f.Close()
		return nil, err
	}
	if err := lockFile(f); err != nil {
		return fail(fmt.Errorf("%w: %s", err, path))
	}
	fi, err := f.Stat()
	if err != nil {
		return fail(fmt.Errorf("audit: %w", err))
	}
	if !fi.Mode().IsRegular() {
		return fail(fmt.Errorf("audit: %s is not a regular file", path))
	}
	if fi.Mode().Perm()&0o022 != 0 {
		return fail(fmt.Errorf("audit: %s is writable by group or others (mode %v); want 0600", path, fi.Mode().Perm()))
	}
	w.f = f
	w.size = fi.Size()

	reason := ReasonCreated
	if w.size > 0 {
		st, err := readTail(ctx, f, w.size, ver)
		if err != nil {
			return fail(fmt.Errorf("audit: %s: refusing to append: %w", path, err))
		}
		w.next, w.prev, w.since = st.next, st.prev, st.since
		w.written, w.synced = st.next-1, st.next-1
		first, err := readFirstLine(f)
		if err != nil {
			return fail(fmt.Errorf("audit: %s: %w", path, err))
		}
		w.trail = hexHash(hashLine(first))
		w.opened = &st
		if w.anc != nil {
			// A trail cut and then continued would, with an Anchor that
			// keeps only the last checkpoint, lose the evidence of the
			// cut: refuse it now if the anchor can be read, or before
			// the first anchoring.
			if err := w.checkAnchor(ctx); err != nil && !errors.Is(err, errAnchorRead) {
				return fail(fmt.Errorf("audit: %s: refusing to append: %w", path, err))
			}
		}
		reason = ReasonContinued
		if !st.clean {
			reason = ReasonContinuedUnclean
		}
	}
	w.durable = w.position()
	if created {
		if err := syncDir(filepath.Dir(path)); err != nil {
			return fail(fmt.Errorf("audit: %w", err))
		}
	}
	if _, err := w.append(ctx, Record{Actor: "system", Event: EventAuditStarted, Outcome: Info, Reason: reason}); err != nil && !errors.Is(err, ErrCheckpoint) {
		return fail(err)
	}
	return w, nil
}

// Append writes r as the next record and returns its seq. See Record for
// the fields the caller sets. A record that holds card data is refused
// with an error wrapping ErrCardData; one with an unknown event, outcome
// or reason code, an empty actor, a field over its length limit or a
// typed field not in its syntax is refused too. Nothing is written then.
//
// When a checkpoint is due after r, Append writes it too. With
// SyncEveryRecord, Append returns after r (and the checkpoint) are on disk.
func (w *Writer) Append(ctx context.Context, r Record) (uint64, error) {
	if err := r.checkNew(); err != nil {
		return 0, err
	}
	return w.append(ctx, r)
}

// append writes a checked record, then a checkpoint when one is due.
func (w *Writer) append(ctx context.Context, r Record) (uint64, error) {
	w.mu.Lock()
	if err := w.usable(); err != nil {
		w.mu.Unlock()
		return 0, err
	}
	seq, err := w.writeLocked(ctx, r)
	if err != nil {
		w.mu.Unlock()
		return 0, err
	}
	durable := seq
	var cpErr error
	if w.since >= w.every {
		cp, err := w.checkpointLocked(ctx, ReasonInterval)
		if err != nil {
			cpErr = fmt.Errorf("%w: %w", ErrCheckpoint, err)
		} else {
			durable = cp
		}
	}
	w.mu.Unlock()
	if w.sync == SyncEveryRecord || durable != seq {
		if err := w.syncTo(durable); err != nil {
			return seq, err
		}
	}
	if durable != seq {
		if err := w.anchor(ctx); err != nil {
			return seq, fmt.Errorf("%w: %w", ErrCheckpoint, err)
		}
	}
	return seq, cpErr
}

// Checkpoint writes a signed checkpoint now (reason "requested"), for
// example from a timer so that a quiet gateway's trail is signed often
// enough, makes it durable and anchors it.
func (w *Writer) Checkpoint(ctx context.Context) error {
	w.mu.Lock()
	if err := w.usable(); err != nil {
		w.mu.Unlock()
		return err
	}
	seq, err := w.checkpointLocked(ctx, ReasonRequested)
	w.mu.Unlock()
	if err != nil {
		return err
	}
	if err := w.syncTo(seq); err != nil {
		return err
	}
	return w.anchor(ctx)
}

// Anchor hands the last checkpoint on disk to Options.Anchor, if the
// Anchor has not taken it yet (a checkpoint whose anchoring failed).
func (w *Writer) Anchor(ctx context.Context) error { return w.anchor(ctx) }

// anchorBehind reports whether a checkpoint on disk is not anchored yet.
func (w *Writer) anchorBehind() bool {
	if w.anc == nil {
		return false
	}
	w.mu.Lock()
	seq := w.cpOnDisk.Seq
	w.mu.Unlock()
	w.anchorMu.Lock()
	defer w.anchorMu.Unlock()
	return seq > w.anchored
}

// anchor puts the last checkpoint on disk to the Anchor, once; anchorMu
// keeps the Anchor's copies in seq order.
func (w *Writer) anchor(ctx context.Context) error {
	if w.anc == nil {
		return nil
	}
	w.anchorMu.Lock()
	defer w.anchorMu.Unlock()
	w.mu.Lock()
	cp := w.cpOnDisk
	w.mu.Unlock()
	if cp.Seq <= w.anchored {
		return nil
	}
	if err := w.checkAnchor(ctx); err != nil {
		return fmt.Errorf("%w (seq %d): %w", ErrAnchor, cp.Seq, err)
	}
	if err := w.anc.Put(ctx, cp); err != nil {
		return fmt.Errorf("%w (seq %d): %w", ErrAnchor, cp.Seq, err)
	}
	w.anchored = cp.Seq
	return nil
}

// errAnchorRead: the anchor could not be read to check a continued trail.
var errAnchorRead = errors.New("cannot read the anchor")

// checkAnchor checks a continued file against the last checkpoint its
// Anchor holds, once: that checkpoint must not be beyond the file's end
// at open (the end was cut off), and when it is the file's last
// checkpoint it must be the same line. A file refused so is one to move
// aside and keep as evidence; the gateway then starts a new one.
func (w *Writer) checkAnchor(ctx context.Context) error {
	if w.opened == nil || w.checked {
		return nil
	}
	points, err := w.anc.Points(ctx, w.trail)
	if err != nil {
		return fmt.Errorf("%w: %w", errAnchorRead, err)
	}
	w.checked = true
	if len(points) == 0 {
		return nil
	}
	last, st := points[len(points)-1], w.opened
	if last.Seq >= st.next {
		w.checked = false
		return fmt.Errorf("%w: the anchor holds checkpoint seq %d of %s, but the trail ended at seq %d when opened: its end was cut off",
			ErrCut, last.Seq, last.Time.UTC().Format(TimeLayout), st.next-1)
	}
	if last.Seq == st.cpSeq && last.Hash != hexHash(st.cpHash) {
		w.checked = false
		return fmt.Errorf("%w: the trail's checkpoint seq %d is not the one anchored", ErrAnchorMismatch, last.Seq)
	}
	return nil
}

// TrailID identifies the trail: the hex SHA-256 of its first line. The
// Anchor files checkpoints under it.
func (w *Writer) TrailID() string {
	w.mu.Lock()
	defer w.mu.Unlock()
	return w.trail
}

// Recover makes a Writer that stopped on a failed write or fsync usable
// again, once the file can be written: it cuts the file back to where it
// is known to be whole, makes that durable, and carries on from there.
// After a failed write that is the end of the last record written whole;
// after a failed fsync, the end of the last record an fsync covered,
// since what the kernel did with the rest is not known. With
// SyncEveryRecord, no record cut off was reported written: its Append
// returned an error. Recover returns nil at once on a Writer that has not
// stopped, and an error (the Writer still stopped) when the file cannot be
// cut back or synced.
func (w *Writer) Recover(ctx context.Context) error {
	w.syncMu.Lock()
	defer w.syncMu.Unlock()
	w.mu.Lock()
	defer w.mu.Unlock()
	if w.closed {
		return ErrClosed
	}
	if w.err == nil {
		return nil
	}
	to := w.position()
	switch {
	case w.failSync:
		to = w.durable
	case w.cutTo != nil:
		to = *w.cutTo
	}
	if err := w.f.Truncate(to.size); err != nil {
		return fmt.Errorf("audit: recover: %w", err)
	}
	if err := fsync(w.f); err != nil {
		return fmt.Errorf("audit: recover: fsync: %w", err)
	}
	fi, err := w.f.Stat()
	if err != nil {
		return fmt.Errorf("audit: recover: %w", err)
	}
	if fi.Size() != to.size {
		return fmt.Errorf("audit: recover: file is %d bytes after cutting it to %d", fi.Size(), to.size)
	}
	w.size, w.next, w.prev, w.since = to.size, to.next, to.prev, to.since
	w.written, w.synced = to.next-1, to.next-1
	w.durable = to
	if w.lastCP.Seq >= to.next {
		w.lastCP = w.cpOnDisk
	}
	w.err, w.failSync, w.cutTo = nil, false, nil
	return nil
}

// Close writes a final checkpoint (reason "close"), syncs and closes the
// file. The file is closed even when the checkpoint fails; it then ends
// without one, and the next Open reports continued_after_unclean_stop.
// A second Close returns ErrClosed.
func (w *Writer) Close(ctx context.Context) error {
	w.mu.Lock()
	if w.closed {
		w.mu.Unlock()
		return ErrClosed
	}
	err := w.err
	if err == nil {
		_, err = w.checkpointLocked(ctx, ReasonClose)
	}
	w.closed = true
	written := w.written
	w.mu.Unlock()

	w.syncMu.Lock()
	synced := false
	if serr := fsync(w.f); serr != nil {
		err = errors.Join(err, fmt.Errorf("audit: fsync: %w", serr))
	} else {
		w.synced = written
		synced = true
		w.mu.Lock()
		w.cpOnDisk = w.lastCP
		w.mu.Unlock()
	}
	if cerr := w.f.Close(); cerr != nil {
		err = errors.Join(err, fmt.Errorf("audit: %w", cerr))
	}
	w.syncMu.Unlock()
	if synced {
		// The close checkpoint is the trail's last: an Anchor that missed
		// it would let a cut before it pass.
		if aerr := w.anchor(ctx); aerr != nil {
			err = errors.Join(err, aerr)
		}
	}
	return err
}

func (w *Writer) usable() error {
	if w.closed {
		return ErrClosed
	}
	return w.err
}

func (w *Writer) checkpointLocked(ctx context.Context, reason Reason) (uint64, error) {
	return w.writeLocked(ctx, Record{Actor: "system", Event: EventAuditCheckpoint, Outcome: Info, Reason: reason})
}

// writeLocked stamps r, signs it if it is a checkpoint, and writes it. A
// record that has a Time already (from the Queue: when it was handed
// over) keeps it.
func (w *Writer) writeLocked(ctx context.Context, r Record) (uint64, error) {
	r.Seq = w.next
	if r.Time.IsZero() {
		r.Time = w.now()
	}
	r.Time = r.Time.UTC()
	r.Prev = GenesisPrev
	if r.Seq > 1 {
		r.Prev = hexHash(w.prev)
	}
	if r.Event == EventAuditCheckpoint {
		data, err := signedData(r)
		if err != nil {
			return 0, err
		}
		sig, keyID, err := w.sign.Sign(ctx, data)
		if err != nil {
			return 0, fmt.Errorf("%w: %w", ErrSigner, err)
		}
		if !validKeyID(keyID) || !validSig(sig) {
			return 0, fmt.Errorf("audit: signer returned an unusable key id %q or signature", keyID)
		}
		r.KeyID, r.Sig = keyID, sig
	}
	b, err := r.MarshalJSON()
	if err != nil {
		return 0, err
	}
	if len(b) > MaxLineLen {
		return 0, fmt.Errorf("audit: record is %d bytes, longer than %d", len(b), MaxLineLen)
	}
	w.buf = append(append(w.buf[:0], b...), '\n')
	if _, err := w.f.Write(w.buf); err != nil {
		// Take a partial line back off if we can; either way stop, since
		// what is at the end of the file is no longer certain.
		w.f.Truncate(w.size)
		w.err = fmt.Errorf("audit: write failed, writer stopped: %w", err)
		return 0, w.err
	}
	w.size += int64(len(w.buf))
	w.prev = hashLine(b)
	w.next++
	w.written = r.Seq
	if r.Seq == 1 {
		w.trail = hexHash(w.prev)
	}
	if r.Event == EventAuditCheckpoint {
		w.since = 0
		w.lastCP = AnchorPoint{Trail: w.trail, Seq: r.Seq, Hash: hexHash(w.prev), Time: r.Time}
	} else {
		w.since++
	}
	return r.Seq, nil
}

func validSig(s string) bool {
	if s == "" || len(s) > 1024 {
		return false
	}
	for i := 0; i < len(s); i++ {
		if s[i] <= ' ' || s[i] > '~' || s[i] == '"' || s[i] == '\\' {
			return false
		}
	}
	return true
}

// syncTo returns once the record seq is on disk. Whoever gets syncMu first
// fsyncs for everyone written so far; the others find their record
// already covered.
func (w *Writer) syncTo(seq uint64) error {
	w.syncMu.Lock()
	defer w.syncMu.Unlock()
	if w.synced >= seq {
		return nil
	}
	w.mu.Lock()
	target, pos, cp, err := w.written, w.position(), w.lastCP, w.usable()
	w.mu.Unlock()
	if err != nil {
		return err
	}
	if err := fsync(w.f); err != nil {
		w.mu.Lock()
		if w.err == nil {
			w.err = fmt.Errorf("audit: fsync failed, writer stopped: %w", err)
			w.failSync = true
		}
		err = w.err
		w.mu.Unlock()
		return err
	}
	w.synced = target
	w.mu.Lock()
	w.durable = pos
	w.cpOnDisk = cp
	w.mu.Unlock()
	return nil
}

// appendBatch writes records the Queue checked and stamped, then a
// checkpoint if one is due, makes them durable with one fsync, and
// anchors the checkpoint. written reports whether every record is on
// disk, even when err says the checkpoint failed (ErrCheckpoint). skipped
// counts records that could not be written at all and were left out (a
// line over MaxLineLen); the rest of the batch is written.
func (w *Writer) appendBatch(ctx context.Context, recs []Record) (written bool, skipped int, err error) {
	w.mu.Lock()
	if err := w.usable(); err != nil {
		w.mu.Unlock()
		return false, 0, err
	}
	last := w.written
	// A batch is written whole or not at all: the Queue writes it again
	// after Recover, which cuts a failed one back to here.
	start := w.position()
	stop := func(err error) (bool, int, error) {
		if w.cutTo == nil {
			w.cutTo = &start
		}
		w.mu.Unlock()
		return false, 0, err
	}
	for _, r := range recs {
		seq, err := w.writeLocked(ctx, r)
		if err != nil {
			if w.err != nil {
				return stop(err)
			}
			skipped++
			continue
		}
		last = seq
	}
	var cpErr error
	cp := false
	if w.since >= w.every {
		seq, err := w.checkpointLocked(ctx, ReasonInterval)
		switch {
		case err == nil:
			last, cp = seq, true
		case w.err != nil:
			return stop(err)
		default:
			cpErr = fmt.Errorf("%w: %w", ErrCheckpoint, err)
		}
	}
	w.mu.Unlock()
	if err := w.syncTo(last); err != nil {
		return false, 0, err
	}
	if cp {
		if err := w.anchor(ctx); err != nil {
			return true, skipped, fmt.Errorf("%w: %w", ErrCheckpoint, err)
		}
	}
	return true, skipped, cpErr
}

// pending is the number of records after the last checkpoint.
func (w *Writer) pending() int {
	w.mu.Lock()
	defer w.mu.Unlock()
	return w.since
}

// stopped reports whether a failed write or fsync stopped the Writer.
func (w *Writer) stopped() bool {
	w.mu.Lock()
	defer w.mu.Unlock()
	return w.err != nil
}

// readFirstLine returns the first line of f, without its newline.
func readFirstLine(f *os.File) ([]byte, error) {
	b := make([]byte, MaxLineLen+1)
	n, err := f.ReadAt(b, 0)
	if err != nil && err != io.EOF {
		return nil, err
	}
	i := bytes.IndexByte(b[:n], '\n')
	if i < 0 {
		return nil, errors.New("first line has no newline or is too long")
	}
	return b[:i], nil
}

// fsync is (*os.File).Sync; the fuzz test turns it off to run faster.
var fsync = (*os.File).Sync

func syncDir(dir string) error {
	d, err := os.Open(dir)
	if err != nil {
		return err
	}
	defer d.Close()
	return fsync(d)
}

// tailState is where an existing file's chain stands.
type tailState struct {
	next   uint64
	prev   [32]byte
	since  int  // records after the last checkpoint
	clean  bool // the last record is a checkpoint with reason "close"
	cpSeq  uint64
	cpHash [32]byte // the last checkpoint's line hash, when cpSeq != 0
}

const tailChunk = 64 << 10

var checkpointMark = []byte(`"event":"audit.checkpoint"`)

// readTail reads f backwards to the last checkpoint and checks the chain
// from it to the end; with no checkpoint in the file, it checks the whole
// file.
func readTail(ctx context.Context, f *os.File, size int64, v Verifier) (tailState, error) {
	var data []byte // f[pos:size]
	pos := size
	unsearched := 0 // data[:unsearched] may hold a checkpoint line not looked at yet
	for {
		n := min(int64(tailChunk), pos)
		pos -= n
		chunk := make([]byte, n, int(n)+len(data))
		if _, err := f.ReadAt(chunk, pos); err != nil && err != io.EOF {
			return tailState{}, err
		}
		data = append(chunk, data...)
		unsearched += int(n)
		// data[start:] begins at the start of a line.
		start := 0
		if pos > 0 {
			i := bytes.IndexByte(data, '\n')
			if i < 0 {
				continue
			}
			start = i + 1
		}
		// Look for a checkpoint among the lines in data[start:unsearched],
		// last line first.
		cp := -1
		for end := unsearched; end > start; {
			ls := bytes.LastIndexByte(data[start:end-1], '\n') + 1 + start
			if bytes.Contains(data[ls:end], checkpointMark) {
				cp = ls
				break
			}
			end = ls
		}
		unsearched = start
		if cp < 0 && pos > 0 {
			continue
		}
		c := chain{ctx: ctx, v: v, next: 1, cps: map[uint64][32]byte{}}
		seg := data
		if cp >= 0 {
			seg = data[cp:]
			c.tail = !(pos == 0 && cp == 0)
		}
		return c.tailRun(newLineReader(bytes.NewReader(seg)))
	}
}

// tailRun checks the lines of a tail like run; the tail may end without a
// checkpoint (a writer that stopped without Close).
func (c *chain) tailRun(lr *lineReader) (tailState, error) {
	if _, err := c.run(lr); err != nil {
		return tailState{}, err
	}
	st := tailState{next: c.next, prev: c.prevHash, since: c.since}
	st.clean = c.last.Event == EventAuditCheckpoint && c.last.Reason == ReasonClose
	if cp := c.sum.Checkpointed; cp != 0 {
		st.cpSeq, st.cpHash = cp, c.cps[cp]
	}
	return st, nil
}
