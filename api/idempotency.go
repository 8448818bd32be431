package api

import (
	"crypto/sha256"
	"sync"
	"time"
)

// idemStore remembers the successful responses to requests that carried
// an Idempotency-Key, so a retry gets the same answer and starts no second
// session. Failed requests are forgotten: retrying them is safe.
//
// It keeps at most max entries: past that the oldest go first, even
// before their TTL, so that a client cannot fill the memory with keys.
type idemStore struct {
	mu      sync.Mutex
	now     func() time.Time
	ttl     time.Duration
	max     int
	entries map[string]*idemEntry
	order   []idemQueued // oldest first; entries abandoned meanwhile are skipped
}

type idemQueued struct {
	key string
	e   *idemEntry
}

type idemEntry struct {
	fp       [sha256.Size]byte // what was asked: call id and decoded body
	done     bool
	status   int
	body     []byte
	location string
	expires  time.Time
}

const (
	idemTTL       = 24 * time.Hour
	idemMaxKeyLen = 255
	// idemMax bounds the store: with bodies of a few KiB, some tens of MiB.
	idemMax = 10000
)

func newIdemStore(now func() time.Time) *idemStore {
	return &idemStore{now: now, ttl: idemTTL, max: idemMax, entries: map[string]*idemEntry{}}
}

type idemResult int

const (
	idemNew      idemResult = iota // go ahead, then call finish or abandon
	idemReplay                     // answer with the entry
	idemMismatch                   // same key, different request
	idemBusy                       // same key, first request still running
)

// begin claims key for a request with fingerprint fp.
func (s *idemStore) begin(key string, fp [sha256.Size]byte) (idemResult, *idemEntry) {
	s.mu.Lock()
	defer s.mu.Unlock()
	now := s.now()
	if e, ok := s.entries[key]; ok && now.Before(e.expires) {
		switch {
		case e.fp != fp:
			return idemMismatch, nil
		case !e.done:
			return idemBusy, nil
		default:
			c := *e
			return idemReplay, &c
		}
	}
	// Entries expire in the order they were made: the front of the queue
	// goes first, expired or not when the store is full.
	for len(s.order) > 0 {
		q := s.order[0]
		live := s.entries[q.key] == q.e
		if live && now.Before(q.e.expires) && len(s.entries) < s.max {
			break
		}
		if live {
			delete(s.entries, q.key)
		}
		s.order[0] = idemQueued{}
		s.order = s.order[1:]
	}
	if len(s.order) >= 2*s.max {
		// Mostly abandoned entries: keep the live ones, in order.
		live := s.order[:0]
		for _, q := range s.order {
			if s.entries[q.key] == q.e {
				live = append(live, q)
			}
		}
		clear(s.order[len(live):])
		s.order = live
	}
	e := &idemEntry{fp: fp, expires: now.Add(s.ttl)}
	s.entries[key] = e
	s.order = append(s.order, idemQueued{key, e})
	return idemNew, nil
}

func (s *idemStore) finish(key string, status int, body []byte, location string) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if e, ok := s.entries[key]; ok {
		e.done, e.status, e.body, e.location = true, status, body, location
	}
}

func (s *idemStore) abandon(key string) {
	s.mu.Lock()
	defer s.mu.Unlock()
	delete(s.entries, key)
}
