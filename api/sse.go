package api

import (
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"strconv"
	"sync"
	"time"

	"github.com/tonevault/tonevault/capture"
)

// streamWriteTimeout is how long one write of an event stream may take.
const streamWriteTimeout = 30 * time.Second

// streamCounter counts the open event streams per API key.
type streamCounter struct {
	mu sync.Mutex
	n  map[string]int
}

func (c *streamCounter) open(key string, max int) bool {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.n[key] >= max {
		return false
	}
	if c.n == nil {
		c.n = map[string]int{}
	}
	c.n[key]++
	return true
}

func (c *streamCounter) close(key string) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.n[key]--; c.n[key] <= 0 {
		delete(c.n, key)
	}
}

// paymentEvents streams the session as Server-Sent Events: a snapshot at
// connect, then one "payment" event per change, id = View.Version, and a
// comment every Config.Heartbeat so proxies keep the stream open. The
// stream ends after the final state. With Last-Event-ID, a snapshot the
// client already has is not sent again.
func (s *Server) paymentEvents(w http.ResponseWriter, r *http.Request) {
	sess, stored, p, ok := s.session(w, r)
	if !ok {
		return
	}
	if sess == nil {
		// Out of memory: nothing will change it here, so the stream is
		// the View as stored, and ends.
		sess = storedSession{stored}
	}
	if !s.streams.open(p.key, s.cfg.MaxStreamsPerKey) {
		w.Header().Set("Retry-After", "10")
		writeProblem(w, r, http.StatusTooManyRequests, "rate-limited", "too many event streams open for this API key (api.max_streams_per_key)")
		return
	}
	defer s.streams.close(p.key)
	rc := http.NewResponseController(w)
	// The server's write timeout is for ordinary requests; a stream lives
	// as long as the session. Each write gets its own deadline instead,
	// so that a client that stops reading is let go rather than held
	// forever. (net/http lifts the read deadline itself once the request
	// is read.)
	deadline := func() { _ = rc.SetWriteDeadline(time.Now().Add(s.streamWrite)) }
	deadline()

	// Subscribe before the snapshot so no change falls between them.
	updates, cancel := sess.Subscribe()
	defer cancel()

	h := w.Header()
	h.Set("Content-Type", "text/event-stream")
	h.Set("Cache-Control", "no-store")
	h.Set("X-Accel-Buffering", "no")
	w.WriteHeader(http.StatusOK)

	var last uint64
	if id, err := strconv.ParseUint(r.Header.Get("Last-Event-ID"), 10, 64); err == nil {
		last = id
	}
	send := func(v capture.View) bool {
		if v.Version <= last && last != 0 {
			return true
		}
		data, err := json.Marshal(v)
		if err != nil {
			return false
		}
		last = v.Version
		deadline()
		// JSON from encoding/json has no raw newline, so one data line.
		if _, err := fmt.Fprintf(w, "id: %d\nevent: payment\ndata: %s\n\n", v.Version, data); err != nil {
			return false
		}
		return rc.Flush() == nil
	}
	// Tell EventSource how long to wait before reconnecting.
	fmt.Fprint(w, "retry: 2000\n\n")
	snap := sess.View()
	if !send(snap) || snap.State.Final() || rc.Flush() != nil {
		return
	}

	tick := time.NewTicker(s.cfg.Heartbeat)
	defer tick.Stop()
	for {
		select {
		case <-r.Context().Done():
			return
		case <-s.streamsCtx.Done():
			return
		case <-tick.C:
			deadline()
			if _, err := fmt.Fprint(w, ": heartbeat\n\n"); err != nil || rc.Flush() != nil {
				return
			}
		case v, ok := <-updates:
			if !ok {
				// The session closed the feed: send where it ended.
				send(sess.View())
				return
			}
			if !send(v) || v.State.Final() {
				return
			}
		}
	}
}

// storedSession is a payment that left memory, as a Session whose View
// never changes: the stream of one snapshot.
type storedSession struct{ v capture.View }

func (s storedSession) View() capture.View { return s.v }

func (s storedSession) Subscribe() (<-chan capture.View, func()) {
	ch := make(chan capture.View, 1)
	ch <- s.v
	close(ch)
	return ch, func() {}
}

func (storedSession) Reset(capture.FieldName, string) error { return capture.ErrFinal }
func (storedSession) Restart(string) error                  { return capture.ErrFinal }
func (storedSession) Cancel(string) error                   { return capture.ErrFinal }
func (storedSession) Faulted()                              {} // it ended already
func (s storedSession) Submit(context.Context, string) (capture.View, error) {
	return s.v, capture.ErrFinal
}
