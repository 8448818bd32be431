package loadtest

import (
	"bytes"
	"errors"
	"net/netip"
	"os/exec"
	"reflect"
	"strings"
	"testing"
	"time"
)

func TestBencode(t *testing.T) {
	for _, tc := range []struct {
		name string
		in   any
		want string
	}{
		{"string", "ping", "4:ping"},
		{"empty string", "", "0:"},
		{"bytes", []byte("a b"), "3:a b"},
		{"integer", 100, "i100e"},
		{"negative", -1, "i-1e"},
		{"list", []any{"a", 1}, "l1:ai1ee"},
		{"strings", []string{"x", "yz"}, "l1:x2:yze"},
		// Keys sorted, whatever the map's order.
		{"dict", map[string]any{"command": "ping", "call-id": "c1", "delay-buffer": 100},
			"d7:call-id2:c17:command4:ping12:delay-bufferi100ee"},
		{"nested", map[string]any{"flags": []any{"trust-address"}}, "d5:flagsl13:trust-addressee"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			got, err := bencode(tc.in)
			if err != nil {
				t.Fatal(err)
			}
			if string(got) != tc.want {
				t.Errorf("bencode(%v) = %q, want %q", tc.in, got, tc.want)
			}
		})
	}
	if _, err := bencode(map[string]any{"x": 1.5}); err == nil {
		t.Error("a float was encoded")
	}
}

func TestBdecode(t *testing.T) {
	for _, tc := range []struct {
		in   string
		want any
	}{
		{"4:pong", "pong"},
		{"i-42e", int64(-42)},
		{"le", []any{}},
		{"l1:ai2ee", []any{"a", int64(2)}},
		// rtpengine does not sort its keys.
		{"d6:result2:ok3:sdp3:v=0e", map[string]any{"result": "ok", "sdp": "v=0"}},
		{"d6:result5:error12:error-reason7:unknowne", map[string]any{"result": "error", "error-reason": "unknown"}},
	} {
		got, err := bdecode([]byte(tc.in))
		if err != nil {
			t.Errorf("bdecode(%q): %v", tc.in, err)
			continue
		}
		if !reflect.DeepEqual(got, tc.want) {
			t.Errorf("bdecode(%q) = %#v, want %#v", tc.in, got, tc.want)
		}
	}
	// Round trip of what the driver sends.
	msg := map[string]any{"command": "block DTMF", "call-id": "load-1", "from-tag": "c1", "DTMF-security": "silence", "delay-buffer": 100}
	b, _ := bencode(msg)
	got, err := bdecode(b)
	if err != nil {
		t.Fatal(err)
	}
	if d := got.(map[string]any); d["command"] != "block DTMF" || d["delay-buffer"] != int64(100) || len(d) != len(msg) {
		t.Errorf("round trip: %#v", d)
	}
	for _, bad := range []string{"", "i12", "ie", "iabce", "5:abc", "-1:a", "l1:a", "d1:ae", "di1e1:ae", "x", "4:pongx",
		strings.Repeat("l", 100) + strings.Repeat("e", 100)} {
		if _, err := bdecode([]byte(bad)); !errors.Is(err, errBencode) {
			t.Errorf("bdecode(%q): %v, want errBencode", bad, err)
		}
	}
}

func TestSDPMedia(t *testing.T) {
	peer := netip.MustParseAddrPort("127.0.0.1:40000")
	got, err := sdpMedia(loadSDP(peer, 7))
	if err != nil || got != peer {
		t.Errorf("sdpMedia(loadSDP(%v)) = %v, %v", peer, got, err)
	}
	for _, bad := range []string{"v=0\r\n", "c=IN IP4 127.0.0.1\r\n", "m=audio 4000 RTP/AVP 0\r\n", "c=IN IP4 x\r\nm=audio 1 RTP/AVP 0\r\n",
		"c=IN IP4 127.0.0.1\r\nm=audio 99999 RTP/AVP 0\r\n"} {
		if _, err := sdpMedia(bad); err == nil {
			t.Errorf("sdpMedia(%q) accepted", bad)
		}
	}
}

// TestRtpengine runs a short load through Debian's rtpengine in both
// profiles, where it is installed (scripts/install-deps.sh rtpengine):
// the daemon starts from the run's own config file, answers offers,
// answers and block DTMF over ng, relays both ways, and its CPU is read.
func TestRtpengine(t *testing.T) {
	if testing.Short() {
		t.Skip("short")
	}
	if _, err := exec.LookPath("rtpengine"); err != nil {
		t.Skip("rtpengine not installed: scripts/install-deps.sh rtpengine")
	}
	for _, profile := range []string{RtpenginePass, RtpengineMask} {
		t.Run(profile, func(t *testing.T) {
			o := Options{Calls: 4, Duration: time.Second, LookAhead: 30 * time.Millisecond, Relay: RelayRtpengine, RtpengineProfile: profile}
			var log bytes.Buffer
			res, err := Run(o, &log)
			if err != nil {
				t.Fatal(err, log.String())
			}
			var out bytes.Buffer
			res.Print(&out, o)
			t.Log("\n" + out.String())
			// Read from /proc (a short run may be under one clock tick).
			if !res.cpuOK {
				t.Error("rtpengine's CPU not read")
			}
			for d := range 2 {
				if sent, recv := res.sent[d].Load(), res.recv[d].Load(); recv == 0 || recv > sent {
					t.Errorf("direction %d: sent %d, received %d", d, sent, recv)
				}
			}
			p50, _ := res.lat[0].quantile(0.5)
			if profile == RtpengineMask && p50 < rtpengineDelay {
				t.Errorf("mask profile: carrier audio p50 %v, under the %v delay buffer: not through the codec handler", p50, rtpengineDelay)
			}
			if profile == RtpenginePass && p50 >= rtpengineDelay {
				t.Errorf("pass profile: carrier audio p50 %v: delayed as if masked", p50)
			}
		})
	}
}

func TestRtpengineMissing(t *testing.T) {
	o := Options{Calls: 1, Duration: time.Second, Relay: RelayRtpengine, Rtpengine: "/nonexistent/rtpengine"}
	_, err := Run(o, &bytes.Buffer{})
	if err == nil || !strings.Contains(err.Error(), "install-deps.sh rtpengine") {
		t.Errorf("missing binary: %v", err)
	}
}

func TestValidateRtpengineProfile(t *testing.T) {
	for _, tc := range []struct {
		profile string
		ok      bool
	}{{"", true}, {RtpenginePass, true}, {RtpengineMask, true}, {"random", false}} {
		o := Options{Calls: 1, Duration: time.Second, LookAhead: 30 * time.Millisecond, Relay: RelayRtpengine, RtpengineProfile: tc.profile}
		err := o.Validate()
		if (err == nil) != tc.ok || (err != nil && !strings.Contains(err.Error(), "--rtpengine-profile")) {
			t.Errorf("profile %q: %v", tc.profile, err)
		}
	}
}
