package cluster

import (
	"context"
	"io"
	"net"
	"net/http"
	"sort"
	"sync"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"go.uber.org/zap"
)

// Options are a Peers' run-time dependencies.
type Options struct {
	// OnDead is called, on its own goroutine, when a peer has not
	// answered a probe for Config.DeadAfter (counted from the start for
	// a peer never seen); once per death: again only after the peer
	// answered in between.
	OnDead     func(node string)
	Logger     *zap.Logger
	Registerer prometheus.Registerer // tonevault_cluster_peer_up{peer}; nil: none
	Now        func() time.Time
}

// Peers reaches the other nodes over mutual TLS and probes their health.
type Peers struct {
	cfg    Config
	tls    *TLS
	opts   Options
	log    *zap.Logger
	now    func() time.Time
	peers  map[string]*peer
	up     *prometheus.GaugeVec
	cancel context.CancelFunc
	wg     sync.WaitGroup
}

type peer struct {
	Peer
	client *http.Client

	mu       sync.Mutex
	lastSeen time.Time
	up, dead bool
}

// healthPath is what a probe asks: the peer listener serves the same
// /healthz as the public one (200 while the process runs).
const healthPath = "/healthz"

// NewPeers prepares the clients of c's peers; Start probes them.
func NewPeers(c Config, t *TLS, opts Options) *Peers {
	if opts.Logger == nil {
		opts.Logger = zap.NewNop()
	}
	if opts.Now == nil {
		opts.Now = time.Now
	}
	p := &Peers{cfg: c, tls: t, opts: opts, log: opts.Logger, now: opts.Now, peers: map[string]*peer{}}
	for _, pc := range c.Peers {
		tr := &http.Transport{
			DialContext:         (&net.Dialer{Timeout: 2 * time.Second, KeepAlive: 30 * time.Second}).DialContext,
			TLSClientConfig:     t.Client(pc.Name),
			TLSHandshakeTimeout: 2 * time.Second,
			ForceAttemptHTTP2:   true,
			MaxIdleConnsPerHost: 64,
			IdleConnTimeout:     90 * time.Second,
		}
		p.peers[pc.Name] = &peer{Peer: pc, client: &http.Client{Transport: tr}}
	}
	if opts.Registerer != nil {
		p.up = prometheus.NewGaugeVec(prometheus.GaugeOpts{
			Name: "tonevault_cluster_peer_up",
			Help: "1 while the peer (cluster.peers) answers its health probe, 0 otherwise.",
		}, []string{"peer"})
		opts.Registerer.MustRegister(p.up)
		for name := range p.peers {
			p.up.WithLabelValues(name).Set(0)
		}
	}
	return p
}

// Self is this node's name.
func (p *Peers) Self() string { return p.cfg.Node }

// Names are the peers' names, sorted.
func (p *Peers) Names() []string {
	out := make([]string, 0, len(p.peers))
	for n := range p.peers {
		out = append(out, n)
	}
	sort.Strings(out)
	return out
}

// Client is the HTTP client that reaches node, and the base URL of its
// peer listener ("https://host:port"); ok is false for a node that is
// not a peer.
func (p *Peers) Client(node string) (c *http.Client, base string, ok bool) {
	pe, ok := p.peers[node]
	if !ok {
		return nil, "", false
	}
	return pe.client, "https://" + pe.Addr, true
}

// Up reports whether node answered its last probe.
func (p *Peers) Up(node string) bool {
	pe, ok := p.peers[node]
	if !ok {
		return false
	}
	pe.mu.Lock()
	defer pe.mu.Unlock()
	return pe.up
}

// Start probes every peer each Config.ProbeInterval until Close.
func (p *Peers) Start() {
	ctx, cancel := context.WithCancel(context.Background())
	p.cancel = cancel
	start := p.now()
	for _, pe := range p.peers {
		pe.lastSeen = start
		p.wg.Add(1)
		go func() {
			defer p.wg.Done()
			p.probeLoop(ctx, pe)
		}()
	}
}

// Close stops the probes and closes idle connections.
func (p *Peers) Close() {
	if p.cancel != nil {
		p.cancel()
	}
	p.wg.Wait()
	for _, pe := range p.peers {
		pe.client.CloseIdleConnections()
	}
}

func (p *Peers) probeLoop(ctx context.Context, pe *peer) {
	t := time.NewTicker(p.cfg.ProbeInterval)
	defer t.Stop()
	for {
		ok := p.probe(ctx, pe)
		if ctx.Err() != nil {
			return
		}
		p.record(pe, ok)
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
	}
}

// probe asks pe's health once, within one probe interval.
func (p *Peers) probe(ctx context.Context, pe *peer) bool {
	ctx, cancel := context.WithTimeout(ctx, p.cfg.ProbeInterval)
	defer cancel()
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, "https://"+pe.Addr+healthPath, nil)
	if err != nil {
		return false
	}
	resp, err := pe.client.Do(req)
	if err != nil {
		return false
	}
	_, _ = io.Copy(io.Discard, io.LimitReader(resp.Body, 1<<10))
	resp.Body.Close()
	return resp.StatusCode == http.StatusOK
}

// record notes a probe's result and says when pe has died.
func (p *Peers) record(pe *peer, ok bool) {
	now := p.now()
	pe.mu.Lock()
	wasUp := pe.up
	pe.up = ok
	died := false
	if ok {
		pe.lastSeen, pe.dead = now, false
	} else if !pe.dead && now.Sub(pe.lastSeen) >= p.cfg.DeadAfter {
		pe.dead, died = true, true
	}
	pe.mu.Unlock()
	if p.up != nil {
		v := 0.0
		if ok {
			v = 1
		}
		p.up.WithLabelValues(pe.Name).Set(v)
	}
	switch {
	case ok && !wasUp:
		p.log.Info("cluster peer up", zap.String("peer", pe.Name))
	case !ok && wasUp:
		p.log.Warn("cluster peer not answering", zap.String("peer", pe.Name))
	}
	if died {
		p.log.Warn("cluster peer taken for dead", zap.String("peer", pe.Name), zap.Duration("unanswered", p.cfg.DeadAfter))
		if p.opts.OnDead != nil {
			p.wg.Add(1)
			go func() {
				defer p.wg.Done()
				p.opts.OnDead(pe.Name)
			}()
		}
	}
}
