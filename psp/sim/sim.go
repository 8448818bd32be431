// Package sim is psp-sim: an ISO 8583 acquirer host for development and
// tests, answering by the test-card rules documented in package psp.
package sim

import (
	"bufio"
	"crypto/tls"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"os"
	"path/filepath"
	"strconv"
	"sync"
	"time"

	"github.com/moov-io/iso8583"

	"github.com/tonevault/tonevault/internal/secret"
	"github.com/tonevault/tonevault/psp"
)

// Config configures the simulator.
type Config struct {
	Header    psp.Header    // length header, as the connector's
	SlowDelay time.Duration // delay of a "slow" answer; default 3s
	Limit     int64         // amounts above answer 51; default DefaultLimit
	Log       io.Writer     // one line per message; nil for none
	StateFile string        // when set, Stats as JSON, rewritten after each message
	TLS       *tls.Config   // when set, clients must speak TLS
	Now       func() time.Time
}

// Stats counts what the simulator saw.
type Stats struct {
	Received    int64 `json:"received"`
	Approved    int64 `json:"approved"`
	Declined    int64 `json:"declined"`
	NoAnswer    int64 `json:"no_answer"`
	Slow        int64 `json:"slow"`
	Disconnects int64 `json:"disconnects"`
	// Garbled counts the 0100/0200 answered with garbage or without a
	// response code, on purpose (cards 4000000000000135 and ...143).
	Garbled     int64 `json:"garbled"`
	SignOns     int64 `json:"sign_ons"`
	Echoes      int64 `json:"echoes"`
	Reversals   int64 `json:"reversals"`
	BadMessages int64 `json:"bad_messages"`
	// BadMOTO counts 0100/0200 answered 30 because they did not say
	// "telephone order" the way their brand wants (see motoProblem).
	BadMOTO int64 `json:"bad_moto"`
	// ReversedSTANs are the original STANs of acknowledged reversals, in
	// order, each once.
	ReversedSTANs []string `json:"reversed_stans"`
}

// Server is a running simulator.
type Server struct {
	cfg Config
	ln  net.Listener

	mu       sync.Mutex
	stats    Stats
	seen     map[string]bool // originals received: MTI+STAN+field 7
	reversed map[string]bool
	conns    map[net.Conn]bool
	closed   bool
	auth     int
	ignoreRv bool

	logMu sync.Mutex
	wg    sync.WaitGroup
	done  chan struct{} // closed by Close: cuts slow answers short
}

// Listen starts a simulator on addr ("127.0.0.1:0" for tests).
func Listen(addr string, cfg Config) (*Server, error) {
	if cfg.SlowDelay <= 0 {
		cfg.SlowDelay = 3 * time.Second
	}
	if cfg.Limit <= 0 {
		cfg.Limit = DefaultLimit
	}
	if cfg.Now == nil {
		cfg.Now = time.Now
	}
	ln, err := net.Listen("tcp", addr)
	if err != nil {
		return nil, err
	}
	if cfg.TLS != nil {
		ln = tls.NewListener(ln, cfg.TLS)
	}
	s := newServer(cfg)
	s.ln = ln
	s.wg.Add(1)
	go s.accept()
	return s, nil
}

func newServer(cfg Config) *Server {
	return &Server{cfg: cfg, done: make(chan struct{}), seen: map[string]bool{}, reversed: map[string]bool{}, conns: map[net.Conn]bool{}}
}

// Addr is the address the simulator listens on.
func (s *Server) Addr() string { return s.ln.Addr().String() }

// Stats returns a copy of the counters.
func (s *Server) Stats() Stats {
	s.mu.Lock()
	defer s.mu.Unlock()
	st := s.stats
	st.ReversedSTANs = append([]string(nil), s.stats.ReversedSTANs...)
	return st
}

// SetIgnoreReversals makes the simulator swallow 0400/0401 without an
// answer (counting them), as an acquirer that is down for reversals: the
// connector must keep them queued and retry.
func (s *Server) SetIgnoreReversals(on bool) {
	s.mu.Lock()
	s.ignoreRv = on
	s.mu.Unlock()
}

// DropConnections closes every client connection, as a network failure
// would.
func (s *Server) DropConnections() {
	s.mu.Lock()
	defer s.mu.Unlock()
	for c := range s.conns {
		c.Close()
	}
}

// Close stops listening and closes every connection; slow answers still
// waiting are dropped.
func (s *Server) Close() error {
	s.mu.Lock()
	if !s.closed {
		close(s.done)
	}
	s.closed = true
	s.mu.Unlock()
	err := s.ln.Close()
	s.DropConnections()
	s.wg.Wait()
	return err
}

func (s *Server) accept() {
	defer s.wg.Done()
	for {
		c, err := s.ln.Accept()
		if err != nil {
			return
		}
		s.mu.Lock()
		if s.closed {
			s.mu.Unlock()
			c.Close()
			return
		}
		s.conns[c] = true
		s.mu.Unlock()
		s.wg.Add(1)
		go s.serve(c)
	}
}

// serve reads messages from one client; each is answered from its own
// goroutine so a slow answer does not hold up the others.
func (s *Server) serve(c net.Conn) {
	defer s.wg.Done()
	var wmu sync.Mutex
	var pending sync.WaitGroup
	defer func() {
		pending.Wait()
		c.Close()
		s.mu.Lock()
		delete(s.conns, c)
		s.mu.Unlock()
	}()
	r := bufio.NewReader(c)
	for {
		n, err := s.cfg.Header.ReadLength(r)
		if err != nil {
			if !errors.Is(err, io.EOF) && !errors.Is(err, net.ErrClosed) {
				s.logf("connection %s: %v", c.RemoteAddr(), err)
			}
			return
		}
		raw := make([]byte, n)
		if _, err := io.ReadFull(r, raw); err != nil {
			return
		}
		pending.Add(1)
		go func() {
			defer pending.Done()
			reply, delay, act := s.Handle(raw)
			secret.Wipe(raw)
			switch act {
			case Disconnect:
				c.Close()
				return
			case NoReply:
				return
			}
			defer secret.Wipe(reply)
			if delay > 0 {
				t := time.NewTimer(delay)
				select {
				case <-t.C:
				case <-s.done:
					t.Stop()
					return
				}
			}
			wmu.Lock()
			defer wmu.Unlock()
			if _, err := s.cfg.Header.WriteLength(c, len(reply)); err == nil {
				_, _ = c.Write(reply)
			}
		}()
	}
}

// Action says what to do after Handle.
type Action int

const (
	Reply Action = iota
	NoReply
	Disconnect
)

// Handle answers one message (without its length header): the packed
// reply, how long to wait before sending it, and what to do. It is the
// whole of the simulator's logic, separate from the network for tests and
// fuzzing. It never keeps raw and never logs card data.
func (s *Server) Handle(raw []byte) (reply []byte, delay time.Duration, act Action) {
	m, err := psp.Unpack(raw)
	if err != nil {
		s.count(func(st *Stats) { st.BadMessages++ })
		s.logf("recv bad message (%d bytes): %v", len(raw), err)
		return nil, 0, NoReply
	}
	defer psp.Wipe(m)
	mti, _ := m.GetMTI()
	switch mti {
	case "0800":
		return s.network(m)
	case "0100", "0200":
		return s.authorize(m, mti)
	case "0400", "0401":
		return s.reversal(m, mti)
	}
	s.count(func(st *Stats) { st.BadMessages++ })
	s.logf("recv unsupported MTI %q", printableOr(mti, "?"))
	return nil, 0, NoReply
}

func (s *Server) network(m *iso8583.Message) ([]byte, time.Duration, Action) {
	code, _ := m.GetString(70)
	stan, _ := m.GetString(11)
	s.count(func(st *Stats) {
		st.Received++
		if code == "001" {
			st.SignOns++
		} else {
			st.Echoes++
		}
	})
	s.logf("recv 0800 stan=%s code=%s -> 0810 00", printableOr(stan, "?"), printableOr(code, "?"))
	return s.answer(m, "0810", "00", "", 7, 11, 70)
}

func (s *Server) authorize(m *iso8583.Message, mti string) ([]byte, time.Duration, Action) {
	pan := sensitive(m, 2)
	defer pan.Wipe()
	yymm := sensitive(m, 14)
	defer yymm.Wipe()
	cvv := sensitive(m, 126)
	cvvLen := cvv.Len()
	cvv.Wipe()
	stan, _ := m.GetString(11)
	amountStr, _ := m.GetString(4)
	cur, _ := m.GetString(49)
	transmission, _ := m.GetString(7)
	amount, err := strconv.ParseInt(amountStr, 10, 64)
	if err != nil || stan == "" {
		s.count(func(st *Stats) { st.BadMessages++ })
		s.logf("recv %s without a valid amount or STAN", mti)
		return nil, 0, NoReply
	}
	s.mu.Lock()
	s.stats.Received++
	s.seen[mti+stan+transmission] = true
	s.mu.Unlock()

	v, code, slow := decide(pan.Bytes(), yymm.Bytes(), amount, s.cfg.Limit, s.cfg.Now())
	line := fmt.Sprintf("recv %s stan=%s pan=%s amount=%d currency=%s cvv=%s", mti, printableOr(stan, "?"),
		mask(pan.Bytes()), amount, printableOr(cur, "?"), map[bool]string{true: "present", false: "absent"}[cvvLen > 0])
	if problem := motoProblem(pan.Bytes(), m); problem != "" && v == vAnswer {
		code = "30" // format error
		line += " moto: " + problem
		s.count(func(st *Stats) { st.BadMOTO++ })
	}
	switch v {
	case vNoAnswer:
		s.count(func(st *Stats) { st.NoAnswer++ })
		s.logf("%s -> no answer", line)
		return nil, 0, NoReply
	case vDisconnect:
		s.count(func(st *Stats) { st.Disconnects++ })
		s.logf("%s -> disconnect", line)
		return nil, 0, Disconnect
	case vGarbage:
		s.count(func(st *Stats) { st.Garbled++ })
		s.logf("%s -> garbage", line)
		// Framed, so the stream stays readable: the acquirer's software
		// sent something, just not a message. A fresh slice: the caller
		// wipes what it sends.
		return []byte("0110\x00\xffnot an ISO 8583 message\r\n"), 0, Reply
	case vNoCode:
		s.count(func(st *Stats) { st.Garbled++ })
		s.logf("%s -> answer without a response code", line)
		return s.answer(m, mti[:2]+"1"+mti[3:], "", "", 3, 4, 7, 11, 12, 13, 37, 41, 42, 49)
	}
	auth := ""
	if code == "00" {
		s.mu.Lock()
		s.auth++
		auth = fmt.Sprintf("T%05d", s.auth%100000)
		s.mu.Unlock()
	}
	var delay time.Duration
	if slow {
		delay = s.cfg.SlowDelay
	}
	s.count(func(st *Stats) {
		if code == "00" {
			st.Approved++
		} else {
			st.Declined++
		}
		if slow {
			st.Slow++
		}
	})
	s.logf("%s -> %s%s%s", line, code, map[bool]string{true: " auth=" + auth, false: ""}[auth != ""],
		map[bool]string{true: " after " + delay.String(), false: ""}[slow])
	rmti := mti[:2] + "1" + mti[3:]
	reply, _, act := s.answer(m, rmti, code, auth, 3, 4, 7, 11, 12, 13, 37, 41, 42, 49)
	return reply, delay, act
}

func (s *Server) reversal(m *iso8583.Message, mti string) ([]byte, time.Duration, Action) {
	orig, _ := m.GetString(90)
	rrn, _ := m.GetString(37)
	code := "25" // no such original
	origSTAN := ""
	if len(orig) >= 20 {
		origSTAN = orig[4:10]
	}
	s.mu.Lock()
	s.stats.Received++
	s.stats.Reversals++
	if s.ignoreRv {
		s.mu.Unlock()
		s.saveState()
		s.logf("recv %s original_stan=%s -> ignored (--ignore-reversals)", mti, printableOr(origSTAN, "?"))
		return nil, 0, NoReply
	}
	if len(orig) >= 20 && s.seen[orig[:20]] {
		code = "00"
	}
	if origSTAN != "" && !s.reversed[origSTAN] {
		s.reversed[origSTAN] = true
		s.stats.ReversedSTANs = append(s.stats.ReversedSTANs, origSTAN)
	}
	s.mu.Unlock()
	s.saveState()
	s.logf("recv %s original_stan=%s rrn=%s -> %s%s reversal acknowledged", mti, printableOr(origSTAN, "?"), printableOr(rrn, "?"),
		mti[:2]+"1"+mti[3:], " "+code)
	return s.answer(m, mti[:2]+"1"+mti[3:], code, "", 3, 4, 7, 11, 37, 41, 42, 49, 90)
}

// answer builds a response copying the listed fields from the request,
// with response code code ("" for none). Card data fields are never
// copied back.
func (s *Server) answer(m *iso8583.Message, mti, code, auth string, copyFields ...int) ([]byte, time.Duration, Action) {
	r := iso8583.NewMessage(psp.Spec)
	r.MTI(mti)
	for _, id := range copyFields {
		if v, _ := m.GetString(id); v != "" {
			if r.Field(id, v) != nil {
				return nil, 0, NoReply
			}
		}
	}
	if code != "" {
		_ = r.Field(39, code)
	}
	if auth != "" {
		_ = r.Field(38, auth)
	}
	b, err := psp.Pack(r)
	if err != nil {
		s.logf("cannot pack %s reply: %v", mti, err)
		return nil, 0, NoReply
	}
	s.saveState()
	return b, 0, Reply
}

// sensitive copies a card data field out of m; the caller wipes it.
func sensitive(m *iso8583.Message, id int) secret.Secret {
	if f, ok := m.GetField(id).(*psp.Sensitive); ok {
		return f.Secret()
	}
	return secret.Secret{}
}

func printableOr(s, alt string) string {
	if s == "" || len(s) > 40 {
		return alt
	}
	for i := 0; i < len(s); i++ {
		if s[i] < 0x20 || s[i] > 0x7e {
			return alt
		}
	}
	return s
}

func (s *Server) count(f func(*Stats)) {
	s.mu.Lock()
	f(&s.stats)
	s.mu.Unlock()
	s.saveState()
}

func (s *Server) logf(format string, args ...any) {
	if s.cfg.Log == nil {
		return
	}
	s.logMu.Lock()
	defer s.logMu.Unlock()
	fmt.Fprintf(s.cfg.Log, "%s psp-sim: %s\n", s.cfg.Now().UTC().Format(time.RFC3339Nano), fmt.Sprintf(format, args...))
}

// saveState rewrites StateFile through a temporary file and rename, so a
// reader never sees half of it.
func (s *Server) saveState() {
	if s.cfg.StateFile == "" {
		return
	}
	st := s.Stats()
	b, _ := json.Marshal(st)
	s.logMu.Lock()
	defer s.logMu.Unlock()
	tmp, err := os.CreateTemp(filepath.Dir(s.cfg.StateFile), ".psp-sim-*")
	if err != nil {
		return
	}
	_, err = tmp.Write(append(b, '\n'))
	tmp.Close()
	if err == nil {
		err = os.Rename(tmp.Name(), s.cfg.StateFile)
	}
	if err != nil {
		os.Remove(tmp.Name())
	}
}
