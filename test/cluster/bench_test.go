package cluster

import (
	"fmt"
	"os"
	"sort"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"
)

// envBench runs the measurements of BENCHMARKS.md ("Cluster"); they take
// minutes and are not part of make test.
const envBench = "TONEVAULT_CLUSTER_BENCH"

func needBench(t *testing.T) {
	if os.Getenv(envBench) != "1" {
		t.Skipf("a measurement for BENCHMARKS.md: set %s=1", envBench)
	}
}

// TestBenchCallRate: SIPp through Kamailio at rising rates, to one node
// and to three, each call held 1 s.
func TestBenchCallRate(t *testing.T) {
	needBench(t)
	// TONEVAULT_CLUSTER_BENCH_NODES="3" and _RATES="200 300" narrow it.
	nodes, rates := ints(os.Getenv(envBench+"_NODES"), 1, 3), ints(os.Getenv(envBench+"_RATES"), 50, 100, 200, 300)
	for _, dispatch := range nodes {
		t.Run(fmt.Sprintf("%d nodes", dispatch), func(t *testing.T) {
			r := newRig(t, rigOptions{dispatch: dispatch, logLevel: "warn"})
			for _, rate := range rates {
				start := time.Now()
				ok, failed := r.sipp(fmt.Sprintf("rate-%d", rate), rate*20, rate, time.Second)
				t.Logf("BENCH calls through Kamailio to %d node(s): asked %d/s for 20 s: %d successful, %d failed, %.0f calls/s over %v",
					dispatch, rate, ok, failed, float64(ok)/time.Since(start).Seconds(), time.Since(start).Round(time.Second))
			}
		})
	}
}

// TestBenchForwardLatency: GET /v1/calls/{id} answered by the call's node,
// and by another node that forwards it over mutual TLS.
func TestBenchForwardLatency(t *testing.T) {
	needBench(t)
	r := newRig(t, rigOptions{logLevel: "warn"})
	p := r.dialAndCapture(r.client(r.nodes[0]), "latency", visaApproved)
	var owner, other *client
	for _, n := range r.nodes {
		if n.name == p.node {
			owner = r.client(n)
		} else if other == nil {
			other = r.client(n)
		}
	}
	for _, c := range []struct {
		name string
		api  *client
	}{{"owner", owner}, {"another node", other}, {"owner", owner}, {"another node", other}} {
		var d []time.Duration
		for range 2000 {
			start := time.Now()
			if res := c.api.do("GET", "/v1/calls/"+p.callID, ""); res.code != 200 {
				t.Fatalf("%d %s", res.code, res.body)
			}
			d = append(d, time.Since(start))
		}
		sort.Slice(d, func(i, j int) bool { return d[i] < d[j] })
		t.Logf("BENCH GET /v1/calls/{id} through %s: p50 %v p90 %v p99 %v (2000 requests, one client)",
			c.name, d[len(d)/2].Round(time.Microsecond), d[len(d)*9/10].Round(time.Microsecond), d[len(d)*99/100].Round(time.Microsecond))
	}
}

// TestBenchPaymentRate: payments submitted at once, 8 at a time, on one
// node whose store is SQLite, then PostgreSQL; the same 3-node Vault.
func TestBenchPaymentRate(t *testing.T) {
	needBench(t)
	for _, sqlite := range []bool{true, false} {
		name := map[bool]string{true: "sqlite", false: "postgres"}[sqlite]
		t.Run(name, func(t *testing.T) {
			r := newRig(t, rigOptions{nodes: 1, sqlite: sqlite, logLevel: "warn"})
			api := r.client(r.nodes[0])
			const n = 96
			pays := make([]*payCall, n)
			var wg sync.WaitGroup
			for i := range n {
				wg.Add(1)
				go func() {
					defer wg.Done()
					pays[i] = r.dialAndCapture(api, fmt.Sprintf("rate-%s-%d", name, i), visaApproved)
				}()
			}
			wg.Wait()
			if t.Failed() {
				return
			}
			next := make(chan *payCall, n)
			for _, p := range pays {
				next <- p
			}
			close(next)
			var mu sync.Mutex
			var lat []time.Duration
			start := time.Now()
			for range 8 {
				wg.Add(1)
				go func() {
					defer wg.Done()
					for p := range next {
						s := time.Now()
						res := p.submit(api)
						mu.Lock()
						lat = append(lat, time.Since(s))
						mu.Unlock()
						if !strings.Contains(string(res.body), `"approved"`) {
							t.Errorf("%d %s", res.code, res.body)
						}
					}
				}()
			}
			wg.Wait()
			took := time.Since(start)
			sort.Slice(lat, func(i, j int) bool { return lat[i] < lat[j] })
			t.Logf("BENCH payments on %s: %d submits, 8 at a time, in %v: %.0f payments/s, p50 %v p99 %v",
				name, n, took.Round(time.Millisecond), float64(n)/took.Seconds(), lat[n/2].Round(time.Millisecond), lat[n*99/100].Round(time.Millisecond))
		})
	}
}

// ints parses a space-separated list, or returns def when s is empty.
func ints(s string, def ...int) []int {
	if s == "" {
		return def
	}
	var out []int
	for _, f := range strings.Fields(s) {
		n, err := strconv.Atoi(f)
		if err == nil {
			out = append(out, n)
		}
	}
	return out
}
