package sip

import (
	"crypto/rand"
	"encoding/binary"
	"strings"
	"sync"

	"github.com/emiago/sipgo/sip"
)

// dialog is the gateway's side of one leg's SIP dialog (RFC 3261 section
// 12). The gateway is UAS on the leg a call arrived on and UAC on the leg
// it created; either way it builds its own requests on the leg from this.
type dialog struct {
	t *trunk

	mu         sync.Mutex
	callID     string
	localTag   string
	remoteTag  string
	localName  string
	localURI   sip.Uri
	remoteName string
	remoteURI  sip.Uri
	localSeq   uint32
	remoteSeq  uint32
	target     sip.Uri   // the peer's Contact
	routes     []sip.Uri // route set
	transport  string    // "UDP", "TCP" or "TLS"
	sips       bool      // made with a sips: URI: the Contact is sips too
	inviteSeq  uint32    // CSeq of the INVITE that made the dialog (for ACK)
}

func randSeq() uint32 {
	var b [4]byte
	_, _ = rand.Read(b[:])
	return binary.BigEndian.Uint32(b[:]) & 0x7fff_ffff >> 8 // room to count up
}

// uasDialog is the dialog of a leg whose INVITE the gateway received.
func uasDialog(t *trunk, req *sip.Request) *dialog {
	d := &dialog{
		t:         t,
		callID:    req.CallID().Value(),
		localTag:  sip.GenerateTagN(16),
		localURI:  *req.To().Address.Clone(),
		remoteURI: *req.From().Address.Clone(),
		localSeq:  randSeq(),
		remoteSeq: req.CSeq().SeqNo,
		transport: strings.ToUpper(req.Transport()),
		sips:      strings.EqualFold(req.Recipient.Scheme, "sips"),
	}
	d.remoteName = req.From().DisplayName
	d.remoteTag, _ = req.From().Params.Get("tag")
	if c := req.Contact(); c != nil {
		d.target = *c.Address.Clone()
	} else {
		d.target = *req.From().Address.Clone()
	}
	for _, h := range req.GetHeaders("Record-Route") {
		if rr, ok := h.(*sip.RecordRouteHeader); ok {
			d.routes = append(d.routes, *rr.Address.Clone())
		}
	}
	return d
}

// learnUAC updates a UAC dialog from a response to its INVITE that has a
// To tag: the peer's tag, Contact and, reversed, Record-Route.
func (d *dialog) learnUAC(res *sip.Response) {
	d.mu.Lock()
	defer d.mu.Unlock()
	if tag, ok := res.To().Params.Get("tag"); ok && tag != "" {
		d.remoteTag = tag
	}
	if c := res.Contact(); c != nil {
		d.target = *c.Address.Clone()
	}
	var routes []sip.Uri
	for _, h := range res.GetHeaders("Record-Route") {
		if rr, ok := h.(*sip.RecordRouteHeader); ok {
			routes = append([]sip.Uri{*rr.Address.Clone()}, routes...)
		}
	}
	if len(routes) > 0 || res.IsSuccess() {
		d.routes = routes
	}
}

// refreshTarget takes a new remote target from a target refresh request
// or its 2xx (RFC 3261 12.2).
func (d *dialog) refreshTarget(m message) {
	if c := m.Contact(); c != nil {
		d.mu.Lock()
		d.target = *c.Address.Clone()
		d.mu.Unlock()
	}
}

// acceptSeq checks an in-dialog request's CSeq (RFC 3261 12.2.2): lower
// than the last one is out of order.
func (d *dialog) acceptSeq(req *sip.Request) bool {
	d.mu.Lock()
	defer d.mu.Unlock()
	n := req.CSeq().SeqNo
	if req.IsAck() || req.IsCancel() {
		return true
	}
	if n <= d.remoteSeq && d.remoteSeq != 0 {
		return false
	}
	d.remoteSeq = n
	return true
}

// fork is a copy of the dialog's state, for an early dialog of an
// INVITE the gateway sent (or a dialog it ends at once): learnUAC then
// gives it its peer.
func (d *dialog) fork() *dialog {
	d.mu.Lock()
	defer d.mu.Unlock()
	return &dialog{t: d.t, callID: d.callID, localTag: d.localTag, localName: d.localName, localURI: *d.localURI.Clone(),
		remoteName: d.remoteName, remoteURI: *d.remoteURI.Clone(), localSeq: d.localSeq, target: *d.target.Clone(),
		transport: d.transport, sips: d.sips, inviteSeq: d.inviteSeq}
}

// peerTag is the peer's tag ("" before its first response).
func (d *dialog) peerTag() string {
	d.mu.Lock()
	defer d.mu.Unlock()
	return d.remoteTag
}

func (d *dialog) confirmed() bool {
	d.mu.Lock()
	defer d.mu.Unlock()
	return d.remoteTag != ""
}

// request builds an in-dialog request. ACK reuses seq (the INVITE's);
// every other method takes the next local CSeq.
func (d *dialog) request(m sip.RequestMethod, seq uint32) *sip.Request {
	d.mu.Lock()
	defer d.mu.Unlock()
	req := sip.NewRequest(m, *d.target.Clone())
	for _, r := range d.routes {
		req.AppendHeader(&sip.RouteHeader{Address: *r.Clone()})
	}
	from := &sip.FromHeader{DisplayName: d.localName, Address: *d.localURI.Clone(), Params: sip.NewParams()}
	from.Params.Add("tag", d.localTag)
	to := &sip.ToHeader{DisplayName: d.remoteName, Address: *d.remoteURI.Clone(), Params: sip.NewParams()}
	if d.remoteTag != "" {
		to.Params.Add("tag", d.remoteTag)
	}
	callID := sip.CallIDHeader(d.callID)
	if m != sip.ACK && m != sip.CANCEL {
		d.localSeq++
		seq = d.localSeq
	}
	maxFwd := sip.MaxForwardsHeader(70)
	req.AppendHeader(from)
	req.AppendHeader(to)
	req.AppendHeader(&callID)
	req.AppendHeader(&sip.CSeqHeader{SeqNo: seq, MethodName: m})
	req.AppendHeader(&maxFwd)
	if m == sip.INVITE || m == sip.UPDATE {
		req.AppendHeader(d.t.contact(d.transport, d.sips))
	}
	d.t.prepare(req, d.transport)
	return req
}

// respond builds a response to an in-dialog or dialog-creating request
// received on this leg, with the gateway's To tag and, where RFC 3261
// wants one, its Contact.
func (d *dialog) respond(req *sip.Request, code int, reason string, body []byte, ctype string) *sip.Response {
	res := sip.NewResponseFromRequest(req, code, reason, nil)
	// sipgo gives a response without a To tag a random one; the dialog's
	// responses must all carry the gateway's tag for this leg.
	if to := res.To(); code > 100 && to != nil && !req.To().Params.Has("tag") {
		to.Params.Remove("tag")
		to.Params.Add("tag", d.localTag)
	}
	if (req.IsInvite() || req.Method == sip.UPDATE) && code > 100 && code < 300 {
		res.AppendHeader(d.t.contact(d.transport, d.sips))
	}
	if req.IsInvite() || req.Method == sip.OPTIONS || code == 405 {
		res.AppendHeader(sip.NewHeader("Allow", d.t.allow()))
	}
	if len(body) > 0 {
		ct := sip.ContentTypeHeader(ctype)
		res.AppendHeader(&ct)
	}
	res.SetBody(body)
	return res
}
