package psp_test

import (
	"strings"
	"testing"

	"github.com/tonevault/tonevault/psp"
	"github.com/tonevault/tonevault/psp/sim"
)

// TestMOTOIndicators: each brand's request carries its telephone-order
// indicators, which psp-sim checks (it answers 30 otherwise), and the
// response reports what was sent so that the caller can keep it with the
// payment. A configured entry replaces the built-in one.
func TestMOTOIndicators(t *testing.T) {
	visa := psp.DefaultMOTO["visa"]
	tests := []struct {
		name    string
		conf    map[string]psp.MOTO
		pan     string
		outcome psp.Outcome
		sent    psp.MOTO
	}{
		{"visa", nil, "4111111111111111", psp.Approved, psp.MOTO{EntryMode: "012", Condition: "08", Field60: "0000000001"}},
		{"mastercard", nil, "5555555555554444", psp.Approved, psp.MOTO{EntryMode: "012", Condition: "08", Field61: "203310000"}},
		{"amex", nil, "378282246310005", psp.Approved, psp.MOTO{EntryMode: "012", Condition: "08"}},
		{"visa configured", map[string]psp.MOTO{"VISA": {Field60: "0100000001"}}, "4111111111111111", psp.Approved,
			psp.MOTO{EntryMode: "012", Condition: "08", Field60: "0100000001"}},
		// The value the connector used to send for Visa: e-commerce to
		// Visa, which the simulator refuses.
		{"visa as e-commerce", map[string]psp.MOTO{"visa": {Field60: "0000000008"}}, "4111111111111111", psp.Error,
			psp.MOTO{EntryMode: "012", Condition: "08", Field60: "0000000008"}},
		{"mastercard without field 61", map[string]psp.MOTO{"mastercard": visa}, "5555555555554444", psp.Error, visa},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			e := newEnv(t, sim.Config{}, func(c *psp.Config) { c.MOTO = tt.conf })
			resp, err := e.authorize(request(tt.pan, 1000))
			if err != nil || resp.Outcome != tt.outcome {
				t.Fatalf("%+v, %v; want %v", resp, err, tt.outcome)
			}
			if resp.MOTO != tt.sent {
				t.Errorf("reported %+v, want %+v", resp.MOTO, tt.sent)
			}
			if bad := e.sim.Stats().BadMOTO; (bad != 0) != (tt.outcome == psp.Error) {
				t.Errorf("psp-sim counted %d requests with wrong indicators", bad)
			}
			if tt.outcome == psp.Error && (resp.ResponseCode != "30" || !strings.Contains(e.simLog.String(), "moto:")) {
				t.Errorf("code %s; sim log:\n%s", resp.ResponseCode, e.simLog.String())
			}
		})
	}
}

func TestMOTOConfigRefused(t *testing.T) {
	tests := []struct {
		name string
		moto psp.MOTO
		want string
	}{
		{"entry mode", psp.MOTO{EntryMode: "01"}, `psp.moto["visa"].entry_mode`},
		{"condition", psp.MOTO{Condition: "8"}, `psp.moto["visa"].condition`},
		{"field 60 not printable", psp.MOTO{Field60: "00\n"}, `psp.moto["visa"].field_60`},
		{"field 61 too long", psp.MOTO{Field61: strings.Repeat("0", 1000)}, `psp.moto["visa"].field_61`},
		{"field 61 passes for a card number", psp.MOTO{Field61: "2033100000018262"}, "card number"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			c := psp.DefaultConfig()
			c.MOTO = map[string]psp.MOTO{"visa": tt.moto}
			err := c.Validate()
			if err == nil || !strings.Contains(err.Error(), tt.want) {
				t.Errorf("err = %v, want %q", err, tt.want)
			}
		})
	}
	c := psp.DefaultConfig()
	c.MOTO = map[string]psp.MOTO{"visa": {Field60: "0100000001"}, "jcb": {}}
	if err := c.Validate(); err != nil {
		t.Errorf("valid entries refused: %v", err)
	}
}
