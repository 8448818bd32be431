package api

import "github.com/tonevault/tonevault/capture"

// CaptureManager adapts *capture.Manager to Payments. Only the return
// types differ (Go has no covariant results): sessions, views and errors
// pass through as capture made them.
func CaptureManager(m *capture.Manager) Payments { return captureManager{m} }

type captureManager struct{ m *capture.Manager }

func (c captureManager) Start(callID string, req capture.PaymentRequest, actor string) (Session, error) {
	s, err := c.m.Start(callID, req, actor)
	if err != nil {
		return nil, err
	}
	return s, nil
}

func (c captureManager) Get(id string) (Session, bool) {
	s, ok := c.m.Get(id)
	if !ok {
		return nil, false
	}
	return s, true
}

func (c captureManager) Live(callID string) (Session, bool) {
	s, ok := c.m.Session(callID)
	if !ok {
		return nil, false
	}
	return s, true
}
