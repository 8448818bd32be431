package sip

import (
	"fmt"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/tonevault/tonevault/audit"
	"github.com/tonevault/tonevault/media"
)

func TestRegistryLookups(t *testing.T) {
	r := NewRegistry(2)
	mk := func(id, caller, corr string, carrierSID, platformSID string) *CallInfo {
		return &CallInfo{ID: id, Caller: caller, State: StateRinging, Start: time.Now(),
			Carrier: LegInfo{CallID: carrierSID}, Platform: LegInfo{CallID: platformSID},
			Correlation: map[string]string{"X-Interaction-ID": corr}}
	}
	r.add(mk("c-1", "alice", "ix-1", "a1", "b1"))
	r.add(mk("c-2", "bob", "ix-2", "a2", "b2"))
	r.add(mk("c-3", "alice", "ix-1", "a3", "b3"))
	r.update("c-3", func(c *CallInfo) { c.State = StateAnswered })

	tests := []struct {
		name   string
		filter Filter
		want   []string
	}{
		{"all", Filter{}, []string{"c-1", "c-2", "c-3"}},
		{"caller", Filter{Caller: "alice"}, []string{"c-1", "c-3"}},
		{"correlation", Filter{Correlation: "ix-2"}, []string{"c-2"}},
		{"state", Filter{State: StateAnswered}, []string{"c-3"}},
		{"caller and state", Filter{Caller: "alice", State: StateRinging}, []string{"c-1"}},
		{"no match", Filter{Caller: "carol"}, nil},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			var got []string
			for _, c := range r.List(tt.filter) {
				got = append(got, c.ID)
			}
			if fmt.Sprint(got) != fmt.Sprint(tt.want) {
				t.Errorf("List = %v, want %v", got, tt.want)
			}
		})
	}
	for sid, want := range map[string]string{"a1": "c-1", "b2": "c-2", "b3": "c-3"} {
		if c, ok := r.BySIPCallID(sid); !ok || c.ID != want {
			t.Errorf("BySIPCallID(%s) = %q %v, want %s", sid, c.ID, ok, want)
		}
	}
	if _, ok := r.BySIPCallID("nope"); ok {
		t.Error("BySIPCallID found an unknown Call-ID")
	}
	// Two calls carry ix-1; the newest live one wins.
	if c, ok := r.ByCorrelation("ix-1"); !ok || c.ID != "c-3" {
		t.Errorf("ByCorrelation = %q %v, want c-3", c.ID, ok)
	}
	// A snapshot is a copy: changing it changes nothing in the registry.
	c, _ := r.Get("c-1")
	c.Correlation["X-Interaction-ID"] = "changed"
	if again, _ := r.Get("c-1"); again.Correlation["X-Interaction-ID"] != "ix-1" {
		t.Error("Get returned a shared map")
	}
}

func TestRegistryExpiresEnded(t *testing.T) {
	r := NewRegistry(2)
	for i := range 5 {
		id := fmt.Sprintf("c-%d", i)
		r.add(&CallInfo{ID: id, Carrier: LegInfo{CallID: "s" + id}})
		r.update(id, func(c *CallInfo) { c.State = StateEnded })
	}
	r.add(&CallInfo{ID: "live", State: StateAnswered})
	var got []string
	for _, c := range r.List(Filter{}) {
		got = append(got, c.ID)
	}
	if fmt.Sprint(got) != "[c-3 c-4 live]" {
		t.Errorf("kept %v, want the last 2 ended and the live one", got)
	}
	if _, ok := r.BySIPCallID("sc-0"); ok {
		t.Error("expired call still found by Call-ID")
	}
}

func TestRegistrySubscribe(t *testing.T) {
	r := NewRegistry(0)
	var mu sync.Mutex
	var a, b []string
	unA := r.Subscribe(func(d media.Digit) { mu.Lock(); a = append(a, d.CallID+string(d.Digit)); mu.Unlock() })
	r.Subscribe(func(d media.Digit) { mu.Lock(); b = append(b, d.CallID+string(d.Digit)); mu.Unlock() })
	r.Digit(media.Digit{CallID: "c-1", Digit: '5'})
	unA()
	r.Digit(media.Digit{CallID: "c-1", Digit: '#'})
	if fmt.Sprint(a) != "[c-15]" || fmt.Sprint(b) != "[c-15 c-1#]" {
		t.Errorf("a = %v, b = %v", a, b)
	}
}

// TestRegistryOnEnd: each call is reported once, when it ends, with its
// final state; updates after the end and other calls' updates are not.
func TestRegistryOnEnd(t *testing.T) {
	r := NewRegistry(0)
	var ended []string
	un := r.OnEnd(func(c CallInfo) { ended = append(ended, c.ID+":"+c.Outcome) })
	r.add(&CallInfo{ID: "c-1", State: StateRinging})
	r.add(&CallInfo{ID: "c-2", State: StateRinging})
	r.update("c-1", func(c *CallInfo) { c.State = StateAnswered })
	r.update("c-1", func(c *CallInfo) { c.State, c.Outcome = StateEnded, "answered" })
	r.update("c-1", func(c *CallInfo) { c.Outcome = "again" })
	r.update("missing", func(c *CallInfo) { c.State = StateEnded })
	un()
	r.update("c-2", func(c *CallInfo) { c.State = StateEnded })
	if fmt.Sprint(ended) != "[c-1:answered]" {
		t.Errorf("ended = %v, want [c-1:answered]", ended)
	}
}

// TestRegistryConcurrent is for the race detector.
func TestRegistryConcurrent(t *testing.T) {
	r := NewRegistry(10)
	var wg sync.WaitGroup
	for i := range 8 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for j := range 100 {
				id := fmt.Sprintf("c-%d-%d", i, j)
				r.add(&CallInfo{ID: id, Carrier: LegInfo{CallID: id + "a"}, Correlation: map[string]string{"X": id}})
				r.update(id, func(c *CallInfo) { c.State = StateAnswered })
				r.BySIPCallID(id + "a")
				r.List(Filter{Correlation: id})
				r.update(id, func(c *CallInfo) { c.State = StateEnded })
				r.Digit(media.Digit{CallID: id})
			}
		}()
	}
	wg.Wait()
	if n := len(r.List(Filter{State: StateEnded})); n != 10 {
		t.Errorf("ended calls kept = %d, want 10", n)
	}
}

func TestNewCallIDNamesNode(t *testing.T) {
	for range 100 {
		id := newCallID("gw-2")
		body, ok := strings.CutPrefix(id, "c-gw-2-")
		if !ok || len(body) != 16 || strings.Trim(body, "abcdefghijklmnopqrstuvwxyz234567") != "" || !audit.ValidID(id) {
			t.Fatalf("bad id %q", id)
		}
	}
}

func TestNewCallID(t *testing.T) {
	seen := map[string]bool{}
	digitRun := 0
	for range 1000 {
		id := newCallID("")
		body, ok := strings.CutPrefix(id, "c-")
		if !ok || len(body) != 16 || strings.Trim(body, "abcdefghijklmnopqrstuvwxyz234567") != "" || !audit.ValidID(id) || seen[id] {
			t.Fatalf("bad or repeated id %q", id)
		}
		seen[id] = true
		// Standard base32: digits come in runs of any length, rarely long.
		for i := 0; i+4 <= len(body); i++ {
			if strings.Trim(body[i:i+4], "234567") == "" {
				digitRun++
			}
		}
	}
	if digitRun == 0 {
		t.Error("no run of 4 digits in 1000 ids: not standard base32")
	}
}

// TestRegistryManyEnded: with many more ended calls than it keeps, the
// registry holds exactly the newest keepEnded ended calls plus the live
// ones, and lists them in start order.
func TestRegistryManyEnded(t *testing.T) {
	r := NewRegistry(3)
	for i := range 500 {
		id := fmt.Sprintf("c-%d", i)
		r.add(&CallInfo{ID: id, Carrier: LegInfo{CallID: "s" + id}, State: StateAnswered})
		if i%100 != 0 { // every 100th stays live
			r.update(id, func(c *CallInfo) { c.State = StateEnded })
		}
	}
	var got []string
	for _, c := range r.List(Filter{}) {
		got = append(got, c.ID)
	}
	if want := "[c-0 c-100 c-200 c-300 c-400 c-497 c-498 c-499]"; fmt.Sprint(got) != want {
		t.Errorf("kept %v, want %v", got, want)
	}
	if _, ok := r.BySIPCallID("sc-496"); ok {
		t.Error("expired call still found by Call-ID")
	}
	if len(r.order) > 2*len(r.calls)+64 || len(r.ended)-r.endHead != 3 {
		t.Errorf("bookkeeping grows: order %d, ended %d-%d, calls %d", len(r.order), len(r.ended), r.endHead, len(r.calls))
	}
}
