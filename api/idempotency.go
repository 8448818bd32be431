package api

import (
	"crypto/sha256"
	"sync"
	"time"
)

// idemStore remembers the successful responses to requests that carried
// an Idempotency-Key, so a retry gets the same answer and starts no second
// session. Failed requests are forgotten: retrying them is safe.
type idemStore struct {
	mu      sync.Mutex
	now     func() time.Time
	ttl     time.Duration
	entries map[string]*idemEntry
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
	idemPruneAt   = 10000
)

func newIdemStore(now func() time.Time) *idemStore {
	return &idemStore{now: now, ttl: idemTTL, entries: map[string]*idemEntry{}}
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
	if len(s.entries) >= idemPruneAt {
		for k, e := range s.entries {
			if !now.Before(e.expires) {
				delete(s.entries, k)
			}
		}
	}
	s.entries[key] = &idemEntry{fp: fp, expires: now.Add(s.ttl)}
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
