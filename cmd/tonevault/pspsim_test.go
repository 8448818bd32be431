package main

import (
	"bytes"
	"context"
	"encoding/json"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/tonevault/tonevault/internal/secret"
	"github.com/tonevault/tonevault/internal/testutil"
	"github.com/tonevault/tonevault/psp"
	"github.com/tonevault/tonevault/psp/sim"
	"github.com/tonevault/tonevault/store"
)

type lockedBuf = testutil.SyncBuffer

func TestPSPSimHelp(t *testing.T) {
	var out, errOut bytes.Buffer
	if code := run([]string{"psp-sim", "--help"}, &out, &errOut); code != 0 {
		t.Fatalf("exit %d: %s", code, errOut.String())
	}
	for _, want := range []string{"--listen", "127.0.0.1:8583", "4000000000000119", "0202", "51 insufficient funds", "--state-file"} {
		if !strings.Contains(out.String(), want) {
			t.Errorf("help lacks %q", want)
		}
	}
	if code := run([]string{"psp-sim", "--header", "bcd"}, &out, &errOut); code != 2 {
		t.Errorf("bad header: exit %d", code)
	}
}

func TestPSPSimServes(t *testing.T) {
	const pan = "4111111111111111"
	state := filepath.Join(t.TempDir(), "state.json")
	out, errOut := &lockedBuf{}, &lockedBuf{}
	ctx, cancel := context.WithCancel(context.Background())
	addrCh := make(chan string, 1)
	done := make(chan int)
	go func() {
		done <- pspSim(ctx, []string{"--listen", "127.0.0.1:0", "--header", "ascii4", "--state-file", state}, out, errOut,
			func(a string) { addrCh <- a })
	}()
	var addr string
	select {
	case addr = <-addrCh:
	case code := <-done:
		t.Fatalf("exited %d: %s", code, errOut.String())
	}
	st, err := store.Open(context.Background(), testStoreConfig(t))
	if err != nil {
		t.Fatal(err)
	}
	defer st.Close()
	c, err := psp.NewISO(psp.Config{Addrs: []string{addr}, Header: psp.ASCII4, Terminal: "T1", Merchant: "M1",
		Timeout: 300 * time.Millisecond, ReversalBackoff: 50 * time.Millisecond}, st)
	if err != nil {
		t.Fatal(err)
	}
	wctx, wcancel := context.WithTimeout(ctx, 10*time.Second)
	defer wcancel()
	if err := c.WaitReady(wctx); err != nil {
		t.Fatal(err)
	}
	auth := func(card string, amount int64) psp.Response {
		r := &psp.Request{Kind: psp.Sale, Brand: "visa", PAN: secret.New([]byte(card)), Expiry: secret.New([]byte("1230")),
			CVV: secret.New([]byte("737")), Amount: amount, Currency: "GBP"}
		resp, err := c.Authorize(context.Background(), r)
		if err != nil {
			t.Fatal(err)
		}
		return resp
	}
	if resp := auth(pan, 1234); resp.Outcome != psp.Approved {
		t.Errorf("approve: %+v", resp)
	}
	lost := auth("4000000000000119", 1000)
	if lost.Reason != psp.ReasonTimeout {
		t.Errorf("no answer: %+v", lost)
	}
	deadline := time.Now().Add(15 * time.Second)
	for {
		b, _ := os.ReadFile(state)
		var st sim.Stats
		if json.Unmarshal(b, &st) == nil && len(st.ReversedSTANs) == 1 && st.ReversedSTANs[0] == lost.STAN {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("state file never showed the reversal: %s", b)
		}
		time.Sleep(10 * time.Millisecond)
	}
	c.Close()
	cancel()
	if code := <-done; code != 0 {
		t.Errorf("exit %d", code)
	}
	log := out.String()
	for _, want := range []string{"listening on", "411111******1111", "reversal acknowledged", "stopped"} {
		if !strings.Contains(log, want) {
			t.Errorf("output lacks %q:\n%s", want, log)
		}
	}
	for _, bad := range []string{pan, "4000000000000119"} {
		if strings.Contains(log, bad) || strings.Contains(errOut.String(), bad) {
			t.Errorf("output shows %s:\n%s", bad, log)
		}
	}
	// The CVV as a number of its own, timestamps aside (".737Z" is a time).
	noTimes := regexp.MustCompile(`[0-9]{4}-[0-9]{2}-[0-9]{2}T[0-9:.]+Z`).ReplaceAllString(log+errOut.String(), "<ts>")
	if regexp.MustCompile(`(^|[^0-9])737([^0-9]|$)`).MatchString(noTimes) {
		t.Errorf("output shows the CVV:\n%s", log)
	}
}
