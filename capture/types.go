package capture

import (
	"context"
	"errors"
	"time"

	"github.com/tonevault/tonevault/audit"
	"github.com/tonevault/tonevault/internal/secret"
)

// State is where a payment session is. created → collecting → complete →
// tokenized → submitting → approved | declined | failed; cancelled and
// expired can be reached from every live state. See legal in state.go.
type State string

const (
	StateCreated    State = "created"
	StateCollecting State = "collecting"
	StateComplete   State = "complete"
	StateTokenized  State = "tokenized"
	StateSubmitting State = "submitting"
	StateApproved   State = "approved"
	StateDeclined   State = "declined"
	StateFailed     State = "failed"
	StateCancelled  State = "cancelled"
	StateExpired    State = "expired"
)

// FieldName names a field: the three card fields and the configured extras.
type FieldName string

const (
	FieldCardNumber   FieldName = "card_number"
	FieldExpiry       FieldName = "expiry"
	FieldSecurityCode FieldName = "security_code"
)

// FieldStatus is where one field is.
type FieldStatus string

const (
	FieldPending    FieldStatus = "pending"    // not reached yet
	FieldCollecting FieldStatus = "collecting" // the current field
	FieldValid      FieldStatus = "valid"
	FieldInvalid    FieldStatus = "invalid" // the last attempt was refused (Error says why); the field is current again
	FieldFailed     FieldStatus = "failed"  // attempts exhausted
)

// Reason codes of an invalid field (FieldView.Error) and of a session
// (View.Reason). They are the audit trail's codes, so that what the API
// shows and what the trail records are the same words; they never hold
// digits.
const (
	ReasonLuhn              = string(audit.ReasonLuhn)
	ReasonLength            = string(audit.ReasonLength)
	ReasonBrandNotAccepted  = string(audit.ReasonBrandNotAccepted)
	ReasonUnknownBrand      = string(audit.ReasonUnknownBrand)
	ReasonMonth             = string(audit.ReasonMonth)
	ReasonExpired           = string(audit.ReasonExpired)
	ReasonTimeout           = string(audit.ReasonTimeout)
	ReasonAttemptsExhausted = string(audit.ReasonAttemptsExhausted)
	ReasonNotConfigured     = string(audit.ReasonNotConfigured)
	ReasonCancelled         = string(audit.ReasonCancelled)
	ReasonCallEnded         = string(audit.ReasonCallEnded)
	ReasonTransferred       = string(audit.ReasonTransferred)
	ReasonSessionTimeout    = string(audit.ReasonSessionTimeout)
	ReasonShutdown          = string(audit.ReasonShutdown)
	ReasonTokenization      = string(audit.ReasonTokenizationFailed)
	ReasonAuthorization     = string(audit.ReasonAuthorizationFailed)
	ReasonInvalidResult     = string(audit.ReasonInvalidResult)
	ReasonAuditUnavailable  = string(audit.ReasonAuditUnavailable)
)

// Outcomes of a Result.
const (
	OutcomeApproved = "approved"
	OutcomeDeclined = "declined"
	OutcomeFailed   = "failed"
)

// PaymentRequest is what the agent's CRM asks to be paid. Amount is in the
// currency's minor unit. Its JSON form is the body of the API's
// POST /v1/calls/{id}/payments (api/openapi.yaml, PaymentRequest).
type PaymentRequest struct {
	Amount      int64  `json:"amount"`
	Currency    string `json:"currency"`
	MerchantRef string `json:"merchant_reference,omitempty"`
	Description string `json:"description,omitempty"`
	// Merchant picks the accepted brands (Config.MerchantBrands) and the
	// token format. It is not on the wire: which merchant's policy applies
	// is the gateway's to decide, not the API client's.
	Merchant string `json:"-"`
}

// View is a snapshot of a session as the API returns it and the widget
// shows it; its JSON form is the API's (api/openapi.yaml, View). It never
// holds card data: see FieldView.Masked.
type View struct {
	ID           string      `json:"id"`
	CallID       string      `json:"call_id"`
	State        State       `json:"state"`
	Reason       string      `json:"reason,omitempty"`
	CurrentField FieldName   `json:"current_field,omitempty"` // while collecting
	Fields       []FieldView `json:"fields"`
	Amount       int64       `json:"amount"`
	Currency     string      `json:"currency"`
	MerchantRef  string      `json:"merchant_reference"`
	Description  string      `json:"description"`
	Merchant     string      `json:"-"`                // see PaymentRequest.Merchant
	Result       *Result     `json:"result,omitempty"` // when final
	// IgnoredDigits counts A, B, C, D key presses (never part of a field).
	IgnoredDigits int       `json:"ignored_digits"`
	CreatedAt     time.Time `json:"created_at"`
	UpdatedAt     time.Time `json:"updated_at"`
	ExpiresAt     time.Time `json:"expires_at,omitzero"` // zero when the session timeout is disabled
	Version       uint64    `json:"version"`             // +1 on every change
}

// FieldView is one field in a View.
//
// Masked: the card number shows at most its first 6 and last 4 digits,
// and only once it is complete and valid (PCI DSS 3.4.1); while typing, and
// for every other field, it is one "•" per digit entered.
type FieldView struct {
	Name        FieldName   `json:"name"`
	Label       string      `json:"label"`
	Status      FieldStatus `json:"status"`
	Entered     int         `json:"entered"`
	Masked      string      `json:"masked"`
	Brand       Brand       `json:"brand,omitempty"` // card number only, once known
	Valid       bool        `json:"valid"`
	Attempts    int         `json:"attempts"` // refused attempts so far
	MaxAttempts int         `json:"max_attempts"`
	Error       string      `json:"error,omitempty"` // reason code of the last refused attempt
}

// Result is how a submitted payment ended.
type Result struct {
	Outcome      string `json:"outcome"` // approved, declined, failed
	Token        string `json:"token,omitempty"`
	AuthCode     string `json:"auth_code,omitempty"`
	Reason       string `json:"reason,omitempty"`
	ResponseCode string `json:"response_code,omitempty"`
	// MOTO is what the authorization was sent with, once sent; kept by
	// the Journal, not shown.
	MOTO MOTO `json:"-"`
}

// Card is the card data Submit lends to the Processor. The Secrets alias
// the session's buffers, which are wiped after authorization: the
// Processor must not keep a reference past its call.
type Card struct {
	PAN, Expiry, CVV secret.Secret // Expiry is MMYY
	Brand            Brand
	Extra            map[FieldName]secret.Secret
}

// Processor tokenizes and authorizes (tokenize + psp). An error that wraps
// ErrUnavailable is temporary: the session keeps its card data so that the
// agent can submit again. Any other error fails the session.
type Processor interface {
	Tokenize(ctx context.Context, c *Card, req PaymentRequest) (token string, err error)
	Authorize(ctx context.Context, c *Card, token string, req PaymentRequest) (Result, error)
}

// AuditSink is the audit trail the sessions write to: the gateway's
// *audit.Queue. It is required: there is no capture without a trail.
type AuditSink interface {
	// Append queues a record. It must not block: the relay's thread
	// calls it with each key press.
	Append(ctx context.Context, r audit.Record) (uint64, error)
	// Err is nil while records reach the trail, and says why not
	// otherwise (new sessions are refused then).
	Err() error
	// Sync returns once every record appended before it is on disk, or
	// an error as soon as the trail cannot be written: card data goes to
	// the processor only after its records are durable.
	Sync(ctx context.Context) error
	// Watch calls fn when the trail stops being writable (err set: every
	// live session ends with audit_unavailable) and when it is again
	// (nil); it returns a function that stops the calls.
	Watch(fn func(err error)) (stop func())
}

var (
	// ErrUnavailable: the processor (Vault, PSP) failed for now; submit again.
	ErrUnavailable = errors.New("capture: payment processor unavailable")
	// ErrNotConfigured: no Processor; the session failed with reason not_configured.
	ErrNotConfigured = errors.New("capture: no payment processor configured")
	// ErrNotReady: Submit before every field is valid.
	ErrNotReady = errors.New("capture: session is not complete")
	// ErrCallBusy: Start on a call that already has a live session.
	ErrCallBusy = errors.New("capture: call already has a live payment session")
	// ErrNotFound: no such session or field.
	ErrNotFound = errors.New("capture: not found")
	// ErrFinal: the session has ended; nothing can change it.
	ErrFinal = errors.New("capture: session has ended")
	// ErrInFlight: the action cannot run while the processor holds the
	// card data (tokenization or authorization running).
	ErrInFlight = errors.New("capture: submission in progress")
	// ErrInvalidRequest: Start with a bad call id or payment request.
	ErrInvalidRequest = errors.New("capture: invalid payment request")
	// ErrClosed: the Manager was closed.
	ErrClosed = errors.New("capture: manager closed")
	// ErrCapacity: Start with Config.MaxLiveSessions sessions live.
	ErrCapacity = errors.New("capture: too many live payment sessions")
	// ErrAuditUnavailable: the audit trail cannot be written, so no
	// payment may start or go on (the session, if any, ended with reason
	// audit_unavailable and its card data was wiped).
	ErrAuditUnavailable = errors.New("capture: audit trail unavailable")
)
