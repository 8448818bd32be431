package api

import (
	"context"
	"encoding/json"
	"errors"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"github.com/tonevault/tonevault/audit"
)

// fakeCluster is node self with peers served over plain HTTP (the
// cluster package tests the mutual TLS).
type fakeCluster struct {
	self  string
	peers map[string]string // name → base URL
}

func (c fakeCluster) Self() string { return c.self }
func (c fakeCluster) Names() []string {
	var out []string
	for n := range c.peers {
		out = append(out, n)
	}
	return out
}
func (c fakeCluster) Client(node string) (*http.Client, string, bool) {
	base, ok := c.peers[node]
	return &http.Client{Transport: http.DefaultTransport}, base, ok
}
func (c fakeCluster) CallNode(id string) string {
	// The cluster package's rule, for ids of this test: c-NODE-16 chars.
	if len(id) == 20 && strings.HasPrefix(id, "c-") {
		return id[2:3]
	}
	return ""
}

const (
	callA = "c-a-aaaaaaaaaaaaaaaa"
	callB = "c-b-bbbbbbbbbbbbbbbb"
)

// twoNodes is nodes a and b of a cluster: a's API behind a Forwarder on
// the public side, b's behind PeerHandler as its peer listener.
func twoNodes(t *testing.T) (a, b *testEnv, front *httptest.Server, peerB *httptest.Server) {
	t.Helper()
	secret := []byte("cluster-widget-secret-0123456789abcdef")
	a = newEnv(t, testConfig(), Deps{WidgetSecret: secret, Calls: fakeCalls{callA: {ID: callA, State: "answered", Caller: "+447700900001"}}})
	b = newEnv(t, testConfig(), Deps{WidgetSecret: secret, Calls: fakeCalls{callB: {ID: callB, State: "answered", Caller: "+447700900002"}}})
	peerB = httptest.NewServer(PeerHandler(b.srv))
	t.Cleanup(peerB.Close)
	payNode := func(_ context.Context, id string) (string, error) {
		if id == "pay_unknowable" {
			return "", errors.New("store down")
		}
		if _, ok := a.pay.Get(id); ok {
			return "", nil
		}
		if _, ok := b.pay.Get(id); ok {
			return "b", nil
		}
		return "", nil
	}
	fw := NewForwarder(a.srv, fakeCluster{self: "a", peers: map[string]string{"b": peerB.URL}}, payNode, 0, nil)
	front = httptest.NewServer(fw)
	t.Cleanup(front.Close)
	a.ts = front // requests to a go through its forwarder
	return a, b, front, peerB
}

func TestForwardCallCommandsToOwner(t *testing.T) {
	a, b, _, _ := twoNodes(t)

	// The control: b's own call is unknown to a's API itself.
	direct := httptest.NewServer(a.srv)
	defer direct.Close()
	ctl := &testEnv{ts: direct}
	problem(t, ctl.do(t, "GET", "/v1/calls/"+callB, testKey, nil), http.StatusNotFound)

	resp := a.do(t, "GET", "/v1/calls/"+callB, testKey, nil)
	if body := readBody(t, resp); resp.StatusCode != http.StatusOK || !strings.Contains(string(body), callB) {
		t.Fatalf("GET b's call through a: %d %s", resp.StatusCode, body)
	}
	v := a.startPayment(t, testKey, callB)
	if _, ok := b.pay.Get(v.ID); !ok {
		t.Fatal("the payment did not start on b, the call's node")
	}
	if _, ok := a.pay.Get(v.ID); ok {
		t.Fatal("the payment started on a")
	}
	// An action on the payment reaches b; its answer comes back whole.
	resp = a.do(t, "POST", "/v1/payments/"+v.ID+"/cancel", testKey, "{}")
	if body := readBody(t, resp); resp.StatusCode != http.StatusOK {
		t.Fatalf("cancel through a: %d %s", resp.StatusCode, body)
	}
	if s, _ := b.pay.Get(v.ID); s.View().State != "cancelled" {
		t.Fatalf("b's payment is %s, want cancelled", s.View().State)
	}
	// The owner checks the credential: a bad key is refused by b.
	problem(t, a.do(t, "GET", "/v1/calls/"+callB, "tvk_wrong_000000000000000000000000000000", nil), http.StatusUnauthorized)
	n := 0
	for _, r := range b.audit.records() {
		if r.Event == audit.EventAPIAuthFailed {
			n++
		}
	}
	if n != 1 {
		t.Errorf("b audited %d refusals, want 1", n)
	}
}

func TestForwardListsEveryNodesCalls(t *testing.T) {
	a, _, _, peerB := twoNodes(t)
	resp := a.do(t, "GET", "/v1/calls", testKey, nil)
	var l callList
	if err := json.Unmarshal(readBody(t, resp), &l); err != nil || resp.StatusCode != http.StatusOK {
		t.Fatalf("%d %v", resp.StatusCode, err)
	}
	got := map[string]bool{}
	for _, c := range l.Calls {
		got[c.ID] = true
	}
	if !got[callA] || !got[callB] || len(l.Calls) != 2 {
		t.Fatalf("calls %v, want a's and b's", got)
	}
	// A refused credential is answered by a, not merged.
	problem(t, a.do(t, "GET", "/v1/calls", "", nil), http.StatusUnauthorized)
	// b gone: a's calls still listed.
	peerB.Close()
	resp = a.do(t, "GET", "/v1/calls", testKey, nil)
	if err := json.Unmarshal(readBody(t, resp), &l); err != nil || len(l.Calls) != 1 || l.Calls[0].ID != callA {
		t.Fatalf("with b down: %+v %v", l, err)
	}
}

func TestForwardWidgetTokenAndStream(t *testing.T) {
	a, b, _, _ := twoNodes(t)
	resp := a.do(t, "POST", "/v1/widget-tokens", testKey, `{"call_id":"`+callB+`"}`)
	body := readBody(t, resp)
	if resp.StatusCode != http.StatusCreated {
		t.Fatalf("mint for b's call through a: %d %s", resp.StatusCode, body)
	}
	var tok widgetTokenResponse
	if err := json.Unmarshal(body, &tok); err != nil {
		t.Fatal(err)
	}
	v := a.startPayment(t, tok.Token, callB)
	// The event stream, through a, from b.
	req, _ := http.NewRequest("GET", a.ts.URL+"/v1/payments/"+v.ID+"/events?access_token="+tok.Token, nil)
	sresp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer sresp.Body.Close()
	if sresp.StatusCode != http.StatusOK || !strings.HasPrefix(sresp.Header.Get("Content-Type"), "text/event-stream") {
		t.Fatalf("stream: %d %s", sresp.StatusCode, sresp.Header.Get("Content-Type"))
	}
	events := readEvents(sresp.Body)
	next := func() sseEvent {
		for {
			select {
			case ev, ok := <-events:
				if !ok {
					t.Fatal("stream ended")
				}
				if !ev.comment {
					return ev
				}
			case <-time.After(5 * time.Second):
				t.Fatal("no event in 5s")
			}
		}
	}
	if ev := next(); !strings.Contains(ev.data, v.ID) {
		t.Fatalf("first event %+v", ev)
	}
	s, _ := b.pay.Get(v.ID)
	if err := s.Cancel("test"); err != nil {
		t.Fatal(err)
	}
	if ev := next(); !strings.Contains(ev.data, `"cancelled"`) {
		t.Fatalf("event after cancel on b: %+v", ev)
	}
}

func TestForwardOwnerDown(t *testing.T) {
	a, b, _, peerB := twoNodes(t)
	v := a.startPayment(t, testKey, callB)
	peerB.Close()
	p := problem(t, a.do(t, "POST", "/v1/calls/"+callB+"/payments", testKey, `{"amount":1,"currency":"GBP"}`, "Idempotency-Key", "k-down"), http.StatusServiceUnavailable)
	if !strings.Contains(p.Detail, "does not answer") {
		t.Errorf("detail %q", p.Detail)
	}
	problem(t, a.do(t, "POST", "/v1/payments/"+v.ID+"/cancel", testKey, "{}"), http.StatusServiceUnavailable)
	if s, _ := b.pay.Get(v.ID); s.View().State.Final() {
		t.Fatal("b's payment changed")
	}
}

func TestForwardStoreDown(t *testing.T) {
	a, _, _, _ := twoNodes(t)
	// Which node holds it cannot be told: not answered here as if it
	// were this node's.
	p := problem(t, a.do(t, "POST", "/v1/payments/pay_unknowable/cancel", testKey, "{}"), http.StatusServiceUnavailable)
	if !strings.Contains(p.Detail, "database") {
		t.Errorf("detail %q", p.Detail)
	}
}

func TestPeerRequestsAreNotForwardedAgain(t *testing.T) {
	a, _, _, _ := twoNodes(t)
	// a's forwarder behind a's own peer listener: a request from a peer
	// for b's call is answered by a (404), not sent on.
	fw := NewForwarder(a.srv, fakeCluster{self: "a", peers: map[string]string{"b": "http://127.0.0.1:1"}}, nil, 0, nil)
	peerA := httptest.NewServer(PeerHandler(fw))
	defer peerA.Close()
	e := &testEnv{ts: peerA}
	problem(t, e.do(t, "GET", "/v1/calls/"+callB, testKey, nil), http.StatusNotFound)
}
