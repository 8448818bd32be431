package sip

import (
	"crypto/rand"
	"encoding/base32"
	"strings"
	"sync"
	"time"

	"github.com/tonevault/tonevault/audit"
	"github.com/tonevault/tonevault/media"
)

// State is where a call is in its life.
type State string

const (
	StateRinging  State = "ringing"  // INVITE sent on, no answer yet
	StateEarly    State = "early"    // early media (18x with SDP)
	StateAnswered State = "answered" // 2xx
	StateEnded    State = "ended"
)

// LegInfo is one leg's SIP identity.
type LegInfo struct {
	Trunk     string // "carrier" or "platform"
	CallID    string // SIP Call-ID of this leg
	LocalTag  string // the gateway's tag on this leg
	RemoteTag string // the peer's tag, empty until it answers
}

// CallInfo is a snapshot of one call, safe to keep and read.
type CallInfo struct {
	ID       string // the gateway's own id: "c-" and 16 hex digits
	Carrier  LegInfo
	Platform LegInfo
	// Inbound is the trunk the call arrived on.
	Inbound string
	State   State
	// Outcome is set when the call ends: "answered", "cancelled",
	// "busy", "rejected", "failed", "media_timeout", "max_duration", ...
	Outcome     string
	Caller      string // user part of the caller's From
	Callee      string // user part of the Request-URI the call arrived with
	Correlation map[string]string
	Start       time.Time
	Answer      time.Time // zero until answered
	End         time.Time // zero until ended
	Transfers   int       // transfers completed (the platform leg is the newest)
}

// Filter selects calls for Registry.List; zero fields match everything.
type Filter struct {
	Correlation string // any correlation header has this value
	Caller      string
	State       State
}

// Registry holds the gateway's calls: the live ones and, for a while, the
// ended ones. It is safe for concurrent use.
type Registry struct {
	mu        sync.RWMutex
	calls     map[string]*CallInfo
	bySIP     map[string]string // SIP Call-ID of either leg → id
	order     []string          // ids, oldest first, for List; may hold expired ids (skipped, compacted now and then)
	ended     []string          // ids of ended calls in the order they ended; expired from endHead
	endHead   int
	keepEnded int

	subMu     sync.RWMutex
	subs      map[int]func(media.Digit)
	ends      map[int]func(CallInfo)
	transfers map[int]func(Transfer)
	next      int
}

// NewRegistry returns an empty registry that keeps the last keepEnded
// ended calls for lookups (0: 1000).
func NewRegistry(keepEnded int) *Registry {
	if keepEnded <= 0 {
		keepEnded = 1000
	}
	return &Registry{calls: map[string]*CallInfo{}, bySIP: map[string]string{}, keepEnded: keepEnded, subs: map[int]func(media.Digit){}, ends: map[int]func(CallInfo){}, transfers: map[int]func(Transfer){}}
}

// idEncoding is base32 (RFC 4648) in lowercase, without padding.
var idEncoding = base32.StdEncoding.WithPadding(base32.NoPadding)

// newCallID returns a fresh gateway call id: "c-" and 80 random bits in
// lowercase base32 (16 characters); with a node name, "c-NODE-" and the
// same.
//
// An id is an audit.ValidID, which never holds 12 digits in a row; base32
// spells one with 12 of its digits 2-7 in a row about once in 10^8 ids
// (8e-9), and that draw is made again. So the operational log's redactor,
// which masks runs of 12 to 19 digits that pass the Luhn check, never
// masks a call id logged as a field (without the redraw it would, about
// once in 10^9 ids).
func newCallID(node string) string {
	prefix := "c-"
	if node != "" {
		prefix += node + "-"
	}
	for {
		var b [10]byte
		_, _ = rand.Read(b[:])
		if id := prefix + strings.ToLower(idEncoding.EncodeToString(b[:])); audit.ValidID(id) {
			return id
		}
	}
}

func clone(c *CallInfo) CallInfo {
	out := *c
	if c.Correlation != nil {
		out.Correlation = make(map[string]string, len(c.Correlation))
		for k, v := range c.Correlation {
			out.Correlation[k] = v
		}
	}
	return out
}

// add registers a new call.
func (r *Registry) add(c *CallInfo) {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.calls[c.ID] = c
	r.order = append(r.order, c.ID)
	for _, id := range []string{c.Carrier.CallID, c.Platform.CallID} {
		if id != "" {
			r.bySIP[id] = c.ID
		}
	}
}

// update changes a call under the registry's lock.
// A call that ends here is handed to the OnEnd subscribers, once, after
// the lock is released.
func (r *Registry) update(id string, f func(c *CallInfo)) {
	r.mu.Lock()
	c, ok := r.calls[id]
	if !ok {
		r.mu.Unlock()
		return
	}
	wasEnded := c.State == StateEnded
	f(c)
	for _, sid := range []string{c.Carrier.CallID, c.Platform.CallID} {
		if sid != "" {
			r.bySIP[sid] = c.ID
		}
	}
	var ended *CallInfo
	if c.State == StateEnded && !wasEnded {
		snap := clone(c)
		ended = &snap
		r.ended = append(r.ended, c.ID)
		r.expire()
	}
	r.mu.Unlock()
	if ended != nil {
		r.subMu.RLock()
		defer r.subMu.RUnlock()
		for _, fn := range r.ends {
			fn(*ended)
		}
	}
}

// expire drops the oldest ended calls beyond keepEnded. Caller holds mu.
// It costs O(1) per call ended (amortized): at a few hundred calls a
// second, a scan of every kept call on each end was a quarter of the
// gateway's CPU.
func (r *Registry) expire() {
	for len(r.ended)-r.endHead > r.keepEnded {
		id := r.ended[r.endHead]
		r.ended[r.endHead] = ""
		r.endHead++
		if c, ok := r.calls[id]; ok {
			delete(r.calls, id)
			delete(r.bySIP, c.Carrier.CallID)
			delete(r.bySIP, c.Platform.CallID)
		}
	}
	if r.endHead > len(r.ended)/2 {
		r.ended = append(r.ended[:0], r.ended[r.endHead:]...)
		r.endHead = 0
	}
	if len(r.order) > 2*len(r.calls)+64 {
		kept := r.order[:0]
		for _, id := range r.order {
			if _, ok := r.calls[id]; ok {
				kept = append(kept, id)
			}
		}
		clear(r.order[len(kept):])
		r.order = kept
	}
}

// Get returns the call with the gateway id id.
func (r *Registry) Get(id string) (CallInfo, bool) {
	r.mu.RLock()
	defer r.mu.RUnlock()
	c, ok := r.calls[id]
	if !ok {
		return CallInfo{}, false
	}
	return clone(c), true
}

// BySIPCallID returns the call one of whose legs has SIP Call-ID sid.
func (r *Registry) BySIPCallID(sid string) (CallInfo, bool) {
	r.mu.RLock()
	id, ok := r.bySIP[sid]
	r.mu.RUnlock()
	if !ok {
		return CallInfo{}, false
	}
	return r.Get(id)
}

// ByCorrelation returns the newest live call, else the newest ended one,
// that carries value in one of its correlation headers.
func (r *Registry) ByCorrelation(value string) (CallInfo, bool) {
	calls := r.List(Filter{Correlation: value})
	for i := len(calls) - 1; i >= 0; i-- {
		if calls[i].State != StateEnded {
			return calls[i], true
		}
	}
	if len(calls) > 0 {
		return calls[len(calls)-1], true
	}
	return CallInfo{}, false
}

// List returns the calls that match f, oldest first.
func (r *Registry) List(f Filter) []CallInfo {
	r.mu.RLock()
	defer r.mu.RUnlock()
	var out []CallInfo
	for _, id := range r.order {
		c, ok := r.calls[id]
		if !ok {
			continue // expired, not compacted yet
		}
		if f.State != "" && c.State != f.State {
			continue
		}
		if f.Caller != "" && c.Caller != f.Caller {
			continue
		}
		if f.Correlation != "" {
			found := false
			for _, v := range c.Correlation {
				found = found || v == f.Correlation
			}
			if !found {
				continue
			}
		}
		out = append(out, clone(c))
	}
	return out
}

// Subscribe registers fn to receive every carrier digit of every call,
// once, and returns a function that unsubscribes it. fn is called from
// media goroutines and must not block.
func (r *Registry) Subscribe(fn func(media.Digit)) (unsubscribe func()) {
	r.subMu.Lock()
	id := r.next
	r.next++
	r.subs[id] = fn
	r.subMu.Unlock()
	return func() {
		r.subMu.Lock()
		delete(r.subs, id)
		r.subMu.Unlock()
	}
}

// OnEnd registers fn to receive every call once, when it ends (payment
// capture cancels the call's session and wipes its card data then), and
// returns a function that unsubscribes it. fn must not block.
func (r *Registry) OnEnd(fn func(CallInfo)) (unsubscribe func()) {
	r.subMu.Lock()
	id := r.next
	r.next++
	r.ends[id] = fn
	r.subMu.Unlock()
	return func() {
		r.subMu.Lock()
		delete(r.ends, id)
		r.subMu.Unlock()
	}
}

// OnTransfer registers fn to receive every transfer that completes (a
// REFER from the platform took the call to another agent; payment
// capture keeps or cancels the call's session, as Transfer.KeepCapture
// says), and returns a function that unsubscribes it. fn must not
// block.
func (r *Registry) OnTransfer(fn func(Transfer)) (unsubscribe func()) {
	r.subMu.Lock()
	id := r.next
	r.next++
	r.transfers[id] = fn
	r.subMu.Unlock()
	return func() {
		r.subMu.Lock()
		delete(r.transfers, id)
		r.subMu.Unlock()
	}
}

// transferred hands t to the OnTransfer subscribers.
func (r *Registry) transferred(t Transfer) {
	r.mu.Lock()
	if c, ok := r.calls[t.CallID]; ok {
		c.Transfers++
	}
	r.mu.Unlock()
	r.subMu.RLock()
	defer r.subMu.RUnlock()
	for _, fn := range r.transfers {
		fn(t)
	}
}

// Digit implements media.DigitSink: it hands d to every subscriber. Give
// the registry to media.NewRelay as its sink.
func (r *Registry) Digit(d media.Digit) {
	r.subMu.RLock()
	defer r.subMu.RUnlock()
	for _, fn := range r.subs {
		fn(d)
	}
}
