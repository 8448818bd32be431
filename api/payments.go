package api

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"strconv"
	"strings"
	"time"
	"unicode/utf8"

	"go.uber.org/zap"

	"github.com/tonevault/tonevault/audit"
	"github.com/tonevault/tonevault/capture"
	"github.com/tonevault/tonevault/internal/pan"
	"github.com/tonevault/tonevault/store"
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
		return errors.New("amount must have at most 12 digits (minor units: ISO 8583 field 4)")
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
	// The key is the client's text: the store keeps its hash only. The
	// first answer is replayed before the call is looked up: a retry
	// after the call ended (or the gateway restarted) still gets it.
	idem, claim, err := s.beginIdem(r.Context(), idemScope(p, key), idemFingerprint(callID, req))
	if err != nil {
		s.storeError(w, r, err)
		return
	}
	switch idem.State {
	case store.IdemMismatch:
		writeProblem(w, r, http.StatusUnprocessableEntity, "idempotency-mismatch", "this Idempotency-Key was used with a different request")
		return
	case store.IdemBusy:
		w.Header().Set("Retry-After", "1")
		writeProblem(w, r, http.StatusConflict, "conflict", "a request with this Idempotency-Key is still being processed")
		return
	case store.IdemReplay:
		if idem.Response.Location != "" {
			w.Header().Set("Location", idem.Response.Location)
		}
		w.Header().Set("Idempotent-Replayed", "true")
		writeRaw(w, idem.Response.Status, idem.Response.Body)
		return
	}
	if _, ok := s.deps.Calls.Get(callID); !ok {
		s.abandonIdem(r.Context(), claim)
		writeProblem(w, r, http.StatusNotFound, "not-found", "no such call")
		return
	}
	sess, err := s.deps.Payments.Start(callID, req, p.actor())
	if err != nil {
		s.abandonIdem(r.Context(), claim)
		s.sessionError(w, r, err)
		return
	}
	v := sess.View()
	involve(r, sess, v.ID)
	s.watch(sess)
	body, err := json.Marshal(v)
	if err != nil {
		s.abandonIdem(r.Context(), claim)
		writeProblem(w, r, http.StatusInternalServerError, "internal", "")
		return
	}
	body = append(body, '\n')
	loc := "/v1/payments/" + v.ID
	s.finishIdem(r.Context(), claim, http.StatusCreated, body, loc)
	w.Header().Set("Location", loc)
	writeRaw(w, http.StatusCreated, body)
}

// session finds the payment of the path, within the principal's reach: a
// widget token sees only the payments of its call, and the others do not
// exist for it. The session in memory comes first; a payment that left
// memory (ended long ago, or before a restart) is stored, and comes back
// as its last View, with sess nil.
func (s *Server) session(w http.ResponseWriter, r *http.Request) (sess Session, stored capture.View, p principal, ok bool) {
	p, _ = principalFrom(r.Context())
	id := r.PathValue("id")
	if sess, ok = s.deps.Payments.Get(id); ok {
		if p.widget() && sess.View().CallID != p.callID {
			ok = false
		}
	} else if audit.ValidID(id) {
		v, err := s.history.Get(r.Context(), id)
		switch {
		case errors.Is(err, capture.ErrNotFound):
		case err != nil:
			s.storeError(w, r, err)
			return nil, capture.View{}, p, false
		case !p.widget() || v.CallID == p.callID:
			stored, ok = s.guard.view(v), true
		}
	}
	if !ok {
		writeProblem(w, r, http.StatusNotFound, "not-found", "no such payment")
		return nil, capture.View{}, p, false
	}
	if sess != nil {
		involve(r, sess, id)
		runTestFault("session", r.Pattern)
	}
	return sess, stored, p, true
}

// endedElsewhere answers an action on a stored payment: it has ended (or
// is held by another gateway), so nothing can change it.
func (s *Server) endedElsewhere(w http.ResponseWriter, r *http.Request, v capture.View) {
	if v.State.Final() {
		s.sessionError(w, r, capture.ErrFinal)
		return
	}
	writeProblem(w, r, http.StatusConflict, "conflict", "this payment is live on another gateway; act on it there")
}

func (s *Server) getPayment(w http.ResponseWriter, r *http.Request) {
	sess, stored, _, ok := s.session(w, r)
	if !ok {
		return
	}
	if sess == nil {
		writeJSON(w, http.StatusOK, stored)
		return
	}
	writeJSON(w, http.StatusOK, sess.View())
}

// paymentList is the body of GET /v1/payments.
type paymentList struct {
	Payments []capture.View `json:"payments"`
	// NextCursor, when set, is the ?cursor= of the next page.
	NextCursor string `json:"next_cursor,omitempty"`
}

// listPayments finds payments by call (?call_id=) and by the call's
// correlation headers (?correlation=name:value, repeatable), newest
// first, a page at a time (?limit=, ?cursor=). A widget token lists the
// payments of its call only, and must say so (?call_id=). A payment in
// memory is shown as it is now, one in the store as it was last written.
func (s *Server) listPayments(w http.ResponseWriter, r *http.Request) {
	p, _ := principalFrom(r.Context())
	qs := r.URL.Query()
	q := store.PaymentQuery{CallID: qs.Get("call_id"), Cursor: qs.Get("cursor")}
	if p.widget() && q.CallID != p.callID {
		writeProblem(w, r, http.StatusForbidden, "forbidden", "a widget token lists the payments of its own call: set call_id")
		return
	}
	if q.CallID != "" && !audit.ValidID(q.CallID) {
		// Capture takes no other call id: there is no payment to find.
		writeJSON(w, http.StatusOK, paymentList{Payments: []capture.View{}})
		return
	}
	for _, c := range qs["correlation"] {
		k, v, ok := strings.Cut(c, ":")
		if !ok || k == "" {
			writeProblem(w, r, http.StatusBadRequest, "bad-request", "correlation must be name:value")
			return
		}
		if q.Correlation == nil {
			q.Correlation = map[string]string{}
		}
		q.Correlation[k] = v
	}
	if q.CallID == "" && len(q.Correlation) == 0 {
		writeProblem(w, r, http.StatusBadRequest, "bad-request", "say which payments: call_id or correlation")
		return
	}
	if l := qs.Get("limit"); l != "" {
		n, err := strconv.Atoi(l)
		if err != nil || n < 1 || n > store.MaxPageSize {
			writeProblem(w, r, http.StatusBadRequest, "bad-request", fmt.Sprintf("limit must be 1 to %d", store.MaxPageSize))
			return
		}
		q.Limit = n
	}
	views, next, err := s.history.List(r.Context(), q)
	switch {
	case errors.Is(err, store.ErrBadCursor):
		writeProblem(w, r, http.StatusBadRequest, "bad-request", "cursor is not one this API gave")
		return
	case err != nil:
		s.storeError(w, r, err)
		return
	}
	out := paymentList{Payments: make([]capture.View, 0, len(views)), NextCursor: next}
	for _, v := range views {
		if sess, ok := s.deps.Payments.Get(v.ID); ok {
			out.Payments = append(out.Payments, sess.View())
			continue
		}
		out.Payments = append(out.Payments, s.guard.view(v))
	}
	writeJSON(w, http.StatusOK, out)
}

// storeError answers a request the store could not serve.
func (s *Server) storeError(w http.ResponseWriter, r *http.Request, err error) {
	s.log.Error("store unavailable", zap.String("route", r.Pattern), zap.Error(err))
	w.Header().Set("Retry-After", "5")
	writeProblem(w, r, http.StatusServiceUnavailable, "unavailable", "the gateway's database is unavailable; try again shortly")
}

func (s *Server) resetField(w http.ResponseWriter, r *http.Request) {
	sess, stored, p, ok := s.session(w, r)
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
	if sess == nil {
		s.endedElsewhere(w, r, stored)
		return
	}
	s.action(w, r, sess, sess.Reset(capture.FieldName(req.Field), p.actor()))
}

func (s *Server) restart(w http.ResponseWriter, r *http.Request) {
	sess, stored, p, ok := s.session(w, r)
	if !ok || !s.decode(w, r, &emptyRequest{}, true) {
		return
	}
	if sess == nil {
		s.endedElsewhere(w, r, stored)
		return
	}
	s.action(w, r, sess, sess.Restart(p.actor()))
}

// cancel is idempotent: cancelling a cancelled session answers as the
// first time did.
func (s *Server) cancel(w http.ResponseWriter, r *http.Request) {
	sess, stored, p, ok := s.session(w, r)
	if !ok || !s.decode(w, r, &emptyRequest{}, true) {
		return
	}
	if sess == nil {
		if stored.State == capture.StateCancelled {
			writeJSON(w, http.StatusOK, stored)
			return
		}
		s.endedElsewhere(w, r, stored)
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
// first outcome again; for a payment that left memory, the store does).
// The processor's work is not tied to the client's connection: a client
// that hangs up must not leave an authorization half done.
func (s *Server) submit(w http.ResponseWriter, r *http.Request) {
	sess, stored, p, ok := s.session(w, r)
	if !ok || !s.decode(w, r, &emptyRequest{}, true) {
		return
	}
	if sess == nil {
		if stored.Result != nil {
			writeJSON(w, http.StatusOK, stored)
			return
		}
		s.endedElsewhere(w, r, stored)
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
