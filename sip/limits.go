package sip

import (
	"errors"
	"math"
	"net/netip"
	"strconv"
	"sync"
	"time"

	"github.com/emiago/sipgo/sip"
	"golang.org/x/time/rate"
)

// Limits is the "sip.limits" section: how much the gateway takes, in
// total and from one source, so that one flooding or misbehaving peer
// cannot keep another peer's calls out. A request over a limit gets 503
// with Retry-After and no audit record (a flood would fill the trail);
// the metric tonevault_sip_requests_limited_total counts them.
type Limits struct {
	// MaxCalls caps the calls in the gateway at once, ringing or answered
	// (default 500). It also sets the file descriptors serve keeps for
	// calls: FilesPerCall each.
	MaxCalls int `yaml:"max_calls"`
	// MaxCallsPerSource caps the calls one source has in the gateway at
	// once (default 400, so that another peer always finds room).
	MaxCallsPerSource int `yaml:"max_calls_per_source"`
	// RequestsPerSecond and Burst are a token bucket per source for
	// requests outside a dialog (INVITEs that start calls, OPTIONS,
	// REGISTER, ...): defaults 20/s, bursts of 40. Requests in a dialog
	// (re-INVITE, BYE, INFO, ...), ACK and CANCEL are not counted.
	RequestsPerSecond float64 `yaml:"requests_per_second"`
	Burst             int     `yaml:"burst"`
}

// FilesPerCall is the file descriptors a call may use at most: two RTP
// and two RTCP sockets (one pair per leg), and a TCP connection per leg
// when its peer uses TCP.
const FilesPerCall = 6

// Defaults of Limits.
const (
	DefaultMaxCalls          = 500
	DefaultMaxCallsPerSource = 400
	DefaultSourceRate        = 20
	DefaultSourceBurst       = 40
)

// DefaultLimits are the defaults of the "sip.limits" section.
func DefaultLimits() Limits {
	return Limits{MaxCalls: DefaultMaxCalls, MaxCallsPerSource: DefaultMaxCallsPerSource,
		RequestsPerSecond: DefaultSourceRate, Burst: DefaultSourceBurst}
}

// WithDefaults is l with its zero values set to the defaults: what the
// gateway applies.
func (l Limits) WithDefaults() Limits {
	d := DefaultLimits()
	if l.MaxCalls == 0 {
		l.MaxCalls = d.MaxCalls
	}
	if l.MaxCallsPerSource == 0 {
		l.MaxCallsPerSource = min(d.MaxCallsPerSource, l.MaxCalls)
	}
	if l.RequestsPerSecond == 0 {
		l.RequestsPerSecond = d.RequestsPerSecond
	}
	if l.Burst == 0 {
		l.Burst = max(d.Burst, int(l.RequestsPerSecond))
	}
	return l
}

func (l Limits) validate() error {
	switch {
	case l.MaxCalls < 0 || l.MaxCallsPerSource < 0 || l.Burst < 0 || l.RequestsPerSecond < 0:
		return errors.New("sip.limits: negative value")
	case l.MaxCallsPerSource > l.MaxCalls && l.MaxCalls > 0:
		return errors.New("sip.limits.max_calls_per_source: more than sip.limits.max_calls")
	}
	return nil
}

// maxSources bounds the table of sources. When it is full and nothing
// can be forgotten (every source has calls or an emptied bucket), new
// sources share one overflow entry: a spoofing flood from many
// addresses then competes only with itself and with other new sources.
const maxSources = 4096

// source is what the gateway knows of one peer address (an IPv4 address
// or an IPv6 /64).
type source struct {
	bucket *rate.Limiter
	// inInvite counts the calls whose INVITE is being handled (ringing);
	// calls holds the SIP Call-IDs of those handled, while they last.
	inInvite int
	calls    map[string]struct{}
}

// sources is the gateway's table of sources.
type sources struct {
	lim      Limits
	now      func() time.Time
	mu       sync.Mutex
	m        map[netip.Prefix]*source
	overflow *source
}

func newSources(lim Limits) *sources {
	s := &sources{lim: lim, now: time.Now, m: map[netip.Prefix]*source{}}
	s.overflow = s.newSource()
	return s
}

func (s *sources) newSource() *source {
	return &source{bucket: rate.NewLimiter(rate.Limit(s.lim.RequestsPerSecond), s.lim.Burst), calls: map[string]struct{}{}}
}

func sourceKey(a netip.Addr) netip.Prefix {
	a = a.Unmap()
	if a.Is6() {
		p, _ := a.Prefix(64)
		return p
	}
	return netip.PrefixFrom(a, a.BitLen())
}

// get returns the entry of a; s.mu is held.
func (s *sources) get(a netip.Addr, now time.Time, live func(string) bool) *source {
	k := sourceKey(a)
	if src, ok := s.m[k]; ok {
		return src
	}
	if len(s.m) >= maxSources {
		// Forget sources that are back to a full bucket and have no
		// call: a new entry would be the same.
		for k, src := range s.m {
			if src.count(live) == 0 && src.bucket.TokensAt(now) >= float64(s.lim.Burst) {
				delete(s.m, k)
			}
		}
		if len(s.m) >= maxSources {
			return s.overflow
		}
	}
	src := s.newSource()
	s.m[k] = src
	return src
}

// count is the source's calls in the gateway, forgetting those that
// ended; live reports whether a SIP Call-ID is still a call's.
func (src *source) count(live func(string) bool) int {
	for id := range src.calls {
		if !live(id) {
			delete(src.calls, id)
		}
	}
	return src.inInvite + len(src.calls)
}

// limitReason is why a request was answered 503: the reason label of
// tonevault_sip_requests_limited_total.
type limitReason string

const (
	limitedRate        limitReason = "rate"
	limitedCalls       limitReason = "max_calls"
	limitedSourceCalls limitReason = "max_calls_per_source"
	limitedDraining    limitReason = "draining"
)

// allow takes a token of a's bucket for an out-of-dialog request. When
// none is left it returns the seconds until one is.
func (s *sources) allow(a netip.Addr, live func(string) bool) (bool, int) {
	s.mu.Lock()
	defer s.mu.Unlock()
	now := s.now()
	src := s.get(a, now, live)
	if src.bucket.AllowN(now, 1) {
		return true, 0
	}
	wait := (1 - src.bucket.TokensAt(now)) / s.lim.RequestsPerSecond
	return false, max(1, int(math.Ceil(wait)))
}

// admit counts a new call from a before its INVITE is handled, unless a
// has its share of calls already (the token was taken by allow). total
// is the gateway's calls at the moment. The returned function is called
// when the INVITE's handler returns.
func (s *sources) admit(a netip.Addr, sipCallID string, total int, live func(string) bool) (done func(), why limitReason) {
	if total >= s.lim.MaxCalls {
		return nil, limitedCalls
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	src := s.get(a, s.now(), live)
	if src.count(live) >= s.lim.MaxCallsPerSource {
		return nil, limitedSourceCalls
	}
	src.inInvite++
	return func() {
		s.mu.Lock()
		defer s.mu.Unlock()
		src.inInvite--
		if live(sipCallID) {
			src.calls[sipCallID] = struct{}{}
		}
	}, ""
}

// limit applies the limits to a request the trunk t allowed from a, and
// runs h when they let it through. It answers 503 otherwise.
func (g *Gateway) limit(t *trunk, a netip.Addr, req *sip.Request, tx sip.ServerTransaction, h func(*trunk, *sip.Request, sip.ServerTransaction)) {
	if req.IsAck() || req.IsCancel() || inDialog(req) {
		h(t, req, tx)
		return
	}
	live := func(id string) bool { return g.lookup(id) != nil }
	if ok, retry := g.sources.allow(a, live); !ok {
		g.overLimit(t, req, tx, limitedRate, retry)
		return
	}
	if !req.IsInvite() {
		h(t, req, tx)
		return
	}
	g.mu.Lock()
	draining, total := g.draining || g.closing, len(g.calls)/2
	g.mu.Unlock()
	if draining {
		g.overLimit(t, req, tx, limitedDraining, 0)
		return
	}
	id := ""
	if cid := req.CallID(); cid != nil {
		id = cid.Value()
	}
	done, why := g.sources.admit(a, id, total, live)
	if done == nil {
		g.overLimit(t, req, tx, why, 5)
		return
	}
	defer done()
	h(t, req, tx)
}

// inDialog reports whether req belongs to a dialog (its To has a tag).
func inDialog(req *sip.Request) bool {
	to := req.To()
	if to == nil {
		return false
	}
	tag, _ := to.Params.Get("tag")
	return tag != ""
}

// overLimit answers 503 with Retry-After (none when draining: the peer
// should go elsewhere, RFC 3263) and counts it.
func (g *Gateway) overLimit(t *trunk, req *sip.Request, tx sip.ServerTransaction, why limitReason, retry int) {
	g.metrics.limited(t.name, string(why))
	res := sip.NewResponseFromRequest(req, 503, "Service Unavailable", nil)
	if retry > 0 {
		res.AppendHeader(sip.NewHeader("Retry-After", strconv.Itoa(retry)))
	}
	_ = tx.Respond(res)
}
