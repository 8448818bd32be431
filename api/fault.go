package api

import (
	"context"
	"net/http"
	"sync"
	"sync/atomic"

	"go.uber.org/zap"

	"github.com/tonevault/tonevault/internal/panics"
)

// Faults (DESIGN.md invariant 8). A handler that panics answers its
// client 500 (problem+json) and nothing else stops: the log gets the
// route and the stack through the operational logger (card numbers
// masked, the panic's value left out), and a payment session the
// request was acting on ends (Session.Faulted: failed, api_fault, its
// card data wiped, a session.ended record), since what the panic left of
// it cannot be trusted. The call goes on.

// involvedKey holds the request's *involved in its context.
type involvedKey struct{}

// involved is the payment session a request acts on, noted by the
// handlers when they find or start one.
type involved struct {
	mu   sync.Mutex
	sess Session
	id   string
}

// involve notes that r acts on sess (payment id id).
func involve(r *http.Request, sess Session, id string) {
	if inv, ok := r.Context().Value(involvedKey{}).(*involved); ok {
		inv.mu.Lock()
		inv.sess, inv.id = sess, id
		inv.mu.Unlock()
	}
}

func withInvolved(r *http.Request) (*http.Request, *involved) {
	inv := &involved{}
	return r.WithContext(context.WithValue(r.Context(), involvedKey{}, inv)), inv
}

// handlerPanic answers and logs a recovered panic, and ends the session
// the request acted on.
func (s *Server) handlerPanic(w http.ResponseWriter, r *http.Request, inv *involved, v any) {
	inv.mu.Lock()
	sess, id := inv.sess, inv.id
	inv.mu.Unlock()
	// The route's pattern, not the client's path (which could hold
	// anything).
	fields := append([]zap.Field{zap.String("route", r.Pattern), zap.String("payment_id", id)}, panics.Fields(v)...)
	s.log.Error("api: handler panic; 500 to the client, the process goes on", fields...)
	if sess != nil {
		func() {
			defer func() {
				if v := recover(); v != nil {
					s.log.Error("api: panic ending the payment after a handler panic", append([]zap.Field{zap.String("payment_id", id)}, panics.Fields(v)...)...)
				}
			}()
			sess.Faulted()
		}()
	}
	writeProblem(w, r, http.StatusInternalServerError, "internal", "")
}

// recoverGo, deferred in the API's own goroutines for a payment (the
// webhook watcher, a delivery), logs a panic there and lets the rest go
// on.
func (s *Server) recoverGo(log *zap.Logger, what string) {
	if v := recover(); v != nil {
		log.Error("api: panic in "+what+"; the rest goes on", panics.Fields(v)...)
	}
}

// testFault, when set, is called on every authenticated route ("route",
// before its handler) and where a handler has found its payment session
// ("session"), with the route's pattern: a panic in it is one in the
// handler. Only tests set it; nothing reaches it from configuration or
// the network.
var testFault atomic.Pointer[func(where, route string)]

func runTestFault(where, route string) {
	if h := testFault.Load(); h != nil {
		(*h)(where, route)
	}
}
