package e2e

import (
	"bufio"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"
)

// apiClient calls the gateway's REST API with the CRM's key and records
// every answer it gets.
type apiClient struct {
	base string
	rec  *recorder
}

type response struct {
	code   int
	header http.Header
	body   []byte
}

func (c *apiClient) do(t *testing.T, method, path, body string, hdr map[string]string) response {
	t.Helper()
	var rd io.Reader
	if body != "" {
		rd = strings.NewReader(body)
	}
	req, err := http.NewRequest(method, c.base+path, rd)
	if err != nil {
		t.Fatal(err)
	}
	req.Header.Set("Authorization", "Bearer "+apiKey)
	if body != "" {
		req.Header.Set("Content-Type", "application/json")
	}
	for k, v := range hdr {
		req.Header.Set(k, v)
	}
	hc := http.Client{Timeout: 60 * time.Second}
	res, err := hc.Do(req)
	if err != nil {
		t.Fatalf("%s %s: %v", method, path, err)
	}
	defer res.Body.Close()
	b, err := io.ReadAll(res.Body)
	if err != nil {
		t.Fatalf("%s %s: reading the body: %v", method, path, err)
	}
	c.rec.add("api "+method+" "+path, fmt.Appendf(nil, "%d %s %s", res.StatusCode, res.Header.Get("Content-Type"), b))
	return response{code: res.StatusCode, header: res.Header, body: b}
}

// view is the API's payment View (the fields the tests read).
type view struct {
	ID           string      `json:"id"`
	CallID       string      `json:"call_id"`
	State        string      `json:"state"`
	Reason       string      `json:"reason"`
	CurrentField string      `json:"current_field"`
	Fields       []fieldView `json:"fields"`
	Result       *result     `json:"result"`
	Version      int64       `json:"version"`
}

type fieldView struct {
	Name    string `json:"name"`
	Status  string `json:"status"`
	Entered int    `json:"entered"`
	Masked  string `json:"masked"`
	Brand   string `json:"brand"`
	Valid   bool   `json:"valid"`
	Error   string `json:"error"`
}

type result struct {
	Outcome      string `json:"outcome"`
	Token        string `json:"token"`
	AuthCode     string `json:"auth_code"`
	Reason       string `json:"reason"`
	ResponseCode string `json:"response_code"`
}

func (v view) field(name string) fieldView {
	for _, f := range v.Fields {
		if f.Name == name {
			return f
		}
	}
	return fieldView{}
}

func decodeView(t *testing.T, r response, want int) view {
	t.Helper()
	if r.code != want {
		t.Fatalf("status %d, want %d: %s", r.code, want, r.body)
	}
	var v view
	if err := json.Unmarshal(r.body, &v); err != nil {
		t.Fatalf("not a View: %v: %s", err, r.body)
	}
	return v
}

// answeredCall waits until the gateway lists exactly one answered call
// and returns its id.
func (c *apiClient) answeredCall(t *testing.T) string {
	t.Helper()
	var id string
	waitFor(t, "an answered call in GET /v1/calls", 20*time.Second, func() bool {
		r := c.do(t, "GET", "/v1/calls", "", nil)
		var list struct {
			Calls []struct {
				ID         string  `json:"id"`
				AnsweredAt *string `json:"answered_at"`
			} `json:"calls"`
		}
		if r.code != 200 || json.Unmarshal(r.body, &list) != nil {
			t.Fatalf("GET /v1/calls = %d %s", r.code, r.body)
		}
		if len(list.Calls) == 1 && list.Calls[0].AnsweredAt != nil {
			id = list.Calls[0].ID
			return true
		}
		return false
	})
	return id
}

// startPayment starts a £19.99 payment on the call.
func (c *apiClient) startPayment(t *testing.T, callID, ref string) view {
	t.Helper()
	body := fmt.Sprintf(`{"amount":1999,"currency":"GBP","merchant_reference":%q,"description":"e2e test"}`, ref)
	v := decodeView(t, c.do(t, "POST", "/v1/calls/"+callID+"/payments", body, map[string]string{"Idempotency-Key": "idem-" + ref}), 201)
	if v.State != "collecting" || v.CallID != callID {
		t.Fatalf("new payment: state %q call %q", v.State, v.CallID)
	}
	return v
}

func (c *apiClient) payment(t *testing.T, id string) view {
	t.Helper()
	return decodeView(t, c.do(t, "GET", "/v1/payments/"+id, "", nil), 200)
}

// waitState polls the payment until its state is one of states (any
// other final state fails at once) and returns it.
func (c *apiClient) waitState(t *testing.T, id string, timeout time.Duration, states ...string) view {
	t.Helper()
	final := []string{"approved", "declined", "failed", "cancelled", "expired"}
	var v view
	deadline := time.Now().Add(timeout)
	for {
		v = c.payment(t, id)
		if slices.Contains(states, v.State) {
			return v
		}
		if slices.Contains(final, v.State) {
			t.Fatalf("payment ended %s (reason %q), want %v; fields %+v", v.State, v.Reason, states, v.Fields)
		}
		if time.Now().After(deadline) {
			t.Fatalf("payment still %s after %v, want %v; fields %+v", v.State, timeout, states, v.Fields)
		}
		time.Sleep(100 * time.Millisecond)
	}
}

// submit posts submit and records how long the answer took.
func (c *apiClient) submit(t *testing.T, id string) response {
	t.Helper()
	start := time.Now()
	r := c.do(t, "POST", "/v1/payments/"+id+"/submit", "", nil)
	d := time.Since(start)
	if r.code == 200 {
		var v view
		_ = json.Unmarshal(r.body, &v)
		recordLatency(v.State, d)
	}
	t.Logf("submit answered %d in %v", r.code, d)
	return r
}

// sseStream follows /v1/payments/{id}/events, recording every line.
type sseStream struct {
	mu     sync.Mutex
	states []string
	done   chan struct{}
	err    error
}

func (c *apiClient) follow(t *testing.T, id string) *sseStream {
	t.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	req, err := http.NewRequestWithContext(ctx, "GET", c.base+"/v1/payments/"+id+"/events", nil)
	if err != nil {
		t.Fatal(err)
	}
	req.Header.Set("Authorization", "Bearer "+apiKey)
	res, err := http.DefaultClient.Do(req)
	if err != nil {
		cancel()
		t.Fatal(err)
	}
	if res.StatusCode != 200 || !strings.HasPrefix(res.Header.Get("Content-Type"), "text/event-stream") {
		b, _ := io.ReadAll(res.Body)
		res.Body.Close()
		cancel()
		t.Fatalf("SSE: %d %s %s", res.StatusCode, res.Header.Get("Content-Type"), b)
	}
	s := &sseStream{done: make(chan struct{})}
	w := c.rec.writer("sse " + id)
	go func() {
		defer close(s.done)
		defer res.Body.Close()
		sc := bufio.NewScanner(res.Body)
		sc.Buffer(make([]byte, 64<<10), 1<<20)
		for sc.Scan() {
			line := sc.Text()
			fmt.Fprintln(w, line)
			if data, ok := strings.CutPrefix(line, "data:"); ok {
				var v view
				if err := json.Unmarshal([]byte(strings.TrimSpace(data)), &v); err != nil {
					s.mu.Lock()
					s.err = fmt.Errorf("SSE data is not a View: %v", err)
					s.mu.Unlock()
					continue
				}
				s.mu.Lock()
				if n := len(s.states); n == 0 || s.states[n-1] != v.State {
					s.states = append(s.states, v.State)
				}
				s.mu.Unlock()
			}
		}
	}()
	t.Cleanup(func() { cancel(); <-s.done })
	return s
}

// wait waits for the stream to end (it ends after the final state) and
// returns the distinct states it carried, in order.
func (s *sseStream) wait(t *testing.T) []string {
	t.Helper()
	select {
	case <-s.done:
	case <-time.After(30 * time.Second):
		t.Errorf("the SSE stream did not end after the final state")
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.err != nil {
		t.Error(s.err)
	}
	return slices.Clone(s.states)
}
