package api

import (
	"context"
	"errors"
	"time"
)

// View is the wire form of a payment session: what every response, SSE
// event and webhook carries. It holds no card data by construction: the
// card number appears only as Masked (at most the first 6 and last 4
// digits of a complete, valid number), expiry and security code only as
// one "•" per digit entered.
type View struct {
	ID     string `json:"id"`
	CallID string `json:"call_id"`
	State  string `json:"state"`
	Reason string `json:"reason,omitempty"`
	// CurrentField is the field being collected, while collecting.
	CurrentField string      `json:"current_field,omitempty"`
	Fields       []FieldView `json:"fields"`
	Amount       int64       `json:"amount"`
	Currency     string      `json:"currency"`
	MerchantRef  string      `json:"merchant_reference"`
	Description  string      `json:"description"`
	Result       *Result     `json:"result,omitempty"`
	CreatedAt    time.Time   `json:"created_at"`
	UpdatedAt    time.Time   `json:"updated_at"`
	// ExpiresAt is when a live session expires; absent when it never does.
	ExpiresAt time.Time `json:"expires_at,omitzero"`
	Version   uint64    `json:"version"`
}

// FieldView is one field of the session as the agent may see it.
type FieldView struct {
	Name        string `json:"name"`
	Label       string `json:"label"`
	Status      string `json:"status"`
	Entered     int    `json:"entered"`
	Masked      string `json:"masked"`
	Brand       string `json:"brand,omitempty"`
	Valid       bool   `json:"valid"`
	Attempts    int    `json:"attempts"`
	MaxAttempts int    `json:"max_attempts"`
	Error       string `json:"error,omitempty"`
}

// Result is the outcome of a submitted session.
type Result struct {
	Outcome      string `json:"outcome"`
	Token        string `json:"token,omitempty"`
	AuthCode     string `json:"auth_code,omitempty"`
	Reason       string `json:"reason,omitempty"`
	ResponseCode string `json:"response_code,omitempty"`
}

// Final reports whether the session can no longer change.
func (v View) Final() bool { return finalStates[v.State] }

var finalStates = map[string]bool{
	"approved": true, "declined": true, "failed": true, "cancelled": true, "expired": true,
}

// PaymentRequest is what a payment session is started with.
type PaymentRequest struct {
	Amount      int64
	Currency    string
	MerchantRef string
	Description string
}

// Payments is the capture side as the API needs it. CaptureManager adapts
// *capture.Manager to it; tests may use a fake.
type Payments interface {
	// Start begins a session on a call; ErrCallBusy if one is live.
	Start(callID string, req PaymentRequest, actor string) (Session, error)
	Get(id string) (Session, bool)
}

// Session is one payment session. Errors wrap the sentinels below so the
// API can map them to status codes.
type Session interface {
	View() View
	// Subscribe delivers a snapshot after every change (latest wins) until
	// cancel is called; the channel may be closed when the session ends.
	Subscribe() (updates <-chan View, cancel func())
	Reset(field, actor string) error
	Restart(actor string) error
	Cancel(actor string) error
	Submit(ctx context.Context, actor string) (View, error)
}

// The errors a Payments implementation reports, wrapped or as they are.
var (
	ErrNotFound      = errors.New("not found")
	ErrCallBusy      = errors.New("a payment session is already live on this call")
	ErrNotReady      = errors.New("the session is not complete")
	ErrFinal         = errors.New("the session has ended")
	ErrUnavailable   = errors.New("the payment processor is temporarily unavailable")
	ErrNotConfigured = errors.New("no payment processor is configured")
	ErrInvalid       = errors.New("invalid request")
	ErrInFlight      = errors.New("a submission is in progress")
	ErrClosed        = errors.New("the payment service is shutting down")
)

// CallView is a call as the SIP side's registry reports it.
type CallView struct {
	ID          string            `json:"id"`
	State       string            `json:"state"`
	Caller      string            `json:"caller"`
	Callee      string            `json:"callee"`
	StartedAt   time.Time         `json:"started_at"`
	AnsweredAt  *time.Time        `json:"answered_at,omitempty"`
	Correlation map[string]string `json:"correlation,omitempty"`
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
