package capture

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"os"
	"path/filepath"
	"sync"
	"testing"
	"time"

	"github.com/tonevault/tonevault/audit"
	"github.com/tonevault/tonevault/store"
)

// openStore opens a store in a temporary SQLite file and returns it with
// the file's path.
func openStore(t *testing.T) (*store.Store, string) {
	t.Helper()
	cfg := store.DefaultConfig()
	cfg.SQLite.Path = filepath.Join(t.TempDir(), "tonevault.db")
	st, err := store.Open(context.Background(), cfg)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { st.Close() })
	return st, cfg.SQLite.Path
}

// eventLog is a JournalOptions.Events that queues one event per final
// View and remembers the views it was given.
type eventLog struct {
	mu    sync.Mutex
	views []View
}

func (l *eventLog) events(v View) []store.OutboxEvent {
	if !v.State.Final() {
		return nil
	}
	l.mu.Lock()
	l.views = append(l.views, v)
	l.mu.Unlock()
	body, _ := json.Marshal(v)
	return []store.OutboxEvent{{ID: "evt_" + v.ID, Kind: "payment." + string(v.State), PaymentID: v.ID, Body: body, MaxAttempts: 3}}
}

// newJournalEnv is newEnv with a Journal on st.
func newJournalEnv(t *testing.T, st *store.Store, o JournalOptions, proc *fakeProc) (*env, *Journal) {
	t.Helper()
	e := &env{t: t, clk: &fakeClock{t: t0}, sink: newRecSink(t)}
	j := NewJournal(st, o)
	opts := Options{Audit: e.sink, Now: e.clk.now, TickInterval: -1, Journal: j}
	if proc != nil {
		opts.Processor = proc
	}
	m, err := NewManager(Config{}, opts)
	if err != nil {
		t.Fatal(err)
	}
	e.m = m
	t.Cleanup(m.Close)
	return e, j
}

func stored(t *testing.T, st *store.Store, id string) store.Payment {
	t.Helper()
	p, err := st.GetPayment(context.Background(), id)
	if err != nil {
		t.Fatalf("payment %s in the store: %v", id, err)
	}
	return p
}

// TestJournalKeepsPayment follows a payment into the store: written at
// the start, at each field completed and not at each digit, and at the
// outcome, which reads back as the session shows it, with the
// telephone-order indicators sent, the call's correlation headers and its
// webhook event queued with it.
func TestJournalKeepsPayment(t *testing.T) {
	st, path := openStore(t)
	evs := &eventLog{}
	moto := MOTO{EntryMode: "012", ConditionCode: "08", Field60: "0000000001"}
	proc := &fakeProc{token: "4111119876541111", res: Result{Outcome: OutcomeApproved, AuthCode: "A1B2C3", ResponseCode: "00", Reason: "approved", MOTO: moto}}
	e, j := newJournalEnv(t, st, JournalOptions{
		Node:        "gw-a",
		Correlation: func(callID string) map[string]string { return map[string]string{"X-Interaction-ID": "int-" + callID} },
		Events:      evs.events,
	}, proc)
	s := e.start("call-1")
	p := stored(t, st, s.ID())
	if p.State != string(StateCollecting) || p.Version != s.View().Version || p.Node != "gw-a" || p.Correlation["X-Interaction-ID"] != "int-call-1" {
		t.Fatalf("stored at start: %+v; session at version %d", p, s.View().Version)
	}
	started := p.Version

	pan := "4111111111111111"
	e.keys("call-1", pan[:8])
	if p := stored(t, st, s.ID()); p.Version != started {
		t.Errorf("written at a digit: version %d, was %d", p.Version, started)
	}
	e.keys("call-1", pan[8:]+"#")
	p = stored(t, st, s.ID())
	if p.MaskedPAN != "411111******1111" || p.Brand != "visa" || p.Version != s.View().Version {
		t.Errorf("after the card number: masked %q brand %q version %d (session %d)", p.MaskedPAN, p.Brand, p.Version, s.View().Version)
	}
	e.keys("call-1", "1230"+"737")
	if p := stored(t, st, s.ID()); p.State != string(StateComplete) {
		t.Errorf("after every field: %s", p.State)
	}

	v, err := s.Submit(context.Background(), "agent:alice")
	if err != nil || v.State != StateApproved {
		t.Fatalf("submit: %s %v", v.State, err)
	}
	p = stored(t, st, s.ID())
	if !p.Final || p.Outcome != OutcomeApproved || p.Token != proc.token || p.AuthCode != "A1B2C3" || p.ResponseCode != "00" ||
		p.EntryMode != "012" || p.ConditionCode != "08" || p.Field60 != "0000000001" || p.Field61 != "" {
		t.Errorf("stored outcome: %+v", p)
	}
	got, err := j.Get(context.Background(), s.ID())
	if err != nil {
		t.Fatal(err)
	}
	want := s.View()
	gotJSON, _ := json.Marshal(got)
	wantJSON, _ := json.Marshal(want)
	if !bytes.Equal(gotJSON, wantJSON) || got.Result.MOTO != moto || got.Merchant != testReq.Merchant {
		t.Errorf("read back:\n%s\nsession:\n%s\nMOTO %+v merchant %q", gotJSON, wantJSON, got.Result.MOTO, got.Merchant)
	}
	if ev, err := st.GetOutbox(context.Background(), "evt_"+s.ID()); err != nil || ev.Kind != "payment.approved" {
		t.Errorf("webhook event queued with the outcome: %+v, %v", ev, err)
	}
	if len(evs.views) != 1 {
		t.Errorf("events asked for %d final views, want 1", len(evs.views))
	}
	if _, err := j.Get(context.Background(), "pay_none"); !errors.Is(err, ErrNotFound) {
		t.Errorf("missing payment: %v", err)
	}
	if j.Errors() != 0 {
		t.Errorf("%d writes failed", j.Errors())
	}
	assertFilesHoldNo(t, path, pan, "737")
}

// assertFilesHoldNo searches the SQLite files for each value, after
// showing that the search finds what is there (the masked card number).
func assertFilesHoldNo(t *testing.T, path string, values ...string) {
	t.Helper()
	var all []byte
	for _, suffix := range []string{"", "-wal"} {
		b, err := os.ReadFile(path + suffix)
		if err == nil {
			all = append(all, b...)
		}
	}
	if !bytes.Contains(all, []byte("411111******1111")) {
		t.Fatal("the masked card number is not in the store's files: the search looks at the wrong place")
	}
	for _, v := range values {
		if len(v) > 4 && bytes.Contains(all, []byte(v)) {
			t.Errorf("the store's files hold %s…", v[:4])
		}
	}
}

// TestJournalEndInterrupted: the payments a gateway left live when it
// died end failed (gateway_restarted) when it starts again, with their
// masked progress, a new version, their webhook event and their
// session.ended record in the trail; another gateway's live payments and
// ended payments are left alone.
func TestJournalEndInterrupted(t *testing.T) {
	st, _ := openStore(t)
	evs := &eventLog{}
	a, _ := newJournalEnv(t, st, JournalOptions{Node: "gw-a"}, &fakeProc{})
	live := a.start("call-1")
	a.keys("call-1", "4111111111111111#")
	a.keys("call-1", "12")
	ended := a.start("call-2")
	if err := ended.Cancel("agent:alice"); err != nil {
		t.Fatal(err)
	}
	b, _ := newJournalEnv(t, st, JournalOptions{Node: "gw-b"}, nil)
	other := b.start("call-3")
	before := stored(t, st, live.ID())

	// gw-a "crashed": its sessions are gone with it. It starts again.
	trail := newRecSink(t)
	j := NewJournal(st, JournalOptions{Node: "gw-a", Events: evs.events, Audit: trail})
	now := t0.Add(time.Hour)
	got, err := j.EndInterrupted(context.Background(), now)
	if err != nil {
		t.Fatal(err)
	}
	if len(got) != 1 || got[0].ID != live.ID() {
		t.Fatalf("ended %d payments (%v), want %s alone", len(got), got, live.ID())
	}
	v := got[0]
	card := fieldView(t, v, FieldCardNumber)
	if v.State != StateFailed || v.Reason != ReasonGatewayRestarted || v.Version != before.Version+1 || !v.UpdatedAt.Equal(now) ||
		v.CurrentField != "" || !card.Valid || card.Masked != "411111••••••1111" || card.Entered != 0 {
		t.Errorf("interrupted payment: %+v", v)
	}
	if f := fieldView(t, v, FieldExpiry); f.Entered != 0 || f.Masked != "" {
		t.Errorf("expiry of an ended payment shows %+v", f)
	}
	if back, err := j.Get(context.Background(), live.ID()); err != nil || back.State != StateFailed || back.Version != v.Version {
		t.Errorf("read back: %+v, %v", back, err)
	}
	if p := stored(t, st, other.ID()); p.Final {
		t.Errorf("another gateway's payment was ended: %+v", p)
	}
	if p := stored(t, st, ended.ID()); p.State != string(StateCancelled) {
		t.Errorf("an ended payment changed: %s", p.State)
	}
	if ev, err := st.GetOutbox(context.Background(), "evt_"+live.ID()); err != nil || ev.Kind != "payment.failed" {
		t.Errorf("webhook event of the interrupted payment: %+v, %v", ev, err)
	}
	if again, err := j.EndInterrupted(context.Background(), now); err != nil || len(again) != 0 {
		t.Errorf("a second sweep ended %d, %v", len(again), err)
	}
	if recs := trail.records(); len(recs) != 1 || recs[0].Event != audit.EventSessionEnded || recs[0].PaymentID != live.ID() ||
		recs[0].CallID != "call-1" || recs[0].Reason != audit.ReasonGatewayRestarted || recs[0].Outcome != audit.Failure ||
		recs[0].State != string(StateFailed) {
		t.Errorf("audit records of the sweeps: %+v; want one session.ended gateway_restarted for %s", recs, live.ID())
	}
}

// TestJournalFailures: a store that fails costs the payment nothing but
// its record (counted); a correlation header the store refuses costs the
// record only the headers.
func TestJournalFailures(t *testing.T) {
	st, _ := openStore(t)
	e, j := newJournalEnv(t, st, JournalOptions{
		Correlation: func(string) map[string]string {
			return map[string]string{"X-Interaction-ID": "card 4111 1111 1111 1111"}
		},
	}, nil)
	s := e.start("call-1")
	if p := stored(t, st, s.ID()); len(p.Correlation) != 0 || p.State != string(StateCollecting) {
		t.Errorf("payment with a refused header: %+v", p)
	}
	if j.Errors() != 0 {
		t.Errorf("errors %d after a refused header", j.Errors())
	}
	st.Close()
	if err := s.Cancel("agent:alice"); err != nil {
		t.Fatal(err)
	}
	if s.View().State != StateCancelled || j.Errors() != 1 {
		t.Errorf("with the store closed: state %s, %d errors counted", s.View().State, j.Errors())
	}
}
