package sip

import (
	"bytes"
	"errors"
	"strings"
	"testing"

	"github.com/emiago/sipgo/sip"
)

// crlfs is crlf for a body of any type, as a string; lines already
// ending in CRLF keep one CR.
func crlfs(s string) string { return string(crlf(strings.ReplaceAll(s, "\r\n", "\n"))) }

// isupIAM is a made-up ISUP IAM's bytes: binary, with a CR LF inside.
var isupIAM = "\x01\x00\x49\x00\x00\x03\x02\x00\x07\x04\x10\x00\x33\x63\x21\x43\x00\x0d\x0a\x00"

var sipIBody = crlfs(`
--unique-boundary-1
Content-Type: application/sdp

v=0
o=c 1 1 IN IP4 10.1.1.1
s=-
c=IN IP4 10.1.1.1
t=0 0
m=audio 7000 RTP/AVP 0
--unique-boundary-1
Content-Type: application/isup;version=itu-t92+;base=itu-t92+
Content-Disposition: signal;handling=optional

`) + isupIAM + "\r\n--unique-boundary-1--\r\n"

func TestReadSession(t *testing.T) {
	sdp := crlfs("v=0\no=c 1 1 IN IP4 10.1.1.1\ns=-\nc=IN IP4 10.1.1.1\nt=0 0\nm=audio 7000 RTP/AVP 0\n")
	tests := []struct {
		name, ct, body string
		wantSDP        bool
		wantISUP       bool
		wantErr        error
	}{
		{name: "no body"},
		{name: "sdp", ct: "application/sdp", body: sdp, wantSDP: true},
		{name: "sdp, type in capitals and with a parameter", ct: "Application/SDP; charset=utf-8", body: sdp, wantSDP: true},
		{name: "SIP-I", ct: "multipart/mixed;boundary=unique-boundary-1", body: sipIBody, wantSDP: true, wantISUP: true},
		{name: "SIP-I with quoted boundary and LF line ends", ct: `multipart/mixed; boundary="unique-boundary-1"`, body: strings.ReplaceAll(sipIBody, "\r\n", "\n"), wantSDP: true, wantISUP: true},
		{name: "SIP-T late offer: ISUP alone", ct: "multipart/mixed;boundary=b", body: crlfs("--b\nContent-Type: application/isup;version=ansi00\n\nIAM\n--b--\n"), wantISUP: true},
		{name: "optional unknown part ignored", ct: "multipart/mixed;boundary=b", body: crlfs("--b\nContent-Type: application/sdp\n\n" + sdp + "\n--b\nContent-Type: application/x-other\n\nzz\n--b--\n"), wantSDP: true},
		{name: "required unknown part", ct: "multipart/mixed;boundary=b", body: crlfs("--b\nContent-Type: application/sdp\n\n" + sdp + "\n--b\nContent-Type: application/x-other\nContent-Disposition: signal;handling=required\n\nzz\n--b--\n"), wantErr: ErrUnsupportedBody},
		{name: "unknown type", ct: "application/x-unknown", body: "hello", wantErr: ErrUnsupportedBody},
		{name: "body without type", body: "v=0\r\n", wantErr: ErrUnsupportedBody},
		{name: "multipart without sdp or isup", ct: "multipart/mixed;boundary=b", body: crlfs("--b\nContent-Type: text/plain\n\nhi\n--b\nContent-Type: text/plain\n\nho\n--b--\n"), wantErr: ErrUnsupportedBody},
		{name: "multipart without boundary", ct: "multipart/mixed", body: sipIBody, wantErr: ErrBadBody},
		{name: "multipart with wrong boundary", ct: "multipart/mixed;boundary=other", body: sipIBody, wantErr: ErrBadBody},
		{name: "bad Content-Type", ct: "multipart/mixed;boundary=\"x", body: sipIBody, wantErr: ErrBadBody},
		{name: "nested too deep", ct: "multipart/mixed;boundary=a", body: crlfs("--a\nContent-Type: multipart/mixed;boundary=b\n\n--b\nContent-Type: multipart/mixed;boundary=c\n\n--c\nContent-Type: application/sdp\n\nv=0\n--c--\n--b--\n--a--\n"), wantErr: ErrBadBody},
		{name: "too many parts", ct: "multipart/mixed;boundary=b", body: crlfs(strings.Repeat("--b\nContent-Type: text/plain\n\nx\n", maxParts+1) + "--b--\n"), wantErr: ErrBadBody},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			s, err := readSession(bodyRequest(sip.INVITE, tt.ct, tt.body))
			if tt.wantErr != nil {
				if !errors.Is(err, tt.wantErr) {
					t.Fatalf("err = %v, want %v", err, tt.wantErr)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if (s.sdp != nil) != tt.wantSDP || (s.isup != nil) != tt.wantISUP {
				t.Fatalf("sdp %q isup %v; want sdp %v isup %v", s.sdp, s.isup, tt.wantSDP, tt.wantISUP)
			}
			if tt.wantSDP && !bytes.HasPrefix(s.sdp, []byte("v=0")) {
				t.Errorf("sdp part %q", s.sdp)
			}
			if tt.name == "SIP-I" && string(s.isup.body) != isupIAM {
				t.Errorf("ISUP part %q, want its bytes as sent", s.isup.body)
			}
		})
	}
}

// TestSessionBody: what the gateway sends reads back as what it meant,
// the ISUP part byte for byte with its type and disposition.
func TestSessionBody(t *testing.T) {
	in, err := readSession(bodyRequest(sip.INVITE, "multipart/mixed;boundary=unique-boundary-1", sipIBody))
	if err != nil {
		t.Fatal(err)
	}
	sdp := []byte("v=0\r\no=tonevault 1 1 IN IP4 127.0.0.1\r\n")
	tests := []struct {
		name      string
		sdp       []byte
		isup      *bodyPart
		wantCT    string
		wantParts int
	}{
		{"sdp alone", sdp, nil, "application/sdp", 1},
		{"sdp and isup", sdp, in.isup, "multipart/mixed;boundary=", 2},
		{"isup alone", nil, in.isup, "multipart/mixed;boundary=", 1},
		{"nothing", nil, nil, "", 0},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			body, ct := sessionBody(tt.sdp, tt.isup)
			if !strings.HasPrefix(ct, tt.wantCT) || (tt.wantCT == "") != (ct == "") {
				t.Fatalf("Content-Type %q, want %q...", ct, tt.wantCT)
			}
			parts, err := bodyParts(ct, body)
			if err != nil || len(parts) != tt.wantParts {
				t.Fatalf("parts %d %v, want %d", len(parts), err, tt.wantParts)
			}
			back, err := readSession(bodyRequest(sip.INVITE, ct, string(body)))
			if err != nil {
				t.Fatal(err)
			}
			if !bytes.Equal(back.sdp, tt.sdp) {
				t.Errorf("sdp %q, want %q", back.sdp, tt.sdp)
			}
			if tt.isup != nil {
				if back.isup == nil || string(back.isup.body) != isupIAM || back.isup.raw != tt.isup.raw || back.isup.disp != tt.isup.disp {
					t.Errorf("isup %+v, want %+v", back.isup, tt.isup)
				}
			}
		})
	}
}

// TestCarrierMessages reads the real carriers' messages in
// testdata/carrier as the gateway does.
func TestCarrierMessages(t *testing.T) {
	msgs := torture(t)
	tests := []struct {
		file     string
		digits   string // key presses read (INFO, NOTIFY)
		sdp      bool
		isup     bool
		mismatch bool
		withheld bool
		err      error
	}{
		{file: "nortel-info.sip", digits: "7"},
		{file: "cisco-notify.sip", digits: "7"},
		{file: "kpml-notify.sip", digits: "4"},
		{file: "cseq-method.sip", mismatch: true},
		{file: "unknown-body.sip", err: ErrUnsupportedBody},
		{file: "late-offer.sip"},
		{file: "sipi-invite.sip", sdp: true, isup: true, withheld: true},
	}
	for _, tt := range tests {
		t.Run(tt.file, func(t *testing.T) {
			m, err := sip.ParseMessage(msgs[tt.file])
			if err != nil {
				t.Fatal(err)
			}
			req := m.(*sip.Request)
			if got := cseqMismatch(req); got != tt.mismatch {
				t.Errorf("CSeq mismatch %v, want %v", got, tt.mismatch)
			}
			if got := withheld(req); got != tt.withheld {
				t.Errorf("withheld %v, want %v", got, tt.withheld)
			}
			if req.Method == sip.INFO || req.Method == sip.NOTIFY {
				rate := 8000
				if req.Method == sip.NOTIFY {
					rate = 1000
				}
				rs, _, err := digitsOf(req, rate)
				if err != nil {
					t.Fatal(err)
				}
				var got []byte
				for _, r := range rs {
					got = append(got, byte(r.digit))
				}
				if string(got) != tt.digits {
					t.Errorf("digits %q, want %q", got, tt.digits)
				}
				return
			}
			s, err := readSession(req)
			if !errors.Is(err, tt.err) {
				t.Fatalf("err %v, want %v", err, tt.err)
			}
			if (s.sdp != nil) != tt.sdp || (s.isup != nil) != tt.isup {
				t.Errorf("sdp %v isup %v, want %v %v", s.sdp != nil, s.isup != nil, tt.sdp, tt.isup)
			}
			if s.sdp != nil {
				if _, _, err := RewriteSDP(s.sdp, RewriteOptions{}); err != nil {
					t.Errorf("SDP part does not parse: %v", err)
				}
			}
		})
	}
}
