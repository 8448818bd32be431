package api

import (
	"context"
	"time"

	"github.com/tonevault/tonevault/capture"
)

// The payment session's wire types are capture's: capture.View (with its
// FieldView and Result) is every response, SSE event and webhook payload,
// and capture.PaymentRequest is the body that starts a session. The API
// adds no copy of them, so openapi.yaml describes capture's JSON.

// Payments is what the API needs from capture. CaptureManager adapts
// *capture.Manager to it; tests may use a fake.
type Payments interface {
	// Start begins a session on a call; capture.ErrCallBusy if one is live.
	Start(callID string, req capture.PaymentRequest, actor string) (Session, error)
	// Get finds a session in memory, live or recently ended.
	Get(id string) (Session, bool)
	// Live finds the call's live session.
	Live(callID string) (Session, bool)
}

// Session is one payment session; *capture.Session satisfies it. Errors
// wrap capture's sentinels (capture.ErrNotFound, ...), which the API maps
// to status codes.
type Session interface {
	View() capture.View
	// Subscribe delivers a snapshot after every change (latest wins) until
	// cancel is called; the channel may be closed when the session ends.
	Subscribe() (updates <-chan capture.View, cancel func())
	Reset(field capture.FieldName, actor string) error
	Restart(actor string) error
	Cancel(actor string) error
	Submit(ctx context.Context, actor string) (capture.View, error)
	// Faulted ends a live session after a request on it panicked
	// (failed, api_fault, card data wiped).
	Faulted()
}

// CallView is a call as the SIP side's registry reports it.
type CallView struct {
	ID          string            `json:"id"`
	State       string            `json:"state"`
	Caller      string            `json:"caller"`
	Callee      string            `json:"callee"`
	StartedAt   time.Time         `json:"started_at"`
	AnsweredAt  *time.Time        `json:"answered_at,omitempty"`
	Correlation map[string]string `json:"correlation,omitempty"`
	// Payment is the call's live payment, filled in by the API: a CRM
	// that lost a payment's id finds it here.
	Payment *capture.View `json:"payment,omitempty"`
}

// CallFilter selects calls; empty fields match everything. Correlation
// matches a call that has every given key with the given value.
type CallFilter struct {
	Correlation map[string]string
	Caller      string
	State       string
}

// Calls is the SIP side's call registry; the gateway adapts it.
type Calls interface {
	List(CallFilter) []CallView
	Get(id string) (CallView, bool)
}
