package api

import (
	"context"
	"crypto/sha256"
	"encoding/json"
	"errors"
	"net/http"
	"time"
	"unicode/utf8"

	"go.uber.org/zap"

	"github.com/tonevault/tonevault/capture"
	"github.com/tonevault/tonevault/internal/pan"
)

// resetRequest is the body of POST /v1/payments/{id}/reset.
type resetRequest struct {
	Field string `json:"field"`
}

// emptyRequest is the body of the other actions: none, or {}.
type emptyRequest struct{}

// maxAmount is the largest amount ISO 8583 field 4 (12 digits) carries.
const maxAmount = 999_999_999_999

// validatePayment checks the body of POST /v1/calls/{id}/payments beyond
// what capture checks: the API's limits, and no card number in the free
// text.
func validatePayment(q *capture.PaymentRequest) error {
	switch {
	case q.Amount <= 0:
		return errors.New("amount must be a positive integer in the currency's minor unit")
	case q.Amount > maxAmount:
		return errors.New("amount must be at most 999999999999")
	case !validCurrency(q.Currency):
		return errors.New("currency must be an active ISO 4217 alpha-3 code in upper case, e.g. GBP")
	case !utf8.ValidString(q.MerchantRef) || utf8.RuneCountInString(q.MerchantRef) > 64:
		return errors.New("merchant_reference must be at most 64 characters")
	case !utf8.ValidString(q.Description) || utf8.RuneCountInString(q.Description) > 255:
		return errors.New("description must be at most 255 characters")
	case hasControl(q.MerchantRef) || hasControl(q.Description):
		return errors.New("merchant_reference and description must not hold control characters")
	case containsCardNumber(q.MerchantRef):
		// They are stored, returned, streamed, posted in webhooks and
		// logged in clear: a card number typed or pasted there by mistake
		// must not get in, however it is written. The message never
		// quotes the value.
		return errors.New(errCardInText("merchant_reference"))
	case containsCardNumber(q.Description):
		return errors.New(errCardInText("description"))
	}
	return nil
}

// errCardInText is the refusal of a free-text field that holds a card
// number; it names the field, never the value.
func errCardInText(field string) string {
	return field + " must not hold a card number (digits that pass the card number check once spaces, dots, dashes, slashes and underscores are removed); take card numbers on the keypad only"
}

func (q *resetRequest) validate() error {
	if !fieldNameRE.MatchString(q.Field) {
		return errors.New("field must name a field, e.g. card_number")
	}
	return nil
}

func (s *Server) startPayment(w http.ResponseWriter, r *http.Request) {
	p, _ := principalFrom(r.Context())
	callID := r.PathValue("id")
	if p.widget() && p.callID != callID {
		writeProblem(w, r, http.StatusForbidden, "forbidden", "this widget token is for another call")
		return
	}
	key := r.Header.Get("Idempotency-Key")
	if !validIdemKey(key) {
		writeProblem(w, r, http.StatusBadRequest, "idempotency-required", "send an Idempotency-Key header of 1 to 255 visible ASCII characters")
		return
	}
	var req capture.PaymentRequest
	if !s.decode(w, r, &req, false) {
		return
	}
	if err := validatePayment(&req); err != nil {
		writeProblem(w, r, http.StatusUnprocessableEntity, "validation", err.Error())
		return
	}
	if _, ok := s.deps.Calls.Get(callID); !ok {
		writeProblem(w, r, http.StatusNotFound, "not-found", "no such call")
		return
	}
	canon, _ := json.Marshal(req)
	fp := sha256.Sum256(append([]byte(callID+"\x00"), canon...))
	// The key is the client's text: only its hash is kept.
	keySum := sha256.Sum256([]byte(key))
	scope := p.actor() + "\x00" + p.callID + "\x00" + string(keySum[:])
	switch res, e := s.idem.begin(scope, fp); res {
	case idemMismatch:
		writeProblem(w, r, http.StatusUnprocessableEntity, "idempotency-mismatch", "this Idempotency-Key was used with a different request")
		return
	case idemBusy:
		w.Header().Set("Retry-After", "1")
		writeProblem(w, r, http.StatusConflict, "conflict", "a request with this Idempotency-Key is still being processed")
		return
	case idemReplay:
		w.Header().Set("Location", e.location)
		w.Header().Set("Idempotent-Replayed", "true")
		writeRaw(w, e.status, e.body)
		return
	}
	sess, err := s.deps.Payments.Start(callID, req, p.actor())
	if err != nil {
		s.idem.abandon(scope)
		s.sessionError(w, r, err)
		return
	}
	v := sess.View()
	s.watch(sess)
	body, err := json.Marshal(v)
	if err != nil {
		s.idem.abandon(scope)
		writeProblem(w, r, http.StatusInternalServerError, "internal", "")
		return
	}
	body = append(body, '\n')
	loc := "/v1/payments/" + v.ID
	s.idem.finish(scope, http.StatusCreated, body, loc)
	w.Header().Set("Location", loc)
	writeRaw(w, http.StatusCreated, body)
}

// session finds the payment of the path, within the principal's reach: a
// widget token sees only the payments of its call, and the others do not
// exist for it.
func (s *Server) session(w http.ResponseWriter, r *http.Request) (Session, principal, bool) {
	p, _ := principalFrom(r.Context())
	sess, ok := s.deps.Payments.Get(r.PathValue("id"))
	if ok && p.widget() && sess.View().CallID != p.callID {
		ok = false
	}
	if !ok {
		writeProblem(w, r, http.StatusNotFound, "not-found", "no such payment")
		return nil, p, false
	}
	return sess, p, true
}

func (s *Server) getPayment(w http.ResponseWriter, r *http.Request) {
	sess, _, ok := s.session(w, r)
	if !ok {
		return
	}
	writeJSON(w, http.StatusOK, sess.View())
}

func (s *Server) resetField(w http.ResponseWriter, r *http.Request) {
	sess, p, ok := s.session(w, r)
	if !ok {
		return
	}
	var req resetRequest
	if !s.decode(w, r, &req, false) {
		return
	}
	if err := req.validate(); err != nil {
		writeProblem(w, r, http.StatusUnprocessableEntity, "validation", err.Error())
		return
	}
	s.action(w, r, sess, sess.Reset(capture.FieldName(req.Field), p.actor()))
}

func (s *Server) restart(w http.ResponseWriter, r *http.Request) {
	sess, p, ok := s.session(w, r)
	if !ok || !s.decode(w, r, &emptyRequest{}, true) {
		return
	}
	s.action(w, r, sess, sess.Restart(p.actor()))
}

// cancel is idempotent: cancelling a cancelled session answers as the
// first time did.
func (s *Server) cancel(w http.ResponseWriter, r *http.Request) {
	sess, p, ok := s.session(w, r)
	if !ok || !s.decode(w, r, &emptyRequest{}, true) {
		return
	}
	err := sess.Cancel(p.actor())
	if errors.Is(err, capture.ErrFinal) && sess.View().State == capture.StateCancelled {
		err = nil
	}
	s.action(w, r, sess, err)
}

// answerWriteTimeout is the time to write the answer of a request that
// ran longer than the server's write timeout (submit).
const answerWriteTimeout = 10 * time.Second

// submit tokenizes and authorizes. It is idempotent (capture returns the
// first outcome again). The processor's work is not tied to the client's
// connection: a client that hangs up must not leave an authorization
// half done.
func (s *Server) submit(w http.ResponseWriter, r *http.Request) {
	sess, p, ok := s.session(w, r)
	if !ok || !s.decode(w, r, &emptyRequest{}, true) {
		return
	}
	v, err := sess.Submit(context.WithoutCancel(r.Context()), p.actor())
	// Tokenizing and authorizing may take longer than the server's write
	// timeout allows a whole request: the answer gets its own time, so
	// the client learns the outcome of what was done.
	_ = http.NewResponseController(w).SetWriteDeadline(time.Now().Add(answerWriteTimeout))
	switch {
	case err == nil:
		writeJSON(w, http.StatusOK, v)
	case errors.Is(err, capture.ErrNotConfigured):
		// The session ended failed with reason not_configured: say so with
		// the session itself, which is final. There is no fake approval.
		writeJSON(w, http.StatusOK, sess.View())
	default:
		s.sessionError(w, r, err)
	}
}

func (s *Server) action(w http.ResponseWriter, r *http.Request, sess Session, err error) {
	if err != nil {
		s.sessionError(w, r, err)
		return
	}
	writeJSON(w, http.StatusOK, sess.View())
}

// sessionError maps the capture side's errors to problems. The error's
// text is capture's own fixed message, never card data.
func (s *Server) sessionError(w http.ResponseWriter, r *http.Request, err error) {
	switch {
	case errors.Is(err, capture.ErrNotFound):
		writeProblem(w, r, http.StatusNotFound, "not-found", "no such payment or field")
	case errors.Is(err, capture.ErrCallBusy):
		writeProblem(w, r, http.StatusConflict, "conflict", "a payment session is already live on this call")
	case errors.Is(err, capture.ErrNotReady):
		writeProblem(w, r, http.StatusConflict, "conflict", "the session is not complete: every field must be valid first")
	case errors.Is(err, capture.ErrFinal):
		writeProblem(w, r, http.StatusConflict, "conflict", "the session has ended")
	case errors.Is(err, capture.ErrInFlight):
		w.Header().Set("Retry-After", "2")
		writeProblem(w, r, http.StatusConflict, "conflict", "a submission is in progress")
	case errors.Is(err, capture.ErrUnavailable):
		w.Header().Set("Retry-After", "5")
		writeProblem(w, r, http.StatusServiceUnavailable, "unavailable", "the payment processor is temporarily unavailable; the card data is kept, submit again")
	case errors.Is(err, capture.ErrCapacity):
		w.Header().Set("Retry-After", "10")
		writeProblem(w, r, http.StatusServiceUnavailable, "unavailable", "too many payments are being taken at once (capture.max_live_sessions); try again shortly")
	case errors.Is(err, capture.ErrAuditUnavailable):
		w.Header().Set("Retry-After", "5")
		writeProblem(w, r, http.StatusServiceUnavailable, "unavailable", "the audit trail cannot be written: payments are stopped until it can (calls go on, masked)")
	case errors.Is(err, capture.ErrClosed):
		w.Header().Set("Retry-After", "5")
		writeProblem(w, r, http.StatusServiceUnavailable, "unavailable", "the payment service is shutting down")
	case errors.Is(err, capture.ErrInvalidRequest):
		writeProblem(w, r, http.StatusUnprocessableEntity, "validation", "the payment request was refused")
	default:
		s.log.Error("payment action failed", zap.Error(err))
		writeProblem(w, r, http.StatusInternalServerError, "internal", "")
	}
}

// decode answers the problem itself and reports whether to go on.
func (s *Server) decode(w http.ResponseWriter, r *http.Request, dst any, allowEmpty bool) bool {
	err := decodeBody(w, r, s.cfg.MaxBodyBytes, dst, allowEmpty)
	if err == nil {
		return true
	}
	var de *decodeError
	if errors.As(err, &de) {
		writeProblem(w, r, de.status, de.slug, de.msg)
	} else {
		writeProblem(w, r, http.StatusBadRequest, "bad-request", "the body cannot be read")
	}
	return false
}

func validIdemKey(k string) bool {
	if k == "" || len(k) > idemMaxKeyLen {
		return false
	}
	for i := 0; i < len(k); i++ {
		if k[i] < 0x21 || k[i] > 0x7e {
			return false
		}
	}
	return true
}

func hasControl(s string) bool {
	for _, c := range s {
		if c < 0x20 || c == 0x7f {
			return true
		}
	}
	return false
}

// containsCardNumber reports whether s, a client's free text, holds a
// card number in any of the ways one can be written: see
// pan.ContainsNormalized.
func containsCardNumber(s string) bool { return pan.ContainsNormalized(s) }

func luhn(d []byte) bool { return pan.Luhn(d) }
