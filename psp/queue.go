package psp

import (
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"sort"
	"strings"
	"sync"
	"time"
)

// Reversal is what the queue keeps of a transaction to reverse: exactly
// what a 0400 needs to identify the original, and no card data. The 0400
// carries no PAN (field 2): the acquirer finds the original by field 90
// (original MTI, STAN, transmission date and time) with the RRN (37),
// terminal (41) and merchant (42). So the PAN is never written to disk.
type Reversal struct {
	OrigMTI      string    `json:"orig_mti"`
	STAN         string    `json:"stan"`         // the original's field 11
	RRN          string    `json:"rrn"`          // the original's field 37
	Transmission string    `json:"transmission"` // the original's field 7, MMDDhhmmss UTC
	LocalTime    string    `json:"local_time"`   // field 12
	LocalDate    string    `json:"local_date"`   // field 13
	ProcCode     string    `json:"proc_code"`    // field 3
	Amount       int64     `json:"amount"`
	Currency     string    `json:"currency"` // numeric, field 49
	Terminal     string    `json:"terminal"`
	Merchant     string    `json:"merchant"`
	Reference    string    `json:"reference,omitempty"` // the request's MerchantRef: for the audit trail
	Reason       string    `json:"reason"`              // why: psp_timeout, psp_connection_lost, late_response
	RevSTAN      string    `json:"rev_stan"`            // the 0400's own field 11, kept for its repeats
	Attempts     int       `json:"attempts"`
	Created      time.Time `json:"created"`
}

func (r *Reversal) id() string { return r.STAN + "-" + r.Transmission }

// queue is a directory with one JSON file per pending reversal, written
// through a fsync'd temporary file and rename, removed when the acquirer
// acknowledges. One file each keeps a crash from losing or corrupting more
// than the file being written, and needs no compaction.
type queue struct {
	mu  sync.Mutex
	dir string
}

func openQueue(dir string) (*queue, error) {
	d := filepath.Join(dir, "reversals")
	if err := os.MkdirAll(d, 0o700); err != nil {
		return nil, fmt.Errorf("psp: reversal queue: %w", err)
	}
	return &queue{dir: d}, nil
}

func (q *queue) path(r *Reversal) string { return filepath.Join(q.dir, r.id()+".json") }

// put adds or updates r.
func (q *queue) put(r *Reversal) error {
	b, err := json.Marshal(r)
	if err != nil {
		return err
	}
	q.mu.Lock()
	defer q.mu.Unlock()
	if err := writeFileSync(q.path(r), append(b, '\n')); err != nil {
		return fmt.Errorf("psp: saving reversal %s: %w", r.id(), err)
	}
	return nil
}

func (q *queue) remove(r *Reversal) error {
	q.mu.Lock()
	defer q.mu.Unlock()
	if err := os.Remove(q.path(r)); err != nil && !errors.Is(err, os.ErrNotExist) {
		return err
	}
	return syncDir(q.dir)
}

// list returns the pending reversals, oldest first. A file that does not
// parse is renamed to .bad and skipped, so one bad file cannot stop the
// others.
func (q *queue) list() ([]*Reversal, error) {
	q.mu.Lock()
	defer q.mu.Unlock()
	ents, err := os.ReadDir(q.dir)
	if err != nil {
		return nil, err
	}
	var out []*Reversal
	for _, e := range ents {
		if e.IsDir() || !strings.HasSuffix(e.Name(), ".json") {
			continue
		}
		p := filepath.Join(q.dir, e.Name())
		b, err := os.ReadFile(p)
		if err != nil {
			continue
		}
		r := new(Reversal)
		if json.Unmarshal(b, r) != nil || r.STAN == "" {
			_ = os.Rename(p, p+".bad")
			continue
		}
		out = append(out, r)
	}
	sort.Slice(out, func(i, j int) bool { return out[i].Created.Before(out[j].Created) })
	return out, nil
}
