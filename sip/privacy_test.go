package sip

import (
	"os"
	"testing"

	"github.com/emiago/sipgo/sip"
)

func TestCopyIdentity(t *testing.T) {
	const pai = "<sip:+441234567890@carrier.example>"
	tests := []struct {
		privacy  []string
		trusted  bool
		wantPAI  bool
		withheld bool
	}{
		{nil, false, true, false},
		{[]string{"none"}, false, true, false},
		{[]string{"id"}, false, false, true},
		{[]string{"id"}, true, true, true},
		{[]string{"ID; critical"}, false, false, true},
		{[]string{"user"}, false, false, true},
		{[]string{"header;user"}, false, false, true},
		{[]string{"critical"}, false, true, false},
		{[]string{"none", "id"}, false, false, true},
		{[]string{"session"}, false, true, false},
	}
	for _, tt := range tests {
		src := sip.NewRequest(sip.INVITE, sip.Uri{Scheme: "sip", Host: "x"})
		src.AppendHeader(sip.NewHeader("P-Asserted-Identity", pai))
		for _, p := range tt.privacy {
			src.AppendHeader(sip.NewHeader("Privacy", p))
		}
		if got := withheld(src); got != tt.withheld {
			t.Errorf("Privacy %q: withheld = %v, want %v", tt.privacy, got, tt.withheld)
		}
		dst := sip.NewRequest(sip.INVITE, sip.Uri{Scheme: "sip", Host: "y"})
		copyIdentity(src, dst, &trunk{cfg: TrunkConfig{Trusted: tt.trusted}})
		if got := headerValue(dst, "P-Asserted-Identity") == pai; got != tt.wantPAI {
			t.Errorf("Privacy %q trusted %v: identity passed = %v, want %v", tt.privacy, tt.trusted, got, tt.wantPAI)
		}
		if len(dst.GetHeaders("Privacy")) != len(tt.privacy) {
			t.Errorf("Privacy %q not carried: %q", tt.privacy, headerValue(dst, "Privacy"))
		}
	}
}

// TestNormalizeParams: RFC 4475's whitespace INVITE (3.1.1.1) has tags
// written "tag = 98asjd8"; they are tags all the same.
func TestNormalizeParams(t *testing.T) {
	b, err := os.ReadFile("testdata/rfc4475/wsinv.sip")
	if err != nil {
		t.Fatal(err)
	}
	m, err := sip.ParseMessage(b)
	if err != nil {
		t.Fatal(err)
	}
	req := m.(*sip.Request)
	if tag, _ := req.From().Params.Get("tag"); tag == "98asjd8" {
		t.Fatal("sipgo reads the spaced tag already: this test shows nothing")
	}
	normalizeParams(req)
	from, _ := req.From().Params.Get("tag")
	to, _ := req.To().Params.Get("tag")
	if from != "98asjd8" || to != "1918181833n" {
		t.Errorf("tags %q %q, want 98asjd8 1918181833n", from, to)
	}
	if cseqMismatch(req) {
		t.Error("CSeq 0009 INVITE is the request's method")
	}
}
