package sip

import (
	"context"
	"strconv"
	"strings"
	"time"

	"github.com/emiago/sipgo/sip"
	"go.uber.org/zap"

	"github.com/tonevault/tonevault/audit"
	"github.com/tonevault/tonevault/media"
)

// Reliable provisional responses (RFC 3262, 100rel), on each leg on its
// own: the gateway sends its 18x reliably to a caller that requires
// 100rel, or that supports it when the 18x carries SDP (early media: the
// answer is then final), retransmits each until its PRACK, and sends no
// second one before the first is acknowledged (a later 18x waits; only
// the newest waiting one is sent). A callee's reliable 18x gets the
// gateway's PRACK on its early dialog. PRACKs are the gateway's on each
// leg: none crosses it.

// relState is the gateway's reliable provisional responses to the
// caller, under call.mu.
type relState struct {
	use      bool // the caller supports 100rel
	require  bool // the caller requires it: every 18x goes reliably
	tx       sip.ServerTransaction
	rseq     uint32
	pending  *relProv
	queued   *sip.Response
	answered bool // a reliable 18x with the caller's answer was acknowledged
}

// relProv is a reliable 18x waiting for its PRACK.
type relProv struct {
	rseq  uint32
	res   *sip.Response
	sdp   bool
	acked chan struct{} // closed by its PRACK
}

// relGiveUp is how long a reliable 18x is retransmitted without a PRACK
// (RFC 3262 3: 64*T1); the call is then refused.
var relGiveUp = 64 * sip.T1

// reliable reports whether an 18x to the caller goes reliably.
func (c *call) reliable(withSDP bool) bool {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.rel.require || c.rel.use && withSDP
}

// sendReliable sends res, an 18x to the caller, reliably: now, or when
// the one before is acknowledged.
func (c *call) sendReliable(res *sip.Response) {
	c.mu.Lock()
	if c.rel.pending != nil {
		c.rel.queued = res
		c.mu.Unlock()
		return
	}
	c.rel.rseq++
	p := &relProv{rseq: c.rel.rseq, res: res, sdp: len(res.Body()) > 0, acked: make(chan struct{})}
	c.rel.pending = p
	tx := c.rel.tx
	c.mu.Unlock()
	setHeader(res, "Require", "100rel")
	setHeader(res, "RSeq", strconv.FormatUint(uint64(p.rseq), 10))
	_ = tx.Respond(res)
	c.goCall("reliable_18x", func() { c.retransmitReliable(tx, p) })
}

// retransmitReliable sends p again at T1, doubling, until its PRACK; none
// in relGiveUp refuses the call (RFC 3262 3: 5xx), unless it is answered
// or gone by then.
func (c *call) retransmitReliable(tx sip.ServerTransaction, p *relProv) {
	interval := sip.T1
	deadline := time.NewTimer(relGiveUp)
	defer deadline.Stop()
	for {
		tick := time.NewTimer(interval)
		select {
		case <-p.acked:
			tick.Stop()
			return
		case <-c.done:
			tick.Stop()
			return
		case <-tx.Done():
			tick.Stop()
			return
		case <-deadline.C:
			tick.Stop()
			c.g.log.Info("no PRACK for a reliable provisional response", zap.String("call", c.id))
			select {
			case c.abort <- audit.ReasonFailed:
			default:
			}
			return
		case <-tick.C:
			_ = tx.Respond(p.res)
			interval *= 2
		}
	}
}

// prack answers a PRACK received on leg: 200 when it acknowledges the
// reliable 18x the gateway is waiting for, then the next one goes;
// otherwise 481 (RFC 3262 3). A PRACK with an offer gets 488: the
// gateway's 18x never carry offers.
func (c *call) prack(leg media.Leg, req *sip.Request, tx sip.ServerTransaction) {
	d := c.leg(leg)
	rseq, cseq, method, ok := rack(req)
	c.mu.Lock()
	p := c.rel.pending
	match := ok && leg == c.in && p != nil && rseq == p.rseq && method == sip.INVITE && cseq == c.inviteSeq
	var next *sip.Response
	if match {
		c.rel.pending = nil
		close(p.acked)
		c.rel.answered = c.rel.answered || p.sdp
		next, c.rel.queued = c.rel.queued, nil
	}
	c.mu.Unlock()
	switch {
	case !match:
		_ = tx.Respond(d.respond(req, 481, "Call/Transaction Does Not Exist", nil, ""))
		return
	case len(req.Body()) > 0:
		_ = tx.Respond(d.respond(req, 488, "Not Acceptable Here", nil, ""))
	default:
		_ = tx.Respond(d.respond(req, 200, "OK", nil, ""))
	}
	if next != nil {
		c.sendReliable(next)
	}
}

// awaitPRACK waits, before the 2xx to the caller, for the PRACK of a
// reliable 18x that carried SDP (RFC 3262 3 forbids the 2xx before it).
// It reports false when none came in time or the call ended.
func (c *call) awaitPRACK() bool {
	c.mu.Lock()
	p := c.rel.pending
	c.mu.Unlock()
	if p == nil || !p.sdp {
		return true
	}
	t := time.NewTimer(relGiveUp)
	defer t.Stop()
	select {
	case <-p.acked:
		return true
	case <-c.done:
	case <-t.C:
	}
	return false
}

// rack reads a PRACK's RAck: the RSeq, CSeq number and method it
// acknowledges.
func rack(req *sip.Request) (rseq, cseq uint32, method sip.RequestMethod, ok bool) {
	f := strings.Fields(headerValue(req, "RAck"))
	if len(f) != 3 {
		return 0, 0, "", false
	}
	r, err1 := strconv.ParseUint(f[0], 10, 32)
	s, err2 := strconv.ParseUint(f[1], 10, 32)
	if err1 != nil || err2 != nil {
		return 0, 0, "", false
	}
	return uint32(r), uint32(s), sip.RequestMethod(strings.ToUpper(f[2])), true
}

// rseqOf is a reliable 18x's RSeq; ok is false for an unreliable one.
func rseqOf(res *sip.Response) (uint32, bool) {
	if !hasTag(res, "Require", "100rel") {
		return 0, false
	}
	n, err := strconv.ParseUint(strings.TrimSpace(headerValue(res, "RSeq")), 10, 32)
	if err != nil || n == 0 {
		return 0, false
	}
	return uint32(n), true
}

// sendPRACK acknowledges a callee's reliable 18x on its early dialog d
// (RFC 3262 4); the answer is not waited for by the caller of this.
func (c *call) sendPRACK(d *dialog, rseq, inviteSeq uint32) {
	req := d.request(sip.PRACK, 0)
	req.AppendHeader(sip.NewHeader("RAck", strconv.FormatUint(uint64(rseq), 10)+" "+strconv.FormatUint(uint64(inviteSeq), 10)+" INVITE"))
	c.goCall("prack", func() {
		ctx, cancel := context.WithTimeout(context.Background(), 32*sip.T1)
		defer cancel()
		if res, err := d.do(ctx, req); err != nil {
			c.g.log.Info("PRACK failed", zap.String("call", c.id), zap.Error(err))
		} else if !res.IsSuccess() {
			c.g.log.Info("PRACK refused", zap.String("call", c.id), zap.Int("status", res.StatusCode))
		}
	})
}
