package sip

import (
	"errors"
	"strconv"
	"strings"
	"time"

	"github.com/emiago/sipgo/sip"
	"go.uber.org/zap"

	"github.com/tonevault/tonevault/media"
)

// The carrier's in-dialog requests reach the platform through an
// allowlist: BYE, re-INVITE, UPDATE and ACK, each rebuilt by the gateway
// (its own headers, the session timer and identity headers, the SDP
// turned; never the carrier's body or other headers). CANCEL and OPTIONS
// are answered by the gateway. Everything else is answered here and goes
// nowhere: key presses (INFO and NOTIFY of every kind) become digits for
// the relay, the rest is refused and counted.

// refusal is why the gateway answered a request from the carrier itself
// instead of passing it on: the reason label of
// tonevault_sip_carrier_requests_refused_total.
type refusal string

const (
	refusedMethod      refusal = "method"       // not on the allowlist: 405, 501 (REFER 403)
	refusedMediaType   refusal = "media_type"   // a body that carries no key press: 415
	refusedEvent       refusal = "event"        // NOTIFY of an event other than telephone-event or kpml: 489
	refusedInfoPackage refusal = "info_package" // INFO of a package the gateway did not offer: 469
	refusedBadBody     refusal = "bad_body"     // a key-press body with no valid key: 400
	refusedNoBody      refusal = "no_body"      // INFO or NOTIFY with no body (keep-alive, subscription state): 200
)

// refusalReasons lists every reason (the metric's closed label set).
var refusalReasons = []refusal{refusedMethod, refusedMediaType, refusedEvent, refusedInfoPackage, refusedBadBody, refusedNoBody}

// allowEvents are the NOTIFY events the carrier may send: both carry key
// presses.
const allowEvents = "telephone-event, kpml"

// fromCarrier answers an in-dialog request from the carrier that is not
// on the allowlist. It never forwards anything.
func (c *call) fromCarrier(req *sip.Request, tx sip.ServerTransaction) {
	switch req.Method {
	case sip.INFO:
		c.carrierInfo(req, tx)
	case sip.NOTIFY:
		c.carrierNotify(req, tx)
	case sip.REFER:
		// A transfer would move the call off the gateway.
		c.stop(req, tx, refusedMethod, 403, "Forbidden", nil)
	default:
		c.stop(req, tx, refusedMethod, 405, "Method Not Allowed", nil)
	}
}

// stop answers req with code and counts it as refused for reason; extra
// headers go on the response. The body is never logged.
func (c *call) stop(req *sip.Request, tx sip.ServerTransaction, reason refusal, code int, text string, extra []sip.Header) {
	// respond adds Allow to a 405.
	res := c.leg(media.Carrier).respond(req, code, text, nil, "")
	for _, h := range extra {
		res.AppendHeader(h)
	}
	c.g.metrics.stop(req.Method, reason)
	level := zap.InfoLevel
	if reason == refusedNoBody {
		level = zap.DebugLevel // keep-alives: one per call every few seconds
	}
	c.g.log.Log(level, "carrier request answered, not forwarded", zap.String("call", c.id),
		zap.String("method", metricMethod(req.Method)), zap.String("reason", string(reason)), zap.Int("status", code))
	_ = tx.Respond(res)
}

// carrierInfo takes the key press of an INFO, whatever its body type, or
// refuses it.
func (c *call) carrierInfo(req *sip.Request, tx sip.ServerTransaction) {
	if len(req.Body()) == 0 {
		// A keep-alive: nothing to pass on.
		c.stop(req, tx, refusedNoBody, 200, "OK", nil)
		return
	}
	reports, reason, err := digitsOf(req, 8000)
	if err != nil {
		switch reason {
		case refusedBadBody:
			c.stop(req, tx, reason, 400, "Bad Request", nil)
		case refusedMediaType:
			if req.GetHeader("Info-Package") != nil {
				// RFC 6086: the gateway offered no package (no Recv-Info).
				c.stop(req, tx, refusedInfoPackage, 469, "Bad Info Package", nil)
				return
			}
			c.stop(req, tx, reason, 415, "Unsupported Media Type", []sip.Header{sip.NewHeader("Accept", digitAccept)})
		}
		return
	}
	c.takeDigits(req, tx, reports)
}

// carrierNotify takes the key presses of a NOTIFY of event
// telephone-event (Cisco's unsolicited NOTIFY) or kpml (RFC 4730), or
// refuses it.
func (c *call) carrierNotify(req *sip.Request, tx sip.ServerTransaction) {
	event, params := eventOf(req)
	if event != "telephone-event" && event != "kpml" {
		// The gateway subscribes to nothing on the carrier side.
		c.stop(req, tx, refusedEvent, 489, "Bad Event", []sip.Header{sip.NewHeader("Allow-Events", allowEvents)})
		return
	}
	if len(req.Body()) == 0 {
		// Subscription state only.
		c.stop(req, tx, refusedNoBody, 200, "OK", nil)
		return
	}
	// Cisco's NOTIFY gives the duration in milliseconds unless the Event
	// says another rate.
	rate := 1000
	if r, err := strconv.Atoi(params["rate"]); err == nil && r > 0 && r <= 48000 {
		rate = r
	}
	if event == "telephone-event" && req.ContentType() == nil {
		// The body of this event is an RFC 4733 block even when the
		// sender names no type.
		ct := sip.ContentTypeHeader("audio/telephone-event")
		req.AppendHeader(&ct)
	}
	reports, reason, err := digitsOf(req, rate)
	if err != nil {
		code, text := 400, "Bad Request"
		var extra []sip.Header
		if reason == refusedMediaType {
			code, text, extra = 415, "Unsupported Media Type", []sip.Header{sip.NewHeader("Accept", digitAccept)}
		}
		c.stop(req, tx, reason, code, text, extra)
		return
	}
	c.takeDigits(req, tx, reports)
}

// digitsOf reads the key presses of req's body, alone or a part of a
// multipart body; rate is the clock of a telephone-event duration. On
// error, reason is refusedBadBody (400) or refusedMediaType (415).
func digitsOf(req *sip.Request, rate int) ([]digitReport, refusal, error) {
	parts, err := bodyParts(contentTypeRaw(req), req.Body())
	if err != nil {
		if errors.Is(err, ErrUnsupportedBody) {
			return nil, refusedMediaType, err
		}
		return nil, refusedBadBody, err
	}
	p, f, ok := digitBody(parts)
	if !ok {
		return nil, refusedMediaType, ErrUnsupportedBody
	}
	reports, err := parseDigits(f, p.body, rate)
	if err != nil {
		return nil, refusedBadBody, err
	}
	return reports, "", nil
}

// takeDigits gives the key presses to the relay, then answers 200: the
// digits are in the relay's stream before the customer's equipment hears
// they were taken. RFC 4733 reports go through the call's press tracker,
// so that a press reported at its start and at its end is one digit.
func (c *call) takeDigits(req *sip.Request, tx sip.ServerTransaction, reports []digitReport) {
	now := time.Now()
	n := 0
	for _, r := range reports {
		if r.event {
			c.mu.Lock()
			fresh := c.presses.add(r, now)
			c.mu.Unlock()
			if !fresh {
				continue
			}
		}
		c.sess.InfoDigit(r.digit, r.length())
		n++
	}
	c.g.metrics.digit(req.Method, n)
	_ = tx.Respond(c.leg(media.Carrier).respond(req, 200, "OK", nil, ""))
}

// eventOf is a NOTIFY's event package, lower case, and its parameters
// (Event, or its compact form o).
func eventOf(req *sip.Request) (string, map[string]string) {
	h := req.GetHeader("Event")
	if h == nil {
		h = req.GetHeader("o")
	}
	if h == nil {
		return "", nil
	}
	name, rest, _ := strings.Cut(h.Value(), ";")
	params := map[string]string{}
	for p := range strings.SplitSeq(rest, ";") {
		k, v, _ := strings.Cut(p, "=")
		if k = strings.ToLower(strings.TrimSpace(k)); k != "" {
			params[k] = strings.TrimSpace(v)
		}
	}
	return strings.ToLower(strings.TrimSpace(name)), params
}
