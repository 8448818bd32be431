package api

import (
	"embed"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"mime"
	"net/http"
	"strings"
	"time"

	"github.com/tonevault/tonevault/agents"
	"github.com/tonevault/tonevault/audit"
	"github.com/tonevault/tonevault/media/webrtc"
)

// Agents is what the API needs of the browser agents; *agents.Service is
// one.
type Agents interface {
	Pools() []string
	SignIn(id agents.Identity) (*agents.Session, error)
	SetAvailable(id agents.Identity, on bool)
	Answer(id agents.Identity, callID string, offer []byte) ([]byte, error)
	Hangup(id agents.Identity, callID string) error
	OnCall(id agents.Identity, callID string) bool
}

//go:embed agent
var agentFS embed.FS

// maxOffer bounds the SDP offer an agent page posts (browsers' audio
// offers are a few KiB).
const maxOffer = 64 << 10

// identity is the agent a principal from an agent token is.
func (p principal) identity() agents.Identity {
	return agents.Identity{Key: p.key, AgentID: p.agent, Pools: p.pools, TokenID: p.tokenID}
}

// authenticateAgent checks an agent token on an agent route; any other
// credential there, or an agent token elsewhere, is refused (403).
func (s *Server) authenticateAgent(w http.ResponseWriter, r *http.Request, rt route, cred string,
	limited func() bool, fail func(audit.Reason) (principal, bool)) (principal, bool) {
	agentRoute := rt.access == agentOnly || rt.access == agentQuery
	if agentRoute != strings.HasPrefix(cred, agentPrefix) {
		if limited() {
			return principal{}, false
		}
		s.auditAuthFailed(r, rt, audit.ReasonTokenNotAllowed)
		msg := "an agent token cannot be used here"
		if agentRoute {
			msg = "this route takes an agent token (POST /v1/agent-tokens)"
		}
		writeProblem(w, r, http.StatusForbidden, "forbidden", msg)
		return principal{}, false
	}
	p, err := s.tokens.verifyAgent(r.Context(), cred, s.cfg.AgentTokenTTL)
	if err == nil {
		return p, true
	}
	reason, checked := tokenRefusal(err)
	if !checked {
		w.Header().Set("Retry-After", "5")
		writeProblem(w, r, http.StatusServiceUnavailable, "unavailable", "agent tokens cannot be checked right now; try again")
		return principal{}, false
	}
	return fail(reason)
}

// agentsOr404 answers 404 on a gateway without browser agents.
func (s *Server) agentsOr404(w http.ResponseWriter, r *http.Request) bool {
	if s.deps.Agents == nil {
		writeProblem(w, r, http.StatusNotFound, "not-found", "this gateway has no browser agents")
		return false
	}
	return true
}

// agentEvents is the agent page's event stream: the agent is signed in
// (and rung for its pools' calls) while it is open. Events (SSE, event
// name = agents.Event.Type, data its JSON): ready, incoming, ring_ended,
// call; and signed_out when the stream ends because the token expired or
// was revoked (checked at every heartbeat).
func (s *Server) agentEvents(w http.ResponseWriter, r *http.Request) {
	if !s.agentsOr404(w, r) {
		return
	}
	p, _ := principalFrom(r.Context())
	if !s.streams.open(p.key, s.cfg.MaxStreamsPerKey) {
		w.Header().Set("Retry-After", "10")
		writeProblem(w, r, http.StatusTooManyRequests, "rate-limited", "too many event streams open for this API key (api.max_streams_per_key)")
		return
	}
	defer s.streams.close(p.key)
	sess, err := s.deps.Agents.SignIn(p.identity())
	if err != nil {
		writeProblem(w, r, http.StatusConflict, "conflict", "the agent cannot sign in: its token names a pool this gateway no longer has")
		return
	}
	defer sess.Close()
	rc := http.NewResponseController(w)
	deadline := func() { _ = rc.SetWriteDeadline(time.Now().Add(s.streamWrite)) }
	deadline()
	h := w.Header()
	h.Set("Content-Type", "text/event-stream")
	h.Set("Cache-Control", "no-store")
	h.Set("X-Accel-Buffering", "no")
	w.WriteHeader(http.StatusOK)
	fmt.Fprint(w, "retry: 2000\n\n")
	send := func(ev agents.Event) bool {
		data, err := json.Marshal(ev)
		if err != nil {
			return false
		}
		deadline()
		if _, err := fmt.Fprintf(w, "event: %s\ndata: %s\n\n", ev.Type, data); err != nil {
			return false
		}
		return rc.Flush() == nil
	}
	if rc.Flush() != nil {
		return
	}
	cred, ok := bearer(r)
	if !ok {
		cred = r.URL.Query().Get("access_token")
	}
	tick := time.NewTicker(s.cfg.Heartbeat)
	defer tick.Stop()
	expiry := time.NewTimer(time.Until(p.expires))
	defer expiry.Stop()
	for {
		select {
		case <-r.Context().Done():
			return
		case <-s.streamsCtx.Done():
			return
		case <-expiry.C:
			send(agents.Event{Type: "signed_out", Reason: "token_expired"})
			return
		case <-tick.C:
			if _, err := s.tokens.verifyAgent(r.Context(), cred, s.cfg.AgentTokenTTL); errors.Is(err, errTokenInvalid) {
				send(agents.Event{Type: "signed_out", Reason: "token_revoked"})
				return
			}
			deadline()
			if _, err := fmt.Fprint(w, ": heartbeat\n\n"); err != nil || rc.Flush() != nil {
				return
			}
		case ev, ok := <-sess.Events():
			if !ok || !send(ev) {
				return
			}
		}
	}
}

// availabilityRequest is the body of PUT /v1/agent/availability.
type availabilityRequest struct {
	Available *bool `json:"available"`
}

func (s *Server) agentAvailability(w http.ResponseWriter, r *http.Request) {
	if !s.agentsOr404(w, r) {
		return
	}
	p, _ := principalFrom(r.Context())
	var req availabilityRequest
	if !s.decode(w, r, &req, false) {
		return
	}
	if req.Available == nil {
		writeProblem(w, r, http.StatusUnprocessableEntity, "validation", "available (true or false) is required")
		return
	}
	s.deps.Agents.SetAvailable(p.identity(), *req.Available)
	w.WriteHeader(http.StatusNoContent)
}

// agentAnswer is the WHEP-like exchange: the agent page posts its SDP
// offer (application/sdp) to answer a call ringing it, and gets the
// gateway's answer (201, application/sdp, Location: the call's resource,
// which DELETE hangs up). The media connects after: the event stream
// says when (call connected) or why not (call failed).
func (s *Server) agentAnswer(w http.ResponseWriter, r *http.Request) {
	if !s.agentsOr404(w, r) {
		return
	}
	p, _ := principalFrom(r.Context())
	if mt, _, err := mime.ParseMediaType(r.Header.Get("Content-Type")); err != nil || mt != "application/sdp" {
		writeProblem(w, r, http.StatusUnsupportedMediaType, "unsupported-media-type", "the offer must be application/sdp")
		return
	}
	offer, err := io.ReadAll(http.MaxBytesReader(w, r.Body, maxOffer))
	if err != nil {
		writeProblem(w, r, http.StatusRequestEntityTooLarge, "payload-too-large", fmt.Sprintf("an offer is at most %d bytes", maxOffer))
		return
	}
	callID := r.PathValue("id")
	answer, err := s.deps.Agents.Answer(p.identity(), callID, offer)
	switch {
	case err == nil:
	case errors.Is(err, webrtc.ErrBadSDP):
		// The reason is ours (or pion's first line), never the offer.
		writeProblem(w, r, http.StatusBadRequest, "bad-request", err.Error())
		return
	case errors.Is(err, agents.ErrTaken):
		writeProblem(w, r, http.StatusConflict, "conflict", "another agent answered this call")
		return
	case errors.Is(err, agents.ErrNotRinging):
		writeProblem(w, r, http.StatusNotFound, "not-found", "no such call ringing for this agent")
		return
	default:
		s.log.Warn("agent answer failed")
		writeProblem(w, r, http.StatusServiceUnavailable, "unavailable", "the answer could not be set up; try again")
		return
	}
	h := w.Header()
	h.Set("Content-Type", "application/sdp")
	h.Set("Cache-Control", "no-store")
	h.Set("Location", "/v1/agent/calls/"+callID)
	w.WriteHeader(http.StatusCreated)
	_, _ = w.Write(answer)
}

// agentHangup ends the agent's call (or its answer still connecting).
func (s *Server) agentHangup(w http.ResponseWriter, r *http.Request) {
	if !s.agentsOr404(w, r) {
		return
	}
	p, _ := principalFrom(r.Context())
	if err := s.deps.Agents.Hangup(p.identity(), r.PathValue("id")); err != nil {
		writeProblem(w, r, http.StatusNotFound, "not-found", "this agent has no such call")
		return
	}
	w.WriteHeader(http.StatusNoContent)
}

// agentWidgetToken mints a widget token for the call the agent has, so
// that the payment widget opens beside the softphone on the same page.
func (s *Server) agentWidgetToken(w http.ResponseWriter, r *http.Request) {
	if !s.agentsOr404(w, r) {
		return
	}
	p, _ := principalFrom(r.Context())
	callID := r.PathValue("id")
	if !s.deps.Agents.OnCall(p.identity(), callID) {
		writeProblem(w, r, http.StatusForbidden, "forbidden", "this agent does not have this call")
		return
	}
	tok, id, exp, err := s.tokens.mint(p.key, callID)
	if err != nil {
		writeProblem(w, r, http.StatusUnprocessableEntity, "validation", "call id too long")
		return
	}
	s.audit(r.Context(), audit.Record{Actor: p.actor(), Origin: origin(r), CallID: callID, Event: audit.EventAPITokenIssued, Outcome: audit.Success, ExpiresAt: exp})
	writeJSON(w, http.StatusCreated, widgetTokenResponse{ID: id, Token: tok, ExpiresAt: exp.UTC()})
}

// serveAgentPage serves the agent page (/agent/): static files, the
// widget's Content-Security-Policy, plus the microphone for this origin
// alone.
func (s *Server) serveAgentPage(w http.ResponseWriter, r *http.Request) {
	if r.URL.Path == "/agent" {
		http.Redirect(w, r, "/agent/", http.StatusMovedPermanently)
		return
	}
	if r.Method != http.MethodGet && r.Method != http.MethodHead {
		w.Header().Set("Allow", "GET, HEAD")
		writeProblem(w, r, http.StatusMethodNotAllowed, "method-not-allowed", "the agent page is static")
		return
	}
	static, err := fs.Sub(agentFS, "agent")
	if err != nil {
		writeProblem(w, r, http.StatusInternalServerError, "internal", "")
		return
	}
	h := w.Header()
	h.Set("Content-Security-Policy", pageCSP(s.cfg.FrameAncestors))
	h.Set("Permissions-Policy", "microphone=(self), camera=()")
	h.Set("Cache-Control", "no-store")
	h.Set("Referrer-Policy", "no-referrer")
	http.StripPrefix("/agent/", http.FileServerFS(static)).ServeHTTP(w, r)
}
