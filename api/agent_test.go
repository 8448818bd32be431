package api

import (
	"context"
	"encoding/json"
	"net"
	"net/http"
	"net/netip"
	"strings"
	"testing"
	"time"

	"github.com/tonevault/tonevault/agents"
	"github.com/tonevault/tonevault/audit"
	"github.com/tonevault/tonevault/media"
	"github.com/tonevault/tonevault/media/webrtc"
	"github.com/tonevault/tonevault/media/webrtc/webrtctest"
)

// agentEnv is the API over a real agents.Service with real WebRTC legs.
type agentEnv struct {
	*testEnv
	svc   *agents.Service
	relay netip.AddrPort
}

func newAgentEnv(t *testing.T, cfg Config) *agentEnv {
	t.Helper()
	rtc, err := webrtc.NewEngine(webrtc.DefaultConfig(), netip.MustParseAddr("127.0.0.1"), webrtc.Options{})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { rtc.Close() })
	svc, err := agents.New(agents.Config{Pools: map[string]agents.PoolConfig{"sales": {RingTimeout: time.Minute}}}, rtc, agents.Options{})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(svc.Close)
	c, err := net.ListenUDP("udp", &net.UDPAddr{IP: net.IPv4(127, 0, 0, 1)})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { c.Close() })
	return &agentEnv{testEnv: newEnv(t, cfg, Deps{Agents: svc}), svc: svc, relay: c.LocalAddr().(*net.UDPAddr).AddrPort()}
}

func (e *agentEnv) mintAgent(t *testing.T, key, body string) agentTokenResponse {
	t.Helper()
	resp := e.do(t, "POST", "/v1/agent-tokens", key, body)
	b := readBody(t, resp)
	var tok agentTokenResponse
	if resp.StatusCode != http.StatusCreated || json.Unmarshal(b, &tok) != nil || !strings.HasPrefix(tok.Token, agentPrefix) || !strings.HasPrefix(tok.ID, "at_") {
		t.Fatalf("agent token: %d %s", resp.StatusCode, b)
	}
	return tok
}

// events opens the agent's event stream.
func (e *agentEnv) events(t *testing.T, tok string) <-chan sseEvent {
	t.Helper()
	resp := e.do(t, "GET", "/v1/agent/events?access_token="+tok, "", nil)
	if resp.StatusCode != http.StatusOK {
		t.Fatalf("events: %d %s", resp.StatusCode, readBody(t, resp))
	}
	t.Cleanup(func() { resp.Body.Close() })
	return readEvents(resp.Body)
}

func nextAgentEvent(t *testing.T, ch <-chan sseEvent, typ string) agents.Event {
	t.Helper()
	deadline := time.After(20 * time.Second)
	for {
		select {
		case ev, ok := <-ch:
			if !ok {
				t.Fatalf("stream ended waiting for %s", typ)
			}
			if ev.comment || ev.event != typ {
				continue
			}
			var out agents.Event
			if err := json.Unmarshal([]byte(ev.data), &out); err != nil {
				t.Fatal(err)
			}
			return out
		case <-deadline:
			t.Fatalf("no %s event", typ)
		}
	}
}

// nextCallState skips to the next "call" event in state.
func nextCallState(t *testing.T, ch <-chan sseEvent, state string) agents.Event {
	t.Helper()
	for {
		if ev := nextAgentEvent(t, ch, "call"); ev.State == state {
			return ev
		}
	}
}

// TestAgentTokens: minting checks the body; the token works on agent
// routes only and nothing else works there; revoking it refuses it.
func TestAgentTokens(t *testing.T) {
	e := newAgentEnv(t, testConfig())
	for _, tt := range []struct{ name, body, want string }{
		{"no agent", `{"pools":["sales"]}`, "agent_id"},
		{"free text", `{"agent_id":"alice smith","pools":["sales"]}`, "agent_id"},
		{"card number", `{"agent_id":"4111111111111111","pools":["sales"]}`, "card number"},
		{"unknown pool", `{"agent_id":"alice","pools":["nope"]}`, `"nope"`},
		{"no pool", `{"agent_id":"alice","pools":[]}`, "pools"},
	} {
		p := problem(t, e.do(t, "POST", "/v1/agent-tokens", testKey, tt.body), http.StatusUnprocessableEntity)
		if !strings.Contains(p.Detail, tt.want) {
			t.Errorf("%s: %q, want %q", tt.name, p.Detail, tt.want)
		}
	}
	tok := e.mintAgent(t, testKey, `{"agent_id":"alice","pools":["sales"]}`)
	wt := e.do(t, "POST", "/v1/widget-tokens", testKey, `{"call_id":"call-1"}`)
	var widget widgetTokenResponse
	json.Unmarshal(readBody(t, wt), &widget)

	problem(t, e.do(t, "GET", "/v1/calls", tok.Token, nil), http.StatusForbidden)                                   // an agent token on a key route
	problem(t, e.do(t, "GET", "/v1/payments/pay-1", tok.Token, nil), http.StatusForbidden)                          // on a widget route
	problem(t, e.do(t, "PUT", "/v1/agent/availability", testKey, `{"available":false}`), http.StatusForbidden)      // a key on an agent route
	problem(t, e.do(t, "PUT", "/v1/agent/availability", widget.Token, `{"available":false}`), http.StatusForbidden) // a widget token
	problem(t, e.do(t, "PUT", "/v1/agent/availability", tok.Token+"x", `{"available":false}`), http.StatusUnauthorized)
	if r := e.do(t, "PUT", "/v1/agent/availability", tok.Token, `{"available":true}`); r.StatusCode != http.StatusNoContent {
		t.Fatalf("availability: %d", r.StatusCode)
	}
	// Only the key that minted it may revoke it.
	problem(t, e.do(t, "DELETE", "/v1/agent-tokens/"+tok.ID, otherKey, nil), http.StatusNotFound)
	if r := e.do(t, "DELETE", "/v1/agent-tokens/"+tok.ID, testKey, nil); r.StatusCode != http.StatusNoContent {
		t.Fatalf("revoke: %d", r.StatusCode)
	}
	problem(t, e.do(t, "PUT", "/v1/agent/availability", tok.Token, `{"available":true}`), http.StatusUnauthorized)
	var issued, revoked int
	for _, r := range e.audit.records() {
		switch r.Event {
		case audit.EventAgentTokenIssued:
			issued++
			if r.Actor != "crm for agent:alice" {
				t.Errorf("actor %q", r.Actor)
			}
		case audit.EventAgentTokenRevoked:
			revoked++
		}
	}
	if issued != 1 || revoked != 1 {
		t.Errorf("audit: %d issued, %d revoked", issued, revoked)
	}
}

// TestAgentAnswerOverHTTP: a call rings the signed-in agent on its event
// stream; the agent answers with its offer (WHEP-like: 201, SDP answer,
// Location), its media connects, it gets a widget token for its call
// (and none for another), and hangs up with DELETE.
func TestAgentAnswerOverHTTP(t *testing.T) {
	e := newAgentEnv(t, testConfig())
	tok := e.mintAgent(t, testKey, `{"agent_id":"alice","pools":["sales"]}`)
	ev := e.events(t, tok.Token)
	if r := nextAgentEvent(t, ev, "ready"); r.Agent != "alice" || len(r.Pools) != 1 {
		t.Errorf("ready %+v", r)
	}
	type result struct {
		leg agents.Leg
		err error
	}
	rung := make(chan result, 1)
	go func() {
		leg, err := e.svc.Ring(context.Background(), "sales", agents.Call{ID: "call-1", Caller: "+447700900001", Codec: media.PCMU, Relay: e.relay, Correlation: map[string]string{"crm": "case-9"}})
		rung <- result{leg, err}
	}()
	in := nextAgentEvent(t, ev, "incoming")
	if in.CallID != "call-1" || in.Caller != "+447700900001" || in.Correlation["crm"] != "case-9" {
		t.Errorf("incoming %+v", in)
	}
	post := func(body string) *http.Response {
		req, _ := http.NewRequest("POST", e.ts.URL+"/v1/agent/calls/call-1/answer", strings.NewReader(body))
		req.Header.Set("Authorization", "Bearer "+tok.Token)
		req.Header.Set("Content-Type", "application/sdp")
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		return resp
	}
	// Bad SDP: 400 with the reason, and the call rings on.
	if p := problem(t, post("v=0\r\nnot really"), http.StatusBadRequest); !strings.Contains(p.Detail, "bad SDP") {
		t.Errorf("bad SDP detail %q", p.Detail)
	}
	if f := nextCallState(t, ev, "failed"); f.Reason != "bad_sdp" {
		t.Errorf("%+v", f)
	}
	b, err := webrtctest.New(webrtctest.Options{})
	if err != nil {
		t.Fatal(err)
	}
	defer b.Close()
	offer, err := b.Offer(false)
	if err != nil {
		t.Fatal(err)
	}
	resp := post(string(offer))
	answer := readBody(t, resp)
	if resp.StatusCode != http.StatusCreated || resp.Header.Get("Content-Type") != "application/sdp" || resp.Header.Get("Location") != "/v1/agent/calls/call-1" {
		t.Fatalf("answer: %d %v %s", resp.StatusCode, resp.Header, answer)
	}
	if err := b.Answer(answer); err != nil {
		t.Fatal(err)
	}
	r := <-rung
	if r.err != nil {
		t.Fatal(r.err)
	}
	r.leg.Answered()
	nextCallState(t, ev, "connected")
	wt := e.do(t, "POST", "/v1/agent/calls/call-1/widget-token", tok.Token, `{}`)
	var widget widgetTokenResponse
	if wt.StatusCode != http.StatusCreated || json.Unmarshal(readBody(t, wt), &widget) != nil || !strings.HasPrefix(widget.Token, widgetPrefix) {
		t.Fatalf("widget token for the agent's call: %d", wt.StatusCode)
	}
	if r := e.do(t, "GET", "/v1/calls/call-1", widget.Token, nil); r.StatusCode != http.StatusForbidden {
		t.Errorf("the widget token is a widget token: %d", r.StatusCode)
	}
	problem(t, e.do(t, "POST", "/v1/agent/calls/call-2/widget-token", tok.Token, `{}`), http.StatusForbidden)
	if r := e.do(t, "DELETE", "/v1/agent/calls/call-1", tok.Token, nil); r.StatusCode != http.StatusNoContent {
		t.Fatalf("hang up: %d", r.StatusCode)
	}
	<-r.leg.Done()
	if r.leg.Reason() != audit.ReasonAgentHangup {
		t.Errorf("reason %q", r.leg.Reason())
	}
	r.leg.Close(audit.ReasonCompleted)
	if c := nextCallState(t, ev, "ended"); c.Reason != "agent_hangup" {
		t.Errorf("%+v", c)
	}
	problem(t, e.do(t, "DELETE", "/v1/agent/calls/call-1", tok.Token, nil), http.StatusNotFound)
}

// TestAgentPage: the page is served with the widget's policy, and the
// microphone for this origin alone.
func TestAgentPage(t *testing.T) {
	e := newAgentEnv(t, testConfig())
	for _, path := range []string{"/agent/", "/agent/agent.js", "/agent/agent.css"} {
		r := e.do(t, "GET", path, "", nil)
		readBody(t, r)
		if r.StatusCode != http.StatusOK || !strings.Contains(r.Header.Get("Content-Security-Policy"), "default-src 'self'") || r.Header.Get("Permissions-Policy") != "microphone=(self), camera=()" {
			t.Errorf("%s: %d %v", path, r.StatusCode, r.Header)
		}
	}
	if r := e.do(t, "POST", "/agent/", "", nil); r.StatusCode != http.StatusMethodNotAllowed {
		t.Errorf("POST /agent/: %d", r.StatusCode)
	}
}
