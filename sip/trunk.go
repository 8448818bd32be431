package sip

import (
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/netip"
	"strings"
	"sync"
	"time"

	"github.com/emiago/sipgo"
	"github.com/emiago/sipgo/sip"

	"github.com/tonevault/tonevault/media"
)

// trunk is one side's SIP stack: its own sipgo user agent, so that its
// requests leave from its own listening socket with its own Via and
// Contact.
type trunk struct {
	name string
	leg  media.Leg
	cfg  TrunkConfig
	ua   *sipgo.UserAgent
	srv  *sipgo.Server
	cli  *sipgo.Client
	addr netip.AddrPort // bound address (port resolved)
	udp  net.PacketConn
	tcp  net.Listener
	// SIP over TLS: its own port, certificates read again when their
	// files change.
	tlsLn   net.Listener
	tlsAddr netip.AddrPort
	tlsFile *tlsFiles

	noTCPMu sync.Mutex
	noTCP   map[string]time.Time // destinations that refused TCP, until when

	routes *routes    // resolved targets and their health
	icmp   *icmpWatch // ICMP errors on the UDP socket, by destination
	stop   chan struct{}
}

// maxUDPRequest is RFC 3261 18.1.1's bound: a request larger than 1300
// bytes, the path MTU being unknown, goes over a congestion-controlled
// transport (TCP) when the UDP one was chosen.
const maxUDPRequest = 1300

// tcpDialTimeout bounds the connection attempt of a request moved to TCP
// for its size: a peer that drops TCP instead of refusing it gets the
// request over UDP after this.
const tcpDialTimeout = 2 * time.Second

// noTCPMemory is how long a destination that refused TCP gets large
// requests over UDP without another attempt.
const noTCPMemory = 5 * time.Minute

// maxUDPMessage is the largest UDP payload (65535 less the IPv4 and UDP
// headers).
const maxUDPMessage = 65507

func init() {
	// sipgo refuses to write any UDP message over UDPMTUSize-200 bytes,
	// responses included. RFC 3261 18.2.2 sends a response back over the
	// transport its request came on, whatever its size (only requests
	// move to TCP, by trunk.transaction), and a 200 OK behind an SBC
	// chain (three Vias, four Record-Routes) is over 1300 bytes: refused,
	// the caller would hear ringing forever. sipgo's maintainer names
	// raising the variable as the way to allow it
	// (github.com/emiago/sipgo/pull/208).
	sip.UDPMTUSize = maxUDPMessage + 200
	// And read what RFC 3261 18.1.1 says must be read: a datagram up to
	// its maximum size.
	sip.TransportBufferReadSize = 65535
}

func newTrunk(name string, leg media.Leg, cfg TrunkConfig, userAgent string, log *slog.Logger, res Resolver) (*trunk, error) {
	if err := cfg.validate("sip.trunks." + name); err != nil {
		return nil, fmt.Errorf("sip: %w", err)
	}
	t := &trunk{name: name, leg: leg, cfg: cfg, routes: newRoutes(res), icmp: newICMPWatch(), stop: make(chan struct{})}
	if t.hasTransport("tls") {
		f, err := newTLSFiles(cfg.TLS, "sip.trunks."+name, log.With("trunk", name))
		if err != nil {
			return nil, fmt.Errorf("sip: %w", err)
		}
		t.tlsFile = f
	}
	if err := t.bind(); err != nil {
		return nil, err
	}
	host := t.addr.Addr().String()
	uaOpts := []sipgo.UserAgentOption{
		sipgo.WithUserAgent(userAgent),
		sipgo.WithUserAgentHostname(host),
		sipgo.WithUserAgentTransportLayerOptions(sip.WithTransportLayerLogger(log)),
		sipgo.WithUserAgentTransactionLayerOptions(sip.WithTransactionLayerLogger(log)),
	}
	if t.tlsFile != nil {
		uaOpts = append(uaOpts, sipgo.WithUserAgenTLSConfig(t.tlsFile.clientConfig()))
	}
	ua, err := sipgo.NewUA(uaOpts...)
	if err != nil {
		t.closeSockets()
		return nil, err
	}
	t.ua = ua
	if t.srv, err = sipgo.NewServer(ua, sipgo.WithServerLogger(log)); err != nil {
		t.close()
		return nil, err
	}
	if t.cli, err = sipgo.NewClient(ua, sipgo.WithClientLogger(log), sipgo.WithClientHostname(host), sipgo.WithClientPort(int(t.addr.Port()))); err != nil {
		t.close()
		return nil, err
	}
	return t, nil
}

func (t *trunk) hasTransport(tp string) bool {
	if len(t.cfg.Transports) == 0 {
		return tp != "tls" // the default is udp and tcp
	}
	for _, x := range t.cfg.Transports {
		if strings.EqualFold(x, tp) {
			return true
		}
	}
	return false
}

// bind opens the trunk's sockets; with port 0, UDP and TCP get the same
// port (tried a few times, since another process may take it between).
func (t *trunk) bind() error {
	udp, tcp := t.hasTransport("udp"), t.hasTransport("tcp")
	if !udp && !tcp && !t.hasTransport("tls") {
		return fmt.Errorf("sip: trunk %s: no transport (want udp, tcp and/or tls)", t.name)
	}
	for _, tp := range t.cfg.Transports {
		if !strings.EqualFold(tp, "udp") && !strings.EqualFold(tp, "tcp") && !strings.EqualFold(tp, "tls") {
			return fmt.Errorf("sip: trunk %s: transport %q not supported (udp, tcp, tls)", t.name, tp)
		}
	}
	if t.tlsFile != nil {
		l, err := net.Listen("tcp", netip.AddrPortFrom(t.cfg.Listen.Addr(), t.cfg.TLS.Port).String())
		if err != nil {
			return fmt.Errorf("sip: trunk %s: tls: %w", t.name, err)
		}
		t.tlsAddr = netip.AddrPortFrom(t.cfg.Listen.Addr(), uint16(l.Addr().(*net.TCPAddr).Port))
		t.tlsLn = tls.NewListener(l, t.tlsFile.serverConfig())
		if !udp && !tcp {
			t.addr = t.tlsAddr
			return nil
		}
	}
	var lastErr error
	for range 10 {
		port := t.cfg.Listen.Port()
		if udp {
			c, err := net.ListenPacket("udp", t.cfg.Listen.String())
			if err != nil {
				t.closeSockets()
				return fmt.Errorf("sip: trunk %s: %w", t.name, err)
			}
			t.udp = c
			port = uint16(c.LocalAddr().(*net.UDPAddr).Port)
		}
		if tcp {
			l, err := net.Listen("tcp", netip.AddrPortFrom(t.cfg.Listen.Addr(), port).String())
			if err != nil {
				t.closeSockets()
				lastErr = fmt.Errorf("sip: trunk %s: %w", t.name, err)
				if t.cfg.Listen.Port() == 0 && udp {
					continue
				}
				return lastErr
			}
			t.tcp = l
			port = uint16(l.Addr().(*net.TCPAddr).Port)
		}
		t.addr = netip.AddrPortFrom(t.cfg.Listen.Addr(), port)
		return nil
	}
	return lastErr
}

// serve runs the listeners until they are closed.
func (t *trunk) serve() {
	if t.udp != nil {
		// ICMP errors for what the socket sends (port or host
		// unreachable) end the wait for a dead target at once.
		go func() { _ = t.srv.ServeUDP(watchICMP(t.udp, t.icmp.unreachable)) }()
	}
	if t.tcp != nil {
		go func() { _ = t.srv.ServeTCP(t.tcp) }()
	}
	if t.tlsLn != nil {
		go func() { _ = t.srv.ServeTLS(t.tlsLn) }()
	}
	// Requests leave from the UDP listener only once sipgo has put it in
	// its connection pool; until then it would try to bind the port again.
	if t.udp != nil {
		pool := t.ua.TransportLayer().Pool("udp")
		for i := 0; pool != nil && pool.Size() == 0 && i < 5000; i++ {
			time.Sleep(time.Millisecond)
		}
	}
}

func (t *trunk) closeSockets() {
	if t.udp != nil {
		t.udp.Close()
	}
	if t.tcp != nil {
		t.tcp.Close()
	}
	if t.tlsLn != nil {
		t.tlsLn.Close()
	}
}

func (t *trunk) close() {
	select {
	case <-t.stop:
	default:
		close(t.stop)
	}
	t.closeSockets()
	if t.ua != nil {
		t.ua.Close()
	}
}

// allowed reports whether a request from src (host:port) may come in.
func (t *trunk) allowed(src string) (netip.Addr, bool) {
	ap, err := netip.ParseAddrPort(src)
	if err != nil {
		return netip.Addr{}, false
	}
	a := ap.Addr().Unmap()
	for _, p := range t.cfg.Allow {
		if p.Contains(a) {
			return a, true
		}
	}
	return a, false
}

// allow is the Allow header of the trunk's requests and responses.
func (t *trunk) allow() string {
	if t.leg == media.Carrier {
		return allowCarrier
	}
	return allowMethods
}

// transaction sends req, prepared by prepare, in a client transaction.
// A UDP request over maxUDPRequest bytes goes over TCP instead (RFC 3261
// 18.1.1, with its top Via saying so) when the trunk has TCP and the
// destination accepts a connection; one that refuses gets it over UDP,
// as RFC 3261 allows then, and keeps getting large requests over UDP for
// noTCPMemory.
func (t *trunk) transaction(ctx context.Context, req *sip.Request) (sip.ClientTransaction, error) {
	// Build the request as sipgo would (Via, Max-Forwards...) so that its
	// size is the size sent.
	if err := t.build(t.cli, req); err != nil {
		return nil, err
	}
	if !t.tooBigForUDP(req) {
		return t.cli.TransactionRequest(ctx, req, t.build)
	}
	dest := req.Destination()
	laddr := req.Laddr
	setTransport(req, "TCP")
	req.Laddr = sip.Addr{}
	dctx, cancel := context.WithTimeout(ctx, tcpDialTimeout)
	tx, err := t.cli.TransactionRequest(dctx, req, t.build)
	cancel() // only the dial used it
	if err == nil {
		return tx, nil
	}
	t.refusedTCP(dest)
	setTransport(req, "UDP")
	req.Laddr = laddr
	return t.cli.TransactionRequest(ctx, req, t.build)
}

// build completes a request as sipgo does; over TLS its Via names the
// trunk's TLS port, where a response would come if the connection were
// lost (RFC 3261 18.2.2), not the UDP one sipgo puts there.
func (t *trunk) build(c *sipgo.Client, req *sip.Request) error {
	if err := sipgo.ClientRequestBuild(c, req); err != nil {
		return err
	}
	if v := req.Via(); v != nil && strings.EqualFold(req.Transport(), "TLS") && t.tlsAddr.IsValid() {
		v.Port = int(t.tlsAddr.Port())
	}
	return nil
}

// tooBigForUDP reports whether req is to go over UDP but is too large
// for it, and the trunk can send it over TCP.
func (t *trunk) tooBigForUDP(req *sip.Request) bool {
	if !strings.EqualFold(req.Transport(), "UDP") || t.tcp == nil || len(req.String()) <= maxUDPRequest {
		return false
	}
	dest := req.Destination()
	t.noTCPMu.Lock()
	defer t.noTCPMu.Unlock()
	until, ok := t.noTCP[dest]
	if ok && time.Now().Before(until) {
		return false
	}
	delete(t.noTCP, dest)
	return true
}

func (t *trunk) refusedTCP(dest string) {
	t.noTCPMu.Lock()
	defer t.noTCPMu.Unlock()
	if t.noTCP == nil || len(t.noTCP) > 10000 {
		t.noTCP = map[string]time.Time{} // bounded: forget, try again
	}
	t.noTCP[dest] = time.Now().Add(noTCPMemory)
}

// setTransport sets the transport of a built request and of its top Via.
func setTransport(req *sip.Request, tp string) {
	req.SetTransport(tp)
	if v := req.Via(); v != nil {
		v.Transport = tp
	}
}

// contact is the gateway's Contact on this trunk for a transport. Over
// TLS it is the TLS port with transport=tls, and a sips: URI when the
// dialog was made with one (RFC 5630: a SIPS dialog's Contact is SIPS).
func (t *trunk) contact(transport string, sips bool) *sip.ContactHeader {
	u := sip.Uri{Scheme: "sip", User: "tonevault", Host: t.addr.Addr().String(), Port: int(t.addr.Port())}
	switch {
	case strings.EqualFold(transport, "TLS") && sips:
		u.Scheme, u.Port = "sips", int(t.tlsAddr.Port())
	case strings.EqualFold(transport, "TLS"):
		u.Port = int(t.tlsAddr.Port())
		u.UriParams = sip.NewParams()
		u.UriParams.Add("transport", "tls")
	case strings.EqualFold(transport, "TCP"):
		u.UriParams = sip.NewParams()
		u.UriParams.Add("transport", "tcp")
	}
	return &sip.ContactHeader{Address: u}
}

// prepare makes a request leave from the trunk's socket: over UDP the
// listening socket itself (so the peer sees the trunk's port), over TCP a
// new or reused connection.
func (t *trunk) prepare(req *sip.Request, transport string) {
	if transport == "" {
		transport = "UDP"
	}
	req.SetTransport(strings.ToUpper(transport))
	if strings.EqualFold(transport, "UDP") {
		req.Laddr = sip.Addr{IP: net.IP(t.addr.Addr().AsSlice()), Port: int(t.addr.Port()), Hostname: t.addr.Addr().String()}
	}
}

// errNoTarget: a call would leave through a trunk with no target.
var errNoTarget = errors.New("sip: no target configured for this trunk")

// target is the Request-URI of a new call leaving through the trunk
// when its first target answers.
func (t *trunk) target(in *sip.Request) (sip.Uri, error) {
	us, err := t.targets(in.Recipient.User)
	if err != nil {
		return sip.Uri{}, err
	}
	return us[0], nil
}

// targets are the Request-URIs of a new call leaving through the trunk,
// to be tried in order: Target, then Failover. user goes where they say
// {user}.
func (t *trunk) targets(user string) ([]sip.Uri, error) {
	if t.cfg.Target == "" {
		return nil, errNoTarget
	}
	var out []sip.Uri
	for _, s := range append([]string{t.cfg.Target}, t.cfg.Failover...) {
		if strings.Contains(s, "{user}") && !safeUser(user) {
			return nil, fmt.Errorf("sip: Request-URI user %q cannot be routed", user)
		}
		var u sip.Uri
		s = strings.ReplaceAll(s, "{user}", user)
		if err := sip.ParseUri(s, &u); err != nil {
			return nil, fmt.Errorf("sip: target %q: %w", s, err)
		}
		out = append(out, u)
	}
	return out, nil
}

// transportFor is the transport of requests to u: TLS for a sips: URI,
// else its transport parameter, else UDP.
func transportFor(u sip.Uri) string {
	if strings.EqualFold(u.Scheme, "sips") {
		return "TLS"
	}
	if u.UriParams != nil {
		if tp, ok := u.UriParams.Get("transport"); ok && tp != "" {
			return strings.ToUpper(tp)
		}
	}
	return "UDP"
}

// safeUser reports whether a Request-URI user part may be put into a
// target URI: dial strings only, so that a caller cannot change the host
// or add parameters.
func safeUser(u string) bool {
	if u == "" || len(u) > 64 {
		return false
	}
	for _, r := range u {
		switch {
		case r >= '0' && r <= '9', r >= 'a' && r <= 'z', r >= 'A' && r <= 'Z':
		case strings.ContainsRune("+*#._-", r):
		default:
			return false
		}
	}
	return true
}
