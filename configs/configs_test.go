package configs

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

func TestDefault(t *testing.T) {
	c, err := Load("")
	if err != nil {
		t.Fatal(err)
	}
	checks := []struct{ name, got, want string }{
		{"carrier listen", c.SIP.Trunks.Carrier.Listen, "127.0.0.1:5060"},
		{"platform listen", c.SIP.Trunks.Platform.Listen, "127.0.0.1:5070"},
		{"platform target", c.SIP.Trunks.Platform.Target, "sip:agent@127.0.0.1:5090"},
		{"http", c.HTTP.Listen, "127.0.0.1:8080"},
		{"media bind", c.Media.BindIP, "127.0.0.1"},
		{"audit path", c.Audit.Path, "tonevault-audit.jsonl"},
	}
	for _, ch := range checks {
		if ch.got != ch.want {
			t.Errorf("%s = %q, want %q", ch.name, ch.got, ch.want)
		}
	}
	if c.Media.PortMin != 20000 || c.Media.PortMax != 29999 {
		t.Errorf("rtp ports = %d-%d", c.Media.PortMin, c.Media.PortMax)
	}
	if !c.SIP.RejectUninspectable {
		t.Error("reject_uninspectable should default to true")
	}
	if c.Media.MediaTimeout != time.Minute {
		t.Errorf("media_timeout = %v", c.Media.MediaTimeout)
	}
	if got := strings.Join(c.SIP.CorrelationHeaders, ","); got != "X-Interaction-ID,User-to-User" {
		t.Errorf("correlation headers = %s", got)
	}
}

func TestParse(t *testing.T) {
	tests := []struct {
		name    string
		yaml    string
		wantErr string // substring; "" means success
		check   func(t *testing.T, c Config)
	}{
		{name: "empty is default", yaml: "", check: func(t *testing.T, c Config) {
			if c.SIP.Trunks.Carrier.Listen != "127.0.0.1:5060" {
				t.Error(c.SIP.Trunks.Carrier.Listen)
			}
		}},
		{name: "override one key", yaml: "sip:\n  trunks:\n    carrier:\n      listen: 127.0.0.1:0\n", check: func(t *testing.T, c Config) {
			if c.SIP.Trunks.Carrier.Listen != "127.0.0.1:0" || c.SIP.Trunks.Platform.Listen != "127.0.0.1:5070" {
				t.Errorf("%+v", c.SIP.Trunks)
			}
			if len(c.SIP.Trunks.Carrier.Allow) != 2 {
				t.Errorf("allow lost: %v", c.SIP.Trunks.Carrier.Allow)
			}
		}},
		{name: "unknown key with line", yaml: "sip:\n  trunks:\n    carrier:\n      lisen: 1.2.3.4:5\n", wantErr: "line 4: field lisen not found"},
		{name: "unknown section", yaml: "vaults:\n  addr: x\n", wantErr: "line 1: field vaults not found"},
		{name: "wrong type", yaml: "media:\n  port_min: lots\n", wantErr: "line 2"},
		{name: "bad duration", yaml: "media:\n  media_timeout: soon\n", wantErr: "line 2"},
		{name: "bad listen", yaml: "sip:\n  trunks:\n    platform:\n      listen: nowhere\n", wantErr: "sip.trunks.platform.listen"},
		{name: "bad cidr", yaml: "sip:\n  trunks:\n    carrier:\n      allow: [10.0.0.0/99]\n", wantErr: "sip.trunks.carrier.allow"},
		{name: "bare ip allowed", yaml: "sip:\n  trunks:\n    carrier:\n      allow: [10.0.0.7]\n", check: func(t *testing.T, c Config) {
			p, err := c.SIP.Trunks.Carrier.AllowPrefixes()
			if err != nil || len(p) != 1 || p[0].String() != "10.0.0.7/32" {
				t.Errorf("%v %v", p, err)
			}
		}},
		{name: "bad transport", yaml: "sip:\n  trunks:\n    carrier:\n      transports: [tls]\n", wantErr: "transports"},
		{name: "two documents", yaml: "log:\n  level: info\n---\nlog:\n  level: debug\n", wantErr: "more than one"},
		{name: "bad level", yaml: "log:\n  level: loud\n", wantErr: "log.level"},
		{name: "not yaml", yaml: "sip: [\n", wantErr: "line"},
		{name: "vault skip verify refused", yaml: "vault:\n  insecure: true\n", wantErr: "refused"},
		{name: "psp kind", yaml: "psp:\n  kind: refund\n", wantErr: "psp.kind"},
		{name: "pprof off loopback", yaml: "http:\n  listen: 0.0.0.0:8080\n  pprof: true\n", wantErr: "http.pprof"},
		{name: "psp without state dir", yaml: "psp:\n  state_dir: \"\"\n", wantErr: "psp.state_dir"},
		{name: "no psp", yaml: "psp:\n  addrs: []\n  state_dir: \"\"\n", check: func(t *testing.T, c Config) {
			if len(c.PSP.Addrs) != 0 {
				t.Errorf("addrs %v", c.PSP.Addrs)
			}
		}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			c, err := Parse([]byte(tt.yaml), "test.yaml")
			if tt.wantErr != "" {
				if err == nil || !strings.Contains(err.Error(), tt.wantErr) || !strings.Contains(err.Error(), "test.yaml") {
					t.Fatalf("err = %v, want one naming test.yaml with %q", err, tt.wantErr)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			tt.check(t, c)
		})
	}
}

func TestLoadFile(t *testing.T) {
	p := filepath.Join(t.TempDir(), "c.yaml")
	if err := os.WriteFile(p, []byte("http:\n  listen: 127.0.0.1:0\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	c, err := Load(p)
	if err != nil {
		t.Fatal(err)
	}
	if c.HTTP.Listen != "127.0.0.1:0" {
		t.Errorf("http.listen = %s", c.HTTP.Listen)
	}
	if _, err := Load(filepath.Join(t.TempDir(), "missing.yaml")); err == nil {
		t.Error("missing file loaded")
	}
}
