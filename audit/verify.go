package audit

import (
	"bufio"
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"strings"
)

// What Verify finds wrong, as the Err of a *VerifyError (errors.Is works
// on the VerifyError itself).
var (
	// ErrTruncated: the last line has no newline: the file was cut, or a
	// write did not finish.
	ErrTruncated = errors.New("truncated line")
	// ErrMalformed: a line is not a record at all.
	ErrMalformed = errors.New("malformed record")
	// ErrChanged: a line's bytes are not what was written: its hash no
	// longer matches the next record's prev, or it is not in canonical
	// form.
	ErrChanged = errors.New("record changed")
	// ErrRemoved: a seq is missing: one or more lines were removed.
	ErrRemoved = errors.New("record removed")
	// ErrOutOfOrder: a seq comes again or too early: lines were inserted,
	// copied or reordered.
	ErrOutOfOrder = errors.New("record inserted or out of order")
	// ErrCut: the anchor holds a checkpoint beyond the trail's last
	// record: the end of the trail was cut off (VerifyAnchored).
	ErrCut = errors.New("records cut off the end")
	// ErrAnchorMismatch: the trail's line at an anchored checkpoint's seq
	// is not that checkpoint: the trail was rewritten, or replaced by
	// another (VerifyAnchored).
	ErrAnchorMismatch = errors.New("checkpoint differs from its anchor")
	// ErrNotAnchored: the anchor holds no checkpoint of this trail: the
	// trail was replaced whole, or its writer never anchored a checkpoint
	// (VerifyAnchored).
	ErrNotAnchored = errors.New("no anchored checkpoint")
	// ErrEmpty: the file holds no record.
	ErrEmpty = errors.New("no records")
	// ErrBadSignature (declared with Verifier): a checkpoint's signature
	// does not verify, or is by an unknown key.
)

// VerifyError names the first bad record of a trail and what is wrong.
type VerifyError struct {
	Line   int    // 1-based line number; 0 when not known
	Seq    uint64 // the record's seq; 0 when the line holds none that can be read
	Err    error  // ErrTruncated, ErrMalformed, ErrChanged, ErrRemoved, ErrOutOfOrder, ErrEmpty, ErrBadSignature, ErrCut, ErrAnchorMismatch or ErrNotAnchored
	Detail string // what exactly, for a human

	cause error // the Verifier's error, for errors.Is (ErrUnknownKey)
}

func (e *VerifyError) Error() string {
	var where string
	switch {
	case e.Line > 0 && e.Seq > 0:
		where = fmt.Sprintf("line %d (seq %d): ", e.Line, e.Seq)
	case e.Line > 0:
		where = fmt.Sprintf("line %d: ", e.Line)
	case e.Seq > 0:
		where = fmt.Sprintf("seq %d: ", e.Seq)
	}
	if e.Detail == "" {
		return where + e.Err.Error()
	}
	return where + e.Err.Error() + ": " + e.Detail
}

// Unwrap returns Err, and the Verifier's error for a bad signature.
func (e *VerifyError) Unwrap() []error {
	if e.cause != nil {
		return []error{e.Err, e.cause}
	}
	return []error{e.Err}
}

// Summary is what Verify found in an intact trail.
type Summary struct {
	Records     int    // records, checkpoints included
	Checkpoints int    // checkpoint records
	LastSeq     uint64 // seq of the last record
	LastHash    string // hex SHA-256 of the last line: what a next record's prev would be
	Signed      bool   // checkpoint signatures were checked (a Verifier was given)
	TrailID     string // hex SHA-256 of the first line, under which an Anchor files the trail's checkpoints
	// Checkpointed is the seq of the last checkpoint: the records up to
	// it are covered by its signature, those after it (LastSeq -
	// Checkpointed of them) not yet. 0 when there is no checkpoint.
	Checkpointed uint64
	// Closed: the last record is the checkpoint a Writer writes when it
	// closes. Otherwise the trail is live, or its writer stopped without
	// closing (a crash), or, if no anchor says otherwise, its end was cut
	// off.
	Closed bool
	// Anchored is the seq of the last anchored checkpoint found in the
	// trail (VerifyAnchored); 0 without an anchor.
	Anchored uint64
}

// Verify reads a whole audit trail from r and checks it: every line is a
// complete record in canonical form, seq counts from 1 without gaps, every
// prev is the SHA-256 of the line before (GenesisPrev for the first), and,
// when v is not nil, every checkpoint's signature verifies. With a nil v
// the chain is checked but signatures are not, so a trail rewritten whole
// by someone who can write the file would pass: give a Verifier whenever
// the key is at hand.
//
// A trail that does not end with a checkpoint verifies: it is live, or
// its writer stopped without closing it. Summary says how far it is
// checkpointed and whether it was closed. That its end was not cut off,
// only VerifyAnchored can tell.
//
// It returns a *VerifyError for the first bad record (in file order; when
// a changed line is only seen at the next record, the changed line is
// named), and a plain error when r cannot be read.
func Verify(ctx context.Context, r io.Reader, v Verifier) (Summary, error) {
	c := chain{ctx: ctx, v: v, lines: true, next: 1}
	return c.run(newLineReader(r))
}

// VerifyAnchored is Verify, then a check of the trail against the
// checkpoints a holds for it (by Summary.TrailID): each must be in the
// trail, as a checkpoint whose line hashes to the anchored hash. So a
// trail cut after a checkpoint later than the last anchored one
// (ErrCut), rewritten or replaced by an older copy (ErrCut,
// ErrAnchorMismatch) or by another trail (ErrNotAnchored) fails. Records
// after the last anchored checkpoint are covered by the chain only: a cut
// among them cannot be told from a trail still being written; the
// gateway anchors a checkpoint every audit.checkpoint_interval.
//
// A plain error (not a *VerifyError) means the anchor could not be read.
func VerifyAnchored(ctx context.Context, r io.Reader, v Verifier, a Anchor) (Summary, error) {
	c := chain{ctx: ctx, v: v, lines: true, next: 1, cps: map[uint64][32]byte{}}
	sum, err := c.run(newLineReader(r))
	if err != nil {
		return sum, err
	}
	points, err := a.Points(ctx, sum.TrailID)
	if err != nil {
		return sum, err
	}
	if len(points) == 0 {
		return sum, &VerifyError{Err: ErrNotAnchored, Detail: fmt.Sprintf(
			"the anchor holds no checkpoint of trail %s: the trail was replaced whole, or never anchored", sum.TrailID)}
	}
	for _, p := range points {
		if p.Seq > sum.LastSeq {
			last := points[len(points)-1]
			return sum, &VerifyError{Seq: last.Seq, Err: ErrCut, Detail: fmt.Sprintf(
				"the anchor holds checkpoint seq %d of %s, but the trail ends at seq %d",
				last.Seq, last.Time.UTC().Format(TimeLayout), sum.LastSeq)}
		}
	}
	for _, p := range points {
		h, ok := c.cps[p.Seq]
		if !ok || hexHash(h) != p.Hash {
			return sum, &VerifyError{Line: int(p.Seq), Seq: p.Seq, Err: ErrAnchorMismatch, Detail: fmt.Sprintf(
				"the anchored checkpoint of %s is not this line: the trail was rewritten from here or before",
				p.Time.UTC().Format(TimeLayout))}
		}
		sum.Anchored = max(sum.Anchored, p.Seq)
	}
	return sum, nil
}

// chain walks lines and checks them.
type chain struct {
	ctx   context.Context
	v     Verifier
	lines bool   // line numbers are known (a whole file, from its start)
	tail  bool   // the first line is a checkpoint in the middle of a file: trust its seq and prev
	next  uint64 // expected seq

	prevHash [32]byte
	prevLine []byte
	prevSeq  uint64
	since    int // records after the last checkpoint
	last     Record
	sum      Summary
	cps      map[uint64][32]byte // when not nil: each checkpoint's line hash, by seq
}

func (c *chain) fail(idx int, seq uint64, kind error, format string, a ...any) *VerifyError {
	e := &VerifyError{Seq: seq, Err: kind, Detail: fmt.Sprintf(format, a...)}
	if c.lines {
		e.Line = idx
	}
	return e
}

func (c *chain) run(lr *lineReader) (Summary, error) {
	c.sum.Signed = c.v != nil
	cur, err := lr.read()
	if err != nil && err != io.EOF {
		return c.sum, err
	}
	idx := 0
	for cur != nil {
		idx++
		if idx%4096 == 0 && c.ctx.Err() != nil {
			return c.sum, c.ctx.Err()
		}
		nxt, err := lr.read()
		if err != nil && err != io.EOF {
			return c.sum, err
		}
		if verr := c.check(idx, cur, nxt); verr != nil {
			return c.sum, verr
		}
		c.prevLine = append(c.prevLine[:0], cur.b...)
		lr.release(cur)
		cur = nxt
	}
	if c.sum.Records == 0 {
		return c.sum, &VerifyError{Err: ErrEmpty}
	}
	c.sum.Closed = c.last.Event == EventAuditCheckpoint && c.last.Reason == ReasonClose
	return c.sum, nil
}

// check checks line number idx, with the line after it (nil at the end)
// to tell a changed line from a changed prev, and a removal from a swap.
func (c *chain) check(idx int, cur, nxt *line) *VerifyError {
	if !cur.complete {
		return c.fail(idx, 0, ErrTruncated, "the last line has no newline (%d bytes): the file was cut or a write did not finish", len(cur.b))
	}
	if cur.tooLong {
		return c.fail(idx, 0, ErrMalformed, "line longer than %d bytes", MaxLineLen)
	}
	rec, err := cur.parse()
	if err == errNotCanonical {
		return c.fail(idx, rec.Seq, ErrChanged, "%v", err)
	}
	if err != nil {
		return c.fail(idx, rec.Seq, ErrMalformed, "%v", err)
	}
	first := c.sum.Records == 0
	if first && c.tail {
		c.next = rec.Seq
	}
	var nrec Record
	var nerr error = io.EOF
	if nxt != nil && nxt.complete && !nxt.tooLong {
		nrec, nerr = nxt.parse()
	}
	switch {
	case rec.Seq > c.next:
		if nerr == nil && nrec.Seq == c.next {
			return c.fail(idx, rec.Seq, ErrOutOfOrder, "seq %d comes before seq %d: lines reordered", rec.Seq, c.next)
		}
		if rec.Seq == c.next+1 {
			return c.fail(idx, rec.Seq, ErrRemoved, "seq %d expected: that record is missing", c.next)
		}
		return c.fail(idx, rec.Seq, ErrRemoved, "seq %d expected: records %d to %d are missing", c.next, c.next, rec.Seq-1)
	case rec.Seq < c.next:
		if bytes.Equal(cur.b, c.prevLine) {
			return c.fail(idx, rec.Seq, ErrOutOfOrder, "a copy of the line before it was inserted")
		}
		return c.fail(idx, rec.Seq, ErrOutOfOrder, "seq %d again after seq %d: a line was inserted or moved", rec.Seq, c.next-1)
	}
	if nerr == nil && nrec.Seq == rec.Seq && nrec.Prev == rec.Prev && !bytes.Equal(nxt.b, cur.b) {
		return c.fail(idx, rec.Seq, ErrOutOfOrder, "seq %d appears again on the next line with the same prev: one of the two was inserted", rec.Seq)
	}

	want := GenesisPrev
	if !first {
		want = hexHash(c.prevHash)
	}
	if rec.Prev != want && !(first && c.tail) {
		if first {
			return c.fail(idx, rec.Seq, ErrChanged, "the first record's prev is not %s", GenesisPrev)
		}
		// Either the line before changed, or this line's prev did. If this
		// line is intact (its checkpoint signature holds, or the next line
		// still chains to it), the line before is the changed one.
		blamePrev := true
		if rec.Event == EventAuditCheckpoint && c.v != nil {
			blamePrev = c.verifySig(rec) == nil
		} else if nerr == nil {
			h := hashLine(cur.b)
			blamePrev = nrec.Prev == hexHash(h)
		}
		if blamePrev {
			return c.fail(idx-1, c.prevSeq, ErrChanged, "its SHA-256 no longer matches the prev of the next record (seq %d)", rec.Seq)
		}
		return c.fail(idx, rec.Seq, ErrChanged, "prev does not match the SHA-256 of the record before it (seq %d)", c.prevSeq)
	}
	c.since++
	if rec.Event == EventAuditCheckpoint {
		c.since = 0
		c.sum.Checkpoints++
		if c.v != nil {
			if err := c.verifySig(rec); err != nil {
				e := c.fail(idx, rec.Seq, ErrBadSignature, "%s", strings.TrimPrefix(err.Error(), ErrBadSignature.Error()+": "))
				e.cause = err
				return e
			}
		}
	}
	c.prevHash = hashLine(cur.b)
	if first && !c.tail {
		c.sum.TrailID = hexHash(c.prevHash)
	}
	if rec.Event == EventAuditCheckpoint {
		c.sum.Checkpointed = rec.Seq
		if c.cps != nil {
			c.cps[rec.Seq] = c.prevHash
		}
	}
	c.prevSeq = rec.Seq
	c.next = rec.Seq + 1
	c.last = rec
	c.sum.Records++
	c.sum.LastSeq = rec.Seq
	c.sum.LastHash = hexHash(c.prevHash)
	return nil
}

func (c *chain) verifySig(rec Record) error {
	data, err := signedData(rec)
	if err != nil {
		return err
	}
	err = c.v.Verify(c.ctx, data, rec.Sig, rec.KeyID)
	if err != nil && !errors.Is(err, ErrBadSignature) && !errors.Is(err, ErrUnknownKey) {
		err = fmt.Errorf("%w: %v", ErrBadSignature, err)
	}
	return err
}

// line is one line of input, without its newline.
type line struct {
	b        []byte
	complete bool // it ended with a newline
	tooLong  bool // it was longer than MaxLineLen; b holds its start only

	parsed bool // rec and err hold parseLine(b)
	rec    Record
	err    error
}

// parse returns parseLine(l.b), parsing once.
func (l *line) parse() (Record, error) {
	if !l.parsed {
		l.rec, l.err = parseLine(l.b)
		l.parsed = true
	}
	return l.rec, l.err
}

// lineReader reads lines, keeping a few buffers for reuse.
type lineReader struct {
	br   *bufio.Reader
	free []*line
}

func newLineReader(r io.Reader) *lineReader {
	return &lineReader{br: bufio.NewReaderSize(r, 64<<10)}
}

func (lr *lineReader) release(l *line) { lr.free = append(lr.free, l) }

// read returns the next line, or nil and io.EOF at the end.
func (lr *lineReader) read() (*line, error) {
	var l *line
	if n := len(lr.free); n > 0 {
		l, lr.free = lr.free[n-1], lr.free[:n-1]
		*l = line{b: l.b[:0]}
	} else {
		l = &line{}
	}
	for {
		chunk, err := lr.br.ReadSlice('\n')
		if len(l.b)+len(chunk) > MaxLineLen+1 {
			l.tooLong = true
			if room := MaxLineLen + 1 - len(l.b); room > 0 {
				l.b = append(l.b, chunk[:room]...)
			}
		} else {
			l.b = append(l.b, chunk...)
		}
		switch err {
		case nil:
			l.complete = true
			l.b = l.b[:len(l.b)-1]
			if l.tooLong {
				l.b = l.b[:min(len(l.b), MaxLineLen)]
			}
			return l, nil
		case bufio.ErrBufferFull:
			continue
		case io.EOF:
			if len(l.b) == 0 && !l.tooLong {
				return nil, io.EOF
			}
			return l, nil
		default:
			return nil, err
		}
	}
}
