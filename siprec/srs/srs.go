// Package srs is a small SIPREC recording server (RFC 7866) for tests
// and demos, the logic of `tonevault srs`: it answers a recording
// client's INVITE (Require: siprec, a multipart body with the SDP and the
// RFC 7865 metadata) with a receive-only stream for each sendonly one
// offered, takes both RTP streams, decodes G.711 (PCMU, PCMA) and, when
// the session ends with a BYE (or the server stops), writes one stereo
// WAV (left: the first stream, the customer's; right: the second, the
// agent's), the metadata as received, and a summary of what arrived.
// It is not a production recorder: no SRTP, no re-negotiation, audio
// kept in memory (an hour a call at most).
package srs

import (
	"crypto/rand"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/netip"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"time"

	"github.com/emiago/sipgo"
	"github.com/emiago/sipgo/sip"
	"github.com/pion/rtp"

	"github.com/tonevault/tonevault/dtmf"
	"github.com/tonevault/tonevault/dtmf/wav"
	"github.com/tonevault/tonevault/siprec"
)

// MaxDuration is how much audio a recording keeps; later packets are
// dropped.
const MaxDuration = time.Hour

const rate = 8000

// Config configures a Server.
type Config struct {
	// Listen is the SIP address, UDP and TCP on the same port (port 0:
	// a free one). RTP ports are free ports on its address.
	Listen netip.AddrPort
	// Dir is where recordings are written (created if missing).
	Dir string
	// Log gets one line per event (session opened, refused, written);
	// nil discards them. Never a message body.
	Log io.Writer
}

// Server is a running recording server.
type Server struct {
	cfg  Config
	addr netip.AddrPort
	ua   *sipgo.UserAgent
	udp  net.PacketConn
	tcp  net.Listener

	mu       sync.Mutex
	sessions map[string]*session // by SIP Call-ID
	closed   bool
	written  []Recording
}

// Recording is what a finished session left in Dir.
type Recording struct {
	WAV, Metadata, Summary string
	Duration               time.Duration
}

// Start listens and serves until Close.
func Start(cfg Config) (*Server, error) {
	if cfg.Dir == "" {
		return nil, errors.New("srs: no directory for the recordings")
	}
	if err := os.MkdirAll(cfg.Dir, 0o750); err != nil {
		return nil, fmt.Errorf("srs: %w", err)
	}
	if cfg.Log == nil {
		cfg.Log = io.Discard
	}
	s := &Server{cfg: cfg, sessions: map[string]*session{}}
	var err error
	for range 10 { // port 0: UDP and TCP on the same free port
		if s.udp, err = net.ListenPacket("udp", cfg.Listen.String()); err != nil {
			return nil, fmt.Errorf("srs: %w", err)
		}
		port := s.udp.LocalAddr().(*net.UDPAddr).Port
		if s.tcp, err = net.Listen("tcp", netip.AddrPortFrom(cfg.Listen.Addr(), uint16(port)).String()); err == nil {
			s.addr = netip.AddrPortFrom(cfg.Listen.Addr(), uint16(port))
			break
		}
		s.udp.Close()
		if cfg.Listen.Port() != 0 {
			return nil, fmt.Errorf("srs: %w", err)
		}
	}
	if err != nil {
		return nil, fmt.Errorf("srs: %w", err)
	}
	quiet := slog.New(slog.DiscardHandler)
	s.ua, err = sipgo.NewUA(sipgo.WithUserAgent("tonevault-srs"), sipgo.WithUserAgentHostname(s.addr.Addr().String()),
		sipgo.WithUserAgentTransactionLayerOptions(sip.WithTransactionLayerLogger(quiet)),
		sipgo.WithUserAgentTransportLayerOptions(sip.WithTransportLayerLogger(quiet)))
	if err != nil {
		s.udp.Close()
		s.tcp.Close()
		return nil, fmt.Errorf("srs: %w", err)
	}
	srv, err := sipgo.NewServer(s.ua, sipgo.WithServerLogger(quiet))
	if err != nil {
		s.Close()
		return nil, fmt.Errorf("srs: %w", err)
	}
	srv.OnInvite(s.onInvite)
	srv.OnAck(func(*sip.Request, sip.ServerTransaction) {})
	srv.OnBye(s.onBye)
	srv.OnOptions(func(req *sip.Request, tx sip.ServerTransaction) {
		res := sip.NewResponseFromRequest(req, 200, "OK", nil)
		res.AppendHeader(sip.NewHeader("Allow", "INVITE, ACK, BYE, CANCEL, OPTIONS"))
		_ = tx.Respond(res)
	})
	go func() { _ = srv.ServeUDP(s.udp) }()
	go func() { _ = srv.ServeTCP(s.tcp) }()
	s.logf("listening on sip:srs@%s (udp, tcp); recordings go to %s", s.addr, cfg.Dir)
	return s, nil
}

// Addr is the SIP address the server listens on.
func (s *Server) Addr() netip.AddrPort { return s.addr }

// URI is what a recording client's recording.srs names.
func (s *Server) URI() string { return "sip:srs@" + s.addr.String() }

// Recordings are the recordings written so far, oldest first.
func (s *Server) Recordings() []Recording {
	s.mu.Lock()
	defer s.mu.Unlock()
	return append([]Recording(nil), s.written...)
}

// Close writes the sessions still open and stops the server.
func (s *Server) Close() error {
	s.mu.Lock()
	if s.closed {
		s.mu.Unlock()
		return nil
	}
	s.closed = true
	open := make([]*session, 0, len(s.sessions))
	for _, ss := range s.sessions {
		open = append(open, ss)
	}
	s.mu.Unlock()
	var errs []error
	for _, ss := range open {
		errs = append(errs, s.finish(ss, "shutdown"))
	}
	if s.ua != nil {
		s.ua.Close()
	}
	s.udp.Close()
	s.tcp.Close()
	return errors.Join(errs...)
}

func (s *Server) logf(format string, a ...any) {
	fmt.Fprintf(s.cfg.Log, "srs: "+format+"\n", a...)
}

// refuse answers an INVITE that is not a recording session this server
// takes, saying why in a Warning (RFC 3261 20.43).
func (s *Server) refuse(req *sip.Request, tx sip.ServerTransaction, code int, why string) {
	res := sip.NewResponseFromRequest(req, code, "Not Acceptable Here", nil)
	res.AppendHeader(sip.NewHeader("Warning", fmt.Sprintf("399 tonevault-srs %q", why)))
	_ = tx.Respond(res)
	s.logf("refused an INVITE from %s: %d, %s", req.Source(), code, why)
}

// isSIPREC reports whether req asks for a recording session: Require
// siprec (RFC 7866 6.1.1).
func isSIPREC(req *sip.Request) bool {
	for _, h := range req.GetHeaders("Require") {
		for _, tag := range strings.Split(h.Value(), ",") {
			if strings.EqualFold(strings.TrimSpace(tag), "siprec") {
				return true
			}
		}
	}
	return false
}

func (s *Server) onInvite(req *sip.Request, tx sip.ServerTransaction) {
	id := req.CallID()
	if id == nil || req.From() == nil || req.To() == nil || req.CSeq() == nil {
		_ = tx.Respond(sip.NewResponseFromRequest(req, 400, "Bad Request", nil))
		return
	}
	s.mu.Lock()
	existing, closed := s.sessions[id.Value()], s.closed
	s.mu.Unlock()
	if closed {
		_ = tx.Respond(sip.NewResponseFromRequest(req, 503, "Service Unavailable", nil))
		return
	}
	if existing != nil {
		// A re-INVITE: the session stays as it is.
		_ = tx.Respond(existing.answer(req))
		return
	}
	if !isSIPREC(req) {
		s.refuse(req, tx, 488, "not a SIPREC INVITE: no Require: siprec (RFC 7866); this is a recording server")
		return
	}
	ct := ""
	if h := req.ContentType(); h != nil {
		ct = h.Value()
	}
	sdp, meta, err := siprec.ReadBody(ct, req.Body())
	if err == nil && meta == nil {
		err = siprec.ErrNotSIPREC
	}
	if err != nil {
		s.refuse(req, tx, 488, "not a SIPREC body: want multipart/mixed with application/sdp and application/rs-metadata+xml")
		return
	}
	md, err := siprec.ParseMetadata(meta)
	if err != nil {
		s.refuse(req, tx, 488, "the recording metadata (RFC 7865) does not parse")
		return
	}
	offer, err := siprec.ReadSDP(sdp)
	if err != nil {
		s.refuse(req, tx, 488, "the SDP does not parse")
		return
	}
	ss, err := s.open(req, offer, md, meta)
	if err != nil {
		s.refuse(req, tx, 488, err.Error())
		return
	}
	s.mu.Lock()
	s.sessions[id.Value()] = ss
	s.mu.Unlock()
	_ = tx.Respond(ss.answer(req))
	s.logf("recording session %s opened: %d streams", ss.name, ss.nAudio)
}

func (s *Server) onBye(req *sip.Request, tx sip.ServerTransaction) {
	id := req.CallID()
	if id == nil {
		_ = tx.Respond(sip.NewResponseFromRequest(req, 400, "Bad Request", nil))
		return
	}
	s.mu.Lock()
	ss := s.sessions[id.Value()]
	s.mu.Unlock()
	if ss == nil {
		_ = tx.Respond(sip.NewResponseFromRequest(req, 481, "Call/Transaction Does Not Exist", nil))
		return
	}
	// The files are there once the BYE is answered.
	if err := s.finish(ss, "bye"); err != nil {
		s.logf("recording %s not written: %v", ss.name, err)
	}
	_ = tx.Respond(sip.NewResponseFromRequest(req, 200, "OK", nil))
}

// session is one recording session.
type session struct {
	srv     *Server
	name    string // file name base
	toTag   string
	contact sip.Uri
	meta    []byte
	start   time.Time
	sdp     []byte // the answer
	streams []*stream
	nAudio  int
	once    sync.Once
}

// stream is one received RTP stream.
type stream struct {
	label string
	conn  *net.UDPConn
	done  chan struct{}
	start time.Time

	mu       sync.Mutex
	pcm      []int16
	based    bool
	ssrc     uint32
	baseTS   uint32
	baseAt   int64 // sample position of baseTS
	packets  int
	audio    int
	events   int
	other    int
	dropped  int
	payloads map[uint8]int
}

// open makes a session for an offer: a receive-only stream on a port of
// its own for each sendonly (or sendrecv) RTP audio stream, up to two.
func (s *Server) open(req *sip.Request, offer []siprec.MediaStream, md *siprec.Metadata, meta []byte) (*session, error) {
	now := time.Now()
	ss := &session{srv: s, start: now, meta: meta, toTag: sip.GenerateTagN(16),
		contact: sip.Uri{Scheme: "sip", User: "srs", Host: s.addr.Addr().String(), Port: int(s.addr.Port())}}
	ss.name = now.UTC().Format("20060102T150405Z") + "-" + fileID(md)
	answer := make([]siprec.MediaStream, len(offer))
	for i, o := range offer {
		a := siprec.MediaStream{Media: o.Media, Proto: o.Proto, Label: o.Label, Addr: netip.AddrPortFrom(s.addr.Addr(), 0), Formats: o.Formats}
		if o.Audio() && ss.nAudio < 2 && (o.Direction == "sendonly" || o.Direction == "sendrecv") && playable(o.Formats) {
			c, err := net.ListenUDP("udp", net.UDPAddrFromAddrPort(netip.AddrPortFrom(s.addr.Addr(), 0)))
			if err != nil {
				ss.close()
				return nil, errors.New("no RTP port free")
			}
			st := &stream{label: o.Label, conn: c, done: make(chan struct{}), start: now, payloads: map[uint8]int{}}
			go st.read(o.Formats)
			ss.streams = append(ss.streams, st)
			ss.nAudio++
			a.Addr = c.LocalAddr().(*net.UDPAddr).AddrPort()
			a.Direction = "recvonly"
		}
		answer[i] = a
	}
	if ss.nAudio == 0 {
		return nil, errors.New("no sendonly G.711 audio stream offered")
	}
	ss.sdp = siprec.WriteSDP(siprec.Origin{User: "srs", SessionID: uint64(now.UnixNano() & 0x7fff_ffff), Version: 1}, answer)
	return ss, nil
}

// playable reports whether formats have PCMU or PCMA.
func playable(fs []siprec.Format) bool {
	for _, f := range fs {
		if n := strings.ToUpper(f.Name); (n == "PCMU" || n == "PCMA") && f.Rate == rate {
			return true
		}
	}
	return false
}

// fileID names a session's files: the gateway's call id from the
// metadata when it is safe in a file name, else random (a peer's
// Call-ID is no file name).
func fileID(md *siprec.Metadata) string {
	for _, se := range md.Sessions {
		if se.Call != nil && safeName(se.Call.ID) {
			return se.Call.ID
		}
	}
	var b [6]byte
	_, _ = rand.Read(b[:])
	return fmt.Sprintf("session-%x", b)
}

func safeName(s string) bool {
	if s == "" || len(s) > 64 || strings.HasPrefix(s, ".") {
		return false
	}
	for _, r := range s {
		if !(r >= 'a' && r <= 'z' || r >= 'A' && r <= 'Z' || r >= '0' && r <= '9' || r == '-' || r == '_' || r == '.') {
			return false
		}
	}
	return true
}

// answer is the 200 OK to req with the session's SDP.
func (ss *session) answer(req *sip.Request) *sip.Response {
	res := sip.NewResponseFromRequest(req, 200, "OK", ss.sdp)
	if to := res.To(); to != nil && !req.To().Params.Has("tag") {
		to.Params.Remove("tag")
		to.Params.Add("tag", ss.toTag)
	}
	res.AppendHeader(&sip.ContactHeader{Address: ss.contact})
	ct := sip.ContentTypeHeader("application/sdp")
	res.AppendHeader(&ct)
	return res
}

// read takes the stream's packets until its socket closes.
func (st *stream) read(formats []siprec.Format) {
	defer close(st.done)
	codec := map[uint8]dtmf.Codec{}
	events := map[uint8]bool{}
	for _, f := range formats {
		switch strings.ToUpper(f.Name) {
		case "PCMU":
			codec[f.PT] = dtmf.PCMU
		case "PCMA":
			codec[f.PT] = dtmf.PCMA
		case "TELEPHONE-EVENT":
			events[f.PT] = true
		}
	}
	buf := make([]byte, 2048)
	pcm := make([]int16, 2048)
	for {
		n, err := st.conn.Read(buf)
		if err != nil {
			return
		}
		var p rtp.Packet
		if p.Unmarshal(buf[:n]) != nil {
			continue
		}
		at := time.Now()
		st.mu.Lock()
		st.packets++
		st.payloads[p.PayloadType]++
		c, ok := codec[p.PayloadType]
		switch {
		case events[p.PayloadType]:
			st.events++
		case !ok:
			st.other++
		default:
			st.audio++
			dtmf.DecodeG711(pcm[:len(p.Payload)], p.Payload, c)
			st.put(p.SSRC, p.Timestamp, pcm[:len(p.Payload)], at)
		}
		st.mu.Unlock()
	}
}

// put places samples at their RTP timestamp: the first packet of an
// SSRC at its arrival time since the session started, every later one
// by its timestamp from there. Caller holds st.mu.
func (st *stream) put(ssrc, ts uint32, samples []int16, at time.Time) {
	if !st.based || ssrc != st.ssrc {
		st.based, st.ssrc, st.baseTS = true, ssrc, ts
		st.baseAt = int64(at.Sub(st.start)) * rate / int64(time.Second)
	}
	pos := st.baseAt + int64(int32(ts-st.baseTS))
	end := pos + int64(len(samples))
	if pos < 0 || end > int64(MaxDuration/time.Second)*rate {
		st.dropped++
		return
	}
	if int64(len(st.pcm)) < end {
		st.pcm = append(st.pcm, make([]int16, end-int64(len(st.pcm)))...)
	}
	copy(st.pcm[pos:end], samples)
}

func (ss *session) close() {
	for _, st := range ss.streams {
		st.conn.Close()
		<-st.done
	}
}

// StreamSummary is what one stream brought, in the summary file.
type StreamSummary struct {
	Label          string        `json:"label"`
	Packets        int           `json:"packets"`
	AudioPackets   int           `json:"audio_packets"`
	EventPackets   int           `json:"telephone_event_packets"`
	OtherPackets   int           `json:"other_packets"`
	DroppedPackets int           `json:"dropped_packets"`
	PayloadTypes   map[uint8]int `json:"payload_types"`
}

// Summary is the summary file beside each recording.
type Summary struct {
	Name    string          `json:"name"`
	Ended   string          `json:"ended"` // bye or shutdown
	Seconds float64         `json:"seconds"`
	Streams []StreamSummary `json:"streams"`
}

// finish ends a session once: it stops its streams and writes its
// files.
func (s *Server) finish(ss *session, why string) (err error) {
	ss.once.Do(func() {
		s.mu.Lock()
		for id, x := range s.sessions {
			if x == ss {
				delete(s.sessions, id)
			}
		}
		s.mu.Unlock()
		ss.close()
		err = s.write(ss, why)
	})
	return err
}

func (s *Server) write(ss *session, why string) error {
	chans := [][]int16{nil, nil}
	sum := Summary{Name: ss.name, Ended: why}
	for i, st := range ss.streams {
		st.mu.Lock()
		if i < 2 {
			chans[i] = st.pcm
		}
		sum.Streams = append(sum.Streams, StreamSummary{Label: st.label, Packets: st.packets, AudioPackets: st.audio,
			EventPackets: st.events, OtherPackets: st.other, DroppedPackets: st.dropped, PayloadTypes: st.payloads})
		st.mu.Unlock()
	}
	n := max(len(chans[0]), len(chans[1]))
	for i := range chans { // silence where a stream had nothing
		chans[i] = append(chans[i], make([]int16, n-len(chans[i]))...)
	}
	sum.Seconds = float64(n) / rate
	base := filepath.Join(s.cfg.Dir, ss.name)
	rec := Recording{WAV: base + ".wav", Metadata: base + ".xml", Summary: base + ".json", Duration: time.Duration(n) * time.Second / rate}
	f, err := os.OpenFile(rec.WAV, os.O_CREATE|os.O_EXCL|os.O_WRONLY, 0o640)
	if err != nil {
		return err
	}
	if err := wav.Write(f, wav.NewFormat(wav.PCM, rate, 2), chans); err != nil {
		f.Close()
		return err
	}
	if err := f.Close(); err != nil {
		return err
	}
	if err := os.WriteFile(rec.Metadata, ss.meta, 0o640); err != nil {
		return err
	}
	js, _ := json.MarshalIndent(sum, "", "  ")
	if err := os.WriteFile(rec.Summary, append(js, '\n'), 0o640); err != nil {
		return err
	}
	s.mu.Lock()
	s.written = append(s.written, rec)
	s.mu.Unlock()
	s.logf("recorded %s (%.1f s, ended by %s); metadata %s", rec.WAV, sum.Seconds, why, rec.Metadata)
	return nil
}
