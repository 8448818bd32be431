package sip

import (
	"context"
	"errors"
	"fmt"
	"net"
	"net/netip"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/emiago/sipgo/sip"
	"go.uber.org/zap"
)

// Where requests to a target go (RFC 3263, without NAPTR): a numeric
// host, or a host name with a port, is its address or addresses (A and
// AAAA records); a host name with no port is its SRV records for the
// target's transport (_sip._udp, _sip._tcp, _sips._tcp), in priority
// order with weights shuffled as RFC 2782 says, each of its addresses on
// the record's port, and, without SRV records, its addresses on 5060
// (5061 for TLS). Over TLS the request goes to the name, not an address,
// so that the server's certificate is checked against it.

// dest is one place a request goes.
type dest struct {
	uri       sip.Uri // Request-URI (and To of a new dialog)
	addr      string  // host:port the request is sent to
	transport string  // "UDP", "TCP" or "TLS"
}

// key names the destination in health marks, logs and the target metric.
func (d dest) key() string { return strings.ToLower(d.transport) + ":" + d.addr }

// Resolver is what the gateway asks DNS; *net.Resolver is one.
type Resolver interface {
	LookupSRV(ctx context.Context, service, proto, name string) (string, []*net.SRV, error)
	LookupNetIP(ctx context.Context, network, host string) ([]netip.Addr, error)
}

// resolveTTL is how long a name's destinations are used before they are
// looked up again (net.Resolver does not report TTLs).
const resolveTTL = 30 * time.Second

// resolveTimeout bounds one resolution.
const resolveTimeout = 2 * time.Second

// routes are a trunk's resolved names and the health of its
// destinations.
type routes struct {
	res Resolver

	mu    sync.Mutex
	cache map[string]cachedDests
	down  map[string]time.Time // dest key → down until (zero: until a probe says up)
}

type cachedDests struct {
	dests []dest
	until time.Time
}

// downFor is how long a destination a call found dead stays behind the
// others, when no probe says it is up again sooner.
const downFor = 30 * time.Second

func newRoutes(res Resolver) *routes {
	if res == nil {
		res = net.DefaultResolver
	}
	return &routes{res: res, cache: map[string]cachedDests{}, down: map[string]time.Time{}}
}

// isDown reports whether key is marked down now.
func (r *routes) isDown(key string) bool {
	r.mu.Lock()
	defer r.mu.Unlock()
	until, ok := r.down[key]
	if ok && !until.IsZero() && time.Now().After(until) {
		delete(r.down, key)
		return false
	}
	return ok
}

// markDown marks key down for d (0: until marked up).
func (r *routes) markDown(key string, d time.Duration) {
	r.mu.Lock()
	defer r.mu.Unlock()
	if len(r.down) > 10000 {
		clear(r.down) // bounded: forget, try again
	}
	until := time.Time{}
	if d > 0 {
		until = time.Now().Add(d)
		if prev, ok := r.down[key]; ok && prev.IsZero() {
			until = prev // a probe's mark stays until a probe lifts it
		}
	}
	r.down[key] = until
}

func (r *routes) markUp(key string) {
	r.mu.Lock()
	defer r.mu.Unlock()
	delete(r.down, key)
}

// destinations are where requests to u go, in order.
func (r *routes) destinations(ctx context.Context, u sip.Uri) ([]dest, error) {
	transport := transportFor(u)
	ck := transport + " " + u.Host + ":" + strconv.Itoa(u.Port)
	now := time.Now()
	r.mu.Lock()
	c, ok := r.cache[ck]
	r.mu.Unlock()
	var hosts []dest // host:port pairs, a name or an address each
	if ok && now.Before(c.until) {
		hosts = c.dests
	} else {
		var err error
		if hosts, err = r.lookup(ctx, u, transport); err != nil {
			return nil, err
		}
		r.mu.Lock()
		if len(r.cache) > 1000 {
			clear(r.cache)
		}
		r.cache[ck] = cachedDests{dests: hosts, until: now.Add(resolveTTL)}
		r.mu.Unlock()
	}
	out := make([]dest, len(hosts))
	for i, h := range hosts {
		out[i] = dest{uri: u, addr: h.addr, transport: h.transport}
	}
	return out, nil
}

// lookup resolves u's host for transport.
func (r *routes) lookup(ctx context.Context, u sip.Uri, transport string) ([]dest, error) {
	ctx, cancel := context.WithTimeout(ctx, resolveTimeout)
	defer cancel()
	defPort := 5060
	if transport == "TLS" {
		defPort = 5061
	}
	if a, err := netip.ParseAddr(strings.Trim(u.Host, "[]")); err == nil {
		return []dest{{addr: netip.AddrPortFrom(a, uint16(cmpPort(u.Port, defPort))).String(), transport: transport}}, nil
	}
	if u.Port != 0 {
		return r.addrs(ctx, u.Host, u.Port, transport)
	}
	service, proto := "sip", "udp"
	switch transport {
	case "TCP":
		proto = "tcp"
	case "TLS":
		service, proto = "sips", "tcp"
	}
	_, srvs, err := r.res.LookupSRV(ctx, service, proto, u.Host)
	var dnsErr *net.DNSError
	if err != nil && !(errors.As(err, &dnsErr) && dnsErr.IsNotFound) {
		return nil, fmt.Errorf("sip: SRV _%s._%s.%s: %w", service, proto, u.Host, err)
	}
	if len(srvs) == 0 {
		return r.addrs(ctx, u.Host, defPort, transport)
	}
	var out []dest
	for _, s := range srvs {
		if s.Target == "." {
			continue // RFC 2782: the service is not offered there
		}
		ds, err := r.addrs(ctx, strings.TrimSuffix(s.Target, "."), int(s.Port), transport)
		if err != nil {
			continue // the other records may do
		}
		out = append(out, ds...)
	}
	if len(out) == 0 {
		return nil, fmt.Errorf("sip: SRV _%s._%s.%s: no target resolves", service, proto, u.Host)
	}
	return out, nil
}

func cmpPort(p, def int) int {
	if p == 0 {
		return def
	}
	return p
}

// addrs are host's addresses on port (the name itself over TLS).
func (r *routes) addrs(ctx context.Context, host string, port int, transport string) ([]dest, error) {
	if transport == "TLS" {
		return []dest{{addr: net.JoinHostPort(host, strconv.Itoa(port)), transport: transport}}, nil
	}
	ips, err := r.res.LookupNetIP(ctx, "ip", host)
	if err != nil {
		return nil, fmt.Errorf("sip: %s: %w", host, err)
	}
	out := make([]dest, 0, len(ips))
	for _, ip := range ips {
		out = append(out, dest{addr: netip.AddrPortFrom(ip.Unmap(), uint16(port)).String(), transport: transport})
	}
	return out, nil
}

// order puts the destinations that are up first, keeping their order
// otherwise, and drops repeats.
func (r *routes) order(ds []dest) []dest {
	seen := map[string]bool{}
	var up, down []dest
	for _, d := range ds {
		k := d.key()
		if seen[k] {
			continue
		}
		seen[k] = true
		if r.isDown(k) {
			down = append(down, d)
		} else {
			up = append(up, d)
		}
	}
	return append(up, down...)
}

// plan is where a request to uris goes: every destination of each, in
// order, those marked down last.
func (t *trunk) plan(ctx context.Context, uris []sip.Uri) ([]dest, error) {
	var all []dest
	var lastErr error
	for _, u := range uris {
		ds, err := t.routes.destinations(ctx, u)
		if err != nil {
			lastErr = err
			continue
		}
		all = append(all, ds...)
	}
	if len(all) == 0 {
		if lastErr == nil {
			lastErr = errNoTarget
		}
		return nil, lastErr
	}
	return t.routes.order(all), nil
}

// probe sends OPTIONS to every destination of the trunk's targets every
// ProbeInterval until stop is closed, and marks each up or down.
func (t *trunk) probe(stop <-chan struct{}, log *zap.Logger, m *Metrics) {
	tick := time.NewTicker(t.cfg.ProbeInterval)
	defer tick.Stop()
	for {
		t.probeOnce(log, m)
		select {
		case <-stop:
			return
		case <-tick.C:
		}
	}
}

// probeOnce probes every destination once, all at the same time.
func (t *trunk) probeOnce(log *zap.Logger, m *Metrics) {
	uris, err := t.targets("tonevault")
	if err != nil {
		return
	}
	for i := range uris {
		uris[i].User = "" // OPTIONS to the server, not to a user
	}
	ds, err := t.plan(context.Background(), uris)
	if err != nil {
		log.Warn("sip targets do not resolve", zap.String("trunk", t.name), zap.Error(err))
		return
	}
	var wg sync.WaitGroup
	for _, d := range ds {
		wg.Go(func() {
			up := t.ping(d)
			was := !t.routes.isDown(d.key())
			m.targetUp(t.name, d.key(), up)
			if up {
				t.routes.markUp(d.key())
			} else {
				t.routes.markDown(d.key(), 0)
			}
			if up != was {
				log.Info("sip target state", zap.String("trunk", t.name), zap.String("target", d.key()), zap.Bool("up", up))
			}
		})
	}
	wg.Wait()
}

// ping sends one OPTIONS to d and reports whether d answered (503 is
// not an answer: the server is there but takes nothing).
func (t *trunk) ping(d dest) bool { return t.pingWithin(d, t.failoverTimeout()) }

// pingWithin is ping with its own wait for the answer.
func (t *trunk) pingWithin(d dest, wait time.Duration) bool {
	req := sip.NewRequest(sip.OPTIONS, d.uri)
	from := &sip.FromHeader{Address: sip.Uri{Scheme: "sip", User: "tonevault", Host: t.addr.Addr().String(), Port: int(t.addr.Port())}, Params: sip.NewParams()}
	from.Params.Add("tag", sip.GenerateTagN(16))
	to := &sip.ToHeader{Address: d.uri, Params: sip.NewParams()}
	callID := sip.CallIDHeader(newSIPCallID(t.addr.Addr().String()))
	maxFwd := sip.MaxForwardsHeader(70)
	req.AppendHeader(from)
	req.AppendHeader(to)
	req.AppendHeader(&callID)
	req.AppendHeader(&sip.CSeqHeader{SeqNo: 1, MethodName: sip.OPTIONS})
	req.AppendHeader(&maxFwd)
	req.AppendHeader(sip.NewHeader("Allow", t.allow()))
	req.SetBody(nil)
	t.prepare(req, d.transport)
	req.SetDestination(d.addr)
	unreachable, stopWatch := t.watchUnreachable(d)
	defer stopWatch()
	ctx, cancel := context.WithTimeout(context.Background(), wait)
	defer cancel()
	tx, err := t.transaction(ctx, req)
	if err != nil {
		return false
	}
	defer tx.Terminate()
	for {
		select {
		case res := <-tx.Responses():
			if res.IsProvisional() {
				continue
			}
			return res.StatusCode != 503
		case <-tx.Done():
			return false
		case <-unreachable:
			return false
		case <-ctx.Done():
			return false
		}
	}
}

// failoverTimeout is the trunk's FailoverTimeout, or its default.
func (t *trunk) failoverTimeout() time.Duration {
	if t.cfg.FailoverTimeout > 0 {
		return t.cfg.FailoverTimeout
	}
	return defaultFailover
}

// watchUnreachable returns a channel closed when an ICMP error says d
// cannot be reached (UDP only), and a function that stops the watch.
func (t *trunk) watchUnreachable(d dest) (<-chan struct{}, func()) {
	ap, err := netip.ParseAddrPort(d.addr)
	if d.transport != "UDP" || err != nil || t.icmp == nil {
		return nil, func() {}
	}
	return t.icmp.watch(ap)
}

// icmpWatch hands ICMP errors for a destination to those waiting on it.
type icmpWatch struct {
	mu      sync.Mutex
	waiting map[netip.AddrPort]map[*chan struct{}]bool
}

func newICMPWatch() *icmpWatch {
	return &icmpWatch{waiting: map[netip.AddrPort]map[*chan struct{}]bool{}}
}

func (w *icmpWatch) watch(ap netip.AddrPort) (<-chan struct{}, func()) {
	ch := make(chan struct{})
	key := &ch
	ap = netip.AddrPortFrom(ap.Addr().Unmap(), ap.Port())
	w.mu.Lock()
	if w.waiting[ap] == nil {
		w.waiting[ap] = map[*chan struct{}]bool{}
	}
	w.waiting[ap][key] = true
	w.mu.Unlock()
	return ch, func() {
		w.mu.Lock()
		defer w.mu.Unlock()
		if m := w.waiting[ap]; m != nil {
			delete(m, key)
			if len(m) == 0 {
				delete(w.waiting, ap)
			}
		}
	}
}

// unreachable closes every channel waiting on ap.
func (w *icmpWatch) unreachable(ap netip.AddrPort) {
	ap = netip.AddrPortFrom(ap.Addr().Unmap(), ap.Port())
	w.mu.Lock()
	defer w.mu.Unlock()
	for key := range w.waiting[ap] {
		close(*key)
	}
	delete(w.waiting, ap)
}
