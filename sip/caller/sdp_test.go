package caller

import (
	"errors"
	"net/netip"
	"strings"
	"testing"

	"github.com/tonevault/tonevault/dtmf"
)

func TestParseSDP(t *testing.T) {
	const head = "v=0\r\no=- 1 1 IN IP4 10.0.0.1\r\ns=-\r\n"
	tests := []struct {
		name    string
		sdp     string
		addr    string
		pt      uint8
		codec   dtmf.Codec
		eventPT int
		dir     string
		err     bool
	}{
		{"pcmu and events", head + "c=IN IP4 10.0.0.1\r\nt=0 0\r\nm=audio 4000 RTP/AVP 0 101\r\na=rtpmap:101 telephone-event/8000\r\n",
			"10.0.0.1:4000", 0, dtmf.PCMU, 101, "sendrecv", false},
		{"pcma first", head + "c=IN IP4 10.0.0.1\r\nt=0 0\r\nm=audio 4000 RTP/AVP 8 0\r\n",
			"10.0.0.1:4000", 8, dtmf.PCMA, -1, "sendrecv", false},
		{"dynamic pcmu, other event pt", head + "c=IN IP4 10.0.0.1\r\nt=0 0\r\nm=audio 4000 RTP/AVP 96 97\r\na=rtpmap:96 PCMU/8000\r\na=rtpmap:97 telephone-event/8000\r\n",
			"10.0.0.1:4000", 96, dtmf.PCMU, 97, "sendrecv", false},
		{"media c= wins, sendonly", head + "c=IN IP4 10.0.0.1\r\nt=0 0\r\nm=audio 4000 RTP/AVP 0\r\nc=IN IP4 10.0.0.2\r\na=sendonly\r\n",
			"10.0.0.2:4000", 0, dtmf.PCMU, -1, "sendonly", false},
		{"session inactive", head + "c=IN IP4 10.0.0.1\r\nt=0 0\r\na=inactive\r\nm=audio 4000 RTP/AVP 0\r\n",
			"10.0.0.1:4000", 0, dtmf.PCMU, -1, "inactive", false},
		{"rfc 2543 hold", head + "c=IN IP4 0.0.0.0\r\nt=0 0\r\nm=audio 4000 RTP/AVP 0\r\n",
			"", 0, dtmf.PCMU, -1, "sendonly", false},
		{"video then audio", head + "c=IN IP4 10.0.0.1\r\nt=0 0\r\nm=video 5000 RTP/AVP 96\r\nm=audio 4000 RTP/AVP 0\r\n",
			"10.0.0.1:4000", 0, dtmf.PCMU, -1, "sendrecv", false},
		{"ipv6", head + "c=IN IP6 ::1\r\nt=0 0\r\nm=audio 4000 RTP/AVP 0\r\n",
			"[::1]:4000", 0, dtmf.PCMU, -1, "sendrecv", false},
		{"only g729", head + "c=IN IP4 10.0.0.1\r\nt=0 0\r\nm=audio 4000 RTP/AVP 18\r\n", "", 0, 0, 0, "", true},
		{"rejected audio", head + "c=IN IP4 10.0.0.1\r\nt=0 0\r\nm=audio 0 RTP/AVP 0\r\n", "", 0, 0, 0, "", true},
		{"no c=", head + "t=0 0\r\nm=audio 4000 RTP/AVP 0\r\n", "", 0, 0, 0, "", true},
		{"hostname c=", head + "c=IN IP4 pbx.example\r\nt=0 0\r\nm=audio 4000 RTP/AVP 0\r\n", "", 0, 0, 0, "", true},
		{"not sdp", "hello", "", 0, 0, 0, "", true},
		{"empty", "", "", 0, 0, 0, "", true},
		{"too big", head + strings.Repeat("a=x\r\n", 5000), "", 0, 0, 0, "", true},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			st, err := parseSDP([]byte(tc.sdp))
			if tc.err {
				if err == nil || !errors.Is(err, errBadSDP) {
					t.Fatalf("parseSDP = %+v, %v; want errBadSDP", st, err)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			var want netip.AddrPort
			if tc.addr != "" {
				want = netip.MustParseAddrPort(tc.addr)
			}
			if st.addr != want || st.pt != tc.pt || st.codec != tc.codec || st.eventPT != tc.eventPT || st.dir != tc.dir {
				t.Errorf("got addr %v pt %d codec %d event %d dir %s; want %v %d %d %d %s",
					st.addr, st.pt, st.codec, st.eventPT, st.dir, want, tc.pt, tc.codec, tc.eventPT, tc.dir)
			}
		})
	}
}

// TestOfferRoundTrip: what we offer parses back as PCMU first, both laws,
// telephone-event 101, and our address.
func TestOfferRoundTrip(t *testing.T) {
	for _, local := range []string{"127.0.0.1:20000", "[::1]:20002"} {
		a := netip.MustParseAddrPort(local)
		b, err := buildSDP(a, 42, 1, offerFormats, "sendrecv", nil)
		if err != nil {
			t.Fatal(err)
		}
		st, err := parseSDP(b)
		if err != nil {
			t.Fatalf("%s: %v\n%s", local, err, b)
		}
		if st.addr != a || st.pt != ptPCMU || st.eventPT != ptEvent || len(st.formats) != 3 || st.dir != "sendrecv" {
			t.Errorf("%s: parsed %+v from\n%s", local, st, b)
		}
		for _, line := range []string{"a=rtpmap:8 PCMA/8000", "a=fmtp:101 0-16", "a=ptime:20"} {
			if !strings.Contains(string(b), line+"\r\n") {
				t.Errorf("%s: offer lacks %s", local, line)
			}
		}
	}
}

func TestAnswerDir(t *testing.T) {
	for theirs, ours := range map[string]string{"sendrecv": "sendrecv", "sendonly": "recvonly", "recvonly": "sendonly", "inactive": "inactive"} {
		if got := answerDir(theirs); got != ours {
			t.Errorf("answerDir(%s) = %s, want %s", theirs, got, ours)
		}
	}
}

// FuzzParseSDP: any body gives a stream or errBadSDP, never a panic, and
// a stream always has a G.711 law.
func FuzzParseSDP(f *testing.F) {
	f.Add([]byte("v=0\r\no=- 1 1 IN IP4 10.0.0.1\r\ns=-\r\nc=IN IP4 10.0.0.1\r\nt=0 0\r\nm=audio 4000 RTP/AVP 0 101\r\na=rtpmap:101 telephone-event/8000\r\n"))
	f.Add([]byte("v=0\r\no=- 1 1 IN IP4 10.0.0.1\r\ns=-\r\nt=0 0\r\nm=audio 4000 RTP/AVP 96\r\nc=IN IP6 ::1\r\na=rtpmap:96 PCMA/8000\r\na=sendonly\r\n"))
	f.Fuzz(func(t *testing.T, b []byte) {
		st, err := parseSDP(b)
		if err != nil {
			if !errors.Is(err, errBadSDP) {
				t.Fatalf("error not errBadSDP: %v", err)
			}
			return
		}
		if st.codec != dtmf.PCMU && st.codec != dtmf.PCMA {
			t.Fatalf("stream without G.711: %+v", st)
		}
	})
}
