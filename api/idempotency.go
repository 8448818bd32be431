package api

import (
	"context"
	"crypto/sha256"
	"encoding/json"
	"errors"
	"time"

	"go.uber.org/zap"

	"github.com/tonevault/tonevault/capture"
	"github.com/tonevault/tonevault/store"
)

// Idempotency keys live in the store (store.BeginIdempotent), which keeps
// the SHA-256 of the key only and the first successful answer, so that a
// retry gets the same answer and starts no second session, after a
// restart too and from any gateway on the database. Failed requests are
// forgotten: retrying them is safe. A request still running holds its
// key: a retry meanwhile gets 409, until the request ends or, if its
// gateway died, idemHold runs out.
const (
	idemTTL       = 24 * time.Hour
	idemHold      = time.Minute
	idemMaxKeyLen = 255
)

// idemScope is the key as the store sees it: a client's keys are its
// own, and a widget token's are its call's.
func idemScope(p principal, key string) string {
	return p.actor() + "\x00" + p.callID + "\x00" + key
}

// idemFingerprint is what was asked: the same key with another request
// is refused.
func idemFingerprint(callID string, req capture.PaymentRequest) [sha256.Size]byte {
	canon, _ := json.Marshal(req)
	return sha256.Sum256(append([]byte(callID+"\x00"), canon...))
}

// idemClaim is a key this request holds.
type idemClaim struct {
	key, claim string
}

// beginIdem claims key (already scoped) for a request with fingerprint fp.
func (s *Server) beginIdem(ctx context.Context, key string, fp [sha256.Size]byte) (store.Idempotency, idemClaim, error) {
	res, err := s.st.BeginIdempotent(ctx, store.IdempotencyClaim{Key: key, Fingerprint: fp[:], TTL: idemTTL, Hold: idemHold})
	return res, idemClaim{key: key, claim: res.Claim}, err
}

// finishIdem keeps the first answer; a failure is logged: the answer
// still goes out, and a retry starts afresh once the hold runs out.
func (s *Server) finishIdem(ctx context.Context, c idemClaim, status int, body []byte, location string) {
	err := s.st.FinishIdempotent(context.WithoutCancel(ctx), c.key, c.claim, store.IdempotentResponse{Status: status, Body: body, Location: location})
	if err != nil {
		s.log.Error("idempotency key: first answer not kept", zap.Error(err))
	}
}

// abandonIdem forgets a key whose request failed.
func (s *Server) abandonIdem(ctx context.Context, c idemClaim) {
	if err := s.st.AbandonIdempotent(context.WithoutCancel(ctx), c.key, c.claim); err != nil && !errors.Is(err, store.ErrNotLeased) {
		s.log.Error("idempotency key: not released", zap.Error(err))
	}
}
