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
Supported: replaces
Require: 100rel
Content-Length: 0

`)
	out := sip.NewRequest(sip.INVITE, sip.Uri{Host: "h"})
	copyOptionTags(req, out)
	if got := headerValue(out, "Supported"); got != "timer, replaces" {
		t.Errorf("Supported = %q", got)
	}
	if h := out.GetHeaders("Require"); len(h) != 0 {
		t.Errorf("Require kept: %v", h)
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
