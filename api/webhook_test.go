package api

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"strconv"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/tonevault/tonevault/store"
)

func TestVerifyWebhook(t *testing.T) {
	secret := []byte(strings.Repeat("s", 32))
	body := []byte(`{"id":"evt_1"}`)
	now := time.Unix(1_800_000_000, 0)
	sig := SignWebhook(secret, now.Unix(), body)
	h := func(ts int64, sig string) http.Header {
		hd := http.Header{}
		if ts != 0 {
			hd.Set(HeaderTimestamp, strconv.FormatInt(ts, 10))
		}
		if sig != "" {
			hd.Set(HeaderSignature, sig)
		}
		return hd
	}
	tests := []struct {
		name   string
		header http.Header
		body   []byte
		secret []byte
		want   error
	}{
		{"valid", h(now.Unix(), sig), body, secret, nil},
		{"rotation list", h(now.Unix(), "v1=00, "+sig), body, secret, nil},
		{"body changed", h(now.Unix(), sig), []byte(`{"id":"evt_2"}`), secret, ErrWebhookSignature},
		{"other secret", h(now.Unix(), sig), body, []byte(strings.Repeat("t", 32)), ErrWebhookSignature},
		{"timestamp changed", h(now.Unix()+1, sig), body, secret, ErrWebhookSignature},
		{"too old", h(now.Unix()-301, SignWebhook(secret, now.Unix()-301, body)), body, secret, ErrWebhookTimestamp},
		{"from the future", h(now.Unix()+301, SignWebhook(secret, now.Unix()+301, body)), body, secret, ErrWebhookTimestamp},
		{"no timestamp", h(0, sig), body, secret, ErrWebhookTimestamp},
		{"no signature", h(now.Unix(), ""), body, secret, ErrWebhookSignature},
	}
	for _, tc := range tests {
		if err := verifyWebhookAt(tc.secret, tc.header, tc.body, 5*time.Minute, now); err != tc.want {
			t.Errorf("%s: %v, want %v", tc.name, err, tc.want)
		}
	}
	if !strings.HasPrefix(sig, "v1=") || len(sig) != 3+64 {
		t.Errorf("signature %q", sig)
	}
}

// TestWebhookRetries: failures are retried until a 2xx, with the same
// event id and a fresh, valid signature each time.
func TestWebhookRetries(t *testing.T) {
	secret := []byte(strings.Repeat("s", 32))
	var calls atomic.Int32
	got := make(chan string, 8)
	receiver := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		b, _ := io.ReadAll(r.Body)
		if err := VerifyWebhook(secret, r.Header, b, time.Minute); err != nil {
			t.Errorf("attempt %d: %v", calls.Load()+1, err)
		}
		got <- r.Header.Get(HeaderEventID)
		if calls.Add(1) < 3 {
			http.Error(w, "busy", http.StatusServiceUnavailable)
			return
		}
		w.WriteHeader(http.StatusNoContent)
	}))
	defer receiver.Close()
	cfg := testConfig()
	cfg.Webhook = WebhookConfig{URL: receiver.URL, SecretFile: "x", MaxAttempts: 5}
	e := newEnv(t, cfg, Deps{WebhookSecret: secret})
	v := e.startPayment(t, testKey, "call-1")
	if err := e.pay.sessions[v.ID].Cancel("t"); err != nil {
		t.Fatal(err)
	}
	var ids []string
	for len(ids) < 3 {
		select {
		case id := <-got:
			ids = append(ids, id)
		case <-time.After(20 * time.Second):
			t.Fatalf("%d deliveries", len(ids))
		}
	}
	if ids[0] == "" || ids[0] != ids[1] || ids[1] != ids[2] {
		t.Errorf("event ids %v", ids)
	}
	waitOutbox(t, e.st, ids[0], store.OutboxDelivered)
	e.srv.Close()
	if n := calls.Load(); n != 3 {
		t.Errorf("%d attempts, want 3 (stop after the first 2xx)", n)
	}
}

// waitOutbox waits until event id is in state and returns it.
func waitOutbox(t *testing.T, st *store.Store, id string, state store.OutboxState) store.OutboxEvent {
	t.Helper()
	deadline := time.Now().Add(20 * time.Second)
	for {
		e, err := st.GetOutbox(context.Background(), id)
		if err == nil && e.State == state {
			return e
		}
		if time.Now().After(deadline) {
			t.Fatalf("event %s: %+v, %v; want %s", id, e, err, state)
		}
		time.Sleep(5 * time.Millisecond)
	}
}

// TestWebhookGivesUp: an event is retried up to max_attempts, or not at
// all when the receiver refuses it (4xx but 408, 425, 429); then it is a
// dead letter, which the API lists and requeues, and which is delivered
// once requeued, with its id.
func TestWebhookGivesUp(t *testing.T) {
	for _, tc := range []struct {
		status, tries int
		want          int32
	}{
		{http.StatusInternalServerError, 4, 4}, // retried up to max_attempts
		{http.StatusBadRequest, 4, 1},          // the receiver refuses: no retry
		{http.StatusTooManyRequests, 2, 2},
	} {
		t.Run(strconv.Itoa(tc.status), func(t *testing.T) {
			var calls atomic.Int32
			var fixed atomic.Bool
			delivered := make(chan string, 1)
			receiver := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
				if fixed.Load() {
					delivered <- r.Header.Get(HeaderEventID)
					return
				}
				calls.Add(1)
				w.WriteHeader(tc.status)
			}))
			defer receiver.Close()
			cfg := testConfig()
			cfg.Webhook = WebhookConfig{URL: receiver.URL, SecretFile: "x", MaxAttempts: tc.tries}
			e := newEnv(t, cfg, Deps{WebhookSecret: []byte(strings.Repeat("s", 32))})
			v := e.startPayment(t, testKey, "call-1")
			if err := e.pay.sessions[v.ID].Cancel("t"); err != nil {
				t.Fatal(err)
			}
			id := fmt.Sprintf("evt_%s_%d", v.ID, v.Version+1)
			dead := waitOutbox(t, e.st, id, store.OutboxDead)
			if n := calls.Load(); n != tc.want || dead.Attempts != int(tc.want) || dead.LastStatus != tc.status {
				t.Errorf("%d attempts (%d recorded, last status %d), want %d", n, dead.Attempts, dead.LastStatus, tc.want)
			}

			var list deliveryList
			if err := json.Unmarshal(readBody(t, e.do(t, "GET", "/v1/webhooks/dead-letters", testKey, nil)), &list); err != nil {
				t.Fatal(err)
			}
			if len(list.Events) != 1 || list.Events[0].ID != id || list.Events[0].State != "dead" || list.Events[0].PaymentID != v.ID ||
				list.Events[0].Type != "payment.cancelled" || list.Events[0].LastStatus != tc.status {
				t.Fatalf("dead letters: %+v", list)
			}
			fixed.Store(true)
			resp := e.do(t, "POST", "/v1/webhooks/dead-letters/"+id+"/requeue", testKey, nil)
			if b := readBody(t, resp); resp.StatusCode != 200 || !strings.Contains(string(b), `"state":"pending"`) {
				t.Fatalf("requeue: %d %s", resp.StatusCode, b)
			}
			select {
			case got := <-delivered:
				if got != id {
					t.Errorf("requeued delivery has id %q, want %q", got, id)
				}
			case <-time.After(20 * time.Second):
				t.Fatal("requeued event not delivered")
			}
			waitOutbox(t, e.st, id, store.OutboxDelivered)
		})
	}
}

// TestDeadLetterAPI: the list pages; requeue of what is not a dead
// letter is 404; widget tokens have no access.
func TestDeadLetterAPI(t *testing.T) {
	e := newEnv(t, testConfig(), Deps{})
	ctx := context.Background()
	for i := range 3 {
		id := fmt.Sprintf("evt_pay_%d_1", i)
		if _, err := e.st.EnqueueOutbox(ctx, store.OutboxEvent{ID: id, Kind: "payment.approved", PaymentID: fmt.Sprintf("pay_%d", i), Body: []byte("{}"), MaxAttempts: 1}); err != nil {
			t.Fatal(err)
		}
	}
	evs, err := e.st.ClaimOutbox(ctx, "test", 3, time.Minute)
	if err != nil || len(evs) != 3 {
		t.Fatalf("claim: %d %v", len(evs), err)
	}
	for _, ev := range evs[:2] {
		if _, err := e.st.MarkFailed(ctx, ev.ID, "test", store.DeliveryFailure{Status: 500, Error: "HTTP 500"}); err != nil {
			t.Fatal(err)
		}
	}
	var seen []string
	cursor := ""
	for pages := 0; pages < 5; pages++ {
		var list deliveryList
		resp := e.do(t, "GET", "/v1/webhooks/dead-letters?limit=1&cursor="+cursor, testKey, nil)
		if err := json.Unmarshal(readBody(t, resp), &list); err != nil || resp.StatusCode != 200 || len(list.Events) > 1 {
			t.Fatalf("page: %d %+v %v", resp.StatusCode, list, err)
		}
		for _, d := range list.Events {
			seen = append(seen, d.ID)
		}
		if cursor = list.NextCursor; cursor == "" {
			break
		}
	}
	if len(seen) != 2 || seen[0] == seen[1] {
		t.Errorf("paged dead letters %v, want the 2 dead ones", seen)
	}
	problem(t, e.do(t, "GET", "/v1/webhooks/dead-letters?limit=0", testKey, nil), 400)
	problem(t, e.do(t, "GET", "/v1/webhooks/dead-letters?cursor=nope", testKey, nil), 400)
	problem(t, e.do(t, "POST", "/v1/webhooks/dead-letters/"+evs[2].ID+"/requeue", testKey, nil), 404)
	problem(t, e.do(t, "POST", "/v1/webhooks/dead-letters/evt_none/requeue", testKey, nil), 404)
	tok, _ := mintToken(t, e, "call-1")
	problem(t, e.do(t, "GET", "/v1/webhooks/dead-letters", tok, nil), 403)
}

// TestWebhookAfterRestart: an event not delivered when its gateway
// stopped (the receiver was down) is delivered by the next gateway on the
// same store, with the same id and body.
func TestWebhookAfterRestart(t *testing.T) {
	secret := []byte(strings.Repeat("s", 32))
	var up atomic.Bool
	type hook struct {
		id   string
		body []byte
	}
	got := make(chan hook, 16)
	receiver := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		b, _ := io.ReadAll(r.Body)
		select {
		case got <- hook{r.Header.Get(HeaderEventID), b}:
		default:
		}
		if !up.Load() {
			http.Error(w, "down", http.StatusBadGateway)
		}
	}))
	defer receiver.Close()
	cfg := testConfig()
	cfg.Webhook = WebhookConfig{URL: receiver.URL, SecretFile: "x", MaxAttempts: 1000}
	st, _ := newTestStore(t)
	first := newEnv(t, cfg, Deps{Store: st, WebhookSecret: secret})
	v := first.startPayment(t, testKey, "call-1")
	if err := first.pay.sessions[v.ID].Cancel("t"); err != nil {
		t.Fatal(err)
	}
	before := <-got
	first.ts.Close()
	first.srv.Close()
	for len(got) > 0 {
		<-got
	}
	up.Store(true)
	newEnv(t, cfg, Deps{Store: st, WebhookSecret: secret})
	for {
		select {
		case h := <-got:
			if h.id != before.id || !bytes.Equal(h.body, before.body) {
				t.Fatalf("after the restart: event %s %s; before: %s %s", h.id, h.body, before.id, before.body)
			}
			waitOutbox(t, st, before.id, store.OutboxDelivered)
			return
		case <-time.After(30 * time.Second):
			t.Fatal("the event was not delivered after the restart")
		}
	}
}
