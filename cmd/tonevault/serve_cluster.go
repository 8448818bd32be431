package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"go.uber.org/zap"

	"github.com/tonevault/tonevault/api"
	"github.com/tonevault/tonevault/capture"
	"github.com/tonevault/tonevault/cluster"
	"github.com/tonevault/tonevault/configs"
	"github.com/tonevault/tonevault/store"
)

// clusterNode is this gateway as a node of a cluster (cluster.node set):
// its peers, their probes, the peer listener and the routing of API
// commands to the node holding the call. nil for a gateway alone.
type clusterNode struct {
	cfg      cluster.Config
	peers    *cluster.Peers
	takeover func(ctx context.Context, node string) error // set by serve
	srv      *http.Server
	ln       net.Listener
	log      *zap.Logger
	stop     context.CancelFunc
	ctx      context.Context
}

// startCluster loads the node's TLS and prepares its peers; the probes
// and the listener start with listen. The widget token secret must be
// the same file on every node: a token minted by one is checked by
// whichever the widget reaches.
func startCluster(cfg configs.Config, reg prometheus.Registerer, log *zap.Logger) (*clusterNode, error) {
	if !cfg.Cluster.Enabled() {
		return nil, nil
	}
	if cfg.API.WidgetSecretFile == "" {
		return nil, errors.New("cluster: api.widget_secret_file must be set, to the same secret on every node (a widget token minted by one is checked by another)")
	}
	t, err := cluster.LoadTLS(cfg.Cluster)
	if err != nil {
		return nil, err
	}
	ctx, cancel := context.WithCancel(context.Background())
	n := &clusterNode{cfg: cfg.Cluster, log: log.Named("cluster"), ctx: ctx, stop: cancel}
	ln, err := net.Listen("tcp", cfg.Cluster.Listen)
	if err != nil {
		cancel()
		return nil, fmt.Errorf("cluster.listen: %w", err)
	}
	n.ln = ln
	n.srv = cfg.HTTP.Server(nil)
	n.srv.TLSConfig = t.Server()
	n.peers = cluster.NewPeers(cfg.Cluster, t, cluster.Options{Logger: n.log, Registerer: reg,
		OnDead: func(node string) {
			if err := n.takeover(n.ctx, node); err != nil && n.ctx.Err() == nil {
				n.log.Error("a dead node's payments were not ended", zap.String("node", node), zap.Error(err))
			}
		}})
	return n, nil
}

// serve starts the peer listener with h (the node's own handler: API and
// health, never forwarded again) and the probes; a peer taken for dead
// gets its live payments ended by takeover.
func (n *clusterNode) serve(h http.Handler, takeover func(ctx context.Context, node string) error) {
	n.srv.Handler = api.CleanPaths(api.PeerHandler(h))
	go func() {
		if err := n.srv.ServeTLS(n.ln, "", ""); err != nil && !errors.Is(err, http.ErrServerClosed) {
			n.log.Error("peer listener stopped", zap.Error(err))
		}
	}()
	n.takeover = takeover
	n.peers.Start()
}

// close stops the probes and the peer listener.
func (n *clusterNode) close() {
	if n == nil {
		return
	}
	n.stop()
	n.peers.Close()
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	_ = n.srv.Shutdown(ctx)
}

// endPaymentsOf ends the payments the store shows live under node, a peer
// taken for dead, as that node would at its next start: failed,
// gateway_restarted, with their webhooks. Another survivor doing the same
// at once writes nothing more (the store keeps the higher version). The
// store may be down (a PostgreSQL restart): tried again until it works or
// the node stops.
func endPaymentsOf(ctx context.Context, st *store.Store, node string, events func(capture.View) []store.OutboxEvent, log *zap.Logger) error {
	j := capture.NewJournal(st, capture.JournalOptions{Node: node, Events: events, Logger: log})
	wait := time.Second
	for {
		ended, err := j.EndInterrupted(ctx, time.Now())
		for _, v := range ended {
			log.Warn("payment of a dead node ended", zap.String("node", node), zap.String("payment_id", v.ID), zap.String("reason", v.Reason))
		}
		if err == nil {
			return nil
		}
		log.Warn("ending a dead node's payments failed; trying again", zap.String("node", node), zap.Error(err))
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-time.After(wait):
		}
		wait = min(2*wait, 30*time.Second)
	}
}

// paymentNode is where the API finds which node holds a payment: this
// one when it is in memory; otherwise the node the store names while the
// payment is live. An ended or unknown payment is answered here.
func paymentNode(mgr *capture.Manager, st *store.Store) api.PaymentNode {
	return func(ctx context.Context, id string) (string, error) {
		if _, ok := mgr.Get(id); ok {
			return "", nil
		}
		ctx, cancel := context.WithTimeout(ctx, 2*time.Second)
		defer cancel()
		p, err := st.GetPayment(ctx, id)
		switch {
		case errors.Is(err, store.ErrNotFound):
			return "", nil
		case err != nil:
			return "", err
		case p.Final:
			return "", nil
		}
		return p.Node, nil
	}
}

// front is the API as the public listener serves it: for a node of a
// cluster, behind the forwarder that sends each command to the node
// holding its call or payment.
func (n *clusterNode) front(p *payments, st *store.Store, cfg configs.Config, log *zap.Logger) http.Handler {
	if n == nil {
		return p.api
	}
	return api.NewForwarder(p.api, n.peers, paymentNode(p.mgr, st), cfg.API.MaxBodyBytes, log.Named("api"))
}

// listen serves the peers (mux: the node's health and metrics; the API
// is added to it) and starts probing them; the line "cluster ADDR" on
// stdout says where.
func (n *clusterNode) listen(stdout io.Writer, mux *http.ServeMux, p *payments, st *store.Store, cfg configs.Config, log *zap.Logger) {
	if n == nil {
		return
	}
	mux.Handle("/", p.api)
	events := api.WebhookEvents(cfg.API, log)
	n.serve(mux, func(ctx context.Context, node string) error {
		return endPaymentsOf(ctx, st, node, events, n.log)
	})
	fmt.Fprintf(stdout, "cluster %s %s\n", n.cfg.Node, n.ln.Addr())
	n.log.Info("cluster node started", zap.String("node", n.cfg.Node), zap.String("listen", n.ln.Addr().String()), zap.Strings("peers", n.peers.Names()))
}
