package sip

import (
	"context"
	"errors"
	"fmt"
	"net/url"
	"strings"
	"time"

	"github.com/emiago/sipgo/sip"
	"go.uber.org/zap"

	"github.com/tonevault/tonevault/audit"
	"github.com/tonevault/tonevault/media"
)

// Transfers (RFC 3515 REFER, RFC 3891 Replaces, RFC 5589). A REFER from
// the platform leg is the gateway's own to carry out: it answers 202 and
// a NOTIFY "100 Trying", places a new platform leg to the Refer-To
// target through the platform trunk (with the Replaces of an attended
// transfer, and Referred-By), and when that leg answers it gives the
// relay the new agent's media, makes the new dialog the call's platform
// leg, sends the transferor a NOTIFY "200 OK" and a BYE. The customer's
// leg is never touched, except that a customer held before the transfer
// is taken off hold (a re-INVITE), so the media and its masking stay on
// the gateway. A new leg that fails gets the transferor a NOTIFY with its
// final status, and the call stays as it was; if the transferor hung up
// meanwhile, the call ends.

// transfer is a REFER being carried out, under call.mu.
type transfer struct {
	old      *dialog // the platform dialog that sent the REFER
	oldGone  bool    // its peer hung up meanwhile
	attended bool
}

// Transfer is a completed transfer, for Registry.OnTransfer.
type Transfer struct {
	CallID      string // the gateway's call id
	Attended    bool   // the REFER had Replaces
	KeepCapture bool   // sip.transfer.capture is keep: a capture in progress goes on
	At          time.Time
}

// errBadRefer is a REFER the gateway cannot act on.
var errBadRefer = errors.New("sip: REFER")

// referTarget reads a REFER's Refer-To (compact r): the target URI
// without its headers, the Replaces it carries for an attended transfer
// ("" for a blind one), and errBadRefer when there is not exactly one
// sip: or sips: target for an INVITE.
func referTarget(req *sip.Request) (sip.Uri, string, error) {
	var vals []string
	for _, name := range []string{"Refer-To", "r"} {
		for _, h := range req.GetHeaders(name) {
			vals = append(vals, h.Value())
		}
	}
	if len(vals) != 1 {
		return sip.Uri{}, "", fmt.Errorf("%w: %d Refer-To headers", errBadRefer, len(vals))
	}
	var u sip.Uri
	params := sip.NewParams()
	if _, err := sip.ParseAddressValue(vals[0], &u, &params); err != nil {
		return sip.Uri{}, "", fmt.Errorf("%w: Refer-To: %v", errBadRefer, err)
	}
	if (u.Scheme != "sip" && u.Scheme != "sips") || u.Host == "" {
		return sip.Uri{}, "", fmt.Errorf("%w: Refer-To is not a sip: or sips: URI", errBadRefer)
	}
	if m, ok := u.UriParams.Get("method"); ok && !strings.EqualFold(m, "INVITE") {
		return sip.Uri{}, "", fmt.Errorf("%w: Refer-To asks for method %s", errBadRefer, m)
	}
	replaces := ""
	for _, kv := range u.Headers {
		if !strings.EqualFold(kv.K, "Replaces") {
			continue // other headers of the URI are the target's to ignore
		}
		v, err := url.PathUnescape(kv.V)
		if err != nil || strings.ContainsAny(v, "\r\n") || !strings.Contains(v, "to-tag=") || !strings.Contains(v, "from-tag=") {
			return sip.Uri{}, "", fmt.Errorf("%w: Replaces in Refer-To unreadable", errBadRefer)
		}
		replaces = v
	}
	u.Headers = nil
	if u.UriParams != nil {
		u.UriParams.Remove("method")
	}
	return u, replaces, nil
}

// refer answers a REFER from the platform leg.
func (c *call) refer(req *sip.Request, tx sip.ServerTransaction) {
	g := c.g
	d := c.leg(media.Platform)
	if g.cfg.Transfer.Refer != ReferAccept {
		_ = tx.Respond(d.respond(req, 403, "Forbidden", nil, ""))
		return
	}
	target, replaces, err := referTarget(req)
	if err != nil {
		g.log.Info("REFER refused", zap.String("call", c.id), zap.Error(err))
		_ = tx.Respond(d.respond(req, 400, "Bad Request", nil, ""))
		return
	}
	if transportFor(target) == "TLS" && !g.platform.hasTransport("tls") {
		_ = tx.Respond(d.respond(req, 488, "Not Acceptable Here", nil, ""))
		return
	}
	c.mu.Lock()
	state := 0
	switch {
	case !c.answered || c.ended:
		state = 403
	case c.transfer != nil:
		state = 491
	default:
		c.transfer = &transfer{old: d, attended: replaces != ""}
	}
	c.mu.Unlock()
	switch state {
	case 403:
		_ = tx.Respond(d.respond(req, 403, "Forbidden", nil, ""))
		return
	case 491:
		_ = tx.Respond(d.respond(req, 491, "Request Pending", nil, ""))
		return
	}
	_ = tx.Respond(d.respond(req, 202, "Accepted", nil, ""))
	g.log.Info("transfer", zap.String("call", c.id), zap.Bool("attended", replaces != ""))
	referredBy := headerValue(req, "Referred-By")
	c.goCall("transfer", func() { c.runTransfer(d, target, replaces, referredBy) })
}

// notifyRefer tells the transferor on d how the new leg went, as a
// message/sipfrag (RFC 3515 2.4.5); final ends the implicit subscription.
func (c *call) notifyRefer(d *dialog, status int, reason string, final bool) {
	req := d.request(sip.NOTIFY, 0)
	req.AppendHeader(d.t.contact(d.transport, d.sips))
	req.AppendHeader(sip.NewHeader("Event", "refer"))
	state := "active;expires=60"
	if final {
		state = "terminated;reason=noresource"
	}
	req.AppendHeader(sip.NewHeader("Subscription-State", state))
	setBody(req, fmt.Appendf(nil, "SIP/2.0 %d %s\r\n", status, reason), "message/sipfrag;version=2.0")
	ctx, cancel := context.WithTimeout(context.Background(), 32*sip.T1)
	defer cancel()
	if res, err := d.do(ctx, req); err != nil {
		c.g.log.Info("NOTIFY of the transfer failed", zap.String("call", c.id), zap.Error(err))
	} else if !res.IsSuccess() {
		c.g.log.Info("NOTIFY of the transfer refused", zap.String("call", c.id), zap.Int("status", res.StatusCode))
	}
}

// runTransfer places the new platform leg and completes or fails the
// transfer.
func (c *call) runTransfer(old *dialog, target sip.Uri, replaces, referredBy string) {
	g := c.g
	pt := g.platform
	began := time.Now()
	c.notifyRefer(old, 100, "Trying", false)

	nd := &dialog{t: pt, callID: newSIPCallID(pt.addr.Addr().String()), localTag: sip.GenerateTagN(16), localSeq: randSeq(),
		transport: transportFor(target), target: target, sips: target.Scheme == "sips"}
	old.mu.Lock()
	nd.localName = old.localName
	nd.localURI = sip.Uri{Scheme: target.Scheme, User: old.localURI.User, Host: pt.addr.Addr().String()}
	old.mu.Unlock()
	nd.remoteURI = sip.Uri{Scheme: target.Scheme, User: target.User, Host: target.Host, Port: target.Port}

	keys := &legKeys{}
	origin := Origin{SessionID: uint64(time.Now().UnixNano()&0x7fff_ffff) + 7, Version: 1}
	c.mu.Lock()
	offer, err := c.offerFrom(media.Platform, keys, origin)
	c.mu.Unlock()
	if err != nil {
		keys.wipe()
		c.transferFailed(old, 488, "Not Acceptable Here", err)
		return
	}
	build := func(r *sip.Request) {
		c.mu.Lock()
		ident := c.identity
		c.mu.Unlock()
		for _, h := range ident {
			r.AppendHeader(sip.HeaderClone(h))
		}
		if replaces != "" {
			r.AppendHeader(sip.NewHeader("Replaces", replaces))
		}
		if referredBy != "" {
			r.AppendHeader(sip.NewHeader("Referred-By", referredBy))
		}
		r.AppendHeader(sip.NewHeader("Allow", pt.allow()))
		r.AppendHeader(sip.NewHeader("User-Agent", g.cfg.UserAgent))
		setBody(r, offer, "application/sdp")
	}
	o := &outbound{c: c, d: nd, build: build, se: g.cfg.SessionTimer.Expires, rel: true}
	ctx := context.Background()
	dests, err := pt.plan(ctx, []sip.Uri{target})
	if err != nil {
		keys.wipe()
		c.transferFailed(old, 503, "Service Unavailable", err)
		return
	}
	o.dests = dests
	if !o.start(ctx) {
		keys.wipe()
		c.transferFailed(old, 503, "Service Unavailable", nil)
		return
	}
	res, acker, f := c.placeLeg(ctx, o)
	if res == nil || !res.IsSuccess() {
		keys.wipe()
		status, reason := 503, "Service Unavailable"
		if res != nil {
			status, reason = res.StatusCode, res.Reason
		}
		c.transferFailed(old, status, reason, nil)
		return
	}
	acker.send(nil)
	answer := []byte(nil)
	if rs, err := readSession(res); err == nil && rs.sdp != nil {
		answer = rs.sdp
	} else if f != nil {
		answer = f.answer
	}
	if err := c.completeTransfer(nd, offer, answer, keys, origin, res, o.se); err != nil {
		keys.wipe()
		g.log.Info("transfer target's answer refused", zap.String("call", c.id), zap.Error(err))
		g.goQuiet("bye", c.id, func() {
			ctx, cancel := context.WithTimeout(context.Background(), 32*sip.T1)
			defer cancel()
			_, _ = nd.do(ctx, nd.request(sip.BYE, 0))
		})
		c.transferFailed(old, 488, "Not Acceptable Here", err)
		return
	}
	g.log.Info("transfer completed", zap.String("call", c.id), zap.Duration("after", time.Since(began)))
}

// placeLeg runs o's INVITE to a final response, failing over between
// its destinations. It returns nil when none answered, or the call ended
// first (the INVITE is then cancelled or given up).
func (c *call) placeLeg(ctx context.Context, o *outbound) (*sip.Response, *acker, *fork) {
	cur, giveUp := o.cur, o.cur.giveUp
	ring := time.NewTimer(c.g.cfg.RingTimeout)
	defer ring.Stop()
	retried := false
	next := func(reason string) bool {
		c.g.metrics.failedOver(o.d.t.name, reason)
		o.d.t.routes.markDown(cur.dest.key(), downFor)
		if !o.start(ctx) {
			return false
		}
		cur, giveUp = o.cur, o.cur.giveUp
		return true
	}
	cancel := func() {
		if !cur.canCancel() {
			o.abandon(cur)
			return
		}
		creq := cancelFor(cur.req)
		c.g.goQuiet("cancel", c.id, func() {
			ctx, cancel := context.WithTimeout(context.Background(), 64*sip.T1)
			defer cancel()
			_, _ = o.d.do(ctx, creq)
		})
		// What comes after the CANCEL (487, or a 2xx that crossed it)
		// is dealt with as for an abandoned INVITE.
		cur.stop()
		abandoned := cur
		c.g.goQuiet("drain", c.id, func() { o.drain(abandoned, true) })
	}
	for {
		select {
		case res := <-cur.tx.Responses():
			cur.answered(res)
			switch {
			case res.IsProvisional():
				if res.StatusCode > 100 {
					o.provisional(res)
				}
			case res.IsSuccess():
				f, acker := o.accept(res)
				return res, acker, f
			case res.StatusCode == 503:
				if !next("unavailable") {
					return res, nil, nil
				}
			case res.StatusCode == 422 && minSE(res) > o.se && !retried:
				retried = true
				if !o.retry(ctx, minSE(res)) {
					return res, nil, nil
				}
				cur, giveUp = o.cur, o.cur.giveUp
			default:
				cur.tx.Terminate()
				return res, nil, nil
			}
		case <-giveUp:
			giveUp = nil
			if cur.isResponded() {
				continue
			}
			o.abandon(cur)
			if !next(cur.reason()) {
				return nil, nil, nil
			}
		case <-cur.tx.Done():
			if cur.isResponded() {
				return nil, nil, nil
			}
			cur.stop()
			if !next("refused") {
				return nil, nil, nil
			}
		case <-ring.C:
			cancel()
			return nil, nil, nil
		case <-c.done:
			cancel()
			return nil, nil, nil
		}
	}
}

// completeTransfer makes nd, answered with answer to offer, the call's
// platform leg.
func (c *call) completeTransfer(nd *dialog, offer, answer []byte, keys *legKeys, origin Origin, res *sip.Response, se time.Duration) error {
	g := c.g
	if answer == nil {
		return fmt.Errorf("%w: no answer from the transfer target", ErrNoAudio)
	}
	// One offer at a time: wait (a while) for one crossing the gateway.
	deadline := time.Now().Add(5 * time.Second)
	c.mu.Lock()
	for c.pending && !c.ended && time.Now().Before(deadline) {
		c.mu.Unlock()
		time.Sleep(50 * time.Millisecond)
		c.mu.Lock()
	}
	if c.ended {
		c.mu.Unlock()
		return errors.New("sip: the call ended")
	}
	p, err := readSDP(answer, RewriteOptions{KeepUninspectable: !g.cfg.RejectUninspectable, AcceptSAVP: true})
	if err != nil {
		c.mu.Unlock()
		return err
	}
	st := p.remote
	if st.SRTP, err = keys.tookAnswer(p, c.policy(media.Platform)); err != nil {
		c.mu.Unlock()
		return err
	}
	if err := c.sess.SetRemote(media.Platform, st); err != nil {
		c.mu.Unlock()
		return err
	}
	tr := c.transfer
	old := c.legs[media.Platform]
	c.keys[media.Platform].wipe()
	c.keys[media.Platform] = *keys
	c.keys[media.Platform].cur = st.SRTP
	c.origins[media.Platform] = origin
	c.lastSDP[media.Platform] = offer
	c.prevRemote[media.Platform], c.remote[media.Platform] = st, st
	c.keepRecv(media.Platform, answer)
	lt := &c.st[media.Platform]
	if lt.timer != nil {
		lt.timer.Stop()
	}
	*lt = legTimer{gen: lt.gen + 1}
	c.legs[media.Platform] = nd
	c.retired = append(c.retired, old)
	held := c.remote[media.Carrier].Direction != "" && c.remote[media.Carrier].Direction != "sendrecv"
	var resume []byte
	if held {
		c.origins[media.Carrier].Version++
		if resume, err = c.offerFrom(media.Carrier, &c.keys[media.Carrier], c.origins[media.Carrier]); err == nil {
			c.lastSDP[media.Carrier] = resume
			c.pending = true
		} else {
			g.log.Info("held customer not resumed", zap.String("call", c.id), zap.Error(err))
			resume = nil
		}
	}
	c.transfer = nil
	oldGone := tr != nil && tr.oldGone
	attended := tr != nil && tr.attended
	c.mu.Unlock()

	g.mu.Lock()
	g.calls[nd.callID] = c
	g.mu.Unlock()
	c.timerAnswered(media.Platform, res, se)
	g.reg.update(c.id, func(ci *CallInfo) { c.legInfo(ci) })
	g.metrics.transferred(string(audit.ReasonTransferred))
	g.record(audit.Record{CallID: c.id, Event: audit.EventSIPCallTransferred, Outcome: audit.Success, Reason: audit.ReasonTransferred,
		Trunk: "platform", Method: "REFER", Status: res.StatusCode})
	g.reg.transferred(Transfer{CallID: c.id, Attended: attended, KeepCapture: g.cfg.Transfer.Capture == CaptureKeep, At: time.Now()})
	if resume != nil {
		c.resumeCarrier(resume)
	}
	if !oldGone {
		c.notifyRefer(old, res.StatusCode, res.Reason, true)
		ctx, cancel := context.WithTimeout(context.Background(), 32*sip.T1)
		defer cancel()
		_, _ = old.do(ctx, old.request(sip.BYE, 0))
	}
	return nil
}

// resumeCarrier takes the customer off hold after a transfer: a
// re-INVITE with the gateway's offer (c.pending is set by the caller and
// cleared here).
func (c *call) resumeCarrier(offer []byte) {
	defer func() {
		c.mu.Lock()
		c.pending = false
		c.mu.Unlock()
	}()
	d := c.leg(media.Carrier)
	req := d.request(sip.INVITE, 0)
	c.timerAsk(media.Carrier, req, 0)
	req.AppendHeader(sip.NewHeader("Supported", "timer"))
	req.AppendHeader(sip.NewHeader("Allow", d.t.allow()))
	setBody(req, offer, "application/sdp")
	ctx, cancel := context.WithTimeout(context.Background(), 64*sip.T1)
	defer cancel()
	res, acker, err := d.invite(ctx, req)
	if acker != nil {
		acker.send(nil)
	}
	if err != nil || !res.IsSuccess() {
		c.g.log.Info("customer not taken off hold after the transfer", zap.String("call", c.id), zap.Error(err))
		return
	}
	d.refreshTarget(res)
	c.timerAnswered(media.Carrier, res, 0)
	if rs, err := readSession(res); err == nil && rs.sdp != nil {
		if err := c.takeAnswer(media.Carrier, rs.sdp); err != nil {
			c.g.log.Info("customer's answer after the transfer refused", zap.String("call", c.id), zap.Error(err))
		}
	}
}

// transferFailed tells the transferor why the new leg failed; when the
// transferor has hung up meanwhile, the call ends.
func (c *call) transferFailed(old *dialog, status int, reason string, err error) {
	g := c.g
	c.mu.Lock()
	tr := c.transfer
	c.transfer = nil
	ended := c.ended
	c.mu.Unlock()
	g.log.Info("transfer failed", zap.String("call", c.id), zap.Int("status", status), zap.Error(err))
	if ended {
		return
	}
	outcome := failureOutcome(status)
	g.metrics.transferred(string(outcome))
	g.record(audit.Record{CallID: c.id, Event: audit.EventSIPCallTransferred, Outcome: audit.Failure, Reason: outcome,
		Trunk: "platform", Method: "REFER", Status: status})
	if tr != nil && tr.oldGone {
		c.bye(int(media.Platform))
		c.end(ending{outcome: audit.ReasonCompleted, trunk: "platform", method: "BYE"})
		return
	}
	c.notifyRefer(old, status, reason, true)
}

// transferBye answers a BYE from the transferor's dialog while its
// transfer goes on, or after it: that leg ends, the call does not. It
// reports false when d is no such dialog.
func (c *call) transferBye(d *dialog) bool {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.transfer != nil && c.transfer.old == d {
		c.transfer.oldGone = true
		return true
	}
	for _, r := range c.retired {
		if r == d {
			return true
		}
	}
	return false
}
