package api

import (
	"bytes"
	"context"
	"crypto/hmac"
	"crypto/rand"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"strconv"
	"strings"
	"sync"
	"time"

	"go.uber.org/zap"

	"github.com/tonevault/tonevault/capture"
	"github.com/tonevault/tonevault/internal/panics"
	"github.com/tonevault/tonevault/store"
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

// Webhooks go through the store's outbox (store.EnqueueOutbox): an event
// is queued with the payment's outcome, in the same transaction when
// capture's Journal writes it (WebhookEvents), and a worker delivers what
// is due. Delivery is at least once: an event keeps its id and its body
// on every attempt and across restarts; failures back off (store.outbox)
// up to api.webhook.max_attempts, then the event is a dead letter, listed
// by GET /v1/webhooks/dead-letters and sent again after POST
// .../requeue. A 4xx other than 408, 425 and 429 is final at once: the
// receiver refused the event itself.

// WebhookEvents returns the events to queue for v: one "payment.<state>"
// event for a final View, with the id "evt_<payment>_<version>" and the
// View as the API shows it; none for a live View or without a webhook URL.
// capture's Journal queues them with the outcome (JournalOptions.Events).
func WebhookEvents(cfg Config, log *zap.Logger) func(capture.View) []store.OutboxEvent {
	cfg.applyDefaults()
	if cfg.Webhook.URL == "" {
		return func(capture.View) []store.OutboxEvent { return nil }
	}
	g := newGuard(cfg, log)
	return func(v capture.View) []store.OutboxEvent {
		if !v.State.Final() {
			return nil
		}
		e, err := outboxEvent(g.view(v), cfg.Webhook.MaxAttempts)
		if err != nil {
			g.log.Error("webhook: cannot encode event", zap.String("payment_id", v.ID))
			return nil
		}
		return []store.OutboxEvent{e}
	}
}

// outboxEvent is the event for final View v. Everything in it comes from
// v, so that whoever builds it (the Journal, the API's watcher, a
// restarted gateway) builds the same bytes.
func outboxEvent(v capture.View, maxAttempts int) (store.OutboxEvent, error) {
	ev := WebhookEvent{
		ID:        fmt.Sprintf("evt_%s_%d", v.ID, v.Version),
		Type:      "payment." + string(v.State),
		CreatedAt: v.UpdatedAt.UTC(),
		Payment:   v,
	}
	body, err := json.Marshal(ev)
	if err != nil {
		return store.OutboxEvent{}, err
	}
	return store.OutboxEvent{ID: ev.ID, Kind: ev.Type, PaymentID: v.ID, Body: body, MaxAttempts: maxAttempts}, nil
}

// webhooks delivers the outbox's events.
type webhooks struct {
	ctx    context.Context
	st     *store.Store
	url    string
	secret []byte
	tries  int
	client *http.Client
	now    func() time.Time
	log    *zap.Logger
	owner  string        // this worker's name in the outbox's leases
	lease  time.Duration // how long a claimed event is this worker's
	poll   time.Duration
	kick   chan struct{}
	wg     sync.WaitGroup
}

const (
	// webhookBatch is how many events one claim takes, and how many
	// deliveries run at once.
	webhookBatch = 8
	// leaseMargin: a claimed event's lease outlasts its delivery's
	// timeout by this much, so that it is not claimed again while the
	// first attempt may still succeed.
	leaseMargin = 30 * time.Second
)

func newWebhooks(ctx context.Context, cfg Config, secret []byte, deps Deps, log *zap.Logger) *webhooks {
	client := deps.HTTPClient
	if client == nil {
		client = &http.Client{Timeout: cfg.Webhook.Timeout}
	}
	poll := deps.OutboxPoll
	if poll <= 0 {
		poll = 500 * time.Millisecond
	}
	var b [8]byte
	_, _ = rand.Read(b[:])
	h := &webhooks{ctx: ctx, st: deps.Store, url: cfg.Webhook.URL, secret: secret, tries: cfg.Webhook.MaxAttempts,
		client: client, now: deps.Now, log: log.Named("webhook"), owner: "api-" + hex.EncodeToString(b[:]),
		lease: cfg.Webhook.Timeout + leaseMargin, poll: poll, kick: make(chan struct{}, 1)}
	h.wg.Add(1)
	go h.run()
	return h
}

func (h *webhooks) wait() { h.wg.Wait() }

// enqueue queues the event for final View v (already guarded) and wakes
// the worker. The Journal queued it already when it wrote the outcome:
// the same id is then kept once.
func (h *webhooks) enqueue(v capture.View) {
	e, err := outboxEvent(v, h.tries)
	if err != nil {
		h.log.Error("webhook: cannot encode event", zap.String("payment_id", v.ID))
		return
	}
	ctx, cancel := context.WithTimeout(context.WithoutCancel(h.ctx), 10*time.Second)
	defer cancel()
	if _, err := h.st.EnqueueOutbox(ctx, e); err != nil {
		h.log.Error("webhook: event not queued", zap.String("payment_id", v.ID), zap.Error(err))
		return
	}
	select {
	case h.kick <- struct{}{}:
	default:
	}
}

// run claims due events and delivers them until the server closes.
// Deliveries cut short by the close leave their events leased; they are
// due again when the lease runs out.
func (h *webhooks) run() {
	defer h.wg.Done()
	sem := make(chan struct{}, webhookBatch)
	for {
		evs, err := h.st.ClaimOutbox(h.ctx, h.owner, webhookBatch, h.lease)
		if err != nil && h.ctx.Err() == nil {
			h.log.Error("webhook: outbox unreadable", zap.Error(err))
		}
		for _, e := range evs {
			select {
			case sem <- struct{}{}:
			case <-h.ctx.Done():
				return
			}
			h.wg.Add(1)
			go func() {
				defer func() { <-sem; h.wg.Done() }()
				// A panic delivering one event leaves it leased: it is
				// due again when the lease runs out.
				defer func() {
					if v := recover(); v != nil {
						h.log.Error("webhook: panic delivering an event; tried again later", panics.Fields(v)...)
					}
				}()
				h.deliver(e)
			}()
		}
		if len(evs) == webhookBatch {
			continue // more may be due
		}
		select {
		case <-h.ctx.Done():
			return
		case <-h.kick:
		case <-time.After(h.poll):
		}
	}
}

func (h *webhooks) deliver(e store.OutboxEvent) {
	status, retryAfter, err := h.post(e.ID, e.Body)
	ctx, cancel := context.WithTimeout(context.WithoutCancel(h.ctx), 10*time.Second)
	defer cancel()
	if h.ctx.Err() != nil {
		// Stopping: the attempt was cut short, not answered. The event is
		// due again at once for whoever runs next (a crash leaves it to
		// the lease running out).
		if err := h.st.ReleaseOutbox(ctx, e.ID, h.owner); err != nil && !errors.Is(err, store.ErrNotLeased) {
			h.log.Warn("webhook lease not released at stop", zap.String("event_id", e.ID), zap.Error(err))
		}
		return
	}
	attempt := e.Attempts + 1
	if err == nil && status/100 == 2 {
		if err := h.st.MarkDelivered(ctx, e.ID, status); err != nil {
			h.log.Error("webhook delivered, not recorded: it may be sent again", zap.String("event_id", e.ID), zap.Error(err))
			return
		}
		h.log.Info("webhook delivered", zap.String("event_id", e.ID), zap.String("payment_id", e.PaymentID), zap.Int("attempt", attempt), zap.Int("status", status))
		return
	}
	f := store.DeliveryFailure{Status: status, RetryAfter: retryAfter,
		Permanent: err == nil && status/100 == 4 && status != 408 && status != 425 && status != 429}
	if err != nil {
		f.Error = err.Error()
	} else {
		f.Error = fmt.Sprintf("HTTP %d", status)
	}
	now, err := h.st.MarkFailed(ctx, e.ID, h.owner, f)
	if err != nil {
		h.log.Error("webhook failure not recorded", zap.String("event_id", e.ID), zap.Error(err))
		return
	}
	fields := []zap.Field{zap.String("event_id", e.ID), zap.String("payment_id", e.PaymentID), zap.Int("attempt", attempt), zap.Int("status", status), zap.String("error", now.LastError)}
	if now.State == store.OutboxDead {
		h.log.Error("webhook not delivered; dead letter (GET /v1/webhooks/dead-letters)", fields...)
		return
	}
	h.log.Warn("webhook attempt failed; will retry", append(fields, zap.Time("next_attempt_at", now.NextAttemptAt))...)
}

// post sends one attempt. The signature's timestamp is the attempt's;
// the body is the event's, byte for byte.
func (h *webhooks) post(eventID string, body []byte) (status int, retryAfter time.Duration, err error) {
	req, err := http.NewRequestWithContext(h.ctx, http.MethodPost, h.url, bytes.NewReader(body))
	if err != nil {
		return 0, 0, err
	}
	ts := h.now().Unix()
	req.Header.Set("Content-Type", "application/json")
	req.Header.Set("User-Agent", "ToneVault-Webhook/1")
	req.Header.Set(HeaderTimestamp, strconv.FormatInt(ts, 10))
	req.Header.Set(HeaderSignature, SignWebhook(h.secret, ts, body))
	req.Header.Set(HeaderEventID, eventID)
	resp, err := h.client.Do(req)
	if err != nil {
		return 0, 0, err
	}
	defer resp.Body.Close()
	_, _ = io.Copy(io.Discard, io.LimitReader(resp.Body, 64<<10))
	if secs, err := strconv.Atoi(resp.Header.Get("Retry-After")); err == nil && secs > 0 {
		retryAfter = time.Duration(secs) * time.Second
	}
	return resp.StatusCode, retryAfter, nil
}

// watch follows a session started through the API until it ends, and
// queues the webhook for its outcome.
func (s *Server) watch(sess Session) {
	if s.hooks == nil {
		return
	}
	s.watchers.Add(1)
	go func() {
		defer s.watchers.Done()
		defer s.recoverGo(s.log, "a payment's webhook watcher")
		updates, cancel := sess.Subscribe()
		defer cancel()
		if v := sess.View(); v.State.Final() {
			s.hooks.enqueue(v)
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
					s.hooks.enqueue(v)
					return
				}
				if !ok {
					return
				}
			}
		}
	}()
}

// delivery is an outbox event as GET /v1/webhooks/dead-letters shows it:
// where its delivery stands, not its body.
type delivery struct {
	ID            string     `json:"id"`
	Type          string     `json:"type"`
	PaymentID     string     `json:"payment_id,omitempty"`
	State         string     `json:"state"`
	Attempts      int        `json:"attempts"`
	NextAttemptAt *time.Time `json:"next_attempt_at,omitempty"`
	LastStatus    int        `json:"last_status,omitempty"`
	LastError     string     `json:"last_error,omitempty"`
	CreatedAt     time.Time  `json:"created_at"`
	UpdatedAt     time.Time  `json:"updated_at"`
}

// deliveryList is the body of GET /v1/webhooks/dead-letters.
type deliveryList struct {
	Events     []delivery `json:"events"`
	NextCursor string     `json:"next_cursor,omitempty"`
}

func deliveryOf(e store.OutboxEvent) delivery {
	d := delivery{ID: e.ID, Type: e.Kind, PaymentID: e.PaymentID, State: string(e.State), Attempts: e.Attempts,
		LastStatus: e.LastStatus, LastError: e.LastError, CreatedAt: e.CreatedAt, UpdatedAt: e.UpdatedAt}
	if e.State == store.OutboxPending && !e.NextAttemptAt.IsZero() {
		t := e.NextAttemptAt
		d.NextAttemptAt = &t
	}
	return d
}

// listDeadLetters lists the events given up on, newest first, a page at
// a time (?limit=, ?cursor=).
func (s *Server) listDeadLetters(w http.ResponseWriter, r *http.Request) {
	q := store.OutboxQuery{State: store.OutboxDead, Cursor: r.URL.Query().Get("cursor")}
	if l := r.URL.Query().Get("limit"); l != "" {
		n, err := strconv.Atoi(l)
		if err != nil || n < 1 || n > store.MaxPageSize {
			writeProblem(w, r, http.StatusBadRequest, "bad-request", fmt.Sprintf("limit must be 1 to %d", store.MaxPageSize))
			return
		}
		q.Limit = n
	}
	page, err := s.st.ListOutbox(r.Context(), q)
	switch {
	case errors.Is(err, store.ErrBadCursor):
		writeProblem(w, r, http.StatusBadRequest, "bad-request", "cursor is not one this API gave")
		return
	case err != nil:
		s.storeError(w, r, err)
		return
	}
	out := deliveryList{Events: make([]delivery, 0, len(page.Events)), NextCursor: page.Next}
	for _, e := range page.Events {
		out.Events = append(out.Events, deliveryOf(e))
	}
	writeJSON(w, http.StatusOK, out)
}

// requeueDeadLetter gives a dead letter a new set of attempts, due now:
// the operator fixed the receiver.
func (s *Server) requeueDeadLetter(w http.ResponseWriter, r *http.Request) {
	id := r.PathValue("id")
	err := s.st.RequeueOutbox(r.Context(), id)
	switch {
	case errors.Is(err, store.ErrNotFound):
		writeProblem(w, r, http.StatusNotFound, "not-found", "no dead letter with this id")
		return
	case err != nil:
		s.storeError(w, r, err)
		return
	}
	e, err := s.st.GetOutbox(r.Context(), id)
	if err != nil {
		s.storeError(w, r, err)
		return
	}
	if s.hooks != nil {
		select {
		case s.hooks.kick <- struct{}{}:
		default:
		}
	}
	writeJSON(w, http.StatusOK, deliveryOf(e))
}
