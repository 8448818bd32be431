package payment

import (
	"context"
	"flag"
	"fmt"
	"os"
	"path/filepath"
	"runtime"
	"sort"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"github.com/tonevault/tonevault/capture"
	"github.com/tonevault/tonevault/internal/pan"
	"github.com/tonevault/tonevault/internal/secret"
	"github.com/tonevault/tonevault/psp"
	"github.com/tonevault/tonevault/psp/sim"
	"github.com/tonevault/tonevault/test/vaultserver"
	"github.com/tonevault/tonevault/tokenize"
)

var agents = flag.Int("agents", 0, "BenchmarkSubmit: payments submitted at once (0: GOMAXPROCS, which -cpu sets)")

// BenchmarkSubmit is what a payment's Submit costs without HTTP: a new card
// tokenized in a real Vault dev server (AppRole login with the gateway's
// policy) and authorized by psp-sim over the ISO 8583 connector. Run it
// with -cpu to vary the number of agents submitting at once, or -agents
// to set it apart from GOMAXPROCS (-cpu 2 -agents 8: eight agents on a
// 2-core gateway); it reports
// payments/s and the latency percentiles, and per payment: each Vault
// call's mean time (ms-<call>, calls of that kind per payment in
// n-<call>), the authorization's (ms-psp), and the CPU time spent by the
// Vault server (cpu-ms-vault) and by this process (cpu-ms-gateway: the
// gateway's side and psp-sim). With -v it logs the same breakdown as a
// table.
func BenchmarkSubmit(b *testing.B) {
	srv := vaultserver.Start(b)
	ctx := context.Background()
	cfg := tokenize.DefaultConfig()
	cfg.Address = srv.Addr
	res, err := tokenize.Setup(ctx, srv.Client, cfg)
	if err != nil {
		b.Fatal(err)
	}
	dir := b.TempDir()
	sid := filepath.Join(dir, "secret-id")
	if err := os.WriteFile(sid, []byte(res.SecretID), 0o600); err != nil {
		b.Fatal(err)
	}
	cfg.Auth.Method, cfg.Auth.RoleID, cfg.Auth.SecretIDFile = "approle", res.RoleID, sid
	var steps stepTimes
	v, err := tokenize.New(ctx, cfg, tokenize.Options{Observe: steps.observe})
	if err != nil {
		b.Fatal(err)
	}
	defer v.Close()
	acq, err := sim.Listen("127.0.0.1:0", sim.Config{})
	if err != nil {
		b.Fatal(err)
	}
	defer acq.Close()
	addrs := []string{acq.Addr(), acq.Addr(), acq.Addr(), acq.Addr()}
	conn, err := psp.NewISO(psp.Config{Addrs: addrs, Terminal: "TV000001", Merchant: "TONEVAULT0001"}, testStore(b))
	if err != nil {
		b.Fatal(err)
	}
	defer conn.Close()
	if err := conn.WaitReady(ctx); err != nil {
		b.Fatal(err)
	}
	p := &Service{Vault: v, PSP: conn}
	req := capture.PaymentRequest{Amount: 1999, Currency: "GBP", MerchantRef: "bench"}

	var seq atomic.Int64
	lat := make(chan time.Duration, b.N)
	vaultPID := childPID("vault")
	steps.reset()
	cpu0, vcpu0 := selfCPU(), procCPU(vaultPID)
	if *agents > 0 {
		procs := runtime.GOMAXPROCS(0)
		b.SetParallelism((*agents + procs - 1) / procs)
	}
	b.ResetTimer()
	start := time.Now()
	b.RunParallel(func(pb *testing.PB) {
		for pb.Next() {
			// A new card each time (the slow path in Vault): Visa test
			// range with a computed check digit.
			pan := newCard(seq.Add(1))
			c := &capture.Card{PAN: pan, Expiry: secret.New([]byte("1230")), CVV: secret.New([]byte("737")), Brand: capture.BrandVisa}
			t0 := time.Now()
			tok, err := p.Tokenize(ctx, c, req)
			if err == nil {
				var r capture.Result
				t1 := time.Now()
				r, err = p.Authorize(ctx, c, tok, req)
				steps.observe("psp", time.Since(t1), err)
				if err == nil && r.Outcome != capture.OutcomeApproved {
					err = fmt.Errorf("outcome %s %s", r.Outcome, r.Reason)
				}
			}
			lat <- time.Since(t0)
			c.PAN.Wipe()
			c.CVV.Wipe()
			if err != nil {
				b.Error(err)
				return
			}
		}
	})
	elapsed := time.Since(start)
	cpu, vcpu := selfCPU()-cpu0, procCPU(vaultPID)-vcpu0
	close(lat)
	var ds []time.Duration
	for d := range lat {
		ds = append(ds, d)
	}
	sort.Slice(ds, func(i, j int) bool { return ds[i] < ds[j] })
	if len(ds) > 0 {
		b.ReportMetric(float64(len(ds))/elapsed.Seconds(), "payments/s")
		b.ReportMetric(float64(ds[len(ds)/2].Microseconds())/1000, "p50-ms")
		b.ReportMetric(float64(ds[len(ds)*99/100].Microseconds())/1000, "p99-ms")
		steps.report(b, len(ds))
		if vaultPID > 0 {
			b.ReportMetric(ms(vcpu)/float64(len(ds)), "cpu-ms-vault")
		}
		b.ReportMetric(ms(cpu)/float64(len(ds)), "cpu-ms-gateway")
	}
}

// stepTimes adds up the time of each step of the payments: the tries of
// Vault calls (tokenize.Options.Observe) and the authorizations.
type stepTimes struct {
	mu    sync.Mutex
	steps map[string]*step
}

type step struct {
	n    int
	took time.Duration
}

func (s *stepTimes) observe(op string, took time.Duration, _ error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.steps == nil {
		s.steps = map[string]*step{}
	}
	st := s.steps[op]
	if st == nil {
		st = &step{}
		s.steps[op] = st
	}
	st.n++
	st.took += took
}

// reset forgets the login and the warm-up runs.
func (s *stepTimes) reset() {
	s.mu.Lock()
	s.steps = nil
	s.mu.Unlock()
}

// report gives, per payment, each step's mean time and how many calls of
// it there were.
func (s *stepTimes) report(b *testing.B, payments int) {
	s.mu.Lock()
	defer s.mu.Unlock()
	ops := make([]string, 0, len(s.steps))
	for op := range s.steps {
		ops = append(ops, op)
	}
	sort.Strings(ops)
	var total time.Duration
	calls := 0
	for _, op := range ops {
		st := s.steps[op]
		name := strings.ReplaceAll(op, " ", "-")
		b.ReportMetric(ms(st.took)/float64(payments), "ms-"+name)
		b.ReportMetric(float64(st.n)/float64(payments), "n-"+name)
		if testing.Verbose() {
			b.Logf("%-20s %5.2f calls/payment  %6.2f ms/call", op, float64(st.n)/float64(payments), ms(st.took)/float64(st.n))
		}
		total += st.took
		if op != "psp" {
			calls += st.n
		}
	}
	if testing.Verbose() {
		b.Logf("%-20s %5.2f calls/payment  %6.2f ms/payment (sum of the steps)", "all", float64(calls)/float64(payments), ms(total)/float64(payments))
	}
}

func ms(d time.Duration) float64 { return float64(d) / float64(time.Millisecond) }

// selfCPU is the user and system CPU time this process has used.
func selfCPU() time.Duration {
	var ru syscall.Rusage
	if err := syscall.Getrusage(syscall.RUSAGE_SELF, &ru); err != nil {
		return 0
	}
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
}

// childPID finds this process's child named comm (the Vault server that
// vaultserver started) in /proc; 0 if there is none or no /proc.
func childPID(comm string) int {
	ents, _ := os.ReadDir("/proc")
	for _, e := range ents {
		pid, err := strconv.Atoi(e.Name())
		if err != nil {
			continue
		}
		f := procStat(pid)
		// Fields after the command: state, ppid, ...
		if len(f) > 2 && f[0] == "("+comm+")" && f[2] == strconv.Itoa(os.Getpid()) {
			return pid
		}
	}
	return 0
}

// procCPU is the user and system CPU time process pid has used.
func procCPU(pid int) time.Duration {
	f := procStat(pid)
	if pid <= 0 || len(f) < 15 {
		return 0
	}
	// utime and stime, in clock ticks (USER_HZ, 100 on Linux).
	ut, _ := strconv.ParseInt(f[12], 10, 64)
	st, _ := strconv.ParseInt(f[13], 10, 64)
	return time.Duration(ut+st) * 10 * time.Millisecond
}

// procStat is /proc/pid/stat split in fields, the command (in
// parentheses, which may hold spaces) as the first.
func procStat(pid int) []string {
	b, err := os.ReadFile("/proc/" + strconv.Itoa(pid) + "/stat")
	if err != nil {
		return nil
	}
	s := string(b)
	i, j := strings.IndexByte(s, '('), strings.LastIndexByte(s, ')')
	if i < 0 || j < i {
		return nil
	}
	return append([]string{s[i : j+1]}, strings.Fields(s[j+1:])...)
}

// newCard returns a Luhn-valid 16-digit Visa number from the 4111 11 test
// range, unique per n.
func newCard(n int64) secret.Secret {
	b := []byte(fmt.Sprintf("411111%09d0", n%1_000_000_000))
	for d := byte('0'); d <= '9'; d++ {
		b[15] = d
		if pan.Luhn(b) {
			break
		}
	}
	return secret.Wrap(b)
}
