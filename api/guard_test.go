package api

import (
	"strings"
	"testing"

	"go.uber.org/zap"

	"github.com/tonevault/tonevault/capture"
)

func TestGuard(t *testing.T) {
	tests := []struct {
		name, field, masked string
		last4               bool
		want                string // "" = unchanged
	}{
		{"bin and last 4", "card_number", "411111••••••1111", false, ""},
		{"stars", "card_number", "411111******1111", false, ""},
		{"typing", "card_number", "••••••••", false, ""},
		{"last4 style", "card_number", "••••••••••••1111", true, ""},
		{"bin under last4 style", "card_number", "411111••••••1111", true, "••••••••••••••••"},
		{"whole number", "card_number", "4111111111111111", false, "••••••••••••••••"},
		{"middle digit", "card_number", "411111•1••••1111", false, "••••••••••••••••"},
		{"expiry digits", "expiry", "1230", false, "••••"},
		{"cvv digit", "security_code", "••7", false, "•••"},
	}
	for _, tc := range tests {
		g := guard{last4: tc.last4, log: zap.NewNop()}
		n := len([]rune(tc.masked))
		v := g.view(capture.View{Fields: []capture.FieldView{{Name: capture.FieldName(tc.field), Masked: tc.masked, Entered: n}}})
		want := tc.want
		if want == "" {
			want = tc.masked
		}
		if got := v.Fields[0].Masked; got != want {
			t.Errorf("%s: %q, want %q", tc.name, got, want)
		}
	}
	v := guard{log: zap.NewNop()}.view(capture.View{Description: "card 4111 1111 1111 1111", Result: &capture.Result{Token: "4111111111111111", AuthCode: "A1"}})
	if v.Description != redacted || v.Result.Token != redacted || v.Result.AuthCode != "A1" {
		t.Errorf("free text: %+v %+v", v, v.Result)
	}
}

func TestCardDataFindings(t *testing.T) {
	for _, tc := range []struct {
		out  string
		find bool
	}{
		{`{"masked":"411111••••••1111","version":3}`, false},
		{`{"pan":"` + testPAN + `"}`, true},
		{`{"x":"5555555555554444"}`, true}, // any Luhn-valid card number
		{`{"expiry":"` + testExpiry + `"}`, true},
		{`{"cvv":` + testCVV + `}`, true},
		{`{"id":"pay_a737b` + `"}`, false},
		{`"12/30"`, true},
	} {
		if got := len(cardDataFindings(tc.out)) > 0; got != tc.find {
			t.Errorf("%s: found %v, want %v", tc.out, got, tc.find)
		}
	}
	if !strings.Contains(strings.Join(cardDataFindings(testPAN), ","), "card number") {
		t.Error("finding does not say what")
	}
}
