package cluster

import (
	"context"
	"fmt"
	"net/http"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/tonevault/tonevault/cluster"
	"github.com/tonevault/tonevault/sip/caller"
)

const (
	visaApproved = "4111111111111111#1230#737#"
	// psp-sim holds the authorization of this card unanswered.
	visaNoAnswer = "4000000000000119#1230#737#"
)

// payCall is a customer on the line through Kamailio, and the payment
// the CRM started on the call.
type payCall struct {
	call    *caller.Call
	callID  string
	node    string // the node holding the call (its id names it)
	payment string
}

// dialAndCapture places a call through Kamailio, finds it through api
// (whichever node that is) by its correlation header, starts a payment
// there and types keys; it returns once the payment is complete.
func (r *rig) dialAndCapture(api *client, ref, keys string) *payCall {
	t := r.t
	t.Helper()
	call, err := caller.Dial(ctxFor(t, 30*time.Second), caller.Options{
		Target:  "sip:pay@" + r.kamAddr,
		Headers: []caller.Header{{Name: "X-Interaction-ID", Value: ref}},
		Timing:  caller.Timing{Seed: 14, Press: 90 * time.Millisecond, Gap: 110 * time.Millisecond, HashPause: 250 * time.Millisecond},
	})
	if err != nil {
		t.Fatalf("dial through kamailio: %v", err)
	}
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		_ = call.Hangup(ctx)
	})
	p := &payCall{call: call}
	deadline := time.Now().Add(20 * time.Second)
	for p.callID == "" {
		for _, c := range api.calls("?correlation=X-Interaction-ID:" + ref) {
			if c.State == "answered" {
				p.callID = c.ID
			}
		}
		if time.Now().After(deadline) {
			t.Fatalf("call %s never answered", ref)
		}
		time.Sleep(50 * time.Millisecond)
	}
	p.node = cluster.CallNode(p.callID)
	res := api.do("POST", "/v1/calls/"+p.callID+"/payments", `{"amount":1999,"currency":"GBP","merchant_reference":"`+ref+`"}`, "Idempotency-Key", "idem-"+ref)
	if res.code != http.StatusCreated {
		t.Fatalf("start payment on %s (node %s) through %s: %d %s", p.callID, p.node, api.base, res.code, res.body)
	}
	var v payView
	if err := decode(res.body, &v); err != nil {
		t.Fatal(err)
	}
	p.payment = v.ID
	k := []byte(keys)
	defer clear(k)
	if err := call.Type(ctxFor(t, 60*time.Second), k, caller.RFC4733); err != nil {
		t.Fatalf("typing: %v", err)
	}
	api.waitPayment(p.payment, 30*time.Second, func(v payView) bool { return v.State == "complete" })
	return p
}

// submit submits the payment through api and returns the answer.
func (p *payCall) submit(api *client) reply {
	return api.do("POST", "/v1/payments/"+p.payment+"/submit", "")
}

// TestCluster (issue 14): three nodes behind Kamailio on one PostgreSQL
// and a 3-node Vault, the CRM talking to any node.
//
//   - 200 SIPp calls through Kamailio, spread over the three nodes by
//     Call-ID, none failing, with payments taken meanwhile, each through
//     the API of a node that is not the call's.
//   - One node killed (SIGKILL) with an authorization in flight: after
//     Kamailio's probe interval new calls all connect; a payment on
//     another node is approved; the dead node's payment is ended by a
//     survivor and its authorization reversed, once.
//   - PostgreSQL restarted in the middle of a payment, which is approved.
//   - The active Vault node killed (SIGKILL) as two payments are
//     submitted: both approved, each authorized once.
func TestCluster(t *testing.T) {
	r := newRig(t, rigOptions{})
	apis := make([]*client, len(r.nodes))
	for i, n := range r.nodes {
		apis[i] = r.client(n)
	}
	approved := func(res reply) bool {
		return res.code == 200 && strings.Contains(string(res.body), `"outcome":"approved"`)
	}

	t.Run("calls spread, payments through any node", func(t *testing.T) {
		var wg sync.WaitGroup
		var ok, failed int
		wg.Add(1)
		go func() {
			defer wg.Done()
			// 50 calls a second for 4 s, each held 5 s: all 200 up at
			// once at the end.
			ok, failed = r.sipp("load", 200, 50, 5*time.Second)
		}()
		before := r.sim.Stats().Approved
		var pays []*payCall
		var mu sync.Mutex
		var pwg sync.WaitGroup
		for i := range 3 {
			pwg.Add(1)
			go func() {
				defer pwg.Done()
				p := r.dialAndCapture(apis[i], fmt.Sprintf("spread-%d", i), visaApproved)
				// Submitted through the next node's API.
				if res := p.submit(apis[(i+1)%3]); !approved(res) {
					t.Errorf("payment %s on %s: %d %s", p.payment, p.node, res.code, res.body)
				}
				mu.Lock()
				pays = append(pays, p)
				mu.Unlock()
			}()
		}
		pwg.Wait()
		wg.Wait()
		if ok != 200 || failed != 0 {
			t.Fatalf("SIPp through Kamailio: %d successful, %d failed; want 200 and 0", ok, failed)
		}
		perNode := map[string]int{}
		for _, c := range apis[0].calls("") {
			perNode[cluster.CallNode(c.ID)]++
		}
		t.Logf("calls per node (listed through gw1): %v", perNode)
		for _, n := range nodeNames {
			if perNode[n] < 20 {
				t.Errorf("node %s took %d of the calls: not spread (%v)", n, perNode[n], perNode)
			}
		}
		if got := r.sim.Stats().Approved - before; got != int64(len(pays)) {
			t.Errorf("the acquirer approved %d authorizations for %d payments", got, len(pays))
		}
	})
	if t.Failed() {
		return
	}

	t.Run("a node killed", func(t *testing.T) {
		// The victim is the node of a payment whose authorization the
		// acquirer holds.
		p := r.dialAndCapture(apis[0], "victim", visaNoAnswer)
		var victim, survivor *client
		var vnode *node
		for i, n := range r.nodes {
			if n.name == p.node {
				victim, vnode = apis[i], n
			} else if survivor == nil {
				survivor = apis[i]
			}
		}
		go p.submit(victim)
		deadline := time.Now().Add(20 * time.Second)
		for r.sim.Stats().NoAnswer == 0 {
			if time.Now().After(deadline) {
				t.Fatal("the authorization never reached the acquirer")
			}
			time.Sleep(20 * time.Millisecond)
		}
		revBefore := len(r.sim.Stats().ReversedSTANs)
		vnode.proc.kill()
		killed := time.Now()
		t.Logf("killed %s with payment %s authorizing", vnode.name, p.payment)

		// Kamailio probes every second and takes a node out after two
		// probes unanswered (each waits 2 s): after that no new call
		// fails (and none before either: a call sent to the dead node
		// goes to the next after 2 s without an answer).
		time.Sleep(5 * time.Second)
		ok, failed := r.sipp("after-kill", 60, 30, time.Second)
		if ok != 60 || failed != 0 {
			t.Errorf("after the probe interval: %d successful, %d failed; want 60 and 0", ok, failed)
		}
		// A payment on a surviving node is unaffected.
		q := r.dialAndCapture(survivor, "survivor", visaApproved)
		if q.node == vnode.name {
			t.Fatalf("a new call went to the dead node %s", q.node)
		}
		if res := q.submit(survivor); !approved(res) {
			t.Errorf("payment on %s after the kill: %d %s", q.node, res.code, res.body)
		}
		// The dead node's payment: ended by a survivor, its authorization
		// reversed by one.
		v := survivor.waitPayment(p.payment, 30*time.Second, func(v payView) bool { return v.State == "failed" })
		if v.Reason != "gateway_restarted" {
			t.Errorf("the dead node's payment ended %s/%s", v.State, v.Reason)
		}
		deadline = time.Now().Add(40 * time.Second)
		for len(r.sim.Stats().ReversedSTANs) == revBefore {
			if time.Now().After(deadline) {
				t.Fatal("the dead node's authorization was never reversed")
			}
			time.Sleep(100 * time.Millisecond)
		}
		t.Logf("payment ended and authorization reversed %v after the kill", time.Since(killed).Round(100*time.Millisecond))
		time.Sleep(2 * time.Second) // a second reversal would come within the lease
		if n := len(r.sim.Stats().ReversedSTANs) - revBefore; n != 1 {
			t.Errorf("%d reversals, want 1", n)
		}
		apis = []*client{}
		for i, n := range r.nodes {
			if n != vnode {
				apis = append(apis, r.client(r.nodes[i]))
			}
		}
	})
	if t.Failed() {
		return
	}

	t.Run("PostgreSQL restarted mid-payment", func(t *testing.T) {
		p := r.dialAndCapture(apis[0], "pg-restart", visaApproved)
		if err := r.pg.Restart(); err != nil {
			t.Fatal(err)
		}
		res := p.submit(apis[1])
		if !approved(res) {
			t.Fatalf("submit after the restart: %d %s", res.code, res.body)
		}
		// The outcome reached the store: a node reads it back.
		apis[1].waitPayment(p.payment, 20*time.Second, func(v payView) bool { return v.State == "approved" })
	})

	t.Run("active Vault node killed mid-payment", func(t *testing.T) {
		a := r.dialAndCapture(apis[0], "vault-a", visaApproved)
		b := r.dialAndCapture(apis[1], "vault-b", "5555555555554444#1230#737#")
		active := r.vault.Active()
		if active < 0 {
			t.Fatal("no active Vault node")
		}
		before := r.sim.Stats().Approved
		// Killed as the submits go out: their tokenizations meet a dead
		// node and an election (a second or more), which the gateway
		// rides out by finding the new active node.
		r.vault.Kill(active)
		var wg sync.WaitGroup
		results := make([]reply, 2)
		took := make([]time.Duration, 2)
		for i, p := range []*payCall{a, b} {
			wg.Add(1)
			go func() {
				defer wg.Done()
				start := time.Now()
				results[i] = p.submit(apis[i])
				took[i] = time.Since(start)
			}()
		}
		wg.Wait()
		t.Logf("submits with the active Vault node killed took %v and %v", took[0].Round(time.Millisecond), took[1].Round(time.Millisecond))
		for i, res := range results {
			if !approved(res) {
				t.Errorf("payment %d with the active Vault killed: %d %s", i, res.code, res.body)
			}
		}
		if got := r.sim.Stats().Approved - before; got != 2 {
			t.Errorf("the acquirer approved %d authorizations for 2 payments", got)
		}
	})

	for _, n := range r.nodes {
		noCardIn(t, "node "+n.name+" output", []byte(n.proc.out.String()), "4111111111111111", "5555555555554444", "4000000000000119")
	}
	dump, err := r.pg.Dump(r.pgDB)
	if err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(string(dump), "CREATE TABLE") {
		t.Fatal("empty dump")
	}
	noCardIn(t, "the PostgreSQL store", dump, "4111111111111111", "5555555555554444", "4000000000000119")
}
