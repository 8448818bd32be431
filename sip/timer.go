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

// Session timers (RFC 4028). The gateway is a B2BUA: each leg has its own
// session with its own peer, so each negotiates its own interval and
// refresher. A peer that supports timers refreshes when the request says
// it will (refresher=uac from a caller, refresher=uas in a callee's 2xx)
// or when nobody said; otherwise the gateway refreshes. The side that
// does not refresh watches: no refresh by the interval less a third (at
// most 32 s) ends the call on both legs.

// legTimer is one leg's session timer, under call.mu.
type legTimer struct {
	interval   time.Duration // 0 until negotiated
	gateway    bool          // the gateway refreshes this leg; else its peer does
	peerTimer  bool          // the peer does RFC 4028 (Supported or Require: timer)
	peerUpdate bool          // the peer takes UPDATE, a refresh without SDP
	deadline   time.Time     // when the session expires without a refresh
	timer      *time.Timer
	gen        uint64 // which arming a firing timer belongs to
}

// sessionExpires reads m's Session-Expires (compact x): the interval,
// the refresher parameter ("uac", "uas" or "") and whether there is one.
func sessionExpires(m message) (time.Duration, string, bool) {
	v := headerValue(m, "Session-Expires")
	if v == "" {
		v = headerValue(m, "x")
	}
	if v == "" {
		return 0, "", false
	}
	n, params, _ := strings.Cut(v, ";")
	secs, err := strconv.ParseUint(strings.TrimSpace(n), 10, 32)
	if err != nil || secs == 0 {
		return 0, "", false
	}
	ref := ""
	for p := range strings.SplitSeq(params, ";") {
		k, val, _ := strings.Cut(p, "=")
		if strings.EqualFold(strings.TrimSpace(k), "refresher") {
			ref = strings.ToLower(strings.TrimSpace(val))
		}
	}
	return time.Duration(secs) * time.Second, ref, true
}

// minSE reads m's Min-SE (0: none).
func minSE(m message) time.Duration {
	v, _, _ := strings.Cut(headerValue(m, "Min-SE"), ";")
	secs, err := strconv.ParseUint(strings.TrimSpace(v), 10, 32)
	if err != nil {
		return 0
	}
	return time.Duration(secs) * time.Second
}

func seconds(d time.Duration) string { return strconv.FormatInt(int64(d/time.Second), 10) }

// timerOffered reads a request received on leg that may refresh its
// session (the INVITE that made the call, a re-INVITE, an UPDATE). It
// returns the Min-SE of the 422 the request must get when it asks for
// less than the gateway takes, else 0 (and the leg's timer then follows
// the request).
func (c *call) timerOffered(leg media.Leg, req *sip.Request) time.Duration {
	cfg := c.g.cfg.SessionTimer
	se, ref, ok := sessionExpires(req)
	if ok && se < cfg.MinSE {
		return cfg.MinSE
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	lt := &c.st[leg]
	lt.peerTimer = supports(req, "timer")
	if a, known := allows(req, sip.UPDATE); known {
		lt.peerUpdate = a
	}
	switch {
	case ok:
		lt.interval = se
	case lt.interval == 0:
		lt.interval = max(cfg.Expires, minSE(req))
	}
	// refresher=uac: the peer, which sent this request; uas: the
	// gateway; not said: the peer when it can (RFC 4028 9).
	lt.gateway = ref == "uas" || ref == "" && !lt.peerTimer
	return 0
}

// timerAnswer puts leg's session timer on the gateway's 2xx to a
// request received there.
func (c *call) timerAnswer(leg media.Leg, res *sip.Response) {
	c.mu.Lock()
	lt := c.st[leg]
	c.mu.Unlock()
	if lt.interval == 0 {
		return
	}
	ref := "uac"
	if lt.gateway {
		ref = "uas"
	}
	setHeader(res, "Session-Expires", seconds(lt.interval)+";refresher="+ref)
	if !lt.gateway {
		// The peer must refresh: it has to know (RFC 4028 9).
		res.AppendHeader(sip.NewHeader("Require", "timer"))
	}
}

// timerAsk puts leg's session timer on a request the gateway sends
// there: what the gateway asks for on a new leg (se, refresher left to
// the callee), else the leg's interval with who refreshes it.
func (c *call) timerAsk(leg media.Leg, req *sip.Request, se time.Duration) {
	cfg := c.g.cfg.SessionTimer
	v := ""
	if se > 0 {
		v = seconds(se)
	} else {
		c.mu.Lock()
		lt := c.st[leg]
		c.mu.Unlock()
		if lt.interval == 0 {
			return
		}
		ref := "uas"
		if lt.gateway {
			ref = "uac"
		}
		v = seconds(lt.interval) + ";refresher=" + ref
	}
	setHeader(req, "Session-Expires", v)
	setHeader(req, "Min-SE", seconds(cfg.MinSE))
}

// timerAnswered reads the 2xx to a request the gateway sent on leg with
// interval asked (0: the leg's own) and restarts the leg's timer.
func (c *call) timerAnswered(leg media.Leg, res *sip.Response, asked time.Duration) {
	se, ref, ok := sessionExpires(res)
	c.mu.Lock()
	lt := &c.st[leg]
	lt.peerTimer = supports(res, "timer") || ok
	if a, known := allows(res, sip.UPDATE); known {
		lt.peerUpdate = a
	}
	switch {
	case ok:
		lt.interval, lt.gateway = se, ref != "uas"
	case asked > 0:
		// A callee without timers: the gateway refreshes (RFC 4028 7.2).
		lt.interval, lt.gateway = asked, true
	case lt.interval > 0:
		lt.gateway = true
	}
	c.mu.Unlock()
	c.timerRestart(leg)
}

// timerRestart arms leg's timer from now: the gateway's refresh at half
// the interval, or the expiry when the peer refreshes.
func (c *call) timerRestart(leg media.Leg) {
	c.mu.Lock()
	defer c.mu.Unlock()
	lt := &c.st[leg]
	if c.ended || lt.interval <= 0 {
		return
	}
	lt.deadline = time.Now().Add(lt.interval)
	wait := lt.interval - min(32*time.Second, lt.interval/3)
	if lt.gateway {
		wait = lt.interval / 2
	}
	c.armTimer(leg, wait, lt.gateway)
}

// armTimer sets leg's timer to fire after wait: a refresh, or the
// expiry. Caller holds c.mu.
func (c *call) armTimer(leg media.Leg, wait time.Duration, refresh bool) {
	lt := &c.st[leg]
	if lt.timer != nil {
		lt.timer.Stop()
	}
	lt.gen++
	gen := lt.gen
	lt.timer = time.AfterFunc(wait, func() {
		defer c.recoverGo("session_timer")
		c.mu.Lock()
		stale := lt.gen != gen || c.ended
		c.mu.Unlock()
		switch {
		case stale:
		case refresh:
			c.refresh(leg)
		default:
			c.expire(leg)
		}
	})
}

// expireLater arms leg's expiry after a refresh by the gateway failed
// for a reason that leaves the session alive: it ends when its interval
// runs out, unless the peer refreshes first.
func (c *call) expireLater(leg media.Leg) {
	c.mu.Lock()
	defer c.mu.Unlock()
	lt := &c.st[leg]
	if c.ended {
		return
	}
	c.armTimer(leg, max(time.Until(lt.deadline)-min(32*time.Second, lt.interval/3), 0), false)
}

// stopTimers stops both legs' timers (the call ended). Caller holds c.mu.
func (c *call) stopTimers() {
	for l := range c.st {
		if t := c.st[l].timer; t != nil {
			t.Stop()
		}
		c.st[l].gen++
	}
}

// expire ends the call whose session on leg was not refreshed in time.
func (c *call) expire(leg media.Leg) {
	c.mu.Lock()
	done := c.ended || c.expiring
	c.expiring = true
	c.mu.Unlock()
	if done {
		return // both legs ran out together, or the call is over
	}
	c.g.log.Info("session expired, ending call", zap.String("call", c.id), zap.String("leg", legName(leg)))
	c.g.metrics.expired(legName(leg))
	c.bye(-1)
	c.end(ending{outcome: audit.ReasonSessionExpired, trunk: legName(leg)})
}

// refresh sends the gateway's session refresh on leg: UPDATE without a
// body, or, to a peer that does not take UPDATE, a re-INVITE with the
// SDP the gateway sent there last, unchanged (RFC 4028 7.4); the answer
// to that offer is the one the leg has. A refresh that times out or gets
// 408 or 481 ends the call (RFC 4028 10); one that gets 422 is sent again
// with the interval asked for; other failures leave the session to
// expire unless the peer refreshes.
func (c *call) refresh(leg media.Leg) {
	c.mu.Lock()
	useUpdate, sdp := c.st[leg].peerUpdate, c.lastSDP[leg]
	if sdp == nil {
		useUpdate = true
	}
	// A re-INVITE is an offer: one at a time per call. An UPDATE without
	// SDP is none and goes whatever crosses the gateway.
	busy := !useUpdate && c.pending
	if !busy && !useUpdate {
		c.pending = true
	}
	c.mu.Unlock()
	if busy {
		// An offer is crossing the gateway: it refreshes both legs when
		// it succeeds. Look again shortly.
		c.mu.Lock()
		if !c.ended {
			c.armTimer(leg, 2*time.Second, true)
		}
		c.mu.Unlock()
		return
	}
	if !useUpdate {
		defer func() {
			c.mu.Lock()
			c.pending = false
			c.mu.Unlock()
		}()
	}
	d := c.leg(leg)
	for range 3 {
		method := sip.INVITE
		if useUpdate {
			method = sip.UPDATE
		}
		req := d.request(method, 0)
		c.timerAsk(leg, req, 0)
		req.AppendHeader(sip.NewHeader("Supported", "timer"))
		if method == sip.INVITE {
			req.AppendHeader(sip.NewHeader("Allow", d.t.allow()))
			setBody(req, sdp, "application/sdp")
		}
		ctx, cancel := context.WithTimeout(context.Background(), 64*sip.T1)
		res, acker, err := d.invite(ctx, req)
		cancel()
		if acker != nil {
			acker.send(nil)
		}
		switch {
		case err != nil || res.StatusCode == 408 || res.StatusCode == 481:
			c.g.log.Info("session refresh failed, ending call", zap.String("call", c.id), zap.String("leg", legName(leg)), zap.Error(err))
			c.expire(leg)
			return
		case res.IsSuccess():
			d.refreshTarget(res)
			c.timerAnswered(leg, res, 0)
			return
		case res.StatusCode == 422 && minSE(res) > 0:
			c.mu.Lock()
			c.st[leg].interval = max(c.st[leg].interval, minSE(res))
			c.mu.Unlock()
		case useUpdate && (res.StatusCode == 405 || res.StatusCode == 501) && sdp != nil:
			// No UPDATE after all: a re-INVITE, which waits its turn.
			c.mu.Lock()
			c.st[leg].peerUpdate = false
			if !c.ended {
				c.armTimer(leg, 0, true)
			}
			c.mu.Unlock()
			return
		default:
			c.g.log.Info("session refresh refused", zap.String("call", c.id), zap.String("leg", legName(leg)), zap.Int("status", res.StatusCode))
			c.expireLater(leg)
			return
		}
	}
	c.expireLater(leg)
}

// refuse422 answers req with 422 and the Min-SE it needs.
func refuse422(d *dialog, req *sip.Request, tx sip.ServerTransaction, min time.Duration) {
	res := d.respond(req, 422, "Session Interval Too Small", nil, "")
	res.AppendHeader(sip.NewHeader("Min-SE", seconds(min)))
	_ = tx.Respond(res)
}
