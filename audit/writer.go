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
)

// Writer appends records to an audit trail file. It is safe for concurrent
// use. It never logs: every failure is returned to the caller.
//
// After a failed write or fsync the Writer stops: every later call returns
// the same error, because the state of the file's end is no longer known.
// Opening the file again checks its tail.
type Writer struct {
	f     *os.File
	every int
	sync  SyncPolicy
	sign  Signer
	now   func() time.Time

	mu      sync.Mutex
	next    uint64   // seq of the next record
	prev    [32]byte // hash of the last line
	since   int      // records since the last checkpoint
	size    int64    // bytes in the file
	written uint64   // seq of the last record written
	closed  bool
	err     error // sticky write or sync failure
	buf     []byte

	syncMu sync.Mutex
	synced uint64 // seq of the last record known to be on disk
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
// to look at; the gateway should then start a new file. A file that is writable by group or others, or
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
		reason = ReasonContinued
		if !st.clean {
			reason = ReasonContinuedUnclean
		}
	}
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
	return seq, cpErr
}

// Checkpoint writes a signed checkpoint now (reason "requested"), for
// example from a timer so that a quiet gateway's trail is signed often
// enough, and makes it durable.
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
	return w.syncTo(seq)
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
	defer w.syncMu.Unlock()
	if serr := fsync(w.f); serr != nil {
		err = errors.Join(err, fmt.Errorf("audit: fsync: %w", serr))
	} else {
		w.synced = written
	}
	if cerr := w.f.Close(); cerr != nil {
		err = errors.Join(err, fmt.Errorf("audit: %w", cerr))
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

// writeLocked stamps r, signs it if it is a checkpoint, and writes it.
func (w *Writer) writeLocked(ctx context.Context, r Record) (uint64, error) {
	r.Seq = w.next
	r.Time = w.now().UTC()
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
			return 0, fmt.Errorf("audit: signing checkpoint: %w", err)
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
	if r.Event == EventAuditCheckpoint {
		w.since = 0
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
	target, err := w.written, w.usable()
	w.mu.Unlock()
	if err != nil {
		return err
	}
	if err := fsync(w.f); err != nil {
		w.mu.Lock()
		if w.err == nil {
			w.err = fmt.Errorf("audit: fsync failed, writer stopped: %w", err)
		}
		err = w.err
		w.mu.Unlock()
		return err
	}
	w.synced = target
	return nil
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
	next  uint64
	prev  [32]byte
	since int  // records after the last checkpoint
	clean bool // the last record is a checkpoint with reason "close"
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
		c := chain{ctx: ctx, v: v, next: 1}
		seg := data
		if cp >= 0 {
			seg = data[cp:]
			c.tail = !(pos == 0 && cp == 0)
		}
		return c.tailRun(newLineReader(bytes.NewReader(seg)))
	}
}

// tailRun checks the lines of a tail like run, except that the tail may
// end without a checkpoint (a writer that stopped without Close).
func (c *chain) tailRun(lr *lineReader) (tailState, error) {
	_, err := c.run(lr)
	var ve *VerifyError
	if err != nil && !(errors.As(err, &ve) && ve.Err == ErrNoCheckpoint) {
		return tailState{}, err
	}
	st := tailState{next: c.next, prev: c.prevHash, since: c.since}
	st.clean = c.last.Event == EventAuditCheckpoint && c.last.Reason == ReasonClose
	return st, nil
}
