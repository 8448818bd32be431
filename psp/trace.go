package psp

import (
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"time"
)

// traceBlock is how many STANs are reserved on disk at a time: one fsync
// per traceBlock messages, and a restart skips at most traceBlock numbers.
const traceBlock = 1000

// tracer hands out STANs (field 11) and RRNs (field 37).
//
// The STAN is a counter 000001..999999 that wraps to 000001, shared by
// every message the connector sends. The file "stan" in the state
// directory holds the first number not yet handed out by a previous run
// (a block of traceBlock is reserved ahead, written with fsync before any
// number of the block is used), so a restart never repeats a STAN: it
// repeats only after 999,999 messages, which is more than a day's traffic
// of one terminal.
//
// The RRN is YDDDhh + STAN: the last digit of the year, the day of the
// year and the UTC hour, then the STAN. It is unique as long as the STAN
// is, and tells an operator when the transaction happened.
type tracer struct {
	mu    sync.Mutex
	path  string
	next  int // next STAN to hand out
	limit int // first STAN not reserved on disk
}

func openTracer(dir string) (*tracer, error) {
	t := &tracer{path: filepath.Join(dir, "stan"), next: 1}
	b, err := os.ReadFile(t.path)
	switch {
	case errors.Is(err, os.ErrNotExist):
	case err != nil:
		return nil, fmt.Errorf("psp: reading STAN counter: %w", err)
	default:
		n, err := strconv.Atoi(strings.TrimSpace(string(b)))
		if err != nil || n < 1 || n > 999999 {
			return nil, fmt.Errorf("psp: STAN counter file %s is corrupt", t.path)
		}
		t.next = n
	}
	t.limit = t.next
	return t, nil
}

// nextSTAN returns the next STAN, reserving a new block on disk first when
// the current one is used up.
func (t *tracer) nextSTAN() (string, error) {
	t.mu.Lock()
	defer t.mu.Unlock()
	if t.next == t.limit {
		limit := t.next + traceBlock
		stored := limit
		if stored > 999999 {
			stored -= 999999
		}
		if err := writeFileSync(t.path, []byte(strconv.Itoa(stored)+"\n")); err != nil {
			return "", fmt.Errorf("psp: saving STAN counter: %w", err)
		}
		t.limit = limit
	}
	n := t.next
	t.next++
	if t.next > 999999 {
		// Wrap: next and limit move down together, keeping the reserve.
		t.next -= 999999
		t.limit -= 999999
	}
	return fmt.Sprintf("%06d", n), nil
}

// rrn builds field 37 for a STAN sent at now.
func rrn(now time.Time, stan string) string {
	now = now.UTC()
	return fmt.Sprintf("%d%03d%02d%s", now.Year()%10, now.YearDay(), now.Hour(), stan)
}

// writeFileSync writes a file through a temporary file, fsyncs it, renames
// it into place and fsyncs the directory, so a crash leaves either the old
// or the new content.
func writeFileSync(path string, data []byte) error {
	dir := filepath.Dir(path)
	f, err := os.CreateTemp(dir, ".tmp-*")
	if err != nil {
		return err
	}
	tmp := f.Name()
	_, err = f.Write(data)
	if err == nil {
		err = f.Sync()
	}
	if cerr := f.Close(); err == nil {
		err = cerr
	}
	if err == nil {
		err = os.Rename(tmp, path)
	}
	if err != nil {
		os.Remove(tmp)
		return err
	}
	return syncDir(dir)
}

func syncDir(dir string) error {
	d, err := os.Open(dir)
	if err != nil {
		return err
	}
	defer d.Close()
	return d.Sync()
}
