package e2e

import (
	"encoding/json"
	"errors"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/tonevault/tonevault/audit"
	"github.com/tonevault/tonevault/dtmf/wav"
	"github.com/tonevault/tonevault/sip/caller"
	"github.com/tonevault/tonevault/siprec"
	"github.com/tonevault/tonevault/siprec/srs"
)

// srsProc is `tonevault srs`, the binary, recording into dir.
type srsProc struct {
	cmd         *exec.Cmd
	out, errOut *syncBuffer
	dir, uri    string
	done        chan struct{}
}

// startSRS runs the recording server on a free loopback port; it is
// stopped (SIGTERM) at the end of the test.
func startSRS(t *testing.T) *srsProc {
	t.Helper()
	p := &srsProc{out: &syncBuffer{}, errOut: &syncBuffer{}, dir: t.TempDir(), done: make(chan struct{})}
	p.cmd = exec.Command(tvBin, "srs", "--listen", "127.0.0.1:0", "--dir", p.dir)
	p.cmd.Stdout, p.cmd.Stderr = p.out, p.errOut
	if err := p.cmd.Start(); err != nil {
		t.Fatal(err)
	}
	go func() { p.cmd.Wait(); close(p.done) }()
	t.Cleanup(p.stop)
	waitFor(t, "tonevault srs to listen", 15*time.Second, func() bool {
		for l := range strings.SplitSeq(p.out.String(), "\n") {
			if _, rest, ok := strings.Cut(l, "listening on "); ok {
				p.uri, _, _ = strings.Cut(rest, " ")
				return true
			}
		}
		return false
	})
	return p
}

func (p *srsProc) stop() {
	select {
	case <-p.done:
		return
	default:
	}
	p.cmd.Process.Signal(syscall.SIGTERM)
	select {
	case <-p.done:
	case <-time.After(10 * time.Second):
		p.cmd.Process.Kill()
		<-p.done
	}
}

// recording waits for the recording of gateway call id and returns its
// files' base path.
func (p *srsProc) recording(t *testing.T, id string) string {
	t.Helper()
	var base string
	waitFor(t, "the recording of "+id, 20*time.Second, func() bool {
		m, _ := filepath.Glob(filepath.Join(p.dir, "*-"+id+".json"))
		if len(m) == 1 {
			base = strings.TrimSuffix(m[0], ".json")
		}
		return base != ""
	})
	return base
}

// capture adds the server's output and the files it wrote to the
// test's leak search.
func (p *srsProc) capture(rec *recorder) {
	rec.add("srs stdout", []byte(p.out.String()))
	rec.add("srs stderr", []byte(p.errOut.String()))
	files, _ := filepath.Glob(filepath.Join(p.dir, "*"))
	for _, f := range files {
		if !strings.HasSuffix(f, ".wav") {
			rec.file("srs "+filepath.Base(f), f)
		}
	}
}

// closedSIPPort is a loopback UDP address nothing listens on.
func closedSIPPort(t *testing.T) string {
	t.Helper()
	c, err := net.ListenUDP("udp", &net.UDPAddr{IP: net.IPv4(127, 0, 0, 1)})
	if err != nil {
		t.Fatal(err)
	}
	addr := c.LocalAddr().String()
	c.Close()
	return addr
}

// audible counts samples louder than the line's idle noise.
func audible(pcm []int16, above int16) int {
	n := 0
	for _, v := range pcm {
		if v > above || v < -above {
			n++
		}
	}
	return n
}

// TestSIPRECRecordsMasked: a call recorded by `tonevault srs` through
// SIPREC, with a card typed during capture. The recorded customer channel
// holds audio and no digit for any detector (each shown to find one
// planted in a copy), the stream carried no telephone-event, the agent
// channel holds the agent's audio, and the metadata names the call's
// correlation header. Nothing anywhere holds the card.
func TestSIPRECRecordsMasked(t *testing.T) {
	for _, mode := range []caller.Mode{caller.InBand, caller.RFC4733} {
		t.Run(mode.String(), func(t *testing.T) {
			t.Parallel()
			c := visaApproved
			rec := startSRS(t)
			s := newStack(t, stackOptions{carrier: "      recording:\n        srs: " + rec.uri + "\n"})
			interaction := "INT-siprec-" + mode.String()
			call := s.dial(t, caller.Header{Name: "X-Interaction-ID", Value: interaction})
			callID := s.api.answeredCall(t)
			pay := s.api.startPayment(t, callID, "order-siprec-"+mode.String())
			typeCard(t, call, c.keys(), mode)
			v := s.api.waitState(t, pay.ID, 30*time.Second, "complete")
			v = decodeView(t, s.api.submit(t, v.ID), 200)
			if v.State != "approved" || v.Result == nil {
				t.Fatalf("submit: %s %+v", v.State, v.Result)
			}
			s.hangup(t, call)
			base := rec.recording(t, callID)

			b, err := os.ReadFile(base + ".wav")
			if err != nil {
				t.Fatal(err)
			}
			a, err := wav.Parse(b)
			if err != nil || a.Format.Channels != 2 {
				t.Fatalf("recording: %v %+v", err, a)
			}
			customer, agent := a.Channel(0), a.Channel(1)
			t.Logf("recording: %.1f s; customer %d audible samples, agent %d", float64(len(customer))/8000, audible(customer, 8), audible(agent, 8))
			if audible(customer, 8) < 8000 {
				t.Errorf("the customer channel holds %d audible samples: want the call's audio, not silence", audible(customer, 8))
			}
			if audible(agent, 8) < 8000 {
				t.Errorf("the agent channel holds %d audible samples: want the agent's audio", audible(agent, 8))
			}
			digitsIn(t, customer, func(t *testing.T, name string, n int) {
				if n != 0 {
					t.Errorf("%s found %d digits in the recorded customer channel", name, n)
				}
			})
			var sum srs.Summary
			if js, err := os.ReadFile(base + ".json"); err != nil || json.Unmarshal(js, &sum) != nil || len(sum.Streams) != 2 {
				t.Fatalf("summary: %v %+v", err, sum)
			}
			if st := sum.Streams[0]; st.Label != siprec.LabelCustomer || st.EventPackets != 0 || st.AudioPackets < 50 {
				t.Errorf("customer stream %+v: want audio and no telephone-event", st)
			}
			meta, err := os.ReadFile(base + ".xml")
			if err != nil {
				t.Fatal(err)
			}
			md, err := siprec.ParseMetadata(meta)
			if err != nil {
				t.Fatal(err)
			}
			if v, _ := md.CorrelationValue("X-Interaction-ID"); v != interaction {
				t.Errorf("metadata X-Interaction-ID = %q, want %q", v, interaction)
			}

			recs := s.finish(t)
			rec.stop()
			rec.capture(s.rec)
			var events []audit.Event
			for _, r := range recs {
				if r.CallID == callID {
					events = append(events, r.Event)
				}
			}
			requireEvents(t, events, audit.EventRecordingStarted, audit.EventRecordingEnded)
			assertNoLeaks(t, s.rec, c, v.Result.Token, v.field("card_number").Masked)
		})
	}
}

// TestSIPRECRecorderDown: the recorder is down and recording is not
// required: the call connects, the payment goes through, and the trail
// says the recording failed.
func TestSIPRECRecorderDown(t *testing.T) {
	t.Parallel()
	c := visaApproved
	s := newStack(t, stackOptions{carrier: "      recording:\n        srs: sip:srs@" + closedSIPPort(t) + "\n        timeout: 1s\n"})
	call, v, _ := s.captureCard(t, c, caller.RFC4733)
	callID := v.CallID
	v = decodeView(t, s.api.submit(t, v.ID), 200)
	if v.State != "approved" || v.Result == nil {
		t.Fatalf("submit: %s %+v", v.State, v.Result)
	}
	s.hangup(t, call)
	recs := s.finish(t)
	var failed []audit.Record
	for _, r := range recs {
		if r.Event == audit.EventRecordingFailed {
			failed = append(failed, r)
		}
	}
	// Nothing listens there: ICMP says so at once, or, where it is
	// filtered, the INVITE times out.
	want := []audit.Reason{audit.ReasonRecorderUnreachable, audit.ReasonRecorderTimeout}
	if len(failed) != 1 || failed[0].CallID != callID || !containsReason(want, failed[0].Reason) {
		t.Errorf("recording.failed records %+v, want one for call %s with a reason in %v", failed, callID, want)
	}
	for _, r := range recs {
		if r.Event == audit.EventSIPCallEnded && r.CallID == callID && r.Reason != audit.ReasonCompleted {
			t.Errorf("the call ended %s, want completed: a recording that fails must not touch it", r.Reason)
		}
	}
	assertNoLeaks(t, s.rec, c, v.Result.Token, v.field("card_number").Masked)
}

func containsReason(rs []audit.Reason, r audit.Reason) bool {
	for _, x := range rs {
		if x == r {
			return true
		}
	}
	return false
}

// TestSIPRECRequiredRefuses: the recorder is down and recording is
// required: the call is refused with 503 and the trail says why.
func TestSIPRECRequiredRefuses(t *testing.T) {
	t.Parallel()
	s := newStack(t, stackOptions{carrier: "      recording:\n        srs: sip:srs@" + closedSIPPort(t) + "\n        required: true\n        timeout: 1s\n        probe_interval: 1s\n"})
	_, err := caller.Dial(ctxFor(t, 30*time.Second), caller.Options{Target: "sip:pay@" + s.gw.carrier, Progress: s.rec.writer("caller progress")})
	var se *caller.StatusError
	if !errors.As(err, &se) || se.Code != 503 {
		t.Fatalf("dial: %v, want 503", err)
	}
	recs := s.finish(t)
	n := 0
	for _, r := range recs {
		switch r.Event {
		case audit.EventRecordingFailed:
			n++
			if r.Reason != audit.ReasonRecordingUnavailable || r.Status != 503 || r.Trunk != "carrier" {
				t.Errorf("recording.failed %+v, want recording_unavailable, 503, carrier", r)
			}
		case audit.EventSIPCallStarted:
			t.Errorf("a call started: %+v", r)
		}
	}
	if n != 1 {
		t.Errorf("%d recording.failed records, want 1", n)
	}
	if s.agent.Byes() != 0 || len(s.agent.Packets()) != 0 {
		t.Error("the refused call reached the agent")
	}
}
