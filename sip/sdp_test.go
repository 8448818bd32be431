package sip

import (
	"errors"
	"net/netip"
	"strings"
	"testing"
	"time"

	"github.com/tonevault/tonevault/media"
)

// crlf turns a readable SDP into one with CRLF line ends.
func crlf(s string) []byte {
	s = strings.TrimLeft(s, "\n")
	return []byte(strings.ReplaceAll(s, "\n", "\r\n"))
}

var (
	sdpSIPp = crlf(`
v=0
o=user1 53655765 2353687637 IN IP4 10.0.0.1
s=-
c=IN IP4 10.0.0.1
t=0 0
m=audio 6000 RTP/AVP 0 101
a=rtpmap:0 PCMU/8000
a=rtpmap:101 telephone-event/8000
a=fmtp:101 0-15
a=ptime:30
`)
	sdpWebRTCish = crlf(`
v=0
o=- 4611731400430051336 2 IN IP4 127.0.0.1
s=-
t=0 0
a=group:BUNDLE 0
a=ice-lite
m=audio 9 RTP/AVPF 111 9 0 8 13 110
c=IN IP4 192.0.2.7
a=rtcp:9 IN IP4 192.0.2.8
a=ice-ufrag:abcd
a=ice-pwd:0123456789abcdef01234567
a=candidate:1 1 udp 2122260223 192.0.2.7 50000 typ host
a=fingerprint:sha-256 AA:BB
a=setup:actpass
a=mid:0
a=sendonly
a=rtcp-mux
a=rtpmap:111 opus/48000/2
a=fmtp:111 minptime=10;useinbandfec=1
a=rtpmap:9 G722/8000
a=rtpmap:0 PCMU/8000
a=rtpmap:8 PCMA/8000
a=rtpmap:13 CN/8000
a=rtpmap:110 telephone-event/48000
a=crypto:1 AES_CM_128_HMAC_SHA1_80 inline:WVNfX19zZW1jdGwgKCkgewkyMjA7fQp9CnVubGVz
`)
	sdpVideoFirst = crlf(`
v=0
o=x 1 1 IN IP6 2001:db8::1
s=call
c=IN IP6 2001:db8::1
t=0 0
m=video 7000 RTP/AVP 96
a=rtpmap:96 H264/90000
m=audio 7002 RTP/AVP 8
`)
	sdpOpusOnly = crlf(`
v=0
o=x 1 1 IN IP4 10.0.0.1
s=-
c=IN IP4 10.0.0.1
t=0 0
m=audio 6000 RTP/AVP 111
a=rtpmap:111 opus/48000/2
`)
	sdpHold2543 = crlf(`
v=0
o=x 1 2 IN IP4 10.0.0.1
s=-
c=IN IP4 0.0.0.0
t=0 0
m=audio 6000 RTP/AVP 0
`)
	sdpSAVP = crlf(`
v=0
o=x 1 2 IN IP4 10.0.0.1
s=-
c=IN IP4 10.0.0.1
t=0 0
m=audio 6000 RTP/SAVP 0
a=crypto:1 AES_CM_128_HMAC_SHA1_80 inline:WVNfX19zZW1jdGwgKCkgewkyMjA7fQp9CnVubGVz
`)
)

func TestRewriteSDP(t *testing.T) {
	local := netip.MustParseAddrPort("127.0.0.1:20000")
	tests := []struct {
		name       string
		in         []byte
		keepAll    bool
		wantErr    error
		wantRemote string
		wantRTCP   string
		wantPTs    []uint8
		wantDir    string
		wantPTime  time.Duration
		wantIn     []string // lines the output must have
		wantOut    []string // substrings it must not have
	}{
		{
			name: "sipp", in: sdpSIPp, wantRemote: "10.0.0.1:6000", wantRTCP: "10.0.0.1:6001",
			wantPTs: []uint8{0, 101}, wantDir: "sendrecv", wantPTime: 30 * time.Millisecond,
			wantIn:  []string{"c=IN IP4 127.0.0.1", "m=audio 20000 RTP/AVP 0 101", "a=rtcp:20001", "a=fmtp:101 0-15", "o=tonevault 7 3 IN IP4 127.0.0.1"},
			wantOut: []string{"10.0.0.1"},
		},
		{
			name: "webrtc-like", in: sdpWebRTCish, wantRemote: "192.0.2.7:9", wantRTCP: "192.0.2.8:9",
			wantPTs: []uint8{0, 8, 13}, wantDir: "sendonly",
			wantIn:  []string{"m=audio 20000 RTP/AVPF 0 8 13", "c=IN IP4 127.0.0.1", "a=sendonly", "a=rtcp:20001"},
			wantOut: []string{"192.0.2", "ice-", "candidate", "fingerprint", "crypto", "rtcp-mux", "opus", "G722", "telephone-event/48000", "BUNDLE", "setup"},
		},
		{
			name: "video rejected, audio second", in: sdpVideoFirst, wantRemote: "[2001:db8::1]:7002", wantRTCP: "[2001:db8::1]:7003",
			wantPTs: []uint8{8}, wantDir: "sendrecv",
			wantIn: []string{"m=video 0 RTP/AVP 96", "m=audio 20000 RTP/AVP 8"},
		},
		{name: "opus only", in: sdpOpusOnly, wantErr: ErrUninspectable},
		{
			name: "opus only kept", in: sdpOpusOnly, keepAll: true, wantRemote: "10.0.0.1:6000", wantRTCP: "10.0.0.1:6001",
			wantPTs: []uint8{111}, wantDir: "sendrecv", wantIn: []string{"m=audio 20000 RTP/AVP 111"},
		},
		{
			name: "rfc2543 hold", in: sdpHold2543, wantRemote: "0.0.0.0:6000", wantRTCP: "0.0.0.0:6001",
			wantPTs: []uint8{0}, wantDir: "sendrecv", wantIn: []string{"c=IN IP4 0.0.0.0", "m=audio 20000 RTP/AVP 0"},
		},
		{name: "srtp", in: sdpSAVP, wantErr: ErrNoAudio},
		{name: "garbage", in: []byte("hello"), wantErr: ErrBadSDP},
		{name: "empty", in: nil, wantErr: ErrBadSDP},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			out, st, err := RewriteSDP(tt.in, RewriteOptions{Local: local, Origin: Origin{SessionID: 7, Version: 3}, KeepUninspectable: tt.keepAll})
			if tt.wantErr != nil {
				if !errors.Is(err, tt.wantErr) {
					t.Fatalf("err = %v, want %v", err, tt.wantErr)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if got := st.Addr.String(); got != tt.wantRemote {
				t.Errorf("remote = %s, want %s", got, tt.wantRemote)
			}
			if got := st.RTCP.String(); got != tt.wantRTCP {
				t.Errorf("rtcp = %s, want %s", got, tt.wantRTCP)
			}
			var pts []uint8
			for _, p := range st.PayloadTypes {
				pts = append(pts, p.PT)
			}
			if !slicesEqual(pts, tt.wantPTs) {
				t.Errorf("payload types = %v, want %v", pts, tt.wantPTs)
			}
			if st.Direction != tt.wantDir {
				t.Errorf("direction = %q, want %q", st.Direction, tt.wantDir)
			}
			if st.PTime != tt.wantPTime {
				t.Errorf("ptime = %v, want %v", st.PTime, tt.wantPTime)
			}
			lines := strings.Split(string(out), "\r\n")
			for _, w := range tt.wantIn {
				found := false
				for _, l := range lines {
					found = found || l == w
				}
				if !found {
					t.Errorf("output lacks line %q:\n%s", w, out)
				}
			}
			for _, w := range tt.wantOut {
				if strings.Contains(string(out), w) {
					t.Errorf("output has %q:\n%s", w, out)
				}
			}
			// What we send must parse again, and describe the relay.
			_, back, err := RewriteSDP(out, RewriteOptions{Local: local, KeepUninspectable: true})
			if err != nil {
				t.Fatalf("output does not parse again: %v\n%s", err, out)
			}
			if back.Addr.Port() != local.Port() {
				t.Errorf("output port = %d, want %d", back.Addr.Port(), local.Port())
			}
		})
	}
}

func TestRewriteSDPCodecs(t *testing.T) {
	_, st, err := RewriteSDP(sdpSIPp, RewriteOptions{Local: netip.MustParseAddrPort("127.0.0.1:20000")})
	if err != nil {
		t.Fatal(err)
	}
	want := []media.PayloadType{
		{PT: 0, Codec: media.PCMU, Name: "PCMU", Rate: 8000},
		{PT: 101, Codec: media.TelephoneEvent, Name: "telephone-event", Rate: 8000},
	}
	if len(st.PayloadTypes) != len(want) {
		t.Fatalf("got %+v", st.PayloadTypes)
	}
	for i := range want {
		if st.PayloadTypes[i] != want[i] {
			t.Errorf("pt %d = %+v, want %+v", i, st.PayloadTypes[i], want[i])
		}
	}
}

func slicesEqual[T comparable](a, b []T) bool {
	if len(a) != len(b) {
		return false
	}
	for i := range a {
		if a[i] != b[i] {
			return false
		}
	}
	return true
}

// BenchmarkRewriteSDP: every offer and answer of every call goes through
// it (twice per exchange with a version change).
func BenchmarkRewriteSDP(b *testing.B) {
	for _, bc := range []struct {
		name string
		in   []byte
	}{{"sipp", sdpSIPp}, {"webrtc-like", sdpWebRTCish}} {
		b.Run(bc.name, func(b *testing.B) {
			opts := RewriteOptions{Local: netip.MustParseAddrPort("127.0.0.1:20000"), Origin: Origin{SessionID: 1, Version: 1}}
			b.ReportAllocs()
			for b.Loop() {
				if _, _, err := RewriteSDP(bc.in, opts); err != nil {
					b.Fatal(err)
				}
			}
		})
	}
}

// TestRewriteSDPTelephoneEvent: an SDP sent to the carrier always offers
// telephone-event, with the carrier's payload type when free, never twice,
// and the platform's stream (what the relay sends it) is left as it was.
func TestRewriteSDPTelephoneEvent(t *testing.T) {
	const head = "v=0\r\no=- 1 1 IN IP4 127.0.0.1\r\ns=-\r\nc=IN IP4 127.0.0.1\r\nt=0 0\r\n"
	for _, tc := range []struct {
		name, media string
		want        int // payload type the telephone-event line must use, or -1 for none added
		wantLines   []string
	}{
		{"answer without it", "m=audio 6000 RTP/AVP 0\r\na=rtpmap:0 PCMU/8000\r\n", 101,
			[]string{"m=audio 20000 RTP/AVP 0 101", "a=rtpmap:101 telephone-event/8000", "a=fmtp:101 0-16"}},
		{"carrier's number", "m=audio 6000 RTP/AVP 8\r\n", 96, []string{"m=audio 20000 RTP/AVP 8 96", "a=rtpmap:96 telephone-event/8000"}},
		{"number taken", "m=audio 6000 RTP/AVP 0 96\r\na=rtpmap:96 PCMA/8000\r\n", 97, []string{"a=rtpmap:97 telephone-event/8000"}},
		{"already there", "m=audio 6000 RTP/AVP 0 100\r\na=rtpmap:100 telephone-event/8000\r\n", -1, []string{"m=audio 20000 RTP/AVP 0 100"}},
		{"inactive", "m=audio 6000 RTP/AVP 0\r\na=inactive\r\n", -1, []string{"m=audio 20000 RTP/AVP 0\r\n"}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			pt := uint8(101)
			if tc.name == "carrier's number" || tc.name == "number taken" {
				pt = 96
			}
			out, st, err := RewriteSDP([]byte(head+tc.media), RewriteOptions{
				Local: netip.MustParseAddrPort("127.0.0.1:20000"), TelephoneEvent: true, TelephoneEventPT: pt})
			if err != nil {
				t.Fatal(err)
			}
			for _, l := range tc.wantLines {
				if !strings.Contains(string(out), l) {
					t.Errorf("output lacks %q:\n%s", l, out)
				}
			}
			if n := strings.Count(string(out), "telephone-event"); n > 1 {
				t.Errorf("telephone-event %d times:\n%s", n, out)
			}
			if tc.want >= 0 {
				for _, p := range st.PayloadTypes {
					if p.Codec == media.TelephoneEvent {
						t.Errorf("the peer's stream gained telephone-event: %+v", st.PayloadTypes)
					}
				}
			}
		})
	}
}
