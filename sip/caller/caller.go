// Package caller is a small SIP user agent that places a call and types
// digits into it the way a customer on a phone does: in-band tones, RFC 4733
// telephone-events or SIP INFO, with human timing over a quiet background.
// It drives demos (tonevault call) and the gateway's end-to-end tests.
//
// Digits are card data (test cards, but treated as real): they are taken as
// []byte, never turned into a string, never logged nor put in an error (bad
// digits are reported by position), and the copies the caller makes are
// wiped once sent. Only Options.ShowDigits prints them, for demos.
package caller

import (
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"math/rand/v2"
	"net"
	"net/netip"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/emiago/sipgo"
	"github.com/emiago/sipgo/sip"

	"github.com/tonevault/tonevault/dtmf"
	"github.com/tonevault/tonevault/media/sdes"
)

// DefaultTarget is the gateway's carrier side (DESIGN.md default addresses).
const DefaultTarget = "sip:pay@127.0.0.1:5060"

// DefaultTLSTarget is the gateway's carrier side over TLS.
const DefaultTLSTarget = "sip:pay@127.0.0.1:5061;transport=tls"

// DefaultLocal binds SIP and RTP to loopback on ephemeral ports.
const DefaultLocal = "127.0.0.1:0"

// Default in-band levels per tone: a phone's high group is a little louder
// than its low group (positive twist), both well inside Q.24's range.
const (
	DefaultToneLow  = -8.0
	DefaultToneHigh = -6.0
)

// Options configure Dial. The zero value dials DefaultTarget over UDP
// from loopback with comfort noise and human timing.
type Options struct {
	// Target is the SIP URI to call (default DefaultTarget).
	Target string
	// From is our SIP URI (default sip:caller@<local IP>).
	From string
	// Local is the IP:port SIP binds to (default DefaultLocal); RTP uses
	// the same IP and an ephemeral port. The IP must be a literal.
	Local string
	// Transport is "udp" (default), "tcp" or "tls" (also what a sips:
	// target means). Over TLS the caller listens on nothing: the far
	// end's requests come back over the connection it opened, whose
	// port its Contact names.
	Transport string
	// TLS verifies the far end over TLS (nil: the system's roots, the
	// target's host) and may carry a client certificate.
	TLS *tls.Config
	// SRTP offers SDES-SRTP (RFC 4568): RTP/SAVP with one a=crypto per
	// suite; a plain answer ends the call.
	SRTP bool
	// Audio is 8 kHz background audio, looped; nil sends comfort noise.
	Audio []int16
	// Timing shapes the key presses.
	Timing Timing
	// ToneLow and ToneHigh are the in-band levels in dBm0 of each press's
	// low and high tone (defaults DefaultToneLow, DefaultToneHigh, used
	// when both are zero).
	ToneLow, ToneHigh float64
	// Progress receives one line per step (dialing, ringing, answered,
	// typing, hung up); nil discards them.
	Progress io.Writer
	// Verbose adds SIP statuses, SDP choices and packet counts to Progress,
	// and sipgo's own warnings. Never SIP message dumps: INFO bodies carry
	// digits.
	Verbose bool
	// ShowDigits prints the digits typed on Progress. For demos only:
	// they are card numbers.
	ShowDigits bool
	// Headers are added to the INVITE, in order: a correlation header
	// such as X-Interaction-ID that a CRM looks the call up by. Headers
	// the caller writes itself (Via, From, To, Call-ID, CSeq, Contact,
	// Content-*, Max-Forwards, Allow, Route) are refused.
	Headers []Header
}

// Header is one SIP header line.
type Header struct{ Name, Value string }

// MaxHeaders caps Options.Headers.
const MaxHeaders = 16

// reserved are the headers the caller writes itself or that steer the
// request, long and compact forms (RFC 3261 7.3.3), lower case.
var reserved = map[string]bool{
	"via": true, "v": true, "from": true, "f": true, "to": true, "t": true,
	"call-id": true, "i": true, "cseq": true, "contact": true, "m": true,
	"content-type": true, "c": true, "content-length": true, "l": true,
	"content-encoding": true, "e": true, "max-forwards": true, "allow": true,
	"route": true, "record-route": true,
}

// ParseHeader reads "Name: value" as a Header and checks it.
func ParseHeader(s string) (Header, error) {
	name, value, ok := strings.Cut(s, ":")
	if !ok {
		return Header{}, fmt.Errorf("header %q: want Name: value", s)
	}
	h := Header{Name: strings.TrimSpace(name), Value: strings.TrimSpace(value)}
	return h, h.validate()
}

func (h Header) validate() error {
	if h.Name == "" {
		return errors.New("header: empty name")
	}
	for i := 0; i < len(h.Name); i++ {
		if !isToken(h.Name[i]) {
			return fmt.Errorf("header %q: the name may hold letters, digits and -.!%%*_+`'~ only", h.Name)
		}
	}
	if reserved[strings.ToLower(h.Name)] {
		return fmt.Errorf("header %s: written by the caller itself", h.Name)
	}
	if len(h.Value) > 1024 {
		return fmt.Errorf("header %s: value longer than 1024 bytes", h.Name)
	}
	for i := 0; i < len(h.Value); i++ {
		if c := h.Value[i]; c < ' ' && c != '\t' || c == 0x7f {
			return fmt.Errorf("header %s: control character in the value", h.Name)
		}
	}
	return nil
}

// isToken: RFC 3261 25.1 token characters.
func isToken(c byte) bool {
	return c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c >= '0' && c <= '9' || strings.IndexByte("-.!%*_+`'~", c) >= 0
}

// StatusError is a final non-2xx answer to the INVITE.
type StatusError struct {
	Code   int
	Reason string
}

func (e *StatusError) Error() string {
	return fmt.Sprintf("call failed: %d %s", e.Code, e.Reason)
}

// ErrHungUp is returned by Type when the call ended (either side hung up)
// before all digits were sent.
var ErrHungUp = errors.New("caller: call ended")

// Call is one established call. Methods are safe for concurrent use, but
// one Type runs at a time.
type Call struct {
	opts      Options
	transport string
	localIP   netip.Addr
	localSIP  netip.AddrPort
	contact   sip.ContactHeader
	ua        *sipgo.UserAgent
	srv       *sipgo.Server
	cli       *sipgo.Client
	offered   []sdes.Crypto // our a=crypto in the INVITE (SRTP)
	dialogs   *sipgo.DialogClientCache
	dlg       *sipgo.DialogClientSession
	closers   []io.Closer
	rtp       *net.UDPConn
	media     *media
	rtpAddr   netip.AddrPort
	sessID    uint64
	sdpVer    atomic.Uint64
	rng       *rand.Rand // timing draws; used under typing

	typing     sync.Mutex
	done       chan struct{}
	endOnce    sync.Once
	closeOnce  sync.Once
	hangingUp  atomic.Bool
	remoteBye  atomic.Bool
	remoteCSeq atomic.Uint32
}

func (o Options) withDefaults() Options {
	if o.Target == "" {
		o.Target = DefaultTarget
	}
	if o.Local == "" {
		o.Local = DefaultLocal
	}
	if o.Transport == "" {
		o.Transport = "udp"
	}
	o.Transport = strings.ToLower(o.Transport)
	// The target's own word on its transport: sips:, or ;transport=.
	var u sip.Uri
	if sip.ParseUri(o.Target, &u) == nil {
		if tp, ok := u.UriParams.Get("transport"); ok && (o.Transport == "udp" || o.Transport == strings.ToLower(tp)) {
			o.Transport = strings.ToLower(tp)
		}
		if strings.EqualFold(u.Scheme, "sips") {
			o.Transport = "tls"
		}
	}
	if o.ToneLow == 0 && o.ToneHigh == 0 {
		o.ToneLow, o.ToneHigh = DefaultToneLow, DefaultToneHigh
	}
	if o.Progress == nil {
		o.Progress = io.Discard
	}
	return o
}

// Validate reports options Dial would refuse, without opening anything.
func (o Options) Validate() error {
	_, _, err := o.withDefaults().validate()
	return err
}

// validate checks what can be checked before any socket is opened.
func (o Options) validate() (target sip.Uri, local netip.AddrPort, err error) {
	if o.Transport != "udp" && o.Transport != "tcp" && o.Transport != "tls" {
		return target, local, fmt.Errorf("transport %q: want udp, tcp or tls", o.Transport)
	}
	if err := sip.ParseUri(o.Target, &target); err != nil || target.Host == "" || (target.Scheme != "sip" && target.Scheme != "sips" && target.Scheme != "") {
		return target, local, fmt.Errorf("target %q is not a sip: or sips: URI", o.Target)
	}
	local, err = netip.ParseAddrPort(o.Local)
	if err != nil {
		return target, local, fmt.Errorf("local address %q: want IP:port, e.g. %s", o.Local, DefaultLocal)
	}
	if o.From != "" {
		var from sip.Uri
		if err := sip.ParseUri(o.From, &from); err != nil || from.Host == "" {
			return target, local, fmt.Errorf("from %q is not a sip: URI", o.From)
		}
	}
	if len(o.Headers) > MaxHeaders {
		return target, local, fmt.Errorf("%d headers, at most %d", len(o.Headers), MaxHeaders)
	}
	for _, h := range o.Headers {
		if err := h.validate(); err != nil {
			return target, local, err
		}
	}
	for _, l := range []float64{o.ToneLow, o.ToneHigh} {
		if l > 0 || l < -40 {
			return target, local, fmt.Errorf("tone level %g dBm0 out of range -40 to 0", l)
		}
	}
	return target, local, o.Timing.Validate()
}

// Dial places the call and returns once it is answered and acknowledged,
// with audio flowing. A final non-2xx answer is a *StatusError. Cancelling
// ctx before the answer cancels the INVITE; after Dial returns, ctx no
// longer matters: end the call with Hangup (or Close).
func Dial(ctx context.Context, opts Options) (*Call, error) {
	opts = opts.withDefaults()
	target, local, err := opts.validate()
	if err != nil {
		return nil, err
	}
	c := &Call{
		opts: opts, transport: opts.Transport, localIP: local.Addr().Unmap(),
		sessID: rand.Uint64() >> 1, rng: newRand(opts.Timing.Seed), done: make(chan struct{}),
	}
	if err := c.listen(local); err != nil {
		c.release()
		return nil, err
	}
	if err := c.invite(ctx, target); err != nil {
		c.release()
		return nil, err
	}
	return c, nil
}

// listen opens the SIP and RTP sockets and starts sipgo on them.
func (c *Call) listen(local netip.AddrPort) error {
	rtpConn, err := net.ListenUDP("udp", net.UDPAddrFromAddrPort(netip.AddrPortFrom(c.localIP, 0)))
	if err != nil {
		return fmt.Errorf("rtp: %w", err)
	}
	c.closers = append(c.closers, rtpConn)
	c.rtp = rtpConn
	c.rtpAddr = rtpConn.LocalAddr().(*net.UDPAddr).AddrPort()

	var serve func(*sipgo.Server) error
	switch c.transport {
	case "udp":
		pc, err := net.ListenUDP("udp", net.UDPAddrFromAddrPort(local))
		if err != nil {
			return fmt.Errorf("sip: %w", err)
		}
		c.closers = append(c.closers, pc)
		c.localSIP = pc.LocalAddr().(*net.UDPAddr).AddrPort()
		serve = func(s *sipgo.Server) error { return s.ServeUDP(pc) }
	case "tcp":
		ln, err := net.ListenTCP("tcp", net.TCPAddrFromAddrPort(local))
		if err != nil {
			return fmt.Errorf("sip: %w", err)
		}
		c.closers = append(c.closers, ln)
		c.localSIP = ln.Addr().(*net.TCPAddr).AddrPort()
		serve = func(s *sipgo.Server) error { return s.ServeTCP(ln) }
	case "tls":
		// No listener: the connection to the far end, opened by invite,
		// carries its requests too.
		c.localSIP = local
		serve = func(*sipgo.Server) error { return nil }
	}

	log := c.sipLogger()
	uaOpts := []sipgo.UserAgentOption{
		sipgo.WithUserAgent("tonevault-call"),
		sipgo.WithUserAgentTransactionLayerOptions(sip.WithTransactionLayerLogger(log)),
		sipgo.WithUserAgentTransportLayerOptions(sip.WithTransportLayerLogger(log)),
	}
	if c.transport == "tls" {
		tc := c.opts.TLS
		if tc == nil {
			tc = &tls.Config{MinVersion: tls.VersionTLS12}
		}
		uaOpts = append(uaOpts, sipgo.WithUserAgenTLSConfig(tc))
	}
	c.ua, err = sipgo.NewUA(uaOpts...)
	if err != nil {
		return fmt.Errorf("sip: %w", err)
	}
	c.srv, err = sipgo.NewServer(c.ua, sipgo.WithServerLogger(log))
	if err != nil {
		return fmt.Errorf("sip: %w", err)
	}
	host, port := c.localIP.String(), int(c.localSIP.Port())
	copts := []sipgo.ClientOption{sipgo.WithClientLogger(log), sipgo.WithClientHostname(host), sipgo.WithClientPort(port)}
	if c.transport == "udp" {
		// Send from the listening socket, so that the far end's requests
		// and our requests share one address, as a phone's do.
		copts = append(copts, sipgo.WithClientConnectionAddr(c.localSIP.String()))
	}
	cli, err := sipgo.NewClient(c.ua, copts...)
	if err != nil {
		return fmt.Errorf("sip: %w", err)
	}
	c.cli = cli
	c.contact = sip.ContactHeader{Address: sip.Uri{Scheme: "sip", User: "caller", Host: host, Port: port}}
	if c.transport == "tcp" {
		c.contact.Address.UriParams = sip.HeaderParams{}
		c.contact.Address.UriParams.Add("transport", "tcp")
	}
	c.dialogs = sipgo.NewDialogClientCache(cli, c.contact)
	// The media exists before any handler can run; it starts on answer.
	c.media = newMedia(c.rtp, stream{eventPT: -1}, c.opts.Audio, c.opts.Timing.Seed, c.opts.ToneLow, c.opts.ToneHigh)
	c.srv.OnBye(c.onBye)
	c.srv.OnInvite(c.onInvite)
	c.srv.OnAck(func(*sip.Request, sip.ServerTransaction) {})
	c.srv.OnInfo(c.onOK)
	c.srv.OnOptions(c.onOK)
	go serve(c.srv) // ends when its socket is closed
	if c.transport == "udp" {
		return c.waitServing()
	}
	return nil
}

// waitServing waits until sipgo has taken the UDP socket into its pool:
// a request sent before that would make sipgo bind the address again.
func (c *Call) waitServing() error {
	tl := c.ua.TransportLayer()
	for range 2000 {
		if conn, err := tl.GetConnection("udp", c.localSIP.String()); err == nil && conn != nil {
			return nil
		}
		time.Sleep(time.Millisecond)
	}
	return errors.New("sip: the UDP listener did not start")
}

// sipLogger keeps sipgo quiet unless verbose, and even then drops the
// "data" attribute some of its errors carry: a raw message may hold digits.
func (c *Call) sipLogger() *slog.Logger {
	if !c.opts.Verbose {
		return slog.New(slog.DiscardHandler)
	}
	return slog.New(slog.NewTextHandler(c.opts.Progress, &slog.HandlerOptions{
		Level: slog.LevelWarn,
		ReplaceAttr: func(_ []string, a slog.Attr) slog.Attr {
			if a.Key == "data" {
				return slog.Attr{}
			}
			return a
		},
	}))
}

func (c *Call) invite(ctx context.Context, target sip.Uri) error {
	if c.opts.SRTP {
		var err error
		if c.offered, err = sdes.Offer(sdes.Suites); err != nil {
			return err
		}
	}
	offer, err := buildSDP(c.rtpAddr, c.sessID, c.sdpVer.Load(), offerFormats, "sendrecv", c.offered)
	if err != nil {
		return err
	}
	from := sip.Uri{Scheme: "sip", User: "caller", Host: c.localIP.String()}
	if c.opts.From != "" {
		_ = sip.ParseUri(c.opts.From, &from) // checked in validate
	}
	req := sip.NewRequest(sip.INVITE, target)
	req.SetTransport(strings.ToUpper(c.transport))
	fromH := &sip.FromHeader{DisplayName: "ToneVault caller", Address: from}
	fromH.Params.Add("tag", sip.GenerateTagN(16))
	req.AppendHeader(fromH)
	req.AppendHeader(&sip.ToHeader{Address: sip.Uri{Scheme: "sip", User: target.User, Host: target.Host, Port: target.Port}})
	req.AppendHeader(sip.NewHeader("Content-Type", "application/sdp"))
	req.AppendHeader(sip.NewHeader("Allow", "INVITE, ACK, BYE, CANCEL, INFO, OPTIONS"))
	for _, h := range c.opts.Headers {
		req.AppendHeader(sip.NewHeader(h.Name, h.Value))
	}
	req.SetBody(offer)
	if c.transport == "tls" {
		if err := c.connectTLS(ctx, req); err != nil {
			return err
		}
	}

	srtpNote := ""
	if c.opts.SRTP {
		srtpNote = ", offering SRTP"
	}
	c.logf("dialing %s over %s from %s (RTP %s%s)", target.String(), c.transport, c.localSIP, c.rtpAddr, srtpNote)
	dlg, err := c.dialogs.WriteInvite(ctx, req)
	if err != nil {
		return fmt.Errorf("invite: %w", err)
	}
	c.dlg = dlg
	// sipgo can CANCEL only after a provisional answer; without one it
	// would wait for Timer B (32 s). So ctx's end becomes a forced stop
	// then (RFC 3261 9.1: nothing to cancel yet), and a CANCEL otherwise.
	var provisional atomic.Bool
	wctx, wcancel := context.WithCancelCause(context.Background())
	defer wcancel(nil)
	go func() {
		select {
		case <-ctx.Done():
			if provisional.Load() {
				wcancel(ctx.Err())
			} else {
				wcancel(sipgo.WaitAnswerForceCancelErr)
			}
		case <-wctx.Done():
		}
	}()
	ringing := false
	err = dlg.WaitAnswer(wctx, sipgo.AnswerOptions{OnResponse: func(r *sip.Response) error {
		c.verbosef("<- %d %s", r.StatusCode, r.Reason)
		if r.IsProvisional() {
			provisional.Store(true)
		}
		if (r.StatusCode == 180 || r.StatusCode == 183) && !ringing {
			ringing = true
			c.logf("ringing")
		}
		return nil
	}})
	if err != nil {
		var pe *sipgo.ErrDialogResponse
		var ve sipgo.ErrDialogResponse
		switch {
		case errors.As(err, &pe) && pe.Res != nil:
			return &StatusError{Code: int(pe.Res.StatusCode), Reason: pe.Res.Reason}
		case errors.As(err, &ve) && ve.Res != nil:
			return &StatusError{Code: int(ve.Res.StatusCode), Reason: ve.Res.Reason}
		case ctx.Err() != nil:
			return fmt.Errorf("not answered: %w", ctx.Err())
		}
		return fmt.Errorf("invite: %w", err)
	}
	if err := dlg.Ack(ctx); err != nil {
		return fmt.Errorf("ack: %w", err)
	}
	st, err := parseSDP(dlg.InviteResponse.Body())
	if err == nil {
		err = c.media.answered(st, c.offered)
	}
	if err != nil {
		// Answered but unusable: say goodbye properly before failing.
		_ = dlg.Bye(context.WithoutCancel(ctx))
		return fmt.Errorf("answer: %w", err)
	}
	c.media.update(st)
	c.media.start()
	c.logf("answered: %s", describe(st))
	go c.watch()
	return nil
}

// describe words the negotiated media for the progress line.
func describe(st stream) string {
	codec := "PCMU"
	if st.codec == dtmf.PCMA {
		codec = "PCMA"
	}
	ev := "no telephone-event"
	if st.eventPT >= 0 {
		ev = "telephone-event " + strconv.Itoa(st.eventPT)
	}
	to := "on hold"
	if st.canSend() {
		to = "to " + st.addr.String()
	}
	if len(st.crypto) > 0 {
		to += ", SRTP " + st.crypto[0].Suite.String()
	}
	return fmt.Sprintf("%s (%d), %s, RTP %s", codec, st.pt, ev, to)
}

// watch ends the call when the dialog ends under us: the far end's BYE.
func (c *Call) watch() {
	select {
	case <-c.dlg.Context().Done():
		if !c.hangingUp.Load() {
			c.remoteBye.Store(true)
			c.logf("far end hung up")
		}
		c.end()
	case <-c.done:
	}
}

// end stops the media and marks the call over; SIP stays up until
// release, to answer retransmissions.
func (c *Call) end() {
	c.endOnce.Do(func() {
		if c.media != nil {
			c.media.close()
			sent, recv, ev, bad := c.media.stats()
			c.verbosef("rtp: sent %d packets, received %d audio, %d telephone-event, %d other", sent, recv, ev, bad)
		}
		close(c.done)
	})
}

// release frees every socket and the SIP stack.
func (c *Call) release() {
	c.closeOnce.Do(func() {
		if c.dlg != nil {
			c.dlg.Close()
		}
		if c.ua != nil {
			c.ua.Close()
		}
		for _, cl := range c.closers {
			cl.Close()
		}
	})
}

// Done is closed when the call has ended, by either side.
func (c *Call) Done() <-chan struct{} { return c.done }

// RemoteHangup reports whether the far end ended the call.
func (c *Call) RemoteHangup() bool { return c.remoteBye.Load() }

// LocalRTP is the address our RTP is sent from and received on.
func (c *Call) LocalRTP() netip.AddrPort { return c.rtpAddr }

// LocalSIP is the address our SIP listens on.
func (c *Call) LocalSIP() netip.AddrPort { return c.localSIP }

// Received returns the far end's audio so far, decoded to 8 kHz linear
// PCM, packets concatenated in arrival order (gaps are not filled), at
// most ten minutes.
func (c *Call) Received() []int16 {
	if c.media == nil {
		return nil
	}
	return c.media.audio()
}

// Hangup sends BYE unless the call has ended already, stops the media and
// frees everything. It is safe to call more than once.
func (c *Call) Hangup(ctx context.Context) error {
	c.hangingUp.Store(true)
	var err error
	select {
	case <-c.done:
	default:
		c.end()
		if c.dlg.LoadState() != sip.DialogStateEnded {
			if err = c.dlg.Bye(ctx); err != nil {
				err = fmt.Errorf("bye: %w", err)
			}
		}
		if !c.remoteBye.Load() {
			c.logf("hung up")
		}
	}
	c.release()
	return err
}

// Close frees everything without sending BYE (the far end will time the
// call out). Use Hangup to end a call properly.
func (c *Call) Close() error {
	c.hangingUp.Store(true)
	c.end()
	c.release()
	return nil
}

// onBye takes the far end's BYE: 200, and the call ends.
func (c *Call) onBye(req *sip.Request, tx sip.ServerTransaction) {
	if err := c.dialogs.ReadBye(req, tx); err != nil {
		_ = tx.Respond(sip.NewResponseFromRequest(req, 481, "Call/Transaction Does Not Exist", nil))
	}
}

func (c *Call) onOK(req *sip.Request, tx sip.ServerTransaction) {
	_ = tx.Respond(sip.NewResponseFromRequest(req, 200, "OK", nil))
}

// onInvite answers a re-INVITE (hold, resume, a media change) with our
// SDP in the matching direction; we take no new calls.
func (c *Call) onInvite(req *sip.Request, tx sip.ServerTransaction) {
	respond := func(code int, reason string) {
		_ = tx.Respond(sip.NewResponseFromRequest(req, code, reason, nil))
	}
	to := req.To()
	if to == nil || !to.Params.Has("tag") {
		respond(486, "Busy Here") // a new call: we only dial out
		return
	}
	if _, err := c.dialogs.MatchRequestDialog(req); err != nil {
		respond(481, "Call/Transaction Does Not Exist")
		return
	}
	// sipgo's Dialog.ReadRequest compares the far end's CSeq with ours,
	// so keep the far end's own sequence here.
	if cs := req.CSeq(); cs != nil {
		last := c.remoteCSeq.Load()
		if last != 0 && cs.SeqNo <= last {
			respond(500, "Server Internal Error")
			return
		}
		c.remoteCSeq.Store(cs.SeqNo)
	}
	st := c.media.current()
	dir := "sendrecv"
	formats := offerFormats
	if body := req.Body(); len(body) > 0 {
		var err error
		if st, err = parseSDP(body); err != nil {
			respond(488, "Not Acceptable Here")
			return
		}
		dir, formats = answerDir(st.dir), st.formats
	}
	crypto, err := c.media.reoffered(st, len(req.Body()) > 0)
	if err != nil {
		respond(488, "Not Acceptable Here")
		return
	}
	if len(req.Body()) > 0 {
		c.media.update(st)
	}
	answer, err := buildSDP(c.rtpAddr, c.sessID, c.sdpVer.Add(1), formats, dir, crypto)
	if err != nil {
		respond(500, "Server Internal Error")
		return
	}
	res := sip.NewSDPResponseFromRequest(req, answer)
	res.AppendHeader(sip.HeaderClone(&c.contact))
	_ = tx.Respond(res)
	switch dir {
	case "sendrecv":
		c.logf("far end re-INVITE: call active (%s)", describe(st))
	default:
		c.logf("far end re-INVITE: call on hold (we are %s)", dir)
	}
}

func (c *Call) logf(format string, a ...any) {
	fmt.Fprintf(c.opts.Progress, "tonevault call: "+format+"\n", a...)
}

func (c *Call) verbosef(format string, a ...any) {
	if c.opts.Verbose {
		c.logf(format, a...)
	}
}

// connectTLS opens the TLS connection to the far end before the INVITE
// and takes its local port as ours: the Contact names it, so that the
// far end's requests (its BYE) come back over this connection rather
// than to a listener we do not have.
func (c *Call) connectTLS(ctx context.Context, req *sip.Request) error {
	probe := req.Clone()
	if err := sipgo.ClientRequestBuild(c.cli, probe); err != nil {
		return fmt.Errorf("tls: %w", err)
	}
	conn, err := c.ua.TransportLayer().ClientRequestConnection(ctx, probe)
	if err != nil {
		return fmt.Errorf("tls: %w", err)
	}
	ap, err := netip.ParseAddrPort(conn.LocalAddr().String())
	if err != nil {
		return fmt.Errorf("tls: local address %v: %w", conn.LocalAddr(), err)
	}
	c.localSIP = netip.AddrPortFrom(c.localIP, ap.Port())
	c.contact = sip.ContactHeader{Address: sip.Uri{Scheme: "sip", User: "caller", Host: c.localIP.String(), Port: int(ap.Port())}}
	c.contact.Address.UriParams = sip.HeaderParams{}
	c.contact.Address.UriParams.Add("transport", "tls")
	c.dialogs = sipgo.NewDialogClientCache(c.cli, c.contact)
	return nil
}
