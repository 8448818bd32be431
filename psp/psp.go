package psp

import (
	"context"
	"errors"
	"fmt"

	"github.com/tonevault/tonevault/internal/secret"
)

// Kind is what the customer is asked for: a hold (authorization, 0100) or
// a purchase that settles (financial, 0200).
type Kind int

const (
	Authorization Kind = iota + 1 // 0100/0110
	Sale                          // 0200/0210
)

// ParseKind reads "authorization" or "sale".
func ParseKind(s string) (Kind, error) {
	switch s {
	case "authorization":
		return Authorization, nil
	case "sale":
		return Sale, nil
	}
	return 0, fmt.Errorf("psp: kind %q: want authorization or sale", s)
}

// UnmarshalText reads a kind as ParseKind does (configuration files).
func (k *Kind) UnmarshalText(b []byte) error {
	v, err := ParseKind(string(b))
	if err != nil {
		return err
	}
	*k = v
	return nil
}

// MarshalText writes the spelling ParseKind reads.
func (k Kind) MarshalText() ([]byte, error) { return []byte(k.String()), nil }

func (k Kind) String() string {
	switch k {
	case Authorization:
		return "authorization"
	case Sale:
		return "sale"
	}
	return "unknown"
}

// mti is the request MTI of a kind.
func (k Kind) mti() (string, bool) {
	switch k {
	case Authorization:
		return "0100", true
	case Sale:
		return "0200", true
	}
	return "", false
}

// Outcome is what the payment session shows the agent.
type Outcome int

const (
	Approved Outcome = iota + 1
	Declined
	Error
)

func (o Outcome) String() string {
	switch o {
	case Approved:
		return "approved"
	case Declined:
		return "declined"
	case Error:
		return "error"
	}
	return "unknown"
}

// Request is one card payment. PAN, Expiry (MMYY as typed on the keypad)
// and CVV are the caller's: the connector copies what it sends into its own
// buffers, wipes those, and keeps no reference after Authorize returns. The
// caller wipes its own after Authorize (PCI DSS 3.3.1 for the CVV).
type Request struct {
	Kind        Kind
	PAN         secret.Secret
	Expiry      secret.Secret // MMYY
	CVV         secret.Secret // optional; 3 or 4 digits
	Brand       string        // visa, mastercard, amex, discover, jcb, ...; picks the MOTO indicators (Config.MOTO)
	Amount      int64         // minor units (cents)
	Currency    string        // ISO 4217 alpha-3 ("EUR"); sent as numeric in field 49
	Token       string        // the vault token of the card: for logs and audit only, never sent
	MerchantRef string        // the caller's reference: for logs only, never sent
}

// Response is the acquirer's answer, or why there is none.
type Response struct {
	Outcome      Outcome
	ResponseCode string // field 39; empty when no response arrived
	AuthCode     string // field 38, when approved
	RRN          string // field 37, retrieval reference number
	STAN         string // field 11, system trace audit number
	Reason       string // a stable machine-readable reason: "approved", "do_not_honour", "psp_timeout", ...
	// MOTO is what the request was sent with to mark it a telephone
	// order (fields 22, 25, 60, 61), for the caller to keep with the
	// payment; zero when nothing was sent.
	MOTO MOTO
}

// Connector authorizes card payments with a PSP or acquirer.
type Connector interface {
	// Authorize always fills Response. err is non-nil only when nothing
	// was sent (invalid request, no connection), with Outcome Error and a
	// Reason; a timeout is not an error but Outcome Error, Reason
	// "psp_timeout", and the connector reverses the transaction itself.
	Authorize(ctx context.Context, r *Request) (Response, error)
	Close() error
}

// Errors of Authorize. They never carry card data.
var (
	ErrInvalidRequest = errors.New("psp: invalid request")
	ErrUnavailable    = errors.New("psp: no connection to the acquirer")
	ErrClosed         = errors.New("psp: connector closed")
)

// Reasons that are not response codes.
const (
	ReasonTimeout        = "psp_timeout"
	ReasonConnectionLost = "psp_connection_lost"
	ReasonUnavailable    = "psp_unavailable"
	ReasonInvalid        = "invalid_request"
	ReasonBadResponse    = "psp_bad_response"
)
