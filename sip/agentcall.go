package sip

import (
	"context"
	"errors"
	"fmt"
	"net/netip"
	"time"

	"github.com/emiago/sipgo/sip"
	"go.uber.org/zap"

	"github.com/tonevault/tonevault/agents"
	"github.com/tonevault/tonevault/audit"
	"github.com/tonevault/tonevault/media"
)

// A call to a pool of browser agents has no SIP dialog on the platform
// side: the media session's platform leg is the agent's WebRTC leg
// (package agents, media/webrtc), which the relay sees as a plain RTP
// peer on loopback. The platform dialog built for the call is only used
// when the call falls back to the pool's SIP target; otherwise it is
// never sent, never confirmed, and BYEs skip it.

// agentOf is the browser agent that has the call, if one does.
func (g *Gateway) agentOf(c *call) agents.Leg {
	if v, ok := g.agentCalls.Load(c.id); ok {
		return v.(agents.Leg)
	}
	return nil
}

// agentCallEnded closes the leg of a call a browser agent had, with the
// call's outcome, once the registry has it (however the call ended).
func (g *Gateway) agentCallEnded(ci CallInfo) {
	v, ok := g.agentCalls.LoadAndDelete(ci.ID)
	if !ok {
		return
	}
	outcome := audit.Reason(ci.Outcome)
	if !outcome.Known() {
		outcome = audit.ReasonFailed
	}
	v.(agents.Leg).Close(outcome)
}

// runAgents rings the pool for a new call from the carrier instead of
// sending outReq, and answers the caller once an agent's media is up.
// When no agent can take the call, outReq goes to the pool's fallback
// target (runInvite), or the caller gets 480.
func (c *call) runAgents(pool string, inReq *sip.Request, inTx sip.ServerTransaction, o *outbound, uris []sip.Uri) {
	g := c.g
	ind := c.legs[c.in]
	fallback, _ := g.agents.Pool(pool)
	codec, ok := c.agentCodec()
	if !ok {
		// A late offer: nothing says yet which G.711 the caller sends,
		// and the browser must be answered with it.
		if fallback != "" {
			c.runInvite(inReq, inTx, o, uris)
			return
		}
		g.log.Info("browser agents need the caller's offer in the INVITE", zap.String("call", c.id))
		_ = inTx.Respond(ind.respond(inReq, 488, "Not Acceptable Here", nil, ""))
		c.end(ending{outcome: audit.ReasonNotAcceptable, trunk: legName(otherLeg(c.in)), status: 488})
		return
	}
	_ = inTx.Respond(ind.respond(inReq, 180, "Ringing", nil, ""))

	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	if !inTx.OnCancel(func(*sip.Request) { cancel() }) {
		cancel()
	}
	// The gateway's own reasons to stop ringing (shutdown, media timeout,
	// a BYE) come on c.abort; the watcher gives c.abort back to
	// runInvite when the call falls back.
	aborted := make(chan audit.Reason, 1)
	ringing := make(chan struct{})
	watched := make(chan struct{})
	go func() {
		defer close(watched)
		select {
		case r := <-c.abort:
			aborted <- r
			cancel()
		case <-ringing:
		}
	}()
	info, _ := g.reg.Get(c.id)
	leg, err := g.agents.Ring(ctx, pool, agents.Call{
		ID: c.id, Caller: info.Caller, Callee: info.Callee, Correlation: info.Correlation,
		Codec: codec, Relay: c.sess.Local(media.Platform),
	})
	close(ringing)
	<-watched
	select {
	case reason := <-aborted:
		if leg != nil {
			leg.Close(reason)
		}
		code := 503
		if reason == audit.ReasonBye {
			code = 487
		}
		c.finishStopped(inReq, inTx, reason, code)
		return
	default:
	}
	if err != nil {
		switch {
		case errors.Is(err, context.Canceled):
			// The caller's CANCEL: sipgo has answered it and the INVITE.
			c.end(ending{outcome: audit.ReasonCancelled})
		case fallback != "":
			g.log.Info("no browser agent took the call, falling back", zap.String("call", c.id), zap.String("pool", pool), zap.Error(err))
			c.runInvite(inReq, inTx, o, uris)
		default:
			g.log.Info("no browser agent took the call", zap.String("call", c.id), zap.String("pool", pool), zap.Error(err))
			_ = inTx.Respond(ind.respond(inReq, 480, "Temporarily Unavailable", nil, ""))
			c.end(ending{outcome: audit.ReasonNoAnswer, trunk: legName(otherLeg(c.in)), status: 480})
		}
		return
	}
	c.answerAgent(inReq, inTx, leg, codec)
}

// agentCodec is the G.711 format the caller offered first: the browser
// is answered with it, so that nothing is transcoded.
func (c *call) agentCodec() (media.Codec, bool) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.lateOffer {
		return 0, false
	}
	for _, pt := range c.remote[media.Carrier].PayloadTypes {
		if pt.Codec == media.PCMU || pt.Codec == media.PCMA {
			return pt.Codec, true
		}
	}
	return 0, false
}

// agentLegSDP is the platform side's SDP for an agent's leg: plain RTP from
// the leg's loopback socket, the call's codec alone, and the direction
// that answers the caller's.
func agentLegSDP(addr netip.AddrPort, codec media.Codec, callerDir string) []byte {
	pt, name := 0, "PCMU"
	if codec == media.PCMA {
		pt, name = 8, "PCMA"
	}
	ip := "IP4"
	if addr.Addr().Is6() {
		ip = "IP6"
	}
	dir := map[string]string{"sendonly": "recvonly", "recvonly": "sendonly", "inactive": "inactive"}[callerDir]
	if dir == "" {
		dir = "sendrecv"
	}
	return fmt.Appendf(nil, "v=0\r\no=- %d 1 IN %s %s\r\ns=-\r\nc=IN %s %s\r\nt=0 0\r\nm=audio %d RTP/AVP %d\r\na=rtpmap:%d %s/8000\r\na=%s\r\n",
		time.Now().UnixNano()&0x7fff_ffff, ip, addr.Addr(), ip, addr.Addr(), addr.Port(), pt, pt, name, dir)
}

// takeAgentAnswer puts the agent leg's SDP on the platform side as the
// answer to the caller's offer, and returns the answer for the caller.
// The platform side is plain RTP on loopback whatever the platform
// trunk's SRTP policy (which is for the SIP peers behind it): the keys
// the gateway offered there are dropped first.
func (c *call) takeAgentAnswer(leg agents.Leg, codec media.Codec) ([]byte, error) {
	c.mu.Lock()
	k := &c.keys[media.Platform]
	for _, o := range k.offered {
		o.Wipe()
	}
	k.offered, k.offeredSAVP = nil, false
	dir := c.remote[media.Carrier].Direction
	c.mu.Unlock()
	return c.turn(media.Platform, media.Carrier, agentLegSDP(leg.Addr(), codec, dir), false)
}

// answerAgent answers the caller for the agent whose leg connected.
func (c *call) answerAgent(inReq *sip.Request, inTx sip.ServerTransaction, leg agents.Leg, codec media.Codec) {
	g := c.g
	ind := c.legs[c.in]
	body, err := c.takeAgentAnswer(leg, codec)
	if err != nil {
		g.log.Info("agent leg SDP refused", zap.String("call", c.id), zap.Error(err))
		leg.Close(audit.ReasonNotAcceptable)
		_ = inTx.Respond(ind.respond(inReq, 488, "Not Acceptable Here", nil, ""))
		c.end(ending{outcome: audit.ReasonNotAcceptable, trunk: legName(otherLeg(c.in))})
		return
	}
	g.agentEnds.Do(func() { g.reg.OnEnd(g.agentCallEnded) })
	g.agentCalls.Store(c.id, leg)
	out := ind.respond(inReq, 200, "OK", body, "application/sdp")
	out.AppendHeader(sip.NewHeader("Allow", ind.t.allow()))
	w := c.expectAck(c.in, inReq.CSeq().SeqNo)
	c.mu.Lock()
	c.answered = true
	c.mu.Unlock()
	// From here the call is the agent's: whoever ends it, the leg hears
	// the outcome last.
	c.goCall("agent", func() { c.followAgent(leg) })
	if err := inTx.Respond(out); err != nil {
		g.log.Info("2xx to caller failed", zap.String("call", c.id), zap.Error(err))
		c.end(ending{outcome: audit.ReasonCancelled, trunk: ind.t.name})
		return
	}
	now := time.Now()
	g.reg.update(c.id, func(ci *CallInfo) {
		ci.State, ci.Answer = StateAnswered, now
	})
	leg.Answered()
	g.log.Info("call answered by a browser agent", zap.String("call", c.id), zap.String("agent", leg.Agent()))
	c.goCall("recording", c.record)
	c.retransmit(c.in, inTx, out, w, nil)
}

// followAgent ends the call when the agent does (hang-up: completed by
// the platform side; media gone: agent_gone). The leg hears the call's
// outcome from agentCallEnded.
func (c *call) followAgent(leg agents.Leg) {
	select {
	case <-leg.Done():
		outcome := audit.ReasonCompleted
		if leg.Reason() != audit.ReasonAgentHangup {
			outcome = leg.Reason()
		}
		c.g.log.Info("browser agent ended the call", zap.String("call", c.id), zap.String("reason", string(leg.Reason())))
		c.bye(int(media.Platform))
		c.end(ending{outcome: outcome, trunk: legName(media.Platform)})
	case <-c.done:
	}
}

// agentReoffer answers a re-INVITE or UPDATE from the caller on a call a
// browser agent has: the gateway answers for the agent's leg itself
// (hold, resume, a session refresh, a new address), keeping the leg's
// codec. An offerless re-INVITE gets the gateway's current description
// as the offer, and the caller's answer in its ACK is taken.
func (c *call) agentReoffer(leg agents.Leg, req *sip.Request, tx sip.ServerTransaction) {
	g := c.g
	d := c.legs[media.Carrier]
	sess, err := readSession(req)
	if err != nil {
		refuseBody(d, req, tx, err)
		return
	}
	c.mu.Lock()
	busy := c.pending
	c.pending = true
	codec := media.PCMU
	for _, pt := range c.remote[media.Platform].PayloadTypes {
		if pt.Codec == media.PCMA {
			codec = media.PCMA
		}
	}
	last := c.lastSDP[media.Carrier]
	c.mu.Unlock()
	if busy {
		_ = tx.Respond(d.respond(req, 491, "Request Pending", nil, ""))
		return
	}
	defer func() {
		c.mu.Lock()
		c.pending = false
		c.mu.Unlock()
	}()
	d.refreshTarget(req)
	isInvite := req.IsInvite()
	var body []byte
	if sess.sdp == nil {
		if !isInvite {
			_ = tx.Respond(d.respond(req, 200, "OK", nil, ""))
			return
		}
		body = last
	} else {
		if _, err := c.turn(media.Carrier, media.Platform, sess.sdp, true); err != nil {
			g.log.Info("re-offer refused", zap.String("call", c.id), zap.Error(err))
			_ = tx.Respond(d.respond(req, 488, "Not Acceptable Here", nil, ""))
			return
		}
		if !c.offers(codec) {
			// The browser's leg has one codec for the whole call.
			c.rollback(media.Carrier)
			_ = tx.Respond(d.respond(req, 488, "Not Acceptable Here", nil, ""))
			return
		}
		if body, err = c.takeAgentAnswer(leg, codec); err != nil {
			g.log.Info("re-offer answer refused", zap.String("call", c.id), zap.Error(err))
			c.rollback(media.Carrier)
			_ = tx.Respond(d.respond(req, 488, "Not Acceptable Here", nil, ""))
			return
		}
	}
	resp := d.respond(req, 200, "OK", body, "application/sdp")
	if !isInvite {
		_ = tx.Respond(resp)
		return
	}
	w := c.expectAck(media.Carrier, req.CSeq().SeqNo)
	_ = tx.Respond(resp)
	ack := c.retransmit(media.Carrier, tx, resp, w, nil)
	if ack == nil || sess.sdp != nil {
		return
	}
	// Offerless: the ACK answers the gateway's description.
	if as, err := readSession(ack); err == nil && as.sdp != nil {
		if _, err := c.turn(media.Carrier, media.Platform, as.sdp, false); err != nil {
			g.log.Info("answer in ACK refused", zap.String("call", c.id), zap.Error(err))
		}
	}
}

// offers reports whether the caller's latest SDP has codec.
func (c *call) offers(codec media.Codec) bool {
	c.mu.Lock()
	defer c.mu.Unlock()
	for _, pt := range c.remote[media.Carrier].PayloadTypes {
		if pt.Codec == codec {
			return true
		}
	}
	return false
}
