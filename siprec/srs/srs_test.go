package srs

import (
	"bytes"
	"encoding/json"
	"fmt"
	"math"
	"net"
	"net/netip"
	"os"
	"strings"
	"testing"
	"time"

	"github.com/emiago/sipgo/sip"
	"github.com/pion/rtp"
	"github.com/zaf/g711"

	"github.com/tonevault/tonevault/dtmf/wav"
	"github.com/tonevault/tonevault/siprec"
)

// client is a raw UDP SIP peer.
type client struct {
	t    *testing.T
	conn *net.UDPConn
}

func newClient(t *testing.T) *client {
	c, err := net.ListenUDP("udp", &net.UDPAddr{IP: net.IPv4(127, 0, 0, 1)})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { c.Close() })
	return &client{t: t, conn: c}
}

func (c *client) send(to netip.AddrPort, msg string) {
	c.t.Helper()
	if _, err := c.conn.WriteToUDPAddrPort([]byte(msg), to); err != nil {
		c.t.Fatal(err)
	}
}

func (c *client) response() *sip.Response {
	c.t.Helper()
	buf := make([]byte, 65535)
	for {
		c.conn.SetReadDeadline(time.Now().Add(10 * time.Second))
		n, err := c.conn.Read(buf)
		if err != nil {
			c.t.Fatal(err)
		}
		m, err := sip.ParseMessage(append([]byte(nil), buf[:n]...))
		if err != nil {
			c.t.Fatal(err)
		}
		if r, ok := m.(*sip.Response); ok && r.StatusCode != 100 {
			return r
		}
	}
}

func request(c *client, srv netip.AddrPort, method, callID, toTag string, cseq int, extra, ctype string, body []byte) string {
	to := fmt.Sprintf("<sip:srs@%s>", srv)
	if toTag != "" {
		to += ";tag=" + toTag
	}
	ct := ""
	if ctype != "" {
		ct = "Content-Type: " + ctype + "\r\n"
	}
	return fmt.Sprintf("%s sip:srs@%s SIP/2.0\r\nVia: SIP/2.0/UDP %s;branch=z9hG4bK-%s-%d\r\nFrom: <sip:tonevault@127.0.0.1>;tag=src1\r\nTo: %s\r\nCall-ID: %s\r\nCSeq: %d %s\r\nContact: <sip:tonevault@%s>;+sip.src\r\nMax-Forwards: 70\r\n%s%sContent-Length: %d\r\n\r\n",
		method, srv, c.conn.LocalAddr(), callID, cseq, to, callID, cseq, method, c.conn.LocalAddr(), extra, ct, len(body)) + string(body)
}

var testCall = siprec.Call{ID: "c-srstest0000000001", Caller: siprec.Party{AOR: "sip:cust@example.com"}, Callee: siprec.Party{AOR: "sip:pay@127.0.0.1"},
	Correlation: []siprec.Correlation{{Header: "X-Interaction-ID", Value: "INT-srs-1"}}, Start: time.Now(), CallerIsCustomer: true}

func TestRecordSession(t *testing.T) {
	dir := t.TempDir()
	var log bytes.Buffer
	s, err := Start(Config{Listen: netip.MustParseAddrPort("127.0.0.1:0"), Dir: dir, Log: &log})
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	c := newClient(t)
	rtpConn, _ := net.ListenUDP("udp", &net.UDPAddr{IP: net.IPv4(127, 0, 0, 1)})
	defer rtpConn.Close()
	local := rtpConn.LocalAddr().(*net.UDPAddr).AddrPort()
	formats := []siprec.Format{{PT: 0, Name: "PCMU", Rate: 8000}, {PT: 101, Name: "telephone-event", Rate: 8000, Fmtp: "0-16"}}
	offer := siprec.WriteSDP(siprec.Origin{User: "t", SessionID: 1, Version: 1}, []siprec.MediaStream{
		{Label: "1", Addr: local, Direction: "sendonly", Formats: formats},
		{Label: "2", Addr: local, Direction: "sendonly", Formats: formats},
	})
	meta, _ := siprec.NewMetadata(testCall, time.Now()).Marshal()
	body, ct := siprec.Body(offer, meta)

	// Not SIPREC: refused with a reason.
	c.send(s.Addr(), request(c, s.Addr(), "INVITE", "plain-1", "", 1, "", "application/sdp", offer))
	if r := c.response(); r.StatusCode != 488 || !strings.Contains(headerValue(r, "Warning"), "not a SIPREC INVITE") {
		t.Errorf("plain INVITE: %d %q", r.StatusCode, headerValue(r, "Warning"))
	}
	c.send(s.Addr(), request(c, s.Addr(), "INVITE", "nometa-1", "", 1, "Require: siprec\r\n", "application/sdp", offer))
	if r := c.response(); r.StatusCode != 488 || !strings.Contains(headerValue(r, "Warning"), "not a SIPREC body") {
		t.Errorf("INVITE without metadata: %d %q", r.StatusCode, headerValue(r, "Warning"))
	}

	c.send(s.Addr(), request(c, s.Addr(), "INVITE", "rec-1", "", 1, "Require: siprec\r\n", ct, body))
	ok := c.response()
	if ok.StatusCode != 200 {
		t.Fatalf("SIPREC INVITE: %d", ok.StatusCode)
	}
	streams, err := siprec.ReadSDP(ok.Body())
	if err != nil || len(streams) != 2 || streams[0].Direction != "recvonly" || streams[0].Label != "1" || streams[1].Label != "2" {
		t.Fatalf("answer %v %+v", err, streams)
	}
	toTag, _ := ok.To().Params.Get("tag")
	c.send(s.Addr(), request(c, s.Addr(), "ACK", "rec-1", toTag, 1, "", "", nil))

	// Left: a 1 kHz tone for 1 s with a gap (a lost packet) in the
	// middle; right: half a second of silence, then nothing; and a
	// telephone-event, which is counted and not played.
	tone := make([]int16, 160)
	for seq := range 50 {
		if seq == 25 {
			continue
		}
		for i := range tone {
			tone[i] = int16(8000 * math.Sin(2*math.Pi*1000*float64(seq*160+i)/8000))
		}
		send(t, rtpConn, streams[0].Addr, 0, uint16(seq), uint32(seq*160), 1, ulaw(tone))
		if seq < 25 {
			send(t, rtpConn, streams[1].Addr, 0, uint16(seq), uint32(1000+seq*160), 2, bytes.Repeat([]byte{0xff}, 160))
		}
	}
	send(t, rtpConn, streams[0].Addr, 101, 60, 8000, 1, []byte{5, 10, 0, 160})
	time.Sleep(200 * time.Millisecond) // the packets are read before the BYE closes the sockets
	c.send(s.Addr(), request(c, s.Addr(), "BYE", "rec-1", toTag, 2, "", "", nil))
	if r := c.response(); r.StatusCode != 200 {
		t.Fatalf("BYE: %d", r.StatusCode)
	}
	recs := s.Recordings()
	if len(recs) != 1 || !strings.Contains(recs[0].WAV, testCall.ID) {
		t.Fatalf("recordings %+v", recs)
	}
	f, err := os.ReadFile(recs[0].WAV)
	if err != nil {
		t.Fatal(err)
	}
	a, err := wav.Parse(f)
	if err != nil || a.Format.Channels != 2 || a.Format.Rate != 8000 {
		t.Fatalf("WAV: %v %+v", err, a)
	}
	left, right := a.Channel(0), a.Channel(1)
	if len(left) < 50*160 || len(left) > 50*160+8000 {
		t.Errorf("%d samples: want about a second", len(left))
	}
	// The lost packet is silence, the tone around it is there.
	start := len(left) - 50*160
	if loud(left[start+25*160:start+26*160]) || !loud(left[start+24*160:start+25*160]) || !loud(left[start+26*160:start+27*160]) {
		t.Errorf("left channel: the lost packet is not a gap of silence in the tone")
	}
	if loud(right) {
		t.Error("right channel is not silent")
	}
	if m, _ := os.ReadFile(recs[0].Metadata); !bytes.Equal(m, meta) {
		t.Error("metadata file is not the metadata received")
	}
	var sum Summary
	js, _ := os.ReadFile(recs[0].Summary)
	if err := json.Unmarshal(js, &sum); err != nil || len(sum.Streams) != 2 || sum.Streams[0].AudioPackets != 49 || sum.Streams[0].EventPackets != 1 || sum.Streams[1].AudioPackets != 25 || sum.Ended != "bye" {
		t.Errorf("summary %v %+v", err, sum)
	}
	if !strings.Contains(log.String(), "recorded "+recs[0].WAV) {
		t.Errorf("log does not name the file:\n%s", log.String())
	}
}

// TestCloseWritesOpen: a session still open when the server stops is
// written.
func TestCloseWritesOpen(t *testing.T) {
	s, err := Start(Config{Listen: netip.MustParseAddrPort("127.0.0.1:0"), Dir: t.TempDir()})
	if err != nil {
		t.Fatal(err)
	}
	c := newClient(t)
	offer := siprec.WriteSDP(siprec.Origin{SessionID: 1, Version: 1}, []siprec.MediaStream{
		{Label: "1", Addr: netip.MustParseAddrPort("127.0.0.1:4000"), Direction: "sendonly", Formats: []siprec.Format{{PT: 8, Name: "PCMA", Rate: 8000}}}})
	meta, _ := siprec.NewMetadata(testCall, time.Now()).Marshal()
	body, ct := siprec.Body(offer, meta)
	c.send(s.Addr(), request(c, s.Addr(), "INVITE", "open-1", "", 1, "Require: siprec\r\n", ct, body))
	if r := c.response(); r.StatusCode != 200 {
		t.Fatalf("INVITE: %d", r.StatusCode)
	}
	s.Close()
	if recs := s.Recordings(); len(recs) != 1 {
		t.Fatalf("recordings after Close: %+v", recs)
	}
}

func loud(pcm []int16) bool {
	for _, v := range pcm {
		if v > 1000 || v < -1000 {
			return true
		}
	}
	return false
}

func send(t *testing.T, c *net.UDPConn, to netip.AddrPort, pt uint8, seq uint16, ts, ssrc uint32, payload []byte) {
	t.Helper()
	p := rtp.Packet{Header: rtp.Header{Version: 2, PayloadType: pt, SequenceNumber: seq, Timestamp: ts, SSRC: ssrc}, Payload: payload}
	b, _ := p.Marshal()
	if _, err := c.WriteToUDPAddrPort(b, to); err != nil {
		t.Fatal(err)
	}
}

func headerValue(r *sip.Response, name string) string {
	if h := r.GetHeader(name); h != nil {
		return h.Value()
	}
	return ""
}

func ulaw(pcm []int16) []byte {
	out := make([]byte, len(pcm))
	for i, v := range pcm {
		out[i] = g711.EncodeUlawFrame(v)
	}
	return out
}
