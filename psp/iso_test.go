package psp_test

import (
	"context"
	"encoding/json"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/tonevault/tonevault/internal/secret"
	"github.com/tonevault/tonevault/psp"
	"github.com/tonevault/tonevault/psp/sim"
)

func TestAuthorizeOutcomes(t *testing.T) {
	for _, h := range []psp.Header{psp.Binary2, psp.ASCII4} {
		t.Run(h.String(), func(t *testing.T) {
			e := newEnv(t, sim.Config{Header: h, Limit: 500000}, nil)
			for _, tc := range []struct {
				name    string
				pan     string
				amount  int64
				expiry  string
				kind    psp.Kind
				outcome psp.Outcome
				code    string
				reason  string
			}{
				{"visa approved", "4111111111111111", 1000, "", psp.Authorization, psp.Approved, "00", "approved"},
				{"mastercard sale", "5555555555554444", 2500, "", psp.Sale, psp.Approved, "00", "approved"},
				{"amex approved", "378282246310005", 999, "", psp.Authorization, psp.Approved, "00", "approved"},
				{"do not honour", "4000000000000002", 1000, "", psp.Authorization, psp.Declined, "05", "do_not_honour"},
				{"insufficient funds", "4111111111111111", 1051, "", psp.Sale, psp.Declined, "51", "insufficient_funds"},
				{"over the limit", "6011111111111117", 500001, "", psp.Authorization, psp.Declined, "51", "insufficient_funds"},
				{"expired card", "4000000000000069", 1000, "", psp.Authorization, psp.Declined, "54", "expired_card"},
				{"expiry in the past", "4111111111111111", 1000, "0120", psp.Authorization, psp.Declined, "54", "expired_card"},
				{"bad Luhn", "4111111111111112", 1000, "", psp.Authorization, psp.Declined, "14", "invalid_card"},
			} {
				r := request(tc.pan, tc.amount)
				r.Kind = tc.kind
				if tc.expiry != "" {
					r.Expiry = secret.New([]byte(tc.expiry))
				}
				resp, err := e.authorize(r)
				if err != nil {
					t.Fatalf("%s: %v", tc.name, err)
				}
				if resp.Outcome != tc.outcome || resp.ResponseCode != tc.code || resp.Reason != tc.reason {
					t.Errorf("%s: got %+v, want %v %s %s", tc.name, resp, tc.outcome, tc.code, tc.reason)
				}
				if tc.outcome == psp.Approved && len(resp.AuthCode) != 6 {
					t.Errorf("%s: auth code %q", tc.name, resp.AuthCode)
				}
				if tc.outcome != psp.Approved && resp.AuthCode != "" {
					t.Errorf("%s: auth code %q on a decline", tc.name, resp.AuthCode)
				}
				if len(resp.STAN) != 6 || len(resp.RRN) != 12 || !strings.HasSuffix(resp.RRN, resp.STAN) {
					t.Errorf("%s: STAN %q RRN %q", tc.name, resp.STAN, resp.RRN)
				}
			}
			if st := e.sim.Stats(); st.Reversals != 0 || st.SignOns == 0 {
				t.Errorf("sim stats %+v", st)
			}
			// Every request had a definite answer: each reversal written
			// ahead was cleared.
			if p, err := e.conn.PendingReversals(); err != nil || len(p) != 0 {
				t.Errorf("reversals left after definite answers: %+v, %v", p, err)
			}
		})
	}
}

func TestInvalidRequests(t *testing.T) {
	e := newEnv(t, sim.Config{}, nil)
	for name, mod := range map[string]func(*psp.Request){
		"short PAN":     func(r *psp.Request) { r.PAN = secret.New([]byte("41111111")) },
		"letter in PAN": func(r *psp.Request) { r.PAN = secret.New([]byte("411111111111111A")) },
		"month 13":      func(r *psp.Request) { r.Expiry = secret.New([]byte("1330")) },
		"CVV 2 digits":  func(r *psp.Request) { r.CVV = secret.New([]byte("73")) },
		"zero amount":   func(r *psp.Request) { r.Amount = 0 },
		"currency":      func(r *psp.Request) { r.Currency = "XXX" },
		"kind":          func(r *psp.Request) { r.Kind = 0 },
	} {
		r := request("4111111111111111", 1000)
		mod(r)
		resp, err := e.authorize(r)
		if err == nil || resp.Outcome != psp.Error || resp.Reason != psp.ReasonInvalid {
			t.Errorf("%s: %+v, %v", name, resp, err)
		}
	}
	if st := e.sim.Stats(); st.Received != st.SignOns+st.Echoes {
		t.Errorf("an invalid request reached the acquirer: %+v", st)
	}
}

func TestTimeoutSendsReversal(t *testing.T) {
	var mu sync.Mutex
	acked := map[string]psp.Reversal{}
	e := newEnv(t, sim.Config{}, func(c *psp.Config) {
		c.Timeout = 300 * time.Millisecond
		c.OnReversal = func(r psp.Reversal) {
			mu.Lock()
			defer mu.Unlock()
			if _, dup := acked[r.STAN]; dup {
				t.Errorf("OnReversal twice for STAN %s", r.STAN)
			}
			acked[r.STAN] = r
		}
	})
	var stans []string
	for _, r := range []*psp.Request{request("4000000000000119", 1000), request("4111111111111111", 99999)} {
		r.MerchantRef = "order-" + r.Currency
		resp, err := e.authorize(r)
		if err != nil {
			t.Fatal(err)
		}
		if resp.Outcome != psp.Error || resp.Reason != psp.ReasonTimeout || resp.STAN == "" {
			t.Fatalf("got %+v", resp)
		}
		eventually(t, "reversal of STAN "+resp.STAN+" acknowledged", func() bool { return e.reversed(resp.STAN) })
		stans = append(stans, resp.STAN)
	}
	eventually(t, "OnReversal for both", func() bool {
		mu.Lock()
		defer mu.Unlock()
		return len(acked) == 2
	})
	mu.Lock()
	for _, stan := range stans {
		if r := acked[stan]; r.Reason != psp.ReasonTimeout || r.Reference == "" {
			t.Errorf("OnReversal(%+v): want reason %s and the merchant reference", r, psp.ReasonTimeout)
		}
	}
	mu.Unlock()
	eventually(t, "queue empty", func() bool {
		p, err := e.conn.PendingReversals()
		return err == nil && len(p) == 0
	})
	if st := e.sim.Stats(); st.NoAnswer != 2 {
		t.Errorf("sim stats %+v", st)
	}
	// The sim knew the originals: it acknowledged with 00, not 25.
	if !strings.Contains(e.simLog.String(), "0410 00 reversal acknowledged") {
		t.Errorf("sim log:\n%s", e.simLog.String())
	}
}

func TestReversalSurvivesRestart(t *testing.T) {
	e := newEnv(t, sim.Config{}, func(c *psp.Config) { c.Timeout = 300 * time.Millisecond })
	e.sim.SetIgnoreReversals(true)
	resp, err := e.authorize(request("4000000000000119", 1000))
	if err != nil || resp.Reason != psp.ReasonTimeout {
		t.Fatalf("%+v %v", resp, err)
	}
	eventually(t, "a reversal attempt", func() bool { return e.sim.Stats().Reversals >= 1 })
	e.conn.Close()
	queued, err := e.st.ListReversals(context.Background())
	if err != nil || len(queued) != 1 || queued[0].STAN != resp.STAN || queued[0].Reason != psp.ReasonTimeout || queued[0].Attempts < 1 {
		t.Fatalf("queue after the stop: %+v, %v", queued, err)
	}
	if e.reversed(resp.STAN) {
		t.Fatal("the sim acknowledged a reversal it was told to ignore")
	}

	// A new connector on the same store sends it again, as a repeat.
	e.sim.SetIgnoreReversals(false)
	e.start()
	eventually(t, "reversal acknowledged after restart", func() bool { return e.reversed(resp.STAN) })
	eventually(t, "queue empty", func() bool {
		p, err := e.conn.PendingReversals()
		return err == nil && len(p) == 0
	})
	if !strings.Contains(e.simLog.String(), "recv 0401") {
		t.Errorf("the reversal after the restart was not a repeat:\n%s", e.simLog.String())
	}
	// The restart did not reuse STANs.
	r2, err := e.authorize(request("4111111111111111", 1000))
	if err != nil || r2.Outcome != psp.Approved || r2.STAN <= resp.STAN {
		t.Errorf("after restart: %+v %v (first STAN %s)", r2, err, resp.STAN)
	}
}

// TestReversalRetriedUntilAcknowledged: the same connector sends an
// unanswered reversal again, as 0401, with the wait doubling up to
// MaxReversalBackoff, until the acquirer acknowledges it.
func TestReversalRetriedUntilAcknowledged(t *testing.T) {
	e := newEnv(t, sim.Config{}, func(c *psp.Config) { c.Timeout = 300 * time.Millisecond })
	e.sim.SetIgnoreReversals(true)
	resp, err := e.authorize(request("4000000000000119", 1000))
	if err != nil || resp.Reason != psp.ReasonTimeout {
		t.Fatalf("%+v %v", resp, err)
	}
	eventually(t, "four unanswered reversal attempts", func() bool { return e.sim.Stats().Reversals >= 4 })
	e.sim.SetIgnoreReversals(false)
	eventually(t, "reversal acknowledged", func() bool { return e.reversed(resp.STAN) })
	eventually(t, "queue empty", func() bool {
		p, err := e.conn.PendingReversals()
		return err == nil && len(p) == 0
	})
	if !strings.Contains(e.simLog.String(), "recv 0401") {
		t.Errorf("no repeated reversal (0401) in the sim log:\n%s", e.simLog.String())
	}
	// helpers_test.go's config: 50ms doubling to 200ms.
	var waits []string
	for _, line := range strings.Split(e.log.String(), "\n") {
		var rec struct{ Backoff string }
		if strings.Contains(line, "will retry") && json.Unmarshal([]byte(line), &rec) == nil {
			waits = append(waits, rec.Backoff)
		}
	}
	if len(waits) < 4 || strings.Join(waits[:4], " ") != "50ms 100ms 200ms 200ms" {
		t.Errorf("waits between attempts %v, want 50ms 100ms 200ms 200ms first", waits)
	}
}

func TestSlowAnswer(t *testing.T) {
	t.Run("within the timeout", func(t *testing.T) {
		e := newEnv(t, sim.Config{SlowDelay: 100 * time.Millisecond}, nil)
		resp, err := e.authorize(request("4111111111111111", 10202))
		if err != nil || resp.Outcome != psp.Approved {
			t.Fatalf("%+v %v", resp, err)
		}
		if e.sim.Stats().Slow != 1 {
			t.Errorf("sim did not take the slow path: %+v", e.sim.Stats())
		}
	})
	t.Run("after the timeout", func(t *testing.T) {
		e := newEnv(t, sim.Config{SlowDelay: 1500 * time.Millisecond}, func(c *psp.Config) { c.Timeout = 200 * time.Millisecond })
		resp, err := e.authorize(request("4111111111111111", 10202))
		if err != nil || resp.Outcome != psp.Error || resp.Reason != psp.ReasonTimeout {
			t.Fatalf("%+v %v", resp, err)
		}
		eventually(t, "reversal acknowledged", func() bool { return e.reversed(resp.STAN) })
		eventually(t, "late response noticed", func() bool { return strings.Contains(e.log.String(), "unmatched response") })
	})
	t.Run("context deadline shorter than the timeout", func(t *testing.T) {
		e := newEnv(t, sim.Config{SlowDelay: 1500 * time.Millisecond}, nil)
		ctx, cancel := context.WithTimeout(context.Background(), 200*time.Millisecond)
		defer cancel()
		resp, err := e.conn.Authorize(ctx, request("4111111111111111", 10202))
		if err != nil || resp.Reason != psp.ReasonTimeout {
			t.Fatalf("%+v %v", resp, err)
		}
		eventually(t, "reversal acknowledged", func() bool { return e.reversed(resp.STAN) })
	})
}

func TestDisconnectThenReconnect(t *testing.T) {
	e := newEnv(t, sim.Config{}, nil)
	resp, err := e.authorize(request("4000000000000127", 1000))
	if err != nil || resp.Outcome != psp.Error || resp.Reason != psp.ReasonConnectionLost {
		t.Fatalf("%+v %v", resp, err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 15*time.Second)
	defer cancel()
	var next psp.Response
	eventually(t, "approval after reconnect", func() bool {
		if e.conn.WaitReady(ctx) != nil {
			return false
		}
		next, err = e.authorize(request("4111111111111111", 1000))
		return err == nil && next.Outcome == psp.Approved
	})
	if st := e.sim.Stats(); st.Disconnects != 1 || st.SignOns < 2 {
		t.Errorf("sim stats %+v", st)
	}
	// The lost one is reversed too: the acquirer may have approved it.
	eventually(t, "reversal of the lost request", func() bool { return e.reversed(resp.STAN) })
}

func TestUnavailable(t *testing.T) {
	e := newEnv(t, sim.Config{}, nil)
	e.sim.Close()
	ctx, cancel := context.WithTimeout(context.Background(), 15*time.Second)
	defer cancel()
	// Wait for the pool to notice the dropped connection.
	for ctx.Err() == nil {
		resp, err := e.authorize(request("4111111111111111", 1000))
		if err != nil {
			if resp.Outcome != psp.Error || resp.Reason != psp.ReasonUnavailable {
				t.Fatalf("%+v %v", resp, err)
			}
			return
		}
		time.Sleep(20 * time.Millisecond)
	}
	t.Fatal("Authorize kept succeeding with the acquirer down")
}

func TestConcurrentAuthorize(t *testing.T) {
	e := newEnv(t, sim.Config{}, func(c *psp.Config) {
		c.Addrs = []string{c.Addrs[0], c.Addrs[0], c.Addrs[0], c.Addrs[0]}
		// 400 reversals written ahead (an fsync each) before their
		// requests leave: on a loaded machine the last wait longer than
		// the default 5 s, which this test is not about.
		c.Timeout = 60 * time.Second
	})
	eventually(t, "4 connections signed on", func() bool { return e.sim.Stats().SignOns >= 4 })
	const n = 400
	var wg sync.WaitGroup
	resps := make([]psp.Response, n)
	errs := make([]error, n)
	for i := range n {
		wg.Add(1)
		go func() {
			defer wg.Done()
			r := request([]string{"4111111111111111", "5555555555554444", "378282246310005"}[i%3], int64(1000+100*i))
			resps[i], errs[i] = e.conn.Authorize(context.Background(), r)
			r.PAN.Wipe()
		}()
	}
	wg.Wait()
	stans, rrns := map[string]bool{}, map[string]bool{}
	for i, r := range resps {
		if errs[i] != nil || r.Outcome != psp.Approved {
			t.Fatalf("request %d: %+v %v", i, r, errs[i])
		}
		if stans[r.STAN] || rrns[r.RRN] {
			t.Fatalf("STAN %s or RRN %s repeated", r.STAN, r.RRN)
		}
		stans[r.STAN], rrns[r.RRN] = true, true
	}
	if st := e.sim.Stats(); st.Approved != n {
		t.Errorf("sim approved %d, want %d", st.Approved, n)
	}
}

func TestSTANUniqueOverManyRequests(t *testing.T) {
	e := newEnv(t, sim.Config{}, nil)
	seen := map[string]bool{}
	for i := range 1500 {
		resp, err := e.authorize(request("4111111111111111", int64(1000+100*i)))
		if err != nil || resp.Outcome != psp.Approved {
			t.Fatalf("%d: %+v %v", i, resp, err)
		}
		if seen[resp.STAN] {
			t.Fatalf("STAN %s repeated at request %d", resp.STAN, i)
		}
		seen[resp.STAN] = true
	}
}

func TestNoCardDataInConfigErrors(t *testing.T) {
	_, err := psp.NewISO(psp.Config{}, nil)
	if err == nil {
		t.Fatal("empty config accepted")
	}
	for _, want := range []string{"address", "store", "terminal", "merchant"} {
		if !strings.Contains(err.Error(), want) {
			t.Errorf("error %q does not mention %s", err, want)
		}
	}
}

func TestEcho(t *testing.T) {
	e := newEnv(t, sim.Config{}, func(c *psp.Config) { c.EchoInterval = 50 * time.Millisecond })
	eventually(t, "an 0800 echo", func() bool { return e.sim.Stats().Echoes >= 2 })
	resp, err := e.authorize(request("4111111111111111", 1000))
	if err != nil || resp.Outcome != psp.Approved {
		t.Fatalf("%+v %v", resp, err)
	}
}
