package sip

import (
	"bytes"
	"context"
	"errors"
	"sync"
	"time"

	"github.com/emiago/sipgo/sip"
	"go.uber.org/zap"

	"github.com/tonevault/tonevault/audit"
	"github.com/tonevault/tonevault/media"
	"github.com/tonevault/tonevault/media/sdes"
)

// call is one call through the gateway: two dialogs and one media
// session.
type call struct {
	g    *Gateway
	id   string
	in   media.Leg  // the leg the call arrived on
	legs [2]*dialog // set before the call is published; a transfer replaces one under mu (leg, setLeg)
	sess MediaSession

	// abort ends a call that is not answered yet; the INVITE loop reads
	// it. Buffered so that hangup never blocks.
	abort chan audit.Reason
	done  chan struct{} // closed by end

	mu         sync.Mutex
	origins    [2]Origin
	lastSDP    [2][]byte
	remote     [2]media.Stream
	prevRemote [2]media.Stream
	answered   bool
	ended      bool
	pending    bool                   // an offer/answer in flight
	acks       [2]map[uint32]*ackWait // 2xx waiting for their ACK, by CSeq
	presses    pressTracker           // RFC 4733 reports in the carrier's signalling
	lateOffer  bool                   // the INVITE had no SDP: the offer is in the 2xx
	keys       [2]legKeys             // SDES-SRTP negotiation per leg
	lastRecv   [2][]byte              // the last SDP received on each leg (a transfer offers from it)
	st         [2]legTimer            // session timers per leg
	expiring   bool                   // a leg's session ran out: the call is being ended
	rel        relState               // reliable 18x to the caller
	inviteSeq  uint32                 // CSeq of the caller's INVITE (PRACKs name it)
	earlyTag   string                 // the early dialog whose media the relay has (forking)
	identity   []sip.Header           // what a leg made on the platform trunk says of the caller
	transfer   *transfer              // a REFER being carried out
	retired    []*dialog              // platform dialogs a transfer replaced: BYE still answered
	meta       callMeta               // what a recording's metadata says of the call
	rec        *recording             // the call's SIPREC session, once started
}

// ackWait is a 2xx to an INVITE received on a leg, waiting for its ACK:
// done is closed when it comes, and ack is then the ACK (whose body is the
// answer when the 2xx made the offer).
type ackWait struct {
	done chan struct{}
	ack  *sip.Request
}

// leg is the dialog of leg l now.
func (c *call) leg(l media.Leg) *dialog {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.legs[l]
}

// legPair is both dialogs now, carrier first.
func (c *call) legPair() [2]*dialog {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.legs
}

func otherLeg(l media.Leg) media.Leg {
	if l == media.Carrier {
		return media.Platform
	}
	return media.Carrier
}

func legName(l media.Leg) string {
	if l == media.Carrier {
		return "carrier"
	}
	return "platform"
}

// turn rewrites an SDP body received on leg from so it can be sent on leg
// to, and tells the relay where from's peer wants its media. offer says
// whether the body is an offer (else an answer to the gateway's offer).
// Each leg's SRTP is settled by its own trunk's policy: the keys from's
// peer sent are for the relay only, and what goes to to carries keys the
// gateway drew for to alone.
func (c *call) turn(from, to media.Leg, body []byte, offer bool) ([]byte, error) {
	c.mu.Lock()
	defer c.mu.Unlock()
	opts := c.rewriteOpts(to)
	p, err := readSDP(body, opts)
	if err != nil {
		return nil, err
	}
	st := p.remote
	if offer {
		if st.SRTP, err = c.keys[from].tookOffer(p, c.policy(from)); err != nil {
			return nil, err
		}
		if opts.Crypto, opts.SAVP, err = c.keys[to].offer(c.policy(to)); err != nil {
			return nil, err
		}
	} else {
		if st.SRTP, err = c.keys[from].tookAnswer(p, c.policy(from)); err != nil {
			return nil, err
		}
		if a := c.keys[to].answer; a != nil {
			opts.Crypto = []sdes.Crypto{*a}
		}
		opts.SAVP = c.keys[to].theirSAVP
	}
	out, err := p.write(opts)
	if err != nil {
		return nil, err
	}
	if c.lastSDP[to] != nil && !bytes.Equal(out, c.lastSDP[to]) {
		// A new description on this leg: RFC 3264 8 wants a new version.
		c.origins[to].Version++
		opts.Origin = c.origins[to]
		if p, err = readSDP(body, opts); err != nil {
			return nil, err
		}
		if out, err = p.write(opts); err != nil {
			return nil, err
		}
	}
	if err := c.sess.SetRemote(from, st); err != nil {
		return nil, err
	}
	c.keys[from].cur = st.SRTP
	c.lastSDP[to] = out
	c.prevRemote[from], c.remote[from] = c.remote[from], st
	c.keepRecv(from, body)
	if !offer && c.rec != nil {
		// An answer settles the call's streams: the recording follows.
		c.rec.mediaChanged(c.remote)
	}
	return out, nil
}

// takeAnswer gives the relay an answer received on leg from that goes no
// further: the other side has its own already (it got one reliably, or a
// transfer's new leg answered an offer the gateway made alone).
func (c *call) takeAnswer(from media.Leg, body []byte) error {
	c.mu.Lock()
	defer c.mu.Unlock()
	p, err := readSDP(body, RewriteOptions{KeepUninspectable: !c.g.cfg.RejectUninspectable, AcceptSAVP: true})
	if err != nil {
		return err
	}
	st := p.remote
	if st.SRTP, err = c.keys[from].tookAnswer(p, c.policy(from)); err != nil {
		return err
	}
	if err := c.sess.SetRemote(from, st); err != nil {
		return err
	}
	c.keys[from].cur = st.SRTP
	c.prevRemote[from], c.remote[from] = c.remote[from], st
	c.keepRecv(from, body)
	if c.rec != nil {
		c.rec.mediaChanged(c.remote)
	}
	return nil
}

// keepRecv keeps a copy of the SDP received on leg (its a=crypto keys
// too: wiped when replaced and when the call ends). Caller holds c.mu.
func (c *call) keepRecv(leg media.Leg, body []byte) {
	clear(c.lastRecv[leg])
	c.lastRecv[leg] = append([]byte(nil), body...)
}

// rewriteOpts are the options of an SDP sent on leg to. Caller holds
// c.mu.
func (c *call) rewriteOpts(to media.Leg) RewriteOptions {
	opts := RewriteOptions{Local: c.sess.Local(to), Origin: c.origins[to], KeepUninspectable: !c.g.cfg.RejectUninspectable, AcceptSAVP: true}
	if to == media.Carrier {
		// The customer may always send RFC 4733 to the relay, with the
		// payload type it offered when it did.
		opts.TelephoneEvent, opts.TelephoneEventPT = true, 101
		for _, pt := range c.remote[media.Carrier].PayloadTypes {
			if pt.Codec == media.TelephoneEvent && pt.Rate == 8000 {
				opts.TelephoneEventPT = pt.PT
			}
		}
	}
	return opts
}

// offerFrom writes an offer of the gateway's own for leg to, from the
// last description received on the other leg (not an offer that side is
// making): for a leg the gateway makes alone (a transfer's new leg) or
// re-offers alone (a held customer taken off hold after a transfer).
// The offer sends and receives whatever the description said. keys is
// the SDES state of this offer on to, origin its o= line. Caller holds
// c.mu.
func (c *call) offerFrom(to media.Leg, keys *legKeys, origin Origin) ([]byte, error) {
	body := c.lastRecv[otherLeg(to)]
	if body == nil {
		return nil, ErrNoAudio
	}
	opts := c.rewriteOpts(to)
	opts.Origin = origin
	p, err := readSDP(body, opts)
	if err != nil {
		return nil, err
	}
	sendrecv(p)
	if opts.Crypto, opts.SAVP, err = keys.offer(c.policy(to)); err != nil {
		return nil, err
	}
	return p.write(opts)
}

// policy is the SRTP policy of leg's trunk.
func (c *call) policy(leg media.Leg) SRTPPolicy {
	if leg == media.Carrier {
		return c.g.carrier.cfg.SRTP
	}
	return c.g.platform.cfg.SRTP
}

// rollback restores leg's previous remote stream after a failed offer.
func (c *call) rollback(leg media.Leg) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.prevRemote[leg].Addr.IsValid() {
		c.remote[leg] = c.prevRemote[leg]
		c.keys[leg].cur = c.remote[leg].SRTP
		_ = c.sess.SetRemote(leg, c.remote[leg])
	}
}

// expectAck registers a 2xx to an INVITE received on leg.
func (c *call) expectAck(leg media.Leg, seq uint32) *ackWait {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.acks[leg] == nil {
		c.acks[leg] = map[uint32]*ackWait{}
	}
	w := &ackWait{done: make(chan struct{})}
	c.acks[leg][seq] = w
	return w
}

func (c *call) gotAck(leg media.Leg, ack *sip.Request) {
	c.mu.Lock()
	defer c.mu.Unlock()
	seq := ack.CSeq().SeqNo
	if w, ok := c.acks[leg][seq]; ok {
		w.ack = ack
		close(w.done)
		delete(c.acks[leg], seq)
	}
}

// retransmit resends a 2xx to an INVITE over UDP until its ACK comes
// (RFC 3261 13.3.1.4): T1, doubling up to T2, for 64*T1, and returns the
// ACK. No ACK in that time ends the call (after onGiveUp, when not nil)
// and returns nil, as does the call ending meanwhile.
func (c *call) retransmit(leg media.Leg, tx sip.ServerTransaction, res *sip.Response, w *ackWait, onGiveUp func()) *sip.Request {
	reliable := sip.IsReliable(c.leg(leg).transport)
	interval := sip.T1
	deadline := time.NewTimer(64 * sip.T1)
	defer deadline.Stop()
	for {
		tick := time.NewTimer(interval)
		select {
		case <-w.done:
			tick.Stop()
			return w.ack
		case <-c.done:
			tick.Stop()
			return nil
		case <-deadline.C:
			tick.Stop()
			c.g.log.Warn("no ACK for 2xx, ending call", zap.String("call", c.id), zap.String("leg", legName(leg)))
			if onGiveUp != nil {
				onGiveUp()
			}
			c.hangup(audit.ReasonNoACK)
			return nil
		case <-tick.C:
			if !reliable {
				_ = tx.Respond(res)
			}
			interval = min(2*interval, sip.T2)
		}
	}
}

// watch ends the call when the relay says its media stopped: timed out,
// at its maximum duration, or after a fault (its packets are dropped from
// then on, never forwarded).
func (c *call) watch() {
	select {
	case <-c.sess.Done():
		err := c.sess.Err()
		reason := audit.ReasonMediaTimeout
		switch {
		case errors.Is(err, media.ErrMaxDuration):
			reason = audit.ReasonMaxDuration
		case errors.Is(err, media.ErrRingFailed):
			reason = audit.ReasonRingFailed
		case errors.Is(err, media.ErrFault):
			reason = audit.ReasonMediaFault
		}
		c.g.log.Info("media ended, ending call", zap.String("call", c.id), zap.String("reason", string(reason)))
		runTestFault("watch", "", c.id)
		c.hangup(reason)
	case <-c.done:
	}
}

// hangup ends the call from the gateway's side: BYE on both legs when it
// was answered, CANCEL and an error response when not.
func (c *call) hangup(reason audit.Reason) {
	c.mu.Lock()
	ended, answered := c.ended, c.answered
	c.mu.Unlock()
	if ended {
		return
	}
	if !answered {
		select {
		case c.abort <- reason:
		default:
		}
		return
	}
	c.bye(-1)
	c.end(ending{outcome: reason})
}

// bye sends BYE on every confirmed leg except skip (-1: none) and waits
// for the answers, a few seconds at most.
func (c *call) bye(skip int) {
	var wg sync.WaitGroup
	for l, d := range c.legPair() {
		if l == skip || d == nil || !d.confirmed() {
			continue
		}
		wg.Add(1)
		c.g.goQuiet("bye", c.id, func() {
			defer wg.Done()
			ctx, cancel := context.WithTimeout(context.Background(), 32*sip.T1)
			defer cancel()
			if res, err := d.do(ctx, d.request(sip.BYE, 0)); err != nil {
				c.g.log.Info("BYE failed", zap.String("call", c.id), zap.String("leg", d.t.name), zap.Error(err))
			} else if !res.IsSuccess() {
				c.g.log.Info("BYE refused", zap.String("call", c.id), zap.String("leg", d.t.name), zap.Int("status", res.StatusCode))
			}
		})
	}
	wg.Wait()
}

// ending is how a call ended, for the registry, the metric and the audit
// record.
type ending struct {
	outcome audit.Reason // the metric's outcome label and the record's reason
	trunk   string       // the side that ended or failed the call, when known
	method  string       // the request whose answer ended it, when not the INVITE
	status  int          // the SIP status that decided it, when one did
}

// auditMethod is m for an audit record; a peer may send any token as a
// method, and one that is not upper-case letters stays out of the record
// (the log has it).
func auditMethod(m sip.RequestMethod) string {
	if audit.ValidMethod(string(m)) {
		return string(m)
	}
	return ""
}

// end finishes the call once: frees the media, updates registry,
// metrics and audit.
func (c *call) end(e ending) {
	outcome := string(e.outcome)
	c.mu.Lock()
	if c.ended {
		c.mu.Unlock()
		return
	}
	c.ended = true
	close(c.done)
	c.mu.Unlock()

	c.sess.Close()
	c.mu.Lock()
	rec := c.rec
	c.mu.Unlock()
	if rec != nil {
		rec.stop(e.outcome)
	}
	c.mu.Lock()
	for l := range c.keys {
		c.keys[l].wipe()
		clear(c.lastRecv[l])
	}
	c.stopTimers()
	dialogs := append(c.legs[:], c.retired...)
	c.mu.Unlock()
	g := c.g
	g.mu.Lock()
	for _, d := range dialogs {
		if d != nil && g.calls[d.callID] == c {
			delete(g.calls, d.callID)
		}
	}
	g.mu.Unlock()
	now := time.Now()
	func() {
		// The registry's OnEnd subscribers (payment capture) run in
		// there: a panic of theirs must not keep the call from ending.
		defer func() {
			if v := recover(); v != nil {
				g.fault("call_ended_subscriber", c.id, v)
			}
		}()
		g.reg.update(c.id, func(ci *CallInfo) {
			ci.State, ci.Outcome, ci.End = StateEnded, outcome, now
		})
	}()
	g.metrics.ended(outcome)
	result := audit.Success
	if e.outcome != audit.ReasonCompleted {
		result = audit.Info
	}
	if isFault(e.outcome) {
		result = audit.Failure
		g.record(audit.Record{CallID: c.id, Event: audit.EventCallFailed, Outcome: audit.Failure, Reason: e.outcome, Trunk: e.trunk, Method: e.method, Status: e.status})
	}
	g.record(audit.Record{CallID: c.id, Event: audit.EventSIPCallEnded, Outcome: result, Reason: e.outcome, Trunk: e.trunk, Method: e.method, Status: e.status})
	g.log.Info("call ended", zap.String("call", c.id), zap.String("outcome", outcome), zap.String("trunk", e.trunk), zap.String("method", e.method), zap.Int("status", e.status))
	g.wg.Done()
}

// errNoResponse is a transaction that ended without a final response.
var errNoResponse = errors.New("sip: transaction ended without a final response")

// do sends a request on the dialog's trunk and returns its final
// response.
func (d *dialog) do(ctx context.Context, req *sip.Request) (*sip.Response, error) {
	tx, res, err := d.send(ctx, req)
	if tx != nil {
		tx.Terminate()
	}
	return res, err
}

// send is do without ending the transaction, which is then the caller's
// to terminate (nil when the request could not be sent).
func (d *dialog) send(ctx context.Context, req *sip.Request) (sip.ClientTransaction, *sip.Response, error) {
	tx, err := d.t.transaction(ctx, req)
	if err != nil {
		return nil, nil, err
	}
	for {
		select {
		case res := <-tx.Responses():
			if res.IsProvisional() {
				continue
			}
			return tx, res, nil
		case <-tx.Done():
			// A final response and the end may come together.
			select {
			case res := <-tx.Responses():
				if !res.IsProvisional() {
					return tx, res, nil
				}
			default:
			}
			if err := tx.Err(); err != nil {
				return tx, nil, err
			}
			// Ended without a final response or an error (its
			// connection closed): callers must not see a nil response
			// as an answer.
			return tx, nil, errNoResponse
		case <-ctx.Done():
			return tx, nil, ctx.Err()
		}
	}
}
