package payment

import (
	"context"
	"errors"
	"fmt"

	"github.com/tonevault/tonevault/capture"
	"github.com/tonevault/tonevault/internal/secret"
	"github.com/tonevault/tonevault/psp"
	"github.com/tonevault/tonevault/tokenize"
)

// Tokenizer is the part of *tokenize.Vault Service uses.
type Tokenizer interface {
	Tokenize(ctx context.Context, pan, expiry secret.Secret, brand, merchant string) (tokenize.Token, error)
}

// Service implements capture.Processor: Tokenize, then Authorize.
type Service struct {
	Vault Tokenizer
	PSP   psp.Connector
	// Kind is the message sent at submit: psp.Authorization (0100, the
	// default) or psp.Sale (0200).
	Kind psp.Kind
}

var _ capture.Processor = (*Service)(nil)

// Tokenize stores the card in Vault and returns its token. Vault down,
// sealed or slow is capture.ErrUnavailable: the session keeps the card so
// the agent can submit again.
func (p *Service) Tokenize(ctx context.Context, c *capture.Card, req capture.PaymentRequest) (string, error) {
	if p.Vault == nil {
		return "", fmt.Errorf("payment: tokenization: %w", capture.ErrNotConfigured)
	}
	tok, err := p.Vault.Tokenize(ctx, c.PAN, c.Expiry, string(c.Brand), req.Merchant)
	if err != nil {
		if errors.Is(err, tokenize.ErrUnavailable) {
			return "", fmt.Errorf("payment: vault: %w: %w", capture.ErrUnavailable, err)
		}
		return "", fmt.Errorf("payment: vault: %w", err)
	}
	return tok.Value, nil
}

// Authorize asks the acquirer. An acquirer that could not be reached
// (nothing was sent) is capture.ErrUnavailable; every answer, and every
// failure after the request left (timeouts, which the connector reverses),
// is a final Result.
func (p *Service) Authorize(ctx context.Context, c *capture.Card, token string, req capture.PaymentRequest) (capture.Result, error) {
	if p.PSP == nil {
		return capture.Result{}, fmt.Errorf("payment: authorization: %w", capture.ErrNotConfigured)
	}
	kind := p.Kind
	if kind == 0 {
		kind = psp.Authorization
	}
	r := &psp.Request{
		Kind: kind, PAN: c.PAN, Expiry: c.Expiry, CVV: c.CVV, Brand: string(c.Brand),
		Amount: req.Amount, Currency: req.Currency, Token: token, MerchantRef: req.MerchantRef,
	}
	resp, err := p.PSP.Authorize(ctx, r)
	// What the request was sent with to say "telephone order", for the
	// payment's record; zero when nothing was sent.
	moto := capture.MOTO{EntryMode: resp.MOTO.EntryMode, ConditionCode: resp.MOTO.Condition, Field60: resp.MOTO.Field60, Field61: resp.MOTO.Field61}
	if err != nil {
		if errors.Is(err, psp.ErrUnavailable) {
			return capture.Result{}, fmt.Errorf("payment: psp: %w: %w", capture.ErrUnavailable, err)
		}
		return capture.Result{Outcome: capture.OutcomeFailed, Token: token, Reason: reasonOf(resp, "psp_error"), MOTO: moto}, nil
	}
	res := capture.Result{Token: token, ResponseCode: resp.ResponseCode, Reason: resp.Reason, MOTO: moto}
	switch resp.Outcome {
	case psp.Approved:
		res.Outcome, res.AuthCode = capture.OutcomeApproved, resp.AuthCode
	case psp.Declined:
		res.Outcome = capture.OutcomeDeclined
	default:
		res.Outcome, res.Reason = capture.OutcomeFailed, reasonOf(resp, "psp_error")
	}
	return res, nil
}

func reasonOf(r psp.Response, fallback string) string {
	if r.Reason != "" {
		return r.Reason
	}
	return fallback
}
