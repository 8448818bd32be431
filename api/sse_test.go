package api

import (
	"context"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/tonevault/tonevault/capture"
)

func TestSSEStream(t *testing.T) {
	cfg := testConfig()
	cfg.Heartbeat = 20 * time.Millisecond
	e := newEnv(t, cfg, Deps{})
	v := e.startPayment(t, testKey, "call-1")
	sess := e.pay.sessions[v.ID]

	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	req, _ := http.NewRequestWithContext(ctx, "GET", e.ts.URL+"/v1/payments/"+v.ID+"/events", nil)
	req.Header.Set("Authorization", "Bearer "+testKey)
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	if resp.StatusCode != 200 || resp.Header.Get("Content-Type") != "text/event-stream" {
		t.Fatalf("%d %s", resp.StatusCode, resp.Header.Get("Content-Type"))
	}
	events := readEvents(resp.Body)
	next := func() sseEvent {
		t.Helper()
		for {
			select {
			case ev, ok := <-events:
				if !ok {
					t.Fatal("stream ended")
				}
				if !ev.comment {
					return ev
				}
			case <-time.After(10 * time.Second):
				t.Fatal("no event")
			}
		}
	}
	if ev := next(); ev.id != "1" || ev.event != "payment" || decodeView(t, []byte(ev.data)).ID != v.ID {
		t.Fatalf("snapshot %+v", ev)
	}
	// A heartbeat comment comes while nothing changes.
	deadline := time.After(10 * time.Second)
	for beat := false; !beat; {
		select {
		case ev := <-events:
			beat = ev.comment && strings.Contains(ev.data, "heartbeat")
		case <-deadline:
			t.Fatal("no heartbeat")
		}
	}
	sess.change(func(v *capture.View) { v.Fields[0].Entered = 3; v.Fields[0].Masked = "•••" })
	if ev := next(); ev.id != "2" || decodeView(t, []byte(ev.data)).Fields[0].Entered != 3 {
		t.Fatalf("change %+v", ev)
	}
	if err := sess.Cancel("t"); err != nil {
		t.Fatal(err)
	}
	if ev := next(); decodeView(t, []byte(ev.data)).State != "cancelled" {
		t.Fatalf("final %+v", ev)
	}
	for ev := range events { // the server ends the stream
		if !ev.comment {
			t.Errorf("after final: %+v", ev)
		}
	}
}

func TestSSEFinalAndLastEventID(t *testing.T) {
	e := newEnv(t, testConfig(), Deps{})
	v := e.startPayment(t, testKey, "call-1")
	sess := e.pay.sessions[v.ID]
	sess.change(func(v *capture.View) { v.Fields[0].Entered = 1 })
	// Resuming at the current version: no snapshot repeated; then the
	// next change arrives.
	resp := e.do(t, "GET", "/v1/payments/"+v.ID+"/events", testKey, nil, "Last-Event-ID", "2")
	defer resp.Body.Close()
	events := readEvents(resp.Body)
	go func() {
		time.Sleep(50 * time.Millisecond)
		sess.change(func(v *capture.View) { v.Fields[0].Entered = 2 })
		sess.Cancel("t")
	}()
	var ids []string
	for ev := range events {
		if !ev.comment {
			ids = append(ids, ev.id)
		}
	}
	if len(ids) == 0 || ids[0] == "2" {
		t.Fatalf("ids %v: the snapshot the client had was sent again", ids)
	}
	// A finished session: one snapshot, then the end.
	resp = e.do(t, "GET", "/v1/payments/"+v.ID+"/events", testKey, nil)
	b := string(readBody(t, resp))
	if strings.Count(b, "event: payment") != 1 || !strings.Contains(b, `"state":"cancelled"`) {
		t.Errorf("final stream %q", b)
	}
}

func TestSSEClientDisconnect(t *testing.T) {
	e := newEnv(t, testConfig(), Deps{})
	v := e.startPayment(t, testKey, "call-1")
	sess := e.pay.sessions[v.ID]
	ctx, cancel := context.WithCancel(context.Background())
	req, _ := http.NewRequestWithContext(ctx, "GET", e.ts.URL+"/v1/payments/"+v.ID+"/events", nil)
	req.Header.Set("Authorization", "Bearer "+testKey)
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	<-readEvents(resp.Body)
	cancel()
	resp.Body.Close()
	// The handler unsubscribes when the client goes.
	for i := 0; ; i++ {
		sess.mu.Lock()
		n := len(sess.subs)
		sess.mu.Unlock()
		if n == 0 {
			break
		}
		if i > 500 {
			t.Fatalf("%d subscribers left after the client hung up", n)
		}
		time.Sleep(10 * time.Millisecond)
	}
}
