package sip

import (
	"context"
	"sync"
	"time"

	"github.com/emiago/sipgo/sip"
	"go.uber.org/zap"
)

// outbound is one dialog-creating INVITE the gateway sends through a
// trunk: to each destination in turn, until one answers at all. A
// destination that says nothing in the trunk's FailoverTimeout, that an
// ICMP error says cannot be reached, that refuses the connection or
// answers 503 is given up, marked down for a while, and the next one is
// tried. A given-up INVITE is not forgotten: a late provisional response
// to it gets a CANCEL, a late 2xx an ACK and a BYE.
//
// Responses to the destination that answered may come from several
// early dialogs (a forking proxy behind it): each gets its own dialog
// state (fork), its reliable 18x their PRACKs, and the first 2xx wins;
// a 2xx of another fork gets ACK and BYE.
type outbound struct {
	c     *call
	d     *dialog // the dialog being made: Call-ID, local tag and identity
	dests []dest
	next  int
	build func(req *sip.Request) // adds the INVITE's own headers and body
	se    time.Duration          // the Session-Expires asked for
	rel   bool                   // Supported: 100rel (the gateway PRACKs)
	cur   *attempt
}

// attempt is the INVITE to one destination.
type attempt struct {
	o      *outbound
	dest   dest
	req    *sip.Request
	tx     sip.ClientTransaction
	giveUp chan struct{} // closed when this destination is to be given up

	mu          sync.Mutex
	closed      bool // giveUp is closed
	stopped     bool
	timer       *time.Timer
	stopWatch   func()
	unreachable bool

	responded   bool // any response: the failover timer stops
	provisional bool // a provisional response: CANCEL may be sent
	forks       map[string]*fork
}

// fork is an early dialog of an attempt.
type fork struct {
	d      *dialog
	rseq   uint32 // the last RSeq acknowledged
	answer []byte // the SDP of its last 18x with one
}

// start sends the INVITE to the next destination that takes it. It
// reports false when none is left.
func (o *outbound) start(ctx context.Context) bool {
	t := o.d.t
	for o.next < len(o.dests) {
		dst := o.dests[o.next]
		o.next++
		a, err := o.send(ctx, dst)
		if err == nil {
			o.cur = a
			return true
		}
		o.c.g.log.Info("INVITE could not be sent; next target", zap.String("call", o.c.id), zap.String("target", dst.key()), zap.Error(err))
		t.routes.markDown(dst.key(), downFor)
		o.c.g.metrics.failedOver(t.name, "refused")
	}
	o.cur = nil
	return false
}

// retry sends the INVITE to the same destination again, asking for
// session interval se (after a 422).
func (o *outbound) retry(ctx context.Context, se time.Duration) bool {
	o.se = se
	o.next--
	return o.start(ctx)
}

func (o *outbound) send(ctx context.Context, dst dest) (*attempt, error) {
	d := o.d
	d.mu.Lock()
	d.target = *dst.uri.Clone()
	d.remoteURI = sip.Uri{Scheme: dst.uri.Scheme, User: dst.uri.User, Host: dst.uri.Host, Port: dst.uri.Port}
	d.transport = dst.transport
	d.sips = dst.uri.Scheme == "sips"
	d.mu.Unlock()
	req := d.request(sip.INVITE, 0)
	o.build(req)
	o.c.timerAsk(d.t.leg, req, o.se)
	sup := "timer"
	if o.rel {
		sup = "100rel, timer"
	}
	setHeader(req, "Supported", sup)
	req.SetDestination(dst.addr)
	d.mu.Lock()
	d.inviteSeq = req.CSeq().SeqNo
	d.mu.Unlock()
	// Watch before sending: the ICMP error can come back at once.
	unreachable, stopWatch := d.t.watchUnreachable(dst)
	dctx, cancel := ctx, context.CancelFunc(func() {})
	if dst.transport != "UDP" {
		// Only the connection uses this context: a peer that drops SYNs
		// is given up like one that does not answer. (A UDP request too
		// large for UDP tries TCP for tcpDialTimeout, then goes over UDP
		// all the same.)
		dctx, cancel = context.WithTimeout(ctx, d.t.failoverTimeout())
	}
	tx, err := d.t.transaction(dctx, req)
	cancel()
	if err != nil {
		stopWatch()
		return nil, err
	}
	a := &attempt{o: o, dest: dst, req: req, tx: tx, giveUp: make(chan struct{}), forks: map[string]*fork{}}
	a.stopWatch = stopWatch
	a.timer = time.AfterFunc(d.t.failoverTimeout(), func() {
		defer o.c.recoverGo("failover_timer")
		a.fail(false)
	})
	if unreachable != nil {
		o.c.goCall("unreachable", func() {
			select {
			case <-unreachable:
				a.fail(true)
			case <-a.giveUp:
			case <-tx.Done():
			}
		})
	}
	return a, nil
}

// fail says the destination is to be given up, unless it has answered.
func (a *attempt) fail(unreachable bool) {
	a.mu.Lock()
	defer a.mu.Unlock()
	if a.responded || a.closed {
		return
	}
	a.closed, a.unreachable = true, unreachable
	close(a.giveUp)
}

// isResponded reports whether the destination has answered.
func (a *attempt) isResponded() bool {
	a.mu.Lock()
	defer a.mu.Unlock()
	return a.responded
}

// stop ends the failover watch.
func (a *attempt) stop() {
	a.mu.Lock()
	if a.stopped {
		a.mu.Unlock()
		return
	}
	a.stopped = true
	a.timer.Stop()
	a.mu.Unlock()
	a.stopWatch()
}

// answered notes a response: the destination is alive and keeps the
// INVITE, even when its failover timer fired a moment before.
func (a *attempt) answered(res *sip.Response) {
	a.mu.Lock()
	a.responded = true
	if res.StatusCode > 100 && res.IsProvisional() {
		a.provisional = true
	}
	a.mu.Unlock()
	a.stop()
	a.o.d.t.routes.markUp(a.dest.key())
}

// reason says why the destination was given up: "unreachable" or
// "timeout".
func (a *attempt) reason() string {
	a.mu.Lock()
	defer a.mu.Unlock()
	if a.unreachable {
		return "unreachable"
	}
	return "timeout"
}

// canCancel reports whether a CANCEL may be sent (RFC 3261 9.1: after a
// provisional response).
func (a *attempt) canCancel() bool {
	a.mu.Lock()
	defer a.mu.Unlock()
	return a.provisional
}

// abandon gives the attempt up for good: the gateway moved on or the
// call stopped before it answered. What it still answers is dealt with
// in the background.
func (o *outbound) abandon(a *attempt) {
	a.stop()
	a.mu.Lock()
	dead := a.unreachable
	a.mu.Unlock()
	if dead {
		a.tx.Terminate()
		return
	}
	o.c.g.goQuiet("drain", o.c.id, func() { o.drain(a, false) })
}

// drain answers what an abandoned INVITE still gets: CANCEL for a
// provisional response (unless cancelled already), ACK and BYE for a
// 2xx.
func (o *outbound) drain(a *attempt, cancelled bool) {
	defer a.tx.Terminate()
	for {
		select {
		case res := <-a.tx.Responses():
			switch {
			case res.IsProvisional():
				if !cancelled {
					cancelled = true
					o.c.g.goQuiet("cancel", o.c.id, func() {
						ctx, cancel := context.WithTimeout(context.Background(), 64*sip.T1)
						defer cancel()
						_, _ = o.d.do(ctx, cancelFor(a.req))
					})
				}
			case res.IsSuccess():
				o.stray(a.tx, a.req, res)
				return
			default:
				return
			}
		case <-a.tx.Done():
			return
		}
	}
}

// stray ends a dialog that a 2xx to req made and the gateway does not
// want (a fork that lost, an abandoned target that answered late): ACK,
// then BYE.
func (o *outbound) stray(tx sip.ClientTransaction, req *sip.Request, res *sip.Response) {
	sd := o.d.fork()
	sd.learnUAC(res)
	seq := req.CSeq().SeqNo
	sd.mu.Lock()
	sd.localSeq = seq
	sd.mu.Unlock()
	newAcker(tx, sd, seq).send(nil)
	o.c.g.log.Info("2xx from a dialog not taken: ACK and BYE", zap.String("call", o.c.id))
	o.c.g.goQuiet("bye", o.c.id, func() {
		ctx, cancel := context.WithTimeout(context.Background(), 32*sip.T1)
		defer cancel()
		_, _ = sd.do(ctx, sd.request(sip.BYE, 0))
	})
}

// provisional takes an 18x of the current attempt: its early dialog is
// noted (and PRACKed when the 18x is reliable), and the SDP it carries
// kept for that dialog. It returns the fork, nil for an 18x without a
// To tag.
func (o *outbound) provisional(res *sip.Response) *fork {
	a := o.cur
	tag, _ := res.To().Params.Get("tag")
	if tag == "" {
		return nil
	}
	f := a.forks[tag]
	if f == nil {
		f = &fork{d: o.d.fork()}
		a.forks[tag] = f
	}
	f.d.learnUAC(res)
	if rseq, ok := rseqOf(res); ok && (f.rseq == 0 || rseq == f.rseq+1) {
		f.rseq = rseq
		o.c.sendPRACK(f.d, rseq, a.req.CSeq().SeqNo)
	}
	if rs, err := readSession(res); err == nil && rs.sdp != nil {
		f.answer = rs.sdp
	}
	return f
}

// accept makes the 2xx's dialog the leg's: it returns the 2xx's fork
// (nil when none was early) and the acker of its ACK, which also ends
// any other fork's 2xx.
func (o *outbound) accept(res *sip.Response) (*fork, *acker) {
	a := o.cur
	tag, _ := res.To().Params.Get("tag")
	f := a.forks[tag]
	o.d.learnUAC(res)
	if f != nil {
		f.d.mu.Lock()
		seq := f.d.localSeq
		f.d.mu.Unlock()
		o.d.mu.Lock()
		o.d.localSeq = max(o.d.localSeq, seq)
		o.d.mu.Unlock()
	}
	ack := newAcker(a.tx, o.d, a.req.CSeq().SeqNo)
	var mu sync.Mutex
	ended := map[string]bool{tag: true}
	ack.mu.Lock()
	ack.other = func(r *sip.Response) {
		t, _ := r.To().Params.Get("tag")
		mu.Lock()
		done := ended[t]
		ended[t] = true
		mu.Unlock()
		if !done {
			o.stray(a.tx, a.req, r)
		}
	}
	ack.mu.Unlock()
	return f, ack
}
