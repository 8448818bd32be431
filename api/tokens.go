package api

import (
	"net/http"
	"time"

	"github.com/tonevault/tonevault/audit"
)

// widgetTokenRequest is the body of POST /v1/widget-tokens.
type widgetTokenRequest struct {
	CallID string `json:"call_id"`
}

// widgetTokenResponse is its answer. ID names the token for DELETE
// /v1/widget-tokens/{id}.
type widgetTokenResponse struct {
	ID        string    `json:"id"`
	Token     string    `json:"token"`
	ExpiresAt time.Time `json:"expires_at"`
}

// mintWidgetToken gives the CRM a short-lived token for the agent's
// widget, scoped to one call, so the API key never reaches a browser.
func (s *Server) mintWidgetToken(w http.ResponseWriter, r *http.Request) {
	p, _ := principalFrom(r.Context())
	var req widgetTokenRequest
	if !s.decode(w, r, &req, false) {
		return
	}
	if req.CallID == "" || len(req.CallID) > 256 {
		writeProblem(w, r, http.StatusUnprocessableEntity, "validation", "call_id is required")
		return
	}
	if _, ok := s.deps.Calls.Get(req.CallID); !ok {
		writeProblem(w, r, http.StatusNotFound, "not-found", "no such call")
		return
	}
	tok, id, exp, err := s.tokens.mint(p.key, req.CallID)
	if err != nil {
		writeProblem(w, r, http.StatusUnprocessableEntity, "validation", "call_id is too long")
		return
	}
	s.audit(r.Context(), audit.Record{
		Actor:     p.actor(),
		Origin:    origin(r),
		CallID:    req.CallID,
		Event:     audit.EventAPITokenIssued,
		Outcome:   audit.Success,
		ExpiresAt: exp,
	})
	writeJSON(w, http.StatusCreated, widgetTokenResponse{ID: id, Token: tok, ExpiresAt: exp.UTC()})
}

// revokeWidgetToken refuses a widget token from now on. Only the key that
// minted it may; for every other key the id does not exist. Revoking
// twice is not an error.
func (s *Server) revokeWidgetToken(w http.ResponseWriter, r *http.Request) {
	p, _ := principalFrom(r.Context())
	ok, err := s.tokens.revoke(r.Context(), p.key, r.PathValue("id"))
	if err != nil {
		s.storeError(w, r, err)
		return
	}
	if !ok {
		writeProblem(w, r, http.StatusNotFound, "not-found", "no such widget token for this API key")
		return
	}
	s.audit(r.Context(), audit.Record{
		Actor:   p.actor(),
		Origin:  origin(r),
		Event:   audit.EventAPITokenRevoked,
		Outcome: audit.Success,
	})
	w.Header().Set("Cache-Control", "no-store")
	w.WriteHeader(http.StatusNoContent)
}
