package sip

import (
	"context"
	"errors"
	"net/netip"
	"slices"
	"sync"
	"sync/atomic"
	"time"

	"github.com/emiago/sipgo/sip"
	"go.uber.org/zap"

	"github.com/tonevault/tonevault/audit"
	"github.com/tonevault/tonevault/media"
	"github.com/tonevault/tonevault/siprec"
)

// SIPREC (RFC 7866): the gateway is the recording client (SRC) of the
// calls that come in on a trunk with recording.srs. Once such a call is
// answered it opens the call's recording fork in the relay and a dialog
// of its own with the recording server (SRS), through the platform
// trunk: an INVITE with Require: siprec, a Contact with +sip.src, and a
// multipart body of two sendonly streams (a=label 1, the customer's as
// the platform gets it, masked; 2, the agent's) and the RFC 7865
// metadata. The server's answer says where the fork sends; a BYE ends
// the session when the call ends. An answer that changes the call's
// payload types (a re-INVITE or UPDATE to another codec) re-offers the
// recording with them. The recorder never gets what the
// agent would not: the fork copies the masked stream.
//
// A recording that fails (no answer in recording.timeout, a refusal, an
// answer without usable streams, the fork not opening, the server's
// BYE) never touches the call: it is audited (recording.failed) and
// counted. With recording.required the call is ended instead (BYE on
// both legs, reason recording_failed), and new calls get 503 while the
// server's OPTIONS probe says it is down.

// recorder is the recording server of the calls of one trunk, and its
// health.
type recorder struct {
	cfg RecordingConfig
	uri sip.Uri
	in  *trunk // the calls it records came in on this trunk
	via *trunk // the recording sessions leave through this one (platform)
	log *zap.Logger
	m   *Metrics
	// state is recorderUnknown until a probe has answered.
	state atomic.Int32
}

const (
	recorderUnknown int32 = iota
	recorderUp
	recorderDown
)

// newRecorder is trunk in's recorder, nil when it records nothing.
func newRecorder(cfg RecordingConfig, in, via *trunk, log *zap.Logger, m *Metrics) (*recorder, error) {
	if cfg.SRS == "" {
		return nil, nil
	}
	r := &recorder{cfg: cfg.withDefaults(), in: in, via: via, log: log, m: m}
	if err := sip.ParseUri(cfg.SRS, &r.uri); err != nil {
		return nil, err
	}
	return r, nil
}

// up reports whether the server is taken to be up: always without
// probes, else the last probe's word, and a probe now when none has
// answered yet.
func (r *recorder) up() bool {
	if r.cfg.ProbeInterval <= 0 {
		return true
	}
	if r.state.Load() == recorderUnknown {
		r.probeOnce()
	}
	return r.state.Load() == recorderUp
}

// probe sends OPTIONS to the server every ProbeInterval until stop.
func (r *recorder) probe(stop <-chan struct{}) {
	tick := time.NewTicker(r.cfg.ProbeInterval)
	defer tick.Stop()
	for {
		r.probeOnce()
		select {
		case <-stop:
			return
		case <-tick.C:
		}
	}
}

// probeOnce probes each address of the server until one answers.
func (r *recorder) probeOnce() {
	ctx, cancel := context.WithTimeout(context.Background(), r.cfg.Timeout)
	defer cancel()
	up := false
	if ds, err := r.via.routes.destinations(ctx, r.uri); err == nil {
		for _, d := range ds {
			if up = r.via.pingWithin(d, r.cfg.Timeout); up {
				break
			}
		}
	}
	st := recorderDown
	if up {
		st = recorderUp
	}
	if old := r.state.Swap(st); old != st {
		r.log.Info("recording server state", zap.String("trunk", r.in.name), zap.String("srs", r.uri.Host), zap.Bool("up", up))
	}
	r.m.recorderUp(r.in.name, up)
}

// callMeta is what the metadata says of a call, taken from its INVITE.
type callMeta struct {
	caller, callee siprec.Party
	start          time.Time
	correlation    []siprec.Correlation
}

// newCallMeta reads the parties of a call from its INVITE. A caller
// who withheld their identity (RFC 3323) is anonymous to the recorder,
// as to any peer outside the trust domain.
func newCallMeta(req *sip.Request, corr map[string]string, names []string) callMeta {
	aor := func(u sip.Uri) string {
		return (&sip.Uri{Scheme: u.Scheme, User: u.User, Host: u.Host, Port: u.Port}).String()
	}
	m := callMeta{start: time.Now(),
		caller: siprec.Party{AOR: aor(req.From().Address), Name: req.From().DisplayName},
		callee: siprec.Party{AOR: aor(req.To().Address), Name: req.To().DisplayName}}
	if withheld(req) {
		m.caller = siprec.Withheld
	}
	for _, h := range names {
		if v, ok := corr[h]; ok {
			m.correlation = append(m.correlation, siprec.Correlation{Header: h, Value: v})
		}
	}
	return m
}

// recording is one call's recording session.
type recording struct {
	c  *call
	rc *recorder
	d  *dialog

	reMu sync.Mutex // one re-offer at a time

	mu      sync.Mutex
	fork    MediaRecording
	up      bool            // the server accepted: a BYE ends it
	stopped bool            // ended or failed: nothing more to do
	formats []siprec.Format // the payload types offered
	origin  siprec.Origin   // the o= line of the last offer
}

// errNoStreams: the server's answer takes neither stream.
var errNoStreams = errors.New("sip: the recording server's answer takes neither stream")

// record starts the call's recording, when its trunk has one; it runs
// on a goroutine of the call's once the call is answered.
func (c *call) record() {
	g := c.g
	rc := g.recorders[c.in]
	if rc == nil {
		return
	}
	c.mu.Lock()
	if c.ended || c.rec != nil {
		c.mu.Unlock()
		return
	}
	r := &recording{c: c, rc: rc}
	c.rec = r
	formats := recordingFormats(c.remote)
	c.mu.Unlock()

	fork, err := c.sess.Record()
	if err != nil {
		r.fail(audit.ReasonRecordingForkFailed, 0, err)
		return
	}
	r.mu.Lock()
	if r.stopped { // the call ended meanwhile
		r.mu.Unlock()
		fork.Close()
		return
	}
	r.fork = fork
	r.formats = formats
	r.origin = siprec.Origin{User: "tonevault", SessionID: uint64(time.Now().UnixNano() & 0x7fff_ffff), Version: 1}
	offer := r.offer(fork, formats)
	r.mu.Unlock()
	meta, err := siprec.NewMetadata(c.metadata(), time.Now()).Marshal()
	if err != nil {
		r.fail(audit.ReasonRecordingForkFailed, 0, err)
		return
	}
	body, ctype := siprec.Body(offer, meta)

	via := rc.via
	u := rc.uri
	r.d = &dialog{t: via, callID: newSIPCallID(via.addr.Addr().String()), localTag: sip.GenerateTagN(16), localSeq: randSeq(),
		localURI:  sip.Uri{Scheme: "sip", User: "tonevault", Host: via.addr.Addr().String()},
		remoteURI: sip.Uri{Scheme: u.Scheme, User: u.User, Host: u.Host, Port: u.Port},
		target:    *u.Clone(), transport: transportFor(u), sips: u.Scheme == "sips"}
	g.addRecording(r)

	ctx, cancel := context.WithTimeout(context.Background(), rc.cfg.Timeout)
	defer cancel()
	dests, err := via.routes.destinations(ctx, u)
	if err != nil {
		r.fail(audit.ReasonRecorderUnreachable, 0, err)
		return
	}
	reason := audit.ReasonRecorderUnreachable
	for _, dst := range dests {
		var res *sip.Response
		var tx sip.ClientTransaction
		res, tx, reason, err = r.invite(ctx, dst, body, ctype)
		if res == nil {
			if reason == audit.ReasonRecorderUnreachable && ctx.Err() == nil {
				continue // the next address may do
			}
			break
		}
		if !res.IsSuccess() {
			r.fail(audit.ReasonRecorderRejected, res.StatusCode, nil)
			return
		}
		r.answered(tx, res)
		return
	}
	r.fail(reason, 0, err)
}

// offer is the recording session's SDP: both streams sendonly from the
// fork's ports. Caller holds r.mu.
func (r *recording) offer(fork MediaRecording, formats []siprec.Format) []byte {
	cust, agent := fork.Local()
	return siprec.WriteSDP(r.origin, []siprec.MediaStream{
		{Label: siprec.LabelCustomer, Addr: cust, Direction: "sendonly", Formats: formats},
		{Label: siprec.LabelAgent, Addr: agent, Direction: "sendonly", Formats: formats},
	})
}

// srcContact marks req's Contact as an SRC's (RFC 7866 6.1.1).
func srcContact(req *sip.Request) {
	if ct, ok := req.GetHeader("Contact").(*sip.ContactHeader); ok {
		if ct.Params == nil {
			ct.Params = sip.NewParams()
		}
		ct.Params.Add("+sip.src", "")
	}
}

// mediaChanged is told that an offer or answer changed the call's
// streams: when the payload types the recording was offered are no
// longer the call's (a re-INVITE or UPDATE changed the codec), the
// server gets a new offer. Caller holds c.mu.
func (r *recording) mediaChanged(remote [2]media.Stream) {
	formats := recordingFormats(remote)
	r.mu.Lock()
	changed := r.up && !r.stopped && !slices.Equal(formats, r.formats)
	r.mu.Unlock()
	if changed {
		r.c.goCall("recording_reoffer", r.reoffer)
	}
}

// reoffer sends the server a re-INVITE with the call's payload types
// now, and takes its answer. A server that refuses it, or does not
// answer, fails the recording: what it would record is not what it
// agreed to.
func (r *recording) reoffer() {
	r.reMu.Lock()
	defer r.reMu.Unlock()
	c, g, d := r.c, r.c.g, r.d
	c.mu.Lock()
	formats := recordingFormats(c.remote)
	c.mu.Unlock()
	r.mu.Lock()
	if !r.up || r.stopped || slices.Equal(formats, r.formats) {
		r.mu.Unlock()
		return
	}
	r.origin.Version++
	r.formats = formats
	offer := r.offer(r.fork, formats)
	fork := r.fork
	r.mu.Unlock()
	req := d.request(sip.INVITE, 0)
	srcContact(req)
	req.AppendHeader(sip.NewHeader("Require", "siprec"))
	req.AppendHeader(sip.NewHeader("User-Agent", g.cfg.UserAgent))
	setBody(req, offer, "application/sdp")
	ctx, cancel := context.WithTimeout(context.Background(), r.rc.cfg.Timeout)
	defer cancel()
	tx, res, err := d.send(ctx, req)
	switch {
	case err != nil && ctx.Err() != nil:
		if tx != nil {
			tx.Terminate()
		}
		r.byeServer()
		r.fail(audit.ReasonRecorderTimeout, 0, err)
		return
	case err != nil:
		if tx != nil {
			tx.Terminate()
		}
		r.fail(audit.ReasonRecorderUnreachable, 0, err)
		return
	case !res.IsSuccess():
		tx.Terminate()
		r.byeServer()
		r.fail(audit.ReasonRecorderRejected, res.StatusCode, nil)
		return
	}
	d.refreshTarget(res)
	newAcker(tx, d, req.CSeq().SeqNo).send(nil)
	cust, agent, err := answerStreams(res)
	if err == nil {
		err = fork.SetRemote(cust, agent)
	}
	if err != nil {
		r.byeServer()
		r.fail(audit.ReasonRecorderBadAnswer, res.StatusCode, err)
		return
	}
	g.log.Info("recording re-offered", zap.String("call", c.id))
}

// invite sends the recording session's INVITE to dst and waits for its
// final response, until ctx ends. Without a response it says why.
func (r *recording) invite(ctx context.Context, dst dest, body []byte, ctype string) (*sip.Response, sip.ClientTransaction, audit.Reason, error) {
	d, g := r.d, r.c.g
	d.mu.Lock()
	d.transport = dst.transport
	d.mu.Unlock()
	req := d.request(sip.INVITE, 0)
	srcContact(req)
	req.AppendHeader(sip.NewHeader("Require", "siprec"))
	req.AppendHeader(sip.NewHeader("Accept", "application/sdp"))
	req.AppendHeader(sip.NewHeader("Allow", "INVITE, ACK, CANCEL, BYE, OPTIONS"))
	req.AppendHeader(sip.NewHeader("User-Agent", g.cfg.UserAgent))
	setBody(req, body, ctype)
	req.SetDestination(dst.addr)
	unreachable, stopWatch := d.t.watchUnreachable(dst)
	defer stopWatch()
	tx, err := d.t.transaction(ctx, req)
	if err != nil {
		if ctx.Err() != nil {
			return nil, nil, audit.ReasonRecorderTimeout, err
		}
		return nil, nil, audit.ReasonRecorderUnreachable, err
	}
	provisional := false
	giveUp := func() {
		if provisional {
			g.goQuiet("recording_cancel", r.c.id, func() {
				cctx, cancel := context.WithTimeout(context.Background(), 64*sip.T1)
				defer cancel()
				_, _ = d.do(cctx, cancelFor(req))
				tx.Terminate()
			})
			return
		}
		tx.Terminate()
	}
	for {
		select {
		case res := <-tx.Responses():
			if res.IsProvisional() {
				provisional = provisional || res.StatusCode > 100
				continue
			}
			if !res.IsSuccess() {
				tx.Terminate()
			}
			return res, tx, "", nil
		case <-tx.Done():
			select {
			case res := <-tx.Responses():
				if !res.IsProvisional() {
					return res, tx, "", nil
				}
			default:
			}
			if errors.Is(tx.Err(), sip.ErrTransactionTimeout) {
				return nil, nil, audit.ReasonRecorderTimeout, tx.Err()
			}
			return nil, nil, audit.ReasonRecorderUnreachable, tx.Err()
		case <-unreachable:
			tx.Terminate()
			return nil, nil, audit.ReasonRecorderUnreachable, errors.New("sip: ICMP unreachable")
		case <-ctx.Done():
			giveUp()
			return nil, nil, audit.ReasonRecorderTimeout, ctx.Err()
		}
	}
}

// answered takes the server's 2xx: ACK, then the fork sends where the
// answer says. An answer with no usable stream is ACKed and ended with
// BYE.
func (r *recording) answered(tx sip.ClientTransaction, res *sip.Response) {
	c, g, d := r.c, r.c.g, r.d
	d.learnUAC(res)
	newAcker(tx, d, d.inviteSeqNo()).send(nil)
	cust, agent, err := answerStreams(res)
	if err == nil {
		r.mu.Lock()
		fork := r.fork
		r.mu.Unlock()
		err = fork.SetRemote(cust, agent)
	}
	if err != nil {
		g.log.Info("recording server's answer refused", zap.String("call", c.id), zap.Error(err))
		r.byeServer()
		r.fail(audit.ReasonRecorderBadAnswer, res.StatusCode, err)
		return
	}
	r.mu.Lock()
	if r.stopped { // the call ended while the server answered
		r.mu.Unlock()
		r.byeServer()
		return
	}
	r.up = true
	r.mu.Unlock()
	g.metrics.recording("started")
	g.record(audit.Record{CallID: c.id, Event: audit.EventRecordingStarted, Outcome: audit.Success, Trunk: d.t.name, Status: res.StatusCode})
	g.log.Info("recording started", zap.String("call", c.id), zap.String("srs_call_id", d.callID))
}

// inviteSeqNo is the CSeq of the dialog's INVITE: the last one sent.
func (d *dialog) inviteSeqNo() uint32 {
	d.mu.Lock()
	defer d.mu.Unlock()
	return d.localSeq
}

// answerStreams reads the server's answer: the customer stream and the
// agent stream, by a=label (or, without labels, in the offer's order).
// A stream the server rejected (port 0) is not sent; both rejected is
// an error.
func answerStreams(res *sip.Response) (cust, agent media.Stream, err error) {
	ct := ""
	if h := res.ContentType(); h != nil {
		ct = h.Value()
	}
	sdp, _, err := siprec.ReadBody(ct, res.Body())
	if err != nil && !errors.Is(err, siprec.ErrNotSIPREC) {
		return cust, agent, err
	}
	streams, err := siprec.ReadSDP(sdp)
	if err != nil {
		return cust, agent, err
	}
	conv := func(s siprec.MediaStream, ok bool) media.Stream {
		if !ok || !s.Audio() || s.Direction == "sendonly" || s.Direction == "inactive" {
			return media.Stream{}
		}
		st := media.Stream{Addr: s.Addr, RTCP: s.Addr, Direction: s.Direction}
		if s.Addr.Port() < 65535 {
			st.RTCP = netip.AddrPortFrom(s.Addr.Addr(), s.Addr.Port()+1)
		}
		for _, f := range s.Formats {
			st.PayloadTypes = append(st.PayloadTypes, media.PayloadType{PT: f.PT, Codec: codecOf(f.Name), Name: f.Name, Rate: f.Rate})
		}
		return st
	}
	cust = conv(siprec.ByLabel(streams, siprec.LabelCustomer, 0))
	agent = conv(siprec.ByLabel(streams, siprec.LabelAgent, 1))
	if !cust.Addr.IsValid() && !agent.Addr.IsValid() {
		return cust, agent, errNoStreams
	}
	return cust, agent, nil
}

// recordingFormats are the payload types of the recording's streams:
// the call's own (the fork copies packets as they are) that a recorder
// can play, and telephone-event.
func recordingFormats(remote [2]media.Stream) []siprec.Format {
	var out []siprec.Format
	seen := map[uint8]bool{}
	for _, st := range remote {
		for _, pt := range st.PayloadTypes {
			if seen[pt.PT] || pt.Codec == media.CodecUnknown {
				continue
			}
			seen[pt.PT] = true
			f := siprec.Format{PT: pt.PT, Name: pt.Name, Rate: pt.Rate}
			if pt.Codec == media.TelephoneEvent {
				f.Fmtp = "0-16"
			}
			out = append(out, f)
		}
	}
	if len(out) == 0 {
		out = []siprec.Format{{PT: 0, Name: "PCMU", Rate: 8000}}
	}
	return out
}

// metadata is what the recording's metadata says of the call now.
func (c *call) metadata() siprec.Call {
	c.mu.Lock()
	m := c.meta
	c.mu.Unlock()
	sc := siprec.Call{ID: c.id, Caller: m.caller, Callee: m.callee, Correlation: m.correlation, Start: m.start,
		CallerIsCustomer: c.in == media.Carrier}
	for l, d := range c.legPair() {
		if d != nil {
			sc.Legs = append(sc.Legs, siprec.Leg{Trunk: legName(media.Leg(l)), CallID: d.callID})
		}
	}
	return sc
}

// fail ends a recording that failed: the fork is closed, the failure
// audited and counted; with recording.required the call is ended too.
// Nothing is said of a recording whose call has ended meanwhile.
func (r *recording) fail(reason audit.Reason, status int, err error) {
	c, g := r.c, r.c.g
	r.mu.Lock()
	was := r.stopped
	r.stopped, r.up = true, false
	fork := r.fork
	r.mu.Unlock()
	if fork != nil {
		fork.Close()
	}
	if r.d != nil {
		g.removeRecording(r)
	}
	if was {
		return
	}
	g.metrics.recording(string(reason))
	rec := audit.Record{CallID: c.id, Event: audit.EventRecordingFailed, Outcome: audit.Failure, Reason: reason, Trunk: r.rc.via.name}
	if status >= 100 && status <= 699 {
		rec.Status = status
	}
	g.record(rec)
	g.log.Warn("recording failed", zap.String("call", c.id), zap.String("reason", string(reason)), zap.Int("status", status),
		zap.Bool("required", r.rc.cfg.Required), zap.Error(err))
	if r.rc.cfg.Required {
		c.hangup(audit.ReasonRecordingFailed)
	}
}

// stop ends the recording with its call: the fork stops and the server
// gets a BYE (in the background; the gateway waits for it to stop).
func (r *recording) stop(outcome audit.Reason) {
	c, g := r.c, r.c.g
	r.mu.Lock()
	if r.stopped {
		r.mu.Unlock()
		return
	}
	r.stopped = true
	up, fork := r.up, r.fork
	r.mu.Unlock()
	if fork != nil {
		fork.Close()
	}
	if !up {
		// Not answered yet: fail or answered sees stopped and cleans up.
		return
	}
	g.wg.Add(1)
	g.goQuiet("recording_bye", c.id, func() {
		defer g.wg.Done()
		r.byeServer()
		g.metrics.recording("ended")
		g.record(audit.Record{CallID: c.id, Event: audit.EventRecordingEnded, Outcome: audit.Success, Reason: outcome, Trunk: r.d.t.name})
	})
}

// byeServer ends the server's dialog.
func (r *recording) byeServer() {
	defer r.c.g.removeRecording(r)
	ctx, cancel := context.WithTimeout(context.Background(), r.rc.cfg.Timeout)
	defer cancel()
	if res, err := r.d.do(ctx, r.d.request(sip.BYE, 0)); err != nil {
		r.c.g.log.Info("BYE to the recording server failed", zap.String("call", r.c.id), zap.Error(err))
	} else if !res.IsSuccess() {
		r.c.g.log.Info("BYE to the recording server refused", zap.String("call", r.c.id), zap.Int("status", res.StatusCode))
	}
}

// onRequest answers a request from the server inside the recording
// session: a BYE ends the recording (the call goes on unless recording
// is required); a re-offer is refused (488) and the session stays as it
// was; OPTIONS is answered.
func (r *recording) onRequest(req *sip.Request, tx sip.ServerTransaction) {
	d := r.d
	switch req.Method {
	case sip.ACK:
	case sip.BYE:
		_ = tx.Respond(d.respond(req, 200, "OK", nil, ""))
		r.byeFromServer()
	case sip.INVITE, sip.UPDATE:
		_ = tx.Respond(d.respond(req, 488, "Not Acceptable Here", nil, ""))
	case sip.OPTIONS:
		_ = tx.Respond(d.respond(req, 200, "OK", nil, ""))
	default:
		res := d.respond(req, 405, "Method Not Allowed", nil, "")
		res.AppendHeader(sip.NewHeader("Allow", "INVITE, ACK, CANCEL, BYE, OPTIONS"))
		_ = tx.Respond(res)
	}
}

// byeFromServer is the server's BYE: a failure of the recording.
func (r *recording) byeFromServer() {
	r.mu.Lock()
	up := r.up
	r.up = false
	r.mu.Unlock()
	if up {
		r.fail(audit.ReasonRecorderBye, 0, nil)
	}
}

// addRecording and removeRecording keep the recording sessions by their
// SIP Call-ID, for the requests the servers send in them.
func (g *Gateway) addRecording(r *recording) {
	g.mu.Lock()
	defer g.mu.Unlock()
	g.recordings[r.d.callID] = r
}

func (g *Gateway) removeRecording(r *recording) {
	g.mu.Lock()
	defer g.mu.Unlock()
	if g.recordings[r.d.callID] == r {
		delete(g.recordings, r.d.callID)
	}
}

// recordingOf returns the recording session an in-dialog request on t
// belongs to: its Call-ID and both tags.
func (g *Gateway) recordingOf(t *trunk, req *sip.Request) *recording {
	g.mu.Lock()
	r := g.recordings[req.CallID().Value()]
	g.mu.Unlock()
	if r == nil || r.d.t != t {
		return nil
	}
	ft, _ := req.From().Params.Get("tag")
	tt, _ := req.To().Params.Get("tag")
	r.d.mu.Lock()
	defer r.d.mu.Unlock()
	if tt != r.d.localTag || ft != r.d.remoteTag || ft == "" {
		return nil
	}
	return r
}

// refuseUnrecorded answers 503 to a new call on a trunk that requires
// recording while its recording server is down, and audits it; it
// reports whether it did.
func (g *Gateway) refuseUnrecorded(in *trunk, req *sip.Request, reject func(int, string)) bool {
	rc := g.recorders[in.leg]
	if rc == nil || !rc.cfg.Required || rc.up() {
		return false
	}
	g.metrics.recording(string(audit.ReasonRecordingUnavailable))
	g.record(audit.Record{Actor: "sip:" + hostOf(req.Source()), Origin: req.Source(), Event: audit.EventRecordingFailed, Outcome: audit.Failure,
		Reason: audit.ReasonRecordingUnavailable, Trunk: in.name, Method: string(sip.INVITE), Status: 503})
	g.log.Warn("call refused: recording is required and the recording server is down", zap.String("trunk", in.name), zap.String("srs", rc.uri.Host))
	reject(503, "Service Unavailable")
	return true
}
