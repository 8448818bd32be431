package api

import (
	"bytes"
	"context"
	"crypto/hmac"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"math/rand/v2"
	"net/http"
	"strconv"
	"strings"
	"sync"
	"time"

	"go.uber.org/zap"

	"github.com/tonevault/tonevault/capture"
)

// WebhookEvent is the body posted to the webhook URL when a payment
// session reaches a final state.
type WebhookEvent struct {
	// ID is unique per event and the same on every retry: receivers use
	// it to drop duplicates.
	ID        string       `json:"id"`
	Type      string       `json:"type"` // "payment." + the final state
	CreatedAt time.Time    `json:"created_at"`
	Payment   capture.View `json:"payment"`
}

// Webhook headers.
const (
	HeaderTimestamp = "X-ToneVault-Timestamp"
	HeaderSignature = "X-ToneVault-Signature"
	HeaderEventID   = "X-ToneVault-Event-Id"
)

// SignWebhook returns the X-ToneVault-Signature value for body sent at
// timestamp ts (Unix seconds): "v1=" and the hex HMAC-SHA256, keyed with
// secret, of "<ts>.<body>".
func SignWebhook(secret []byte, ts int64, body []byte) string {
	m := hmac.New(sha256.New, secret)
	m.Write([]byte(strconv.FormatInt(ts, 10)))
	m.Write([]byte{'.'})
	m.Write(body)
	return "v1=" + hex.EncodeToString(m.Sum(nil))
}

// Errors of VerifyWebhook.
var (
	ErrWebhookSignature = errors.New("webhook: no valid v1 signature")
	ErrWebhookTimestamp = errors.New("webhook: timestamp missing or outside the tolerance")
)

// VerifyWebhook is for integrators receiving ToneVault's webhooks: it
// checks that body was signed with secret and that its timestamp is within
// tolerance of now (which stops replays of old deliveries; 5 minutes is
// usual). header is the request's headers; pass the body exactly as
// received, before any JSON decoding. The signature header may hold
// several comma-separated "v1=" values (while a secret is rotated); one
// valid is enough. Compare in constant time, as this does, if you write
// your own.
//
//	body, _ := io.ReadAll(io.LimitReader(r.Body, 1<<20))
//	if err := api.VerifyWebhook(secret, r.Header, body, 5*time.Minute); err != nil {
//		http.Error(w, "bad signature", http.StatusUnauthorized)
//		return
//	}
func VerifyWebhook(secret []byte, header http.Header, body []byte, tolerance time.Duration) error {
	return verifyWebhookAt(secret, header, body, tolerance, time.Now())
}

func verifyWebhookAt(secret []byte, header http.Header, body []byte, tolerance time.Duration, now time.Time) error {
	ts, err := strconv.ParseInt(header.Get(HeaderTimestamp), 10, 64)
	if err != nil {
		return ErrWebhookTimestamp
	}
	if d := now.Sub(time.Unix(ts, 0)); d > tolerance || d < -tolerance {
		return ErrWebhookTimestamp
	}
	want := []byte(SignWebhook(secret, ts, body))
	for _, v := range strings.Split(header.Get(HeaderSignature), ",") {
		if hmac.Equal([]byte(strings.TrimSpace(v)), want) {
			return nil
		}
	}
	return ErrWebhookSignature
}

// webhooks posts final outcomes, each in its own goroutine with retries.
type webhooks struct {
	ctx     context.Context
	url     string
	secret  []byte
	tries   int
	backoff time.Duration
	client  *http.Client
	now     func() time.Time
	log     *zap.Logger
	wg      sync.WaitGroup
}

const maxBackoff = 5 * time.Minute

func newWebhooks(ctx context.Context, cfg WebhookConfig, secret []byte, deps Deps, log *zap.Logger) *webhooks {
	client := deps.HTTPClient
	if client == nil {
		client = &http.Client{Timeout: cfg.Timeout}
	}
	backoff := deps.WebhookBackoff
	if backoff <= 0 {
		backoff = time.Second
	}
	return &webhooks{ctx: ctx, url: cfg.URL, secret: secret, tries: cfg.MaxAttempts, backoff: backoff,
		client: client, now: deps.Now, log: log.Named("webhook")}
}

func (h *webhooks) wait() { h.wg.Wait() }

// send delivers the event for final view v.
func (h *webhooks) send(v capture.View) {
	ev := WebhookEvent{
		ID:        fmt.Sprintf("evt_%s_%d", v.ID, v.Version),
		Type:      "payment." + string(v.State),
		CreatedAt: h.now().UTC(),
		Payment:   v,
	}
	body, err := json.Marshal(ev)
	if err != nil {
		h.log.Error("webhook: cannot encode event", zap.String("payment_id", v.ID))
		return
	}
	h.wg.Add(1)
	go func() {
		defer h.wg.Done()
		h.deliver(ev.ID, v.ID, body)
	}()
}

func (h *webhooks) deliver(eventID, paymentID string, body []byte) {
	for attempt := 1; ; attempt++ {
		status, err := h.post(eventID, body)
		if err == nil && status/100 == 2 {
			h.log.Info("webhook delivered", zap.String("payment_id", paymentID), zap.Int("attempt", attempt), zap.Int("status", status))
			return
		}
		permanent := err == nil && status/100 == 4 && status != 408 && status != 425 && status != 429
		fields := []zap.Field{zap.String("payment_id", paymentID), zap.Int("attempt", attempt), zap.Int("status", status)}
		if err != nil {
			fields = append(fields, zap.Error(err))
		}
		if permanent || attempt >= h.tries {
			h.log.Error("webhook not delivered; giving up", fields...)
			return
		}
		h.log.Warn("webhook attempt failed; will retry", fields...)
		select {
		case <-time.After(h.delay(attempt)):
		case <-h.ctx.Done():
			h.log.Warn("webhook dropped at shutdown", zap.String("payment_id", paymentID))
			return
		}
	}
}

// delay is the wait after the attempt-th failure: the base doubled per
// attempt, capped, with jitter in [d/2, d] so that many receivers that
// failed together do not retry together.
func (h *webhooks) delay(attempt int) time.Duration {
	d := h.backoff << min(attempt-1, 20)
	if d > maxBackoff || d <= 0 {
		d = maxBackoff
	}
	return d/2 + rand.N(d/2+1)
}

func (h *webhooks) post(eventID string, body []byte) (int, error) {
	req, err := http.NewRequestWithContext(h.ctx, http.MethodPost, h.url, bytes.NewReader(body))
	if err != nil {
		return 0, err
	}
	ts := h.now().Unix()
	req.Header.Set("Content-Type", "application/json")
	req.Header.Set("User-Agent", "ToneVault-Webhook/1")
	req.Header.Set(HeaderTimestamp, strconv.FormatInt(ts, 10))
	req.Header.Set(HeaderSignature, SignWebhook(h.secret, ts, body))
	req.Header.Set(HeaderEventID, eventID)
	resp, err := h.client.Do(req)
	if err != nil {
		return 0, err
	}
	defer resp.Body.Close()
	_, _ = io.Copy(io.Discard, io.LimitReader(resp.Body, 64<<10))
	return resp.StatusCode, nil
}

// watch follows a session started through the API until it ends, and
// posts the webhook for its outcome.
func (s *Server) watch(sess Session) {
	if s.hooks == nil {
		return
	}
	s.watchers.Add(1)
	go func() {
		defer s.watchers.Done()
		updates, cancel := sess.Subscribe()
		defer cancel()
		if v := sess.View(); v.State.Final() {
			s.hooks.send(v)
			return
		}
		for {
			select {
			case <-s.ctx.Done():
				return
			case v, ok := <-updates:
				if !ok {
					v = sess.View()
				}
				if v.State.Final() {
					s.hooks.send(v)
					return
				}
				if !ok {
					return
				}
			}
		}
	}()
}
