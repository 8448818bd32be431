package api

import (
	"bytes"
	"context"
	"encoding/json"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"net/http/httputil"
	"net/url"
	"strings"
	"sync"
	"time"

	"go.uber.org/zap"
)

// Cluster is what a Forwarder needs of the cluster; *cluster.Peers
// satisfies it.
type Cluster interface {
	Self() string    // this node's name
	Names() []string // the peers' names
	// Client reaches a peer's listener (mutual TLS) at base
	// ("https://host:port").
	Client(node string) (c *http.Client, base string, ok bool)
	CallNode(callID string) string // the node a call id names, or ""
}

// PaymentNode says which node holds a payment that is live: "" when it
// is this node's, ended, or unknown, which this node answers itself
// (from the store when it is not in memory). An error (the store does
// not answer) is a 503: answering here could act on a payment another
// node holds.
type PaymentNode func(ctx context.Context, id string) (string, error)

// Forwarder sends a call's and a payment's commands to the node of the
// cluster that holds them, so that the API works on any node: the CRM
// and the widget talk to whichever node they reach. A call's node is in
// its id; a payment's is in the store. The owner checks the client's
// credential itself, as if the client had come to it. GET /v1/calls asks
// every node and merges the answers. Requests that came from a peer
// (PeerHandler) are never forwarded again.
type Forwarder struct {
	next     http.Handler
	cluster  Cluster
	payNode  PaymentNode
	maxBody  int64
	log      *zap.Logger
	mu       sync.Mutex
	proxies  map[string]*httputil.ReverseProxy
	fallback http.Handler // next, for a GET whose owner does not answer
}

// NewForwarder serves next (the node's API) with cluster routing in front.
func NewForwarder(next http.Handler, c Cluster, payNode PaymentNode, maxBody int64, log *zap.Logger) *Forwarder {
	if log == nil {
		log = zap.NewNop()
	}
	if maxBody <= 0 {
		maxBody = defaultMaxBody
	}
	return &Forwarder{next: next, cluster: c, payNode: payNode, maxBody: maxBody, log: log.Named("forward"),
		proxies: map[string]*httputil.ReverseProxy{}, fallback: next}
}

// fromPeerKey marks a request a peer forwarded.
type fromPeerKey struct{}

// PeerHandler serves next to the peers' listener (mutual TLS, so every
// client is a peer): their requests are answered here, never forwarded
// again, and the address they were forwarded for (X-Forwarded-For, set by
// the forwarding node) stands as the request's origin, for rate limits
// and the audit trail.
func PeerHandler(next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if xff := r.Header.Get("X-Forwarded-For"); xff != "" {
			ip := strings.TrimSpace(xff[strings.LastIndexByte(xff, ',')+1:])
			if net.ParseIP(ip) != nil {
				r.RemoteAddr = net.JoinHostPort(ip, "0")
			}
		}
		next.ServeHTTP(w, r.WithContext(context.WithValue(r.Context(), fromPeerKey{}, true)))
	})
}

func fromPeer(r *http.Request) bool {
	v, _ := r.Context().Value(fromPeerKey{}).(bool)
	return v
}

func (f *Forwarder) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	if fromPeer(r) {
		f.next.ServeHTTP(w, r)
		return
	}
	node, ok := f.owner(w, r)
	switch {
	case !ok: // answered
	case node != "" && node != f.cluster.Self():
		f.forward(w, r, node)
	default:
		f.next.ServeHTTP(w, r)
	}
}

// owner names the node that should answer r, "" for this one; ok is
// false when r was answered already (the merged call list, a body too
// large to read).
func (f *Forwarder) owner(w http.ResponseWriter, r *http.Request) (node string, ok bool) {
	parts := strings.Split(strings.TrimPrefix(r.URL.Path, "/"), "/")
	switch {
	case len(parts) == 2 && parts[0] == "v1" && parts[1] == "calls" && r.Method == http.MethodGet:
		f.listCalls(w, r)
		return "", false
	case len(parts) >= 3 && parts[0] == "v1" && parts[1] == "calls":
		return f.cluster.CallNode(parts[2]), true
	case len(parts) >= 3 && parts[0] == "v1" && parts[1] == "payments" && f.payNode != nil:
		node, err := f.payNode(r.Context(), parts[2])
		if err != nil {
			f.log.Warn("cannot tell which node holds a payment", zap.Error(err))
			w.Header().Set("Retry-After", "1")
			writeProblem(w, r, http.StatusServiceUnavailable, "unavailable", "the gateway's database is unavailable; try again")
			return "", false
		}
		return node, true
	case len(parts) == 2 && parts[0] == "v1" && parts[1] == "widget-tokens" && r.Method == http.MethodPost:
		// A widget token is minted where its call is known; the body
		// names the call.
		body, err := io.ReadAll(io.LimitReader(r.Body, f.maxBody+1))
		r.Body.Close()
		if err != nil {
			writeProblem(w, r, http.StatusBadRequest, "bad-request", "the request body could not be read")
			return "", false
		}
		r.Body = io.NopCloser(bytes.NewReader(body))
		r.ContentLength = int64(len(body))
		var req struct {
			CallID string `json:"call_id"`
		}
		if json.Unmarshal(body, &req) != nil {
			return "", true // the API says what is wrong with it
		}
		return f.cluster.CallNode(req.CallID), true
	}
	return "", true
}

// proxy is the reverse proxy to node, made once.
func (f *Forwarder) proxy(node string) *httputil.ReverseProxy {
	f.mu.Lock()
	defer f.mu.Unlock()
	if p, ok := f.proxies[node]; ok {
		return p
	}
	c, base, ok := f.cluster.Client(node)
	if !ok {
		return nil
	}
	target, err := url.Parse(base)
	if err != nil {
		return nil
	}
	p := &httputil.ReverseProxy{
		Rewrite: func(pr *httputil.ProxyRequest) {
			pr.SetURL(target)
			pr.SetXForwarded()
			pr.Out.Host = pr.In.Host
		},
		Transport: c.Transport,
		// Event streams go through as they are written.
		FlushInterval: -1,
		ErrorHandler: func(w http.ResponseWriter, r *http.Request, err error) {
			f.log.Warn("peer did not answer a forwarded request", zap.String("peer", node), zap.String("method", r.Method), zap.Error(err))
			if r.Method == http.MethodGet && strings.HasPrefix(r.URL.Path, "/v1/payments/") && !strings.HasSuffix(r.URL.Path, "/events") {
				// The store has the payment as its node last wrote it.
				f.fallback.ServeHTTP(w, r)
				return
			}
			w.Header().Set("Retry-After", "1")
			writeProblem(w, r, http.StatusServiceUnavailable, "unavailable", "the gateway holding this call does not answer")
		},
	}
	f.proxies[node] = p
	return p
}

func (f *Forwarder) forward(w http.ResponseWriter, r *http.Request, node string) {
	p := f.proxy(node)
	if p == nil {
		// A node this one does not know: its calls are nowhere to reach.
		writeProblem(w, r, http.StatusNotFound, "not-found", "no such call")
		return
	}
	if strings.HasSuffix(r.URL.Path, "/events") {
		// An event stream outlasts the server's write timeout: each
		// write gets a deadline of its own instead, as the owner's do.
		w = &streamWriter{ResponseWriter: w, rc: http.NewResponseController(w)}
	}
	p.ServeHTTP(w, r)
}

// streamWriter sets a write deadline before each write of a forwarded
// event stream.
type streamWriter struct {
	http.ResponseWriter
	rc *http.ResponseController
}

func (s *streamWriter) Write(b []byte) (int, error) {
	_ = s.rc.SetWriteDeadline(time.Now().Add(streamWriteTimeout))
	return s.ResponseWriter.Write(b)
}

func (s *streamWriter) WriteHeader(code int) {
	_ = s.rc.SetWriteDeadline(time.Now().Add(streamWriteTimeout))
	s.ResponseWriter.WriteHeader(code)
}

func (s *streamWriter) Flush() { _ = s.rc.Flush() }

func (s *streamWriter) Unwrap() http.ResponseWriter { return s.ResponseWriter }

// listCalls answers GET /v1/calls with every node's calls: this node's
// answer, then each peer's, merged. A peer that does not answer adds
// nothing (a node that died has dropped its calls). An answer that is
// not a list (a refused credential, a bad filter) is returned as it is.
func (f *Forwarder) listCalls(w http.ResponseWriter, r *http.Request) {
	local := httptest.NewRecorder()
	f.next.ServeHTTP(local, r)
	if local.Code != http.StatusOK {
		copyRecorded(w, local)
		return
	}
	var all callList
	if err := json.Unmarshal(local.Body.Bytes(), &all); err != nil {
		copyRecorded(w, local)
		return
	}
	names := f.cluster.Names()
	lists := make([]callList, len(names))
	var wg sync.WaitGroup
	for i, node := range names {
		wg.Add(1)
		go func() {
			defer wg.Done()
			lists[i] = f.peerCalls(r, node)
		}()
	}
	wg.Wait()
	for _, l := range lists {
		all.Calls = append(all.Calls, l.Calls...)
	}
	writeJSON(w, http.StatusOK, all)
}

func (f *Forwarder) peerCalls(r *http.Request, node string) callList {
	c, base, ok := f.cluster.Client(node)
	if !ok {
		return callList{}
	}
	req, err := http.NewRequestWithContext(r.Context(), http.MethodGet, base+r.URL.RequestURI(), nil)
	if err != nil {
		return callList{}
	}
	req.Header.Set("Authorization", r.Header.Get("Authorization"))
	if ip := origin(r); ip != "" {
		req.Header.Set("X-Forwarded-For", ip)
	}
	resp, err := c.Do(req)
	if err != nil {
		f.log.Debug("peer left out of the call list", zap.String("peer", node), zap.Error(err))
		return callList{}
	}
	defer resp.Body.Close()
	var l callList
	if resp.StatusCode != http.StatusOK || json.NewDecoder(io.LimitReader(resp.Body, 64<<20)).Decode(&l) != nil {
		return callList{}
	}
	return l
}

func copyRecorded(w http.ResponseWriter, rec *httptest.ResponseRecorder) {
	for k, v := range rec.Header() {
		w.Header()[k] = v
	}
	w.WriteHeader(rec.Code)
	_, _ = w.Write(rec.Body.Bytes())
}
