package main

import (
	"errors"
	"strings"
	"testing"

	"go.uber.org/zap"
	"go.uber.org/zap/zapcore"
	"go.uber.org/zap/zaptest/observer"

	"github.com/tonevault/tonevault/psp"
)

// fakeQueue empties by one reversal per look, or never.
type fakeQueue struct {
	n     int
	stuck bool
	err   error
	looks int
}

func (q *fakeQueue) PendingReversals() ([]psp.Reversal, error) {
	q.looks++
	if q.err != nil {
		return nil, q.err
	}
	out := make([]psp.Reversal, q.n)
	if !q.stuck && q.n > 0 {
		q.n--
	}
	return out, nil
}

func TestFlushReversals(t *testing.T) {
	core, logs := observer.New(zapcore.DebugLevel)
	log := zap.New(core)
	q := &fakeQueue{n: 3}
	flushReversals(q, 10e9, log)
	if q.n != 0 || q.looks != 4 || logs.Len() != 0 {
		t.Errorf("draining queue: %d left after %d looks, %d log lines", q.n, q.looks, logs.Len())
	}
	stuck := &fakeQueue{n: 2, stuck: true}
	flushReversals(stuck, 1e8, log)
	if e := logs.TakeAll(); len(e) != 1 || !strings.Contains(e[0].Message, "next start") || e[0].ContextMap()["reversals"] != int64(2) {
		t.Errorf("stuck queue logged %v", e)
	}
	flushReversals(&fakeQueue{err: errors.New("disk")}, 1e8, log)
	if logs.Len() != 1 {
		t.Error("unreadable queue not logged")
	}
}

func TestSplitFDs(t *testing.T) {
	b, err := splitFDs(1024, 40, 100)
	if err != nil || b.http != 1024-40-fdHeadroom-600 || b.calls != 600 {
		t.Errorf("1024, 40 open, 100 calls: %+v %v", b, err)
	}
	if !strings.Contains(b.String(), "limit 1024 = 40 in use at start + 64 headroom + 600 for calls + 320 for HTTP") {
		t.Errorf("String() = %q", b.String())
	}
	// The default max_calls (500) does not fit a 1024 limit.
	if _, err := splitFDs(1024, 40, 500); err == nil || !strings.Contains(err.Error(), "sip.limits.max_calls") {
		t.Errorf("too low a limit: %v", err)
	}
	if _, err := splitFDs(4096, 40, 500); err != nil {
		t.Errorf("4096 with the defaults: %v", err)
	}
}
