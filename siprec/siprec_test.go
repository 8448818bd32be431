package siprec

import (
	"bytes"
	"errors"
	"net/netip"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

var testCall = Call{
	ID:     "c-abcdefghijklmnop",
	Legs:   []Leg{{Trunk: "carrier", CallID: "a84b4c76e66710@pc33"}, {Trunk: "platform", CallID: "0f1e2d3c@127.0.0.1"}},
	Caller: Party{AOR: "sip:441234567890@example.com", Name: "Jane"},
	Callee: Party{AOR: "sip:pay@127.0.0.1"},
	Correlation: []Correlation{
		{Header: "X-Interaction-ID", Value: "INT-42 & <co>"},
		{Header: "User-to-User", Value: "56a390f3d2b7310023a2;encoding=hex"},
	},
	Start:            time.Date(2026, 12, 7, 3, 0, 0, 0, time.UTC),
	CallerIsCustomer: true,
}

func TestMetadataRoundTrip(t *testing.T) {
	for _, customerCalls := range []bool{true, false} {
		c := testCall
		c.CallerIsCustomer = customerCalls
		m := NewMetadata(c, c.Start.Add(time.Second))
		b, err := m.Marshal()
		if err != nil {
			t.Fatal(err)
		}
		for _, want := range []string{`<recording xmlns="` + Namespace + `">`, `<label>1</label>`, `<label>2</label>`,
			`aor="sip:441234567890@example.com"`, `<call xmlns="` + ExtNamespace + `">`,
			`<correlation header="X-Interaction-ID">INT-42 &amp; &lt;co&gt;</correlation>`, `<sip-call-id trunk="carrier">a84b4c76e66710@pc33</sip-call-id>`,
			`<datamode>complete</datamode>`, `<start-time>2026-12-07T03:00:00Z</start-time>`} {
			if !bytes.Contains(b, []byte(want)) {
				t.Errorf("metadata lacks %s:\n%s", want, b)
			}
		}
		got, err := ParseMetadata(b)
		if err != nil {
			t.Fatalf("ParseMetadata(Marshal) = %v\n%s", err, b)
		}
		if v, ok := got.CorrelationValue("x-interaction-id"); !ok || v != "INT-42 & <co>" {
			t.Errorf("CorrelationValue = %q, %v", v, ok)
		}
		if got.Sessions[0].Call.ID != c.ID || len(got.Sessions[0].Call.Legs) != 2 {
			t.Errorf("call data %+v", got.Sessions[0].Call)
		}
		// The customer sends stream 1 whichever side placed the call.
		cust := got.Participants[0].ID
		if !customerCalls {
			cust = got.Participants[1].ID
		}
		if l := got.StreamOf(cust); l != LabelCustomer {
			t.Errorf("customer participant sends stream %q, want %q", l, LabelCustomer)
		}
		ids := map[string]bool{}
		for _, id := range []string{got.Groups[0].ID, got.Sessions[0].ID, got.Participants[0].ID, got.Participants[1].ID, got.Streams[0].ID, got.Streams[1].ID} {
			if len(id) != 24 || ids[id] {
				t.Errorf("id %q: want 16 bytes in base64, each once", id)
			}
			ids[id] = true
		}
	}
}

// TestParseMetadataForeign reads a document in RFC 7865's own style
// (another SRC's, with an extension this package does not know).
func TestParseMetadataForeign(t *testing.T) {
	b, err := os.ReadFile(filepath.Join("testdata", "rfc7865-style.xml"))
	if err != nil {
		t.Fatal(err)
	}
	m, err := ParseMetadata(b)
	if err != nil {
		t.Fatal(err)
	}
	if len(m.Participants) != 2 || m.Participants[0].NameID.AOR != "sip:alice@atlanta.com" || len(m.Streams) != 2 {
		t.Errorf("parsed %+v", m)
	}
	if _, ok := m.CorrelationValue("X-Interaction-ID"); ok {
		t.Error("a correlation value in a document without ToneVault's extension")
	}
}

func TestParseMetadataErrors(t *testing.T) {
	good, err := NewMetadata(testCall, testCall.Start).Marshal()
	if err != nil {
		t.Fatal(err)
	}
	cases := map[string]string{
		"empty":           "",
		"not xml":         "4111111111111111",
		"other root":      `<recordings xmlns="` + Namespace + `"/>`,
		"other namespace": `<recording xmlns="urn:example"/>`,
		"no namespace":    `<recording/>`,
		"unclosed":        `<recording xmlns="` + Namespace + `"><group group_id="x">`,
		"two roots":       `<recording xmlns="` + Namespace + `"/><recording xmlns="` + Namespace + `"/>`,
		"text after":      `<recording xmlns="` + Namespace + `"/>4111111111111111`,
		"group no id":     `<recording xmlns="` + Namespace + `"><group/></recording>`,
		"duplicate id":    `<recording xmlns="` + Namespace + `"><group group_id="a"/><session session_id="a"/></recording>`,
		"dangling stream": `<recording xmlns="` + Namespace + `"><session session_id="s"/><stream stream_id="x" session_id="nope"><label>1</label></stream></recording>`,
		"dangling send":   `<recording xmlns="` + Namespace + `"><participant participant_id="p"/><participantstreamassoc participant_id="p"><send>zz</send></participantstreamassoc></recording>`,
		"stream as group": `<recording xmlns="` + Namespace + `"><session session_id="s" ><group-ref>s</group-ref></session></recording>`,
		"too large":       string(good[:len(good)-12]) + strings.Repeat(" ", MaxMetadata) + "</recording>",
	}
	for name, doc := range cases {
		t.Run(name, func(t *testing.T) {
			_, err := ParseMetadata([]byte(doc))
			if !errors.Is(err, ErrBadMetadata) {
				t.Fatalf("err = %v, want ErrBadMetadata", err)
			}
			if strings.Contains(err.Error(), "4111") {
				t.Errorf("error quotes the document: %v", err)
			}
		})
	}
	if _, err := ParseMetadata(good); err != nil {
		t.Errorf("the good document: %v", err)
	}
}

func TestSDPRoundTrip(t *testing.T) {
	pcmu := Format{PT: 0, Name: "PCMU", Rate: 8000}
	ev := Format{PT: 101, Name: "telephone-event", Rate: 8000, Fmtp: "0-16"}
	in := []MediaStream{
		{Label: LabelCustomer, Addr: netip.MustParseAddrPort("127.0.0.1:20000"), Direction: "sendonly", Formats: []Format{pcmu, ev}},
		{Label: LabelAgent, Addr: netip.MustParseAddrPort("127.0.0.1:20002"), Direction: "sendonly", Formats: []Format{pcmu, ev}},
		{Media: "video", Proto: "RTP/AVP", Addr: netip.MustParseAddrPort("127.0.0.1:0"), Formats: []Format{{PT: 96, Name: "H264", Rate: 90000}}},
	}
	b := WriteSDP(Origin{User: "tonevault", SessionID: 7, Version: 1}, in)
	for _, want := range []string{"m=audio 20000 RTP/AVP 0 101\r\n", "a=label:1\r\n", "a=label:2\r\n", "a=sendonly\r\n", "a=fmtp:101 0-16\r\n", "m=video 0 RTP/AVP 96\r\n"} {
		if !strings.Contains(string(b), want) {
			t.Errorf("SDP lacks %q:\n%s", want, b)
		}
	}
	out, err := ReadSDP(b)
	if err != nil {
		t.Fatal(err)
	}
	if len(out) != 3 || !out[0].Audio() || !out[1].Audio() || out[2].Audio() {
		t.Fatalf("streams %+v", out)
	}
	for i := range 2 {
		if out[i].Label != in[i].Label || out[i].Addr != in[i].Addr || out[i].Direction != "sendonly" || len(out[i].Formats) != 2 || out[i].Formats[1] != ev {
			t.Errorf("stream %d: %+v, want %+v", i, out[i], in[i])
		}
	}
	if s, ok := ByLabel(out, LabelAgent, 0); !ok || s.Addr.Port() != 20002 {
		t.Errorf("ByLabel(agent) = %+v, %v", s, ok)
	}
	// Without labels the order says which is which.
	unlabelled := []MediaStream{out[0], out[1]}
	unlabelled[0].Label, unlabelled[1].Label = "", ""
	if s, ok := ByLabel(unlabelled, LabelAgent, 1); !ok || s.Addr.Port() != 20002 {
		t.Errorf("ByLabel(unlabelled, 1) = %+v, %v", s, ok)
	}
	if _, ok := ByLabel(out[:1], LabelAgent, 1); ok {
		t.Error("ByLabel found a label no stream has")
	}
}

func TestReadSDPErrors(t *testing.T) {
	cases := map[string]string{
		"not sdp":    "hello",
		"no address": "v=0\r\no=- 1 1 IN IP4 127.0.0.1\r\ns=-\r\nt=0 0\r\nm=audio 4000 RTP/AVP 0\r\n",
		"bad c":      "v=0\r\no=- 1 1 IN IP4 127.0.0.1\r\ns=-\r\nc=IN IP4 nowhere\r\nt=0 0\r\nm=audio 4000 RTP/AVP 0\r\n",
		"bad pt":     "v=0\r\no=- 1 1 IN IP4 127.0.0.1\r\ns=-\r\nc=IN IP4 127.0.0.1\r\nt=0 0\r\nm=audio 4000 RTP/AVP 300\r\n",
		"bad rtpmap": "v=0\r\no=- 1 1 IN IP4 127.0.0.1\r\ns=-\r\nc=IN IP4 127.0.0.1\r\nt=0 0\r\nm=audio 4000 RTP/AVP 96\r\na=rtpmap:96 opus\r\n",
		"too many":   "v=0\r\no=- 1 1 IN IP4 127.0.0.1\r\ns=-\r\nc=IN IP4 127.0.0.1\r\nt=0 0\r\n" + strings.Repeat("m=audio 4000 RTP/AVP 0\r\n", 9),
	}
	for name, in := range cases {
		if _, err := ReadSDP([]byte(in)); !errors.Is(err, ErrBadSDP) {
			t.Errorf("%s: err = %v, want ErrBadSDP", name, err)
		}
	}
}

func TestBody(t *testing.T) {
	sdp := WriteSDP(Origin{SessionID: 1, Version: 1}, []MediaStream{{Label: "1", Addr: netip.MustParseAddrPort("127.0.0.1:4000"), Formats: []Format{{PT: 0, Name: "PCMU", Rate: 8000}}}})
	meta, _ := NewMetadata(testCall, testCall.Start).Marshal()
	body, ct := Body(sdp, meta)
	if !strings.HasPrefix(ct, "multipart/mixed;boundary=") || !bytes.Contains(body, []byte("Content-Disposition: recording-session")) {
		t.Fatalf("Body: %s\n%s", ct, body)
	}
	s, m, err := ReadBody(ct, body)
	if err != nil || !bytes.Equal(s, sdp) || !bytes.Equal(m, meta) {
		t.Fatalf("ReadBody: %v\nsdp %q\nmeta %q", err, s, m)
	}
	if s, m, err := ReadBody("application/sdp", sdp); err != nil || m != nil || !bytes.Equal(s, sdp) {
		t.Errorf("ReadBody(sdp alone) = %q, %q, %v", s, m, err)
	}
	cases := []struct {
		name, ct string
		body     []byte
		want     error
	}{
		{"no metadata", "multipart/mixed;boundary=x", []byte("--x\r\nContent-Type: application/sdp\r\n\r\n" + string(sdp) + "\r\n--x--\r\n"), ErrNotSIPREC},
		{"no sdp", "multipart/mixed;boundary=x", []byte("--x\r\nContent-Type: " + ContentType + "\r\n\r\n<x/>\r\n--x--\r\n"), ErrBadBody},
		{"other type", "text/plain", []byte("hi"), ErrBadBody},
		{"bad type", "multipart/", body, ErrBadBody},
		{"no boundary", "multipart/mixed", body, ErrBadBody},
		{"broken", ct, []byte("--nothing"), ErrBadBody},
		{"too big", ct, bytes.Repeat([]byte("x"), maxBody+1), ErrBadBody},
	}
	for _, c := range cases {
		if _, _, err := ReadBody(c.ct, c.body); !errors.Is(err, c.want) {
			t.Errorf("%s: err = %v, want %v", c.name, err, c.want)
		}
	}
}
