package api

import (
	"context"
	"crypto/hmac"
	"crypto/rand"
	"crypto/sha256"
	"encoding/base64"
	"encoding/binary"
	"errors"
	"fmt"
	"net/http"
	"regexp"
	"slices"
	"strings"
	"time"

	"github.com/tonevault/tonevault/agents"
	"github.com/tonevault/tonevault/audit"
	"github.com/tonevault/tonevault/internal/pan"
)

// Agent tokens sign a browser agent in on the agent page: "at1." +
// base64url(payload) + "." + base64url(HMAC-SHA256 of "at1." + the
// encoded payload), under the widget tokens' secret (the prefix is in
// what is signed, so neither kind passes for the other). Payload:
//
//	15 bytes  id: 10 random bytes and a 5-byte tag (as widget tokens')
//	 8 bytes  issued at, Unix seconds, big endian
//	 8 bytes  expiry, Unix seconds, big endian
//	 8 bytes  the minting key's binding
//	 1 byte   length of the key's name, then the name
//	 1 byte   length of the agent id, then the id
//	 the rest the pools, comma-separated
const agentPrefix = "at1."

// agentIDPattern is the CRM's id for an agent: it goes into the audit
// trail's actor, so no free text.
var agentIDPattern = regexp.MustCompile(`^[A-Za-z0-9][A-Za-z0-9._@-]{0,63}$`)

// agentTokenRequest is the body of POST /v1/agent-tokens.
type agentTokenRequest struct {
	AgentID string   `json:"agent_id"`
	Pools   []string `json:"pools"`
}

// agentTokenResponse is its answer. ID names the token for DELETE
// /v1/agent-tokens/{id}.
type agentTokenResponse struct {
	ID        string    `json:"id"`
	Token     string    `json:"token"`
	ExpiresAt time.Time `json:"expires_at"`
}

func (q *agentTokenRequest) validate(pools []string) error {
	switch {
	case !agentIDPattern.MatchString(q.AgentID):
		return errors.New("agent_id must be 1 to 64 letters, digits, '.', '_', '@' or '-', starting with a letter or digit")
	case pan.Contains(q.AgentID):
		return errors.New(errCardInText("agent_id"))
	case len(q.Pools) == 0 || len(q.Pools) > 16:
		return errors.New("pools must name 1 to 16 pools of agents.pools")
	}
	for _, p := range q.Pools {
		if !slices.Contains(pools, p) {
			return fmt.Errorf("pools: %q is not a pool of agents.pools", p)
		}
	}
	return nil
}

// agentToken is the id part of a token: "at_" and 24 base32 characters.
func agentTokenID(id []byte) string {
	return "at_" + strings.ToLower(tokenIDEncoding.EncodeToString(id))
}

// mintAgent makes an agent token for key (a configured key's name).
func (s *tokenSigner) mintAgent(key string, ttl time.Duration, id agents.Identity) (tok, tokID string, exp time.Time, err error) {
	if len(key) > 255 || len(id.AgentID) > 255 {
		return "", "", time.Time{}, errors.New("api: key name or agent id too long for a token")
	}
	b, ok := s.keys.binding(key)
	if !ok {
		return "", "", time.Time{}, errors.New("api: no such key")
	}
	var rnd [tokenRandLen]byte
	if _, err := rand.Read(rnd[:]); err != nil {
		return "", "", time.Time{}, err
	}
	now := s.now().Truncate(time.Second)
	exp = now.Add(ttl).Truncate(time.Second)
	payload := append([]byte(nil), rnd[:]...)
	payload = append(payload, s.agentIDTag(b, rnd[:])...)
	payload = binary.BigEndian.AppendUint64(payload, uint64(now.Unix()))
	payload = binary.BigEndian.AppendUint64(payload, uint64(exp.Unix()))
	payload = append(payload, b[:]...)
	payload = append(payload, byte(len(key)))
	payload = append(payload, key...)
	payload = append(payload, byte(len(id.AgentID)))
	payload = append(payload, id.AgentID...)
	payload = append(payload, strings.Join(id.Pools, ",")...)
	body := agentPrefix + base64.RawURLEncoding.EncodeToString(payload)
	return body + "." + base64.RawURLEncoding.EncodeToString(s.mac(body)), agentTokenID(payload[:tokenIDLen]), exp, nil
}

// agentIDTag ties an agent token id to its key, as idTag does for widget
// tokens, in its own domain.
func (s *tokenSigner) agentIDTag(b binding, rnd []byte) []byte {
	m := hmac.New(sha256.New, s.secret)
	m.Write([]byte("tonevault agent token id\x00"))
	m.Write(b[:])
	m.Write(rnd)
	return m.Sum(nil)[:tokenTagLen]
}

// verifyAgent checks an agent token as verify checks a widget token
// (signature, expiry, a lifetime within ttl, the key still configured,
// not revoked) and returns its principal.
func (s *tokenSigner) verifyAgent(ctx context.Context, tok string, ttl time.Duration) (principal, error) {
	id, exp, key, rest, err := s.open(tok, agentPrefix, ttl)
	if err != nil {
		return principal{}, err
	}
	if len(rest) == 0 || len(rest) < 1+int(rest[0]) {
		return principal{}, errTokenInvalid
	}
	m := int(rest[0])
	agentID, pools := string(rest[1:1+m]), string(rest[1+m:])
	p := principal{key: key, tokenID: agentTokenID(id), agent: agentID, pools: strings.Split(pools, ","), expires: exp}
	if err := s.checkRevoked(ctx, p.tokenID); err != nil {
		return principal{}, err
	}
	return p, nil
}

// revokeAgent refuses the agent token with id from now on, if key minted
// it.
func (s *tokenSigner) revokeAgent(ctx context.Context, key, id string, ttl time.Duration) (bool, error) {
	rest, ok := strings.CutPrefix(id, "at_")
	if !ok || len(rest) != 24 {
		return false, nil
	}
	raw, err := tokenIDEncoding.DecodeString(strings.ToUpper(rest))
	if err != nil || len(raw) != tokenIDLen {
		return false, nil
	}
	b, ok := s.keys.binding(key)
	if !ok || !hmac.Equal(raw[tokenRandLen:], s.agentIDTag(b, raw[:tokenRandLen])) {
		return false, nil
	}
	if err := s.st.RevokeToken(ctx, id, s.now().Add(ttl+tokenSkew)); err != nil {
		return false, err
	}
	return true, nil
}

// mintAgentToken gives the CRM a token that signs one agent in on the
// agent page, for some pools, so that no API key reaches a browser.
func (s *Server) mintAgentToken(w http.ResponseWriter, r *http.Request) {
	p, _ := principalFrom(r.Context())
	if s.deps.Agents == nil {
		writeProblem(w, r, http.StatusNotFound, "not-found", "this gateway has no browser agents")
		return
	}
	var req agentTokenRequest
	if !s.decode(w, r, &req, false) {
		return
	}
	if err := req.validate(s.deps.Agents.Pools()); err != nil {
		writeProblem(w, r, http.StatusUnprocessableEntity, "validation", err.Error())
		return
	}
	tok, id, exp, err := s.tokens.mintAgent(p.key, s.cfg.AgentTokenTTL, agents.Identity{AgentID: req.AgentID, Pools: req.Pools})
	if err != nil {
		writeProblem(w, r, http.StatusUnprocessableEntity, "validation", "agent_id is too long")
		return
	}
	s.audit(r.Context(), audit.Record{
		Actor:     p.actor() + " for agent:" + req.AgentID,
		Origin:    origin(r),
		Event:     audit.EventAgentTokenIssued,
		Outcome:   audit.Success,
		ExpiresAt: exp,
	})
	writeJSON(w, http.StatusCreated, agentTokenResponse{ID: id, Token: tok, ExpiresAt: exp.UTC()})
}

// revokeAgentToken refuses an agent token from now on: the agent's page
// is signed out at its next heartbeat and can do nothing more.
func (s *Server) revokeAgentToken(w http.ResponseWriter, r *http.Request) {
	p, _ := principalFrom(r.Context())
	ok, err := s.tokens.revokeAgent(r.Context(), p.key, r.PathValue("id"), s.cfg.AgentTokenTTL)
	if err != nil {
		s.storeError(w, r, err)
		return
	}
	if !ok {
		writeProblem(w, r, http.StatusNotFound, "not-found", "no such agent token for this API key")
		return
	}
	s.audit(r.Context(), audit.Record{Actor: p.actor(), Origin: origin(r), Event: audit.EventAgentTokenRevoked, Outcome: audit.Success})
	w.Header().Set("Cache-Control", "no-store")
	w.WriteHeader(http.StatusNoContent)
}
