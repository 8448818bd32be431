package api

import (
	"context"
	"errors"
	"fmt"
	"sync"

	"github.com/tonevault/tonevault/capture"
)

// CaptureManager adapts *capture.Manager to Payments.
func CaptureManager(m *capture.Manager) Payments { return captureManager{m} }

type captureManager struct{ m *capture.Manager }

func (c captureManager) Start(callID string, req PaymentRequest, actor string) (Session, error) {
	s, err := c.m.Start(callID, capture.PaymentRequest{
		Amount: req.Amount, Currency: req.Currency, MerchantRef: req.MerchantRef, Description: req.Description,
	}, actor)
	if err != nil {
		return nil, captureErr(err)
	}
	return captureSession{s}, nil
}

func (c captureManager) Get(id string) (Session, bool) {
	s, ok := c.m.Get(id)
	if !ok {
		return nil, false
	}
	return captureSession{s}, true
}

type captureSession struct{ s *capture.Session }

func (c captureSession) View() View { return fromCapture(c.s.View()) }

func (c captureSession) Reset(field, actor string) error {
	return captureErr(c.s.Reset(capture.FieldName(field), actor))
}
func (c captureSession) Restart(actor string) error { return captureErr(c.s.Restart(actor)) }
func (c captureSession) Cancel(actor string) error  { return captureErr(c.s.Cancel(actor)) }

func (c captureSession) Submit(ctx context.Context, actor string) (View, error) {
	v, err := c.s.Submit(ctx, actor)
	return fromCapture(v), captureErr(err)
}

// Subscribe converts capture's feed, keeping its latest-wins buffering.
func (c captureSession) Subscribe() (<-chan View, func()) {
	in, cancelIn := c.s.Subscribe()
	out := make(chan View, 1)
	done := make(chan struct{})
	go func() {
		defer close(out)
		for {
			select {
			case <-done:
				return
			case v, ok := <-in:
				if !ok {
					return
				}
				cv := fromCapture(v)
				select {
				case out <- cv:
				default:
					// Only this goroutine sends: after dropping the stale
					// snapshot there is room.
					select {
					case <-out:
					default:
					}
					out <- cv
				}
			}
		}
	}()
	return out, sync.OnceFunc(func() { close(done); cancelIn() })
}

// captureErrs pairs capture's errors with the API's.
var captureErrs = []struct{ capture, api error }{
	{capture.ErrNotFound, ErrNotFound},
	{capture.ErrCallBusy, ErrCallBusy},
	{capture.ErrNotReady, ErrNotReady},
	{capture.ErrFinal, ErrFinal},
	{capture.ErrUnavailable, ErrUnavailable},
	{capture.ErrNotConfigured, ErrNotConfigured},
	{capture.ErrInFlight, ErrInFlight},
	{capture.ErrInvalidRequest, ErrInvalid},
	{capture.ErrClosed, ErrClosed},
}

func captureErr(err error) error {
	if err == nil {
		return nil
	}
	for _, p := range captureErrs {
		if errors.Is(err, p.capture) {
			return fmt.Errorf("%w: %w", p.api, err)
		}
	}
	return err
}

func fromCapture(v capture.View) View {
	out := View{
		ID:           v.ID,
		CallID:       v.CallID,
		State:        string(v.State),
		Reason:       v.Reason,
		CurrentField: string(v.CurrentField),
		Fields:       make([]FieldView, len(v.Fields)),
		Amount:       v.Amount,
		Currency:     v.Currency,
		MerchantRef:  v.MerchantRef,
		Description:  v.Description,
		CreatedAt:    v.CreatedAt,
		UpdatedAt:    v.UpdatedAt,
		ExpiresAt:    v.ExpiresAt,
		Version:      v.Version,
	}
	for i, f := range v.Fields {
		out.Fields[i] = FieldView{
			Name: string(f.Name), Label: f.Label, Status: string(f.Status), Entered: f.Entered,
			Masked: f.Masked, Brand: string(f.Brand), Valid: f.Valid, Attempts: f.Attempts,
			MaxAttempts: f.MaxAttempts, Error: f.Error,
		}
	}
	if v.Result != nil {
		out.Result = &Result{
			Outcome: v.Result.Outcome, Token: v.Result.Token, AuthCode: v.Result.AuthCode,
			Reason: v.Result.Reason, ResponseCode: v.Result.ResponseCode,
		}
	}
	return out
}
