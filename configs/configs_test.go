package configs

import (
	"fmt"
	"os"
	"path/filepath"
	"reflect"
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
		{"carrier listen", c.SIP.Trunks.Carrier.Listen.String(), "127.0.0.1:5060"},
		{"platform listen", c.SIP.Trunks.Platform.Listen.String(), "127.0.0.1:5070"},
		{"platform target", c.SIP.Trunks.Platform.Target, "sip:agent@127.0.0.1:5090"},
		{"http", c.HTTP.Listen.String(), "127.0.0.1:8080"},
		{"media bind", c.Media.BindIP.String(), "127.0.0.1"},
		{"media mask", c.Media.MaskMode.String(), "tone"},
		{"media policy", c.Media.Policy.String(), "always"},
		{"log level", c.Log.Level.String(), "info"},
		{"psp kind", c.PSP.Kind.String(), "authorization"},
		{"psp header", c.PSP.Header.String(), "binary2"},
		{"audit path", c.Audit.Path, "tonevault-audit.jsonl"},
		{"store driver", c.Store.Driver, "sqlite"},
		{"store path", c.Store.SQLite.Path, "tonevault.db"},
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
			if c.SIP.Trunks.Carrier.Listen.String() != "127.0.0.1:5060" {
				t.Error(c.SIP.Trunks.Carrier.Listen)
			}
		}},
		{name: "override one key", yaml: "sip:\n  trunks:\n    carrier:\n      listen: 127.0.0.1:0\n", check: func(t *testing.T, c Config) {
			if c.SIP.Trunks.Carrier.Listen.String() != "127.0.0.1:0" || c.SIP.Trunks.Platform.Listen.String() != "127.0.0.1:5070" {
				t.Errorf("%+v", c.SIP.Trunks)
			}
			if len(c.SIP.Trunks.Carrier.Allow) != 2 {
				t.Errorf("allow lost: %v", c.SIP.Trunks.Carrier.Allow)
			}
		}},
		{name: "unknown key with line", yaml: "sip:\n  trunks:\n    carrier:\n      lisen: 1.2.3.4:5\n", wantErr: "sip.trunks.carrier.lisen (line 4): unknown key"},
		{name: "unknown section", yaml: "vaults:\n  addr: x\n", wantErr: "vaults (line 1): unknown key"},
		{name: "unknown key in a list", yaml: "capture:\n  extra_fields: [{name: postcode, min_digits: 3, max_digit: 8}]\n", wantErr: "capture.extra_fields[0].max_digit (line 2): unknown key"},
		{name: "unknown key in a map", yaml: "vault:\n  merchant_formats:\n    m1: {kind: opaque, lenght: 20}\n", wantErr: `vault.merchant_formats["m1"].lenght (line 3): unknown key`},
		{name: "key given twice", yaml: "log:\n  level: info\n  level: debug\n", wantErr: "log.level"},
		{name: "wrong type", yaml: "media:\n  port_min: lots\n", wantErr: "media.port_min (line 2)"},
		{name: "bad duration", yaml: "media:\n  media_timeout: soon\n", wantErr: "media.media_timeout (line 2)"},
		{name: "bad mask", yaml: "media:\n  mask: hush\n", wantErr: "media.mask (line 2)"},
		{name: "bad policy", yaml: "media:\n  policy: sometimes\n", wantErr: "media.policy (line 2)"},
		{name: "pool target", yaml: "sip:\n  trunks:\n    platform:\n      target: agents:default\n", check: func(t *testing.T, c Config) {
			if c.SIP.Trunks.Platform.Target != "agents:default" || c.Agents.Pools["default"].RingTimeout != 30*time.Second {
				t.Errorf("%q %+v", c.SIP.Trunks.Platform.Target, c.Agents.Pools)
			}
		}},
		{name: "unknown pool", yaml: "sip:\n  routes: [{callee: \"0800\", target: \"agents:nope\"}]\n", wantErr: `no pool "nope" in agents.pools`},
		{name: "bad webrtc", yaml: "webrtc:\n  ice_lite: maybe\n", wantErr: "webrtc.ice_lite"},
		{name: "bad bind ip", yaml: "media:\n  bind_ip: 0.0.0.0\n", wantErr: "media.bind_ip"},
		{name: "bad psp header", yaml: "psp:\n  header: ascii2\n", wantErr: "psp.header (line 2)"},
		{name: "bad psp addr", yaml: "psp:\n  addrs: [localhost]\n", wantErr: "psp.addrs[0]"},
		{name: "list in place of a map", yaml: "sip:\n  trunks: [a, b]\n", wantErr: "sip.trunks (line 2): want a mapping"},
		{name: "scalar in place of a list", yaml: "sip:\n  correlation_headers: X-Call\n", wantErr: "sip.correlation_headers (line 2): want a list"},
		{name: "wiring is not a key", yaml: "sip:\n  useragent: me\n", wantErr: "unknown key"},
		{name: "mask styles differ", yaml: "api:\n  mask_style: last4\n", wantErr: "mask_style"},
		{name: "both mask styles", yaml: "api:\n  mask_style: last4\ncapture:\n  mask_style: last4\n", check: func(t *testing.T, c Config) {
			if c.API.MaskStyle != "last4" || c.Capture.MaskStyle != "last4" {
				t.Errorf("%q %q", c.API.MaskStyle, c.Capture.MaskStyle)
			}
		}},
		{name: "anchors and aliases", yaml: "x: &lo 127.0.0.1:7000\n", wantErr: "x (line 1): unknown key"},
		{name: "alias value", yaml: "sip:\n  trunks:\n    carrier:\n      allow: &nets [10.0.0.0/8]\n    platform:\n      allow: *nets\n", check: func(t *testing.T, c Config) {
			if got := c.SIP.Trunks.Platform.Allow; len(got) != 1 || got[0].String() != "10.0.0.0/8" {
				t.Errorf("platform allow %v", got)
			}
		}},
		{name: "bad listen", yaml: "sip:\n  trunks:\n    platform:\n      listen: nowhere\n", wantErr: "sip.trunks.platform.listen"},
		{name: "bad cidr", yaml: "sip:\n  trunks:\n    carrier:\n      allow: [10.0.0.0/99]\n", wantErr: "sip.trunks.carrier.allow"},
		{name: "bare ip allowed", yaml: "sip:\n  trunks:\n    carrier:\n      allow: [10.0.0.7]\n", check: func(t *testing.T, c Config) {
			p := c.SIP.Trunks.Carrier.Allow
			if len(p) != 1 || p[0].String() != "10.0.0.7/32" {
				t.Errorf("%v", p)
			}
		}},
		{name: "bad isup mode", yaml: "sip:\n  isup: keep\n", wantErr: "sip.isup"},
		{name: "trusted platform", yaml: "sip:\n  trunks:\n    platform:\n      trusted: true\n  isup: pass\n", check: func(t *testing.T, c Config) {
			if !c.SIP.Trunks.Platform.Trusted || c.SIP.Trunks.Carrier.Trusted || c.SIP.ISUP != "pass" {
				t.Errorf("trusted %v/%v isup %q", c.SIP.Trunks.Carrier.Trusted, c.SIP.Trunks.Platform.Trusted, c.SIP.ISUP)
			}
		}},
		{name: "bad transport", yaml: "sip:\n  trunks:\n    carrier:\n      transports: [sctp]\n", wantErr: "transports"},
		{name: "tls without a certificate", yaml: "sip:\n  trunks:\n    carrier:\n      transports: [tls]\n", wantErr: "tls.cert_file"},
		{name: "bad srtp policy", yaml: "sip:\n  trunks:\n    platform:\n      srtp: sometimes\n", wantErr: "srtp"},
		{name: "two documents", yaml: "log:\n  level: info\n---\nlog:\n  level: debug\n", wantErr: "more than one"},
		{name: "bad level", yaml: "log:\n  level: loud\n", wantErr: "log.level"},
		{name: "not yaml", yaml: "sip: [\n", wantErr: "line"},
		{name: "vault skip verify refused", yaml: "vault:\n  insecure: true\n", wantErr: "refused"},
		{name: "psp kind", yaml: "psp:\n  kind: refund\n", wantErr: "psp.kind"},
		{name: "pprof off loopback", yaml: "http:\n  listen: 0.0.0.0:8080\n  pprof: true\n", wantErr: "http.pprof"},
		{name: "psp without state dir", yaml: "psp:\n  state_dir: \"\"\n", check: func(t *testing.T, c Config) {
			if c.PSP.StateDir != "" { // only a previous version's files to move into the store
				t.Errorf("state_dir %q", c.PSP.StateDir)
			}
		}},
		{name: "psp moto", yaml: "psp:\n  moto:\n    visa: {entry_mode: \"01\"}\n", wantErr: `psp.moto["visa"].entry_mode`},
		{name: "bad store driver", yaml: "store:\n  driver: mysql\n", wantErr: "store.driver"},
		{name: "store password in url", yaml: "store:\n  driver: postgres\n  postgres:\n    url: postgres://tv:pw@db.example/tv\n", wantErr: "store.postgres.url"},
		{name: "store on postgres", yaml: "store:\n  driver: postgres\n  postgres:\n    url: postgres://tv@db.example/tv\n", check: func(t *testing.T, c Config) {
			if c.Store.Driver != "postgres" || c.Store.Postgres.MaxConns != 8 || c.Store.SQLite.Path != "tonevault.db" {
				t.Errorf("%+v", c.Store)
			}
		}},
		{name: "cluster on sqlite", yaml: "cluster:\n  node: gw1\n  listen: 127.0.0.1:9443\n  cert_file: a\n  key_file: b\n  ca_file: c\n", wantErr: "store.driver to postgres"},
		{name: "cluster node", yaml: "store:\n  driver: postgres\n  postgres:\n    url: postgres://tv@db.example/tv\ncluster:\n  node: gw1\n  listen: 127.0.0.1:9443\n  peers: [{name: gw2, addr: 127.0.0.1:9444}]\n  cert_file: a\n  key_file: b\n  ca_file: c\n", check: func(t *testing.T, c Config) {
			if c.Cluster.Node != "gw1" || len(c.Cluster.Peers) != 1 || c.Cluster.Peers[0].Addr != "127.0.0.1:9444" || c.Cluster.DeadAfter != 5*time.Second {
				t.Errorf("%+v", c.Cluster)
			}
		}},
		{name: "cluster peer key", yaml: "cluster:\n  peers: [{name: gw2, adr: x}]\n", wantErr: "cluster.peers[0].adr (line 2): unknown key"},
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
	if c.HTTP.Listen.String() != "127.0.0.1:0" {
		t.Errorf("http.listen = %s", c.HTTP.Listen)
	}
	if _, err := Load(filepath.Join(t.TempDir(), "missing.yaml")); err == nil {
		t.Error("missing file loaded")
	}
}

// TestEmbeddedIsDefaults: the embedded tonevault.yaml, which documents the
// defaults for operators, says what the packages' DefaultConfig say: one
// default per setting, wherever it is read.
func TestEmbeddedIsDefaults(t *testing.T) {
	var fromYAML Config
	if err := decode(Default, &fromYAML); err != nil {
		t.Fatal(err)
	}
	for _, d := range differences(reflect.ValueOf(fromYAML), reflect.ValueOf(Defaults()), "") {
		t.Errorf("tonevault.yaml and DefaultConfig differ at %s", d)
	}
	// The check can fail: a changed default is found and named.
	changed := Defaults()
	changed.Media.LookAhead++
	if d := differences(reflect.ValueOf(fromYAML), reflect.ValueOf(changed), ""); len(d) != 1 || !strings.HasPrefix(d[0], "Media.LookAhead") {
		t.Errorf("a changed default gives %v", d)
	}
}

// differences lists the paths at which a and b differ; an empty list or
// map equals a missing one (YAML's [] and {} against a nil default).
func differences(a, b reflect.Value, path string) []string {
	switch a.Kind() {
	case reflect.Struct:
		var out []string
		for i := range a.NumField() {
			if !a.Type().Field(i).IsExported() {
				continue
			}
			out = append(out, differences(a.Field(i), b.Field(i), path+"."+a.Type().Field(i).Name)...)
		}
		return out
	case reflect.Slice, reflect.Map:
		if a.Len() == 0 && b.Len() == 0 {
			return nil
		}
	case reflect.Func:
		if a.IsNil() && b.IsNil() {
			return nil
		}
	}
	if !reflect.DeepEqual(a.Interface(), b.Interface()) {
		return []string{fmt.Sprintf("%s: %v against %v", strings.TrimPrefix(path, "."), a, b)}
	}
	return nil
}
