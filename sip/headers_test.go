package sip

import (
	"strings"
	"testing"

	"github.com/emiago/sipgo/sip"
)

func parseReq(t *testing.T, s string) *sip.Request {
	t.Helper()
	m, err := sip.ParseMessage([]byte(strings.ReplaceAll(s, "\n", "\r\n")))
	if err != nil {
		t.Fatal(err)
	}
	return m.(*sip.Request)
}

func TestOptionTags(t *testing.T) {
	req := parseReq(t, `INVITE sip:a@b SIP/2.0
Via: SIP/2.0/UDP 10.0.0.1;branch=z9hG4bK1
From: <sip:x@y>;tag=1
To: <sip:a@b>
Call-ID: 1
CSeq: 1 INVITE
Supported: timer, 100rel
k: replaces
Require: 100rel
Allow: INVITE, ACK, BYE
Session-Expires: 1800;refresher=uac
Min-SE: 120
Content-Length: 0

`)
	checks := []struct {
		what      string
		got, want any
	}{
		{"Supported", strings.Join(optionTags(req, "Supported"), ","), "timer,100rel,replaces"},
		{"supports 100rel", supports(req, "100rel"), true},
		{"supports replaces (compact k)", supports(req, "replaces"), true},
		{"supports norefersub", supports(req, "norefersub"), false},
		{"requires 100rel", hasTag(req, "Require", "100rel"), true},
		{"requires timer", hasTag(req, "Require", "timer"), false},
		{"unsupported Require", unsupportedRequire(req), ""},
		{"Min-SE", minSE(req).String(), "2m0s"},
	}
	for _, c := range checks {
		if c.got != c.want {
			t.Errorf("%s = %v, want %v", c.what, c.got, c.want)
		}
	}
	if se, ref, ok := sessionExpires(req); !ok || se.Seconds() != 1800 || ref != "uac" {
		t.Errorf("Session-Expires = %v %q %v", se, ref, ok)
	}
	if ok, known := allows(req, sip.UPDATE); ok || !known {
		t.Errorf("allows UPDATE = %v, %v; want false, known", ok, known)
	}
	req.AppendHeader(sip.NewHeader("Require", "timer, foo"))
	if got := unsupportedRequire(req); got != "foo" {
		t.Errorf("unsupported Require = %q, want foo", got)
	}
}

func TestTargetAndSafeUser(t *testing.T) {
	tr := &trunk{cfg: TrunkConfig{Target: "sip:{user}@10.0.0.5:5062;transport=tcp"}}
	tests := []struct {
		user    string
		want    string
		wantErr bool
	}{
		{"+441234567890", "sip:+441234567890@10.0.0.5:5062;transport=tcp", false},
		{"agent.7", "sip:agent.7@10.0.0.5:5062;transport=tcp", false},
		{"", "", true},
		{"a;maddr=evil", "", true},
		{"a%40evil.example", "", true},
		{strings.Repeat("1", 65), "", true},
	}
	for _, tt := range tests {
		u, err := tr.target(&sip.Request{Recipient: sip.Uri{User: tt.user}})
		if tt.wantErr != (err != nil) {
			t.Errorf("%q: err = %v", tt.user, err)
			continue
		}
		if err == nil && u.String() != tt.want {
			t.Errorf("%q: target %s, want %s", tt.user, u.String(), tt.want)
		}
	}
	if tp := transportFor(mustURI(t, "sip:a@b;transport=tcp")); tp != "TCP" {
		t.Errorf("transport = %s", tp)
	}
	if tp := transportFor(mustURI(t, "sip:a@b")); tp != "UDP" {
		t.Errorf("transport = %s", tp)
	}
}

func mustURI(t *testing.T, s string) sip.Uri {
	var u sip.Uri
	if err := sip.ParseUri(s, &u); err != nil {
		t.Fatal(err)
	}
	return u
}

func TestFailureMapping(t *testing.T) {
	tests := []struct {
		in      int
		out     int
		outcome string
	}{
		{486, 486, "busy"}, {600, 600, "busy"}, {603, 603, "declined"}, {404, 404, "not_found"},
		{487, 487, "cancelled"}, {480, 480, "no_answer"}, {302, 480, "rejected"}, {401, 403, "rejected"},
		{407, 403, "rejected"}, {488, 488, "not_acceptable"}, {500, 500, "failed"}, {503, 503, "failed"},
	}
	for _, tt := range tests {
		code, _ := mapFailure(tt.in, "x")
		if code != tt.out {
			t.Errorf("mapFailure(%d) = %d, want %d", tt.in, code, tt.out)
		}
		if got := failureOutcome(tt.in); string(got) != tt.outcome {
			t.Errorf("failureOutcome(%d) = %s, want %s", tt.in, got, tt.outcome)
		}
	}
}
