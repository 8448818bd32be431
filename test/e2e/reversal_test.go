package e2e

import (
	"bytes"
	"net/http"
	"os"
	"strings"
	"testing"
	"time"

	"github.com/tonevault/tonevault/audit"
	"github.com/tonevault/tonevault/psp"
	"github.com/tonevault/tonevault/sip/caller"
)

// TestReversalAfterKill: the reversal of an authorization is written to
// the store before the 0100 leaves (issue 13). The acquirer holds the
// answer; `tonevault serve` is killed (SIGKILL) while it waits, so it
// never learns the outcome and never gets to queue anything after the
// send. Restarted with the same configuration, it sends the reversal
// (0400, naming the original by STAN and transmission time), psp-sim
// acknowledges it, and the audit trail records authorization.reversed
// with the original's STAN.
func TestReversalAfterKill(t *testing.T) {
	t.Parallel()
	testReversalAfterKill(t, false)
}

// TestReversalAfterKillPostgres is TestReversalAfterKill with the store,
// and so the reversal written ahead, in PostgreSQL.
func TestReversalAfterKillPostgres(t *testing.T) {
	t.Parallel()
	testReversalAfterKill(t, true)
}

func testReversalAfterKill(t *testing.T, postgres bool) {
	c := visaNoAnswer
	s := newStack(t, stackOptions{pspTimeout: 10 * time.Second, pspLeaseMargin: time.Second, postgres: postgres})
	_, v, _ := s.captureCard(t, c, caller.RFC4733)

	// The submit waits for the acquirer, which never answers this card:
	// it ends with the process.
	go func() {
		req, _ := http.NewRequest("POST", s.api.base+"/v1/payments/"+v.ID+"/submit", nil)
		req.Header.Set("Authorization", "Bearer "+apiKey)
		if res, err := (&http.Client{Timeout: time.Minute}).Do(req); err == nil {
			res.Body.Close()
		}
	}()
	waitFor(t, "the acquirer holding the authorization", 30*time.Second, func() bool { return s.sim.Stats().NoAnswer == 1 })
	s.gw.kill(t)
	if st := s.sim.Stats(); st.Reversals != 0 {
		t.Fatalf("a reversal went out before the kill (%+v): the gateway was not killed mid-authorization", st)
	}
	queued := s.queuedReversals(t)
	if len(queued) != 1 || queued[0].OrigMTI != "0100" || queued[0].LeaseOwner == "" || queued[0].Reason != psp.ReasonConnectionLost {
		t.Fatalf("the store after the kill holds %+v; want the reversal written ahead of the 0100", queued)
	}
	stan := queued[0].STAN
	s.rec.add("reversal written ahead", []byte(stan+" "+queued[0].RRN+" "+queued[0].Transmission))
	t.Logf("killed with the 0100 of STAN %s at the acquirer; reversal written ahead, leased by %s until %v",
		stan, queued[0].LeaseOwner, queued[0].LeaseUntil)

	s.gw = startGateway(t, s.cfg, s.gw.trail, s.rec)
	waitFor(t, "the reversal at the acquirer after the restart", 90*time.Second, func() bool {
		st := s.sim.Stats()
		return len(st.ReversedSTANs) == 1 && st.ReversedSTANs[0] == stan
	})
	if log := s.rec.writer("psp-sim log").String(); !strings.Contains(log, "recv 0400 original_stan="+stan) {
		t.Errorf("psp-sim did not log the 0400 of STAN %s:\n%s", stan, tail(log, 2000))
	}
	recs := s.finish(t)
	var reversed []audit.Record
	for _, r := range recs {
		if r.Event == audit.EventAuthorizationReversed {
			reversed = append(reversed, r)
		}
	}
	if len(reversed) != 1 || reversed[0].STAN != stan || reversed[0].Reason != audit.ReasonPSPConnectionLost || reversed[0].Outcome != audit.Success {
		t.Errorf("audit records of the reversal: %+v; want one %s, STAN %s, reason %s",
			reversed, audit.EventAuthorizationReversed, stan, audit.ReasonPSPConnectionLost)
	}
	if left := s.queuedReversals(t); len(left) != 0 {
		t.Errorf("reversal queue after the acknowledgement: %+v", left)
	}
	assertStoreHoldsNo(t, s, c.pan)
	assertNoLeaks(t, s.rec, c, v.field("card_number").Masked)
}

// kill ends the gateway with SIGKILL: no call ends, nothing is flushed.
func (g *gateway) kill(t *testing.T) {
	t.Helper()
	g.stopped = true
	if err := g.cmd.Process.Kill(); err != nil {
		t.Fatal(err)
	}
	<-g.done
}

// assertStoreHoldsNo searches the SQLite store's files, or a pg_dump of
// the PostgreSQL database, for pan.
func assertStoreHoldsNo(t *testing.T, s *stack, pan string) {
	t.Helper()
	if s.pg != nil {
		dump, err := s.pg.Dump(s.pgDB)
		if err != nil {
			t.Fatal(err)
		}
		if !bytes.Contains(dump, []byte("CREATE TABLE")) {
			t.Fatal("the dump holds no table: nothing was searched")
		}
		if bytes.Contains(dump, []byte(pan)) {
			t.Error("the PostgreSQL store (pg_dump) holds the card number")
		}
		return
	}
	found := 0
	for _, suffix := range []string{"", "-wal", "-shm"} {
		b, err := os.ReadFile(s.storePath() + suffix)
		if err != nil {
			continue // -wal and -shm go with a clean close
		}
		found++
		if bytes.Contains(b, []byte(pan)) {
			t.Errorf("the store (%s%s) holds the card number", s.storePath(), suffix)
		}
	}
	if found == 0 {
		t.Error("no store file to search")
	}
}
