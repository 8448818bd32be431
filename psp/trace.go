package psp

import (
	"context"
	"fmt"
	"sync"
	"time"
)

// traceBlock is how many STANs a connector reserves in the store at a
// time: one write per traceBlock messages, and a restart skips at most
// traceBlock numbers.
const traceBlock = 1000

// maxSTAN is the last STAN; the next is 000001 again.
const maxSTAN = 999999

// tracer hands out STANs (field 11) and RRNs (field 37).
//
// The STAN is a counter 000001..999999 that wraps to 000001, shared by
// every message the connector sends. It lives in the store, one counter
// per terminal id (field 41), which only ever grows: a connector reserves
// a block of traceBlock values with one statement before using any of
// them, and value v is STAN (v-1) mod 999999 + 1. So a restart never
// repeats a STAN, and gateways sharing a database and a terminal id never
// send the same one: a STAN repeats only after 999,999 messages of the
// terminal, more than a day's traffic.
//
// The RRN is YDDDhh + STAN: the last digit of the year, the day of the
// year and the UTC hour, then the STAN. It is unique as long as the STAN
// is, and tells an operator when the transaction happened.
type tracer struct {
	mu    sync.Mutex
	st    Store
	name  string // the counter's name in the store
	next  int64  // the next value to hand out
	limit int64  // the first value not reserved
}

func newTracer(st Store, terminal string) *tracer {
	return &tracer{st: st, name: stanCounter(terminal)}
}

// stanCounter is the store's counter of a terminal's STANs.
func stanCounter(terminal string) string { return "psp.stan/" + terminal }

// nextSTAN returns the next STAN, reserving a new block in the store first
// when the current one is used up.
func (t *tracer) nextSTAN(ctx context.Context) (string, error) {
	t.mu.Lock()
	defer t.mu.Unlock()
	if t.next == t.limit {
		ctx, cancel := context.WithTimeout(ctx, dbTimeout)
		end, err := t.st.AdvanceCounter(ctx, t.name, traceBlock, 0)
		cancel()
		if err != nil {
			return "", fmt.Errorf("psp: reserving STANs: %w", err)
		}
		t.next, t.limit = end-traceBlock+1, end+1
	}
	v := t.next
	t.next++
	return fmt.Sprintf("%06d", (v-1)%maxSTAN+1), nil
}

// rrn builds field 37 for a STAN sent at now.
func rrn(now time.Time, stan string) string {
	now = now.UTC()
	return fmt.Sprintf("%d%03d%02d%s", now.Year()%10, now.YearDay(), now.Hour(), stan)
}
