package sip

import (
	"bytes"
	"net/netip"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/emiago/sipgo/sip"
)

// FuzzRewriteSDP: any body either is refused with an error or comes out
// as SDP that parses again and whose every address and port is the
// relay's (or the hold address, or a rejected port 0), with nothing left
// that could take media around the relay.
func FuzzRewriteSDP(f *testing.F) {
	for _, s := range [][]byte{sdpSIPp, sdpWebRTCish, sdpVideoFirst, sdpOpusOnly, sdpHold2543, sdpSAVP} {
		f.Add(s, false)
	}
	local := netip.MustParseAddrPort("127.0.0.1:20000")
	f.Fuzz(func(t *testing.T, in []byte, keep bool) {
		out, st, err := RewriteSDP(in, RewriteOptions{Local: local, Origin: Origin{SessionID: 1, Version: 1}, KeepUninspectable: keep})
		if err != nil {
			if out != nil {
				t.Fatal("output with an error")
			}
			return
		}
		if !st.Addr.IsValid() {
			t.Fatalf("no remote address for %q", in)
		}
		for line := range strings.SplitSeq(string(out), "\r\n") {
			k, v, _ := strings.Cut(line, "=")
			switch k {
			case "c":
				if v != "IN IP4 127.0.0.1" && v != "IN IP4 0.0.0.0" && v != "IN IP6 ::" {
					t.Fatalf("c= %q in output:\n%s", v, out)
				}
			case "m":
				f := strings.Fields(v)
				if len(f) < 2 || (f[1] != "20000" && f[1] != "0") {
					t.Fatalf("m= %q in output:\n%s", v, out)
				}
			case "a":
				name, _, _ := strings.Cut(v, ":")
				if stripAttrs[name] {
					t.Fatalf("a=%s kept:\n%s", name, out)
				}
			}
		}
		if _, _, err := RewriteSDP(out, RewriteOptions{Local: local, KeepUninspectable: true}); err != nil {
			t.Fatalf("output does not parse again: %v\n%s", err, out)
		}
	})
}

// torture returns the RFC 4475 messages in testdata/rfc4475 and the
// real carriers' ones in testdata/carrier (key presses in INFO and
// NOTIFY, SIP-I, late offer).
func torture(tb testing.TB) map[string][]byte {
	files, err := filepath.Glob(filepath.Join("testdata", "rfc4475", "*.sip"))
	more, err2 := filepath.Glob(filepath.Join("testdata", "carrier", "*.sip"))
	files = append(files, more...)
	if err != nil || err2 != nil || len(files) == 0 || len(more) == 0 {
		tb.Fatalf("no torture messages: %v %v", err, err2)
	}
	out := map[string][]byte{}
	for _, f := range files {
		b, err := os.ReadFile(f)
		if err != nil {
			tb.Fatal(err)
		}
		out[filepath.Base(f)] = b
	}
	return out
}

// handleParsed runs what the gateway does with a received message short
// of the network: header reads, the INFO and SDP parsers, building the
// dialog and the responses and requests on it.
func handleParsed(m sip.Message) {
	req, ok := m.(*sip.Request)
	if !ok {
		res := m.(*sip.Response)
		normalizeParams(res)
		optionTags(res, "Supported")
		rseqOf(res)
		sessionExpires(res)
		if s, err := readSession(res); err == nil && s.sdp != nil {
			RewriteSDP(s.sdp, RewriteOptions{Local: netip.MustParseAddrPort("127.0.0.1:20000")})
		}
		copyIdentity(res, sip.NewResponseFromRequest(sip.NewRequest(sip.INVITE, sip.Uri{Host: "x"}), 200, "OK", nil), &trunk{})
		return
	}
	normalizeParams(req)
	cseqMismatch(req)
	optionTags(req, "Require")
	headerValue(req, "X-Interaction-ID")
	eventOf(req)
	withheld(req)
	if reports, _, err := digitsOf(req, 8000); err == nil {
		var p pressTracker
		for _, r := range reports {
			p.add(r, time.Now())
		}
	}
	if s, err := readSession(req); err == nil && s.sdp != nil {
		RewriteSDP(s.sdp, RewriteOptions{Local: netip.MustParseAddrPort("127.0.0.1:20000")})
		body, ct := sessionBody(s.sdp, s.isup)
		if _, err := bodyParts(ct, body); err != nil {
			panic("the gateway's own body does not parse: " + err.Error())
		}
	}
	if !validRequest(req) {
		return
	}
	tr := &trunk{name: "carrier", addr: netip.MustParseAddrPort("127.0.0.1:5060"), cfg: TrunkConfig{Target: "sip:{user}@127.0.0.1:5090"}}
	tr.target(req)
	d := uasDialog(tr, req)
	d.acceptSeq(req)
	_ = d.respond(req, 200, "OK", []byte("v=0\r\n"), "application/sdp").String()
	_ = d.request(sip.BYE, 0).String()
	out := sip.NewRequest(sip.INVITE, sip.Uri{Scheme: "sip", Host: "127.0.0.1"})
	copyIdentity(req, out, tr)
	sessionExpires(req)
	minSE(req)
	unsupportedRequire(req)
	allows(req, sip.UPDATE)
	rack(req)
	referTarget(req)
	_ = out.String()
}

// TestTorture feeds the RFC 4475 torture messages (all 49 of section 3,
// one file each, named as the RFC names them, and an INFO of ours) through sipgo's parser and
// the gateway's handling: no panic, and the valid ones parse. mpart01's
// second body part is a stand-in of the RFC's length (553 octets in all,
// NULs included): the RFC prints that signature's octets only in its
// archive. novelsc (an absoluteURI of an unknown scheme, which RFC 3261
// allows) is refused by sipgo's URI parser: the request is dropped
// where the RFC would answer 416, which is as closed as it gets.
func TestTorture(t *testing.T) {
	valid := map[string]bool{"wsinv.sip": true, "esc01.sip": true, "escnull.sip": true, "lwsdisp.sip": true,
		"semiuri.sip": true, "noreason.sip": true, "zeromf.sip": true, "cparam01.sip": true, "info-dtmf.sip": true,
		"esc02.sip": true, "longreq.sip": true, "transports.sip": true, "mpart01.sip": true, "badbranch.sip": true,
		"unkscm.sip": true, "unksm2.sip": true, "bext01.sip": true, "invut.sip": true, "regaut01.sip": true,
		"bcast.sip": true, "cparam02.sip": true, "regescrt.sip": true, "sdp01.sip": true, "inv2543.sip": true,
		"intmeth.sip": true, "unreason.sip": true, "dblreq.sip": true,
		// testdata/carrier
		"nortel-info.sip": true, "cisco-notify.sip": true, "kpml-notify.sip": true, "cseq-method.sip": true,
		"unknown-body.sip": true, "late-offer.sip": true, "sipi-invite.sip": true}
	for name, b := range torture(t) {
		t.Run(name, func(t *testing.T) {
			m, err := sip.ParseMessage(b)
			if err != nil {
				if valid[name] {
					t.Errorf("valid message refused: %v", err)
				}
				return
			}
			handleParsed(m)
		})
	}
}

// FuzzSIPMessage: whatever arrives, parsing and handling it does not
// panic.
func FuzzSIPMessage(f *testing.F) {
	for _, b := range torture(f) {
		f.Add(b)
	}
	f.Fuzz(func(t *testing.T, b []byte) {
		m, err := sip.ParseMessage(b)
		if err != nil {
			return
		}
		handleParsed(m)
	})
}

// FuzzDigitBody: whatever INFO or NOTIFY body arrives, reading its key
// presses does not panic, yields only keypad digits, never more digits
// than the body has bytes, and no error quotes the body. The press
// tracker takes whatever comes.
func FuzzDigitBody(f *testing.F) {
	seeds := []struct {
		ct   string
		body string
		rate int
	}{
		{"application/dtmf-relay", "Signal=5\r\nDuration=160\r\n", 8000},
		{"application/dtmf", "#", 8000},
		{"application/vnd.nortelnetworks.digits", "d=3\r\n", 8000},
		{"audio/telephone-event", "\x07\x00\x07\xd0", 1000},
		{"application/kpml-response+xml", `<kpml-response xmlns="urn:ietf:params:xml:ns:kpml-response" version="1.0" code="200" text="OK" digits="41#"/>`, 8000},
		{"multipart/mixed;boundary=b1", "--b1\r\nContent-Type: text/plain\r\n\r\nkey\r\n--b1\r\nContent-Type: application/dtmf-relay\r\n\r\nSignal=5\r\n--b1--\r\n", 8000},
	}
	for _, s := range seeds {
		f.Add(s.ct, []byte(s.body), s.rate)
	}
	f.Fuzz(func(t *testing.T, ct string, body []byte, rate int) {
		reports, _, err := digitsOf(bodyRequest(sip.INFO, ct, string(body)), rate)
		if err != nil {
			if reports != nil {
				t.Fatal("reports with an error")
			}
			// What must not be quoted is card data: a body of eight bytes
			// or more with digits in it. "multipar" is in the error's own
			// words ("multipart without boundary"), not a quote.
			if len(body) >= 8 && digitCount(body) >= 4 && strings.Contains(err.Error(), string(body)) {
				t.Fatalf("error %q quotes the body", err)
			}
			return
		}
		if len(reports) > len(body) {
			t.Fatalf("%d digits from %d bytes", len(reports), len(body))
		}
		var p pressTracker
		now := time.Unix(0, 0)
		for _, r := range reports {
			if !r.digit.Valid() {
				t.Fatalf("digit %v is not a key", r.digit)
			}
			if r.length() < 0 {
				t.Fatalf("negative length %v", r.length())
			}
			p.add(r, now)
		}
	})
}

// FuzzSessionBody: whatever session body arrives, reading it does not
// panic, and what the gateway would send from what it read reads back
// the same: the SDP, and the ISUP part byte for byte with its type.
func FuzzSessionBody(f *testing.F) {
	f.Add("application/sdp", []byte(sdpSIPp))
	f.Add("multipart/mixed;boundary=unique-boundary-1", []byte(sipIBody))
	f.Add("multipart/mixed;boundary=b", []byte("--b\r\nContent-Type: application/isup;version=ansi00\r\n\r\nIAM\r\n--b--\r\n"))
	f.Fuzz(func(t *testing.T, ct string, body []byte) {
		s, err := readSession(bodyRequest(sip.INVITE, ct, string(body)))
		if err != nil {
			return
		}
		out, outCT := sessionBody(s.sdp, s.isup)
		back, err := readSession(bodyRequest(sip.INVITE, outCT, string(out)))
		if err != nil {
			t.Fatalf("the gateway's own body does not read back: %v\n%s\n%q", err, outCT, out)
		}
		if !bytes.Equal(back.sdp, s.sdp) {
			t.Fatalf("sdp %q came back as %q", s.sdp, back.sdp)
		}
		if (back.isup == nil) != (s.isup == nil) {
			t.Fatalf("isup part lost or made up")
		}
		if s.isup != nil && (!bytes.Equal(back.isup.body, s.isup.body) || back.isup.ctype != s.isup.ctype) {
			t.Fatalf("isup part %q %q came back as %q %q", s.isup.raw, s.isup.body, back.isup.raw, back.isup.body)
		}
	})
}

func digitCount(b []byte) int {
	n := 0
	for _, c := range b {
		if c >= '0' && c <= '9' {
			n++
		}
	}
	return n
}
