package store

import (
	"bytes"
	"crypto/sha256"
	"errors"
	"net/url"
	"os"
	"strconv"
	"strings"
	"testing"
	"time"
)

// The test cards, and the ways people write them.
var testCards = []string{"4111111111111111", "5555555555554444", "378282246310005"}

func cardForms(pan string) []string {
	var spaced, dashed []string
	for i := 0; i < len(pan); i += 4 {
		spaced = append(spaced, pan[i:min(i+4, len(pan))])
	}
	dashed = spaced
	return []string{pan, strings.Join(spaced, " "), strings.Join(dashed, "-")}
}

// TestNoCardDataOnDisk stores what the gateway stores (masked card
// numbers, tokens, outcomes), then offers a full test card number to every
// column through the package's API, in each way it can be written; and
// searches the database as it lies on disk (SQLite: the file, its -wal and
// -shm; PostgreSQL: pg_dump) for the test cards. A planted card number in
// a second database shows first that the search finds one.
func TestNoCardDataOnDisk(t *testing.T) {
	for _, b := range backends {
		t.Run(b.name, func(t *testing.T) {
			// The control: a card number written past the guard is found.
			ctlCfg := b.config(t)
			ctl := openT(t, ctlCfg)
			if _, err := ctl.w.ExecContext(ctx(t), `INSERT INTO token_revocations (token_hash, revoked_at, expires_at)
				VALUES ($1, 0, 0)`, testCards[1]); err != nil {
				t.Fatal(err)
			}
			if found := search(onDisk(t, ctl, ctlCfg)); !slicesContains(found, testCards[1]) {
				t.Fatalf("the search does not find a planted card number (found %v)", found)
			}

			cfg := b.config(t)
			s := openT(t, cfg)
			storeAsGateway(t, s)
			for _, pan := range testCards {
				for _, form := range cardForms(pan) {
					offerEverywhere(t, s, form)
				}
			}
			disk := onDisk(t, s, cfg)
			if found := search(disk); len(found) > 0 {
				t.Errorf("card numbers on disk: %v", found)
			}
			// What was searched is this database: the masked card is there.
			if !bytes.Contains(disk, []byte("411111******1111")) {
				t.Error("the masked card number is not on disk: the search looked at the wrong place")
			}
			if b.name == DriverSQLite {
				// And once closed, with the WAL checkpointed into the file.
				_ = s.Close()
				if found := search(sqliteFiles(t, cfg.SQLite.Path)); len(found) > 0 {
					t.Errorf("card numbers in the closed database: %v", found)
				}
			}
		})
	}
}

// storeAsGateway writes one of everything, as the gateway would.
func storeAsGateway(t *testing.T, s *Store) {
	c := ctx(t)
	p := approved(testPayment("pay-1", "call-1", 1), 7)
	if _, err := s.UpsertPayment(c, p); err != nil {
		t.Fatal(err)
	}
	fp := sha256.Sum256([]byte("call-1 body"))
	idem, err := s.BeginIdempotent(c, IdempotencyClaim{Key: "crm:k1", Fingerprint: fp[:], TTL: time.Hour})
	if err != nil {
		t.Fatal(err)
	}
	if err := s.FinishIdempotent(c, "crm:k1", idem.Claim, IdempotentResponse{Status: 201,
		Body: []byte(`{"id":"pay-1","fields":[{"name":"card_number","masked":"411111******1111"}]}`), Location: "/v1/payments/pay-1"}); err != nil {
		t.Fatal(err)
	}
	if _, err := s.EnqueueOutbox(c, testEvent("evt_pay-1_7")); err != nil {
		t.Fatal(err)
	}
	if _, err := s.EnqueueReversal(c, testReversal("000001")); err != nil {
		t.Fatal(err)
	}
	if err := s.RevokeToken(c, "wt1.abc.def", time.Now().Add(time.Hour)); err != nil {
		t.Fatal(err)
	}
}

var offers int

// offerEverywhere offers pan to every column the API reaches. Columns
// that keep what they are given refuse it; the two that keep only a
// SHA-256 (idempotency keys, revoked tokens) and the outbox's failure
// text (masked) take it.
func offerEverywhere(t *testing.T, s *Store, pan string) {
	c := ctx(t)
	amount, _ := strconv.ParseInt(strings.NewReplacer(" ", "", "-", "").Replace(pan), 10, 64)
	pay := func(f func(p *Payment)) func() error {
		return func() error {
			p := approved(testPayment("pay-2", "call-2", 1), 1)
			f(&p)
			_, err := s.UpsertPayment(c, p)
			return err
		}
	}
	rev := func(f func(r *Reversal)) func() error {
		return func() error {
			r := testReversal("000002")
			f(&r)
			_, err := s.EnqueueReversal(c, r)
			return err
		}
	}
	evt := func(f func(e *OutboxEvent)) func() error {
		return func() error {
			e := testEvent("evt_pay-2_1")
			f(&e)
			_, err := s.EnqueueOutbox(c, e)
			return err
		}
	}
	fp := sha256.Sum256([]byte("x"))
	refused := map[string]func() error{
		"payments.id":             pay(func(p *Payment) { p.ID = pan }),
		"payments.call_id":        pay(func(p *Payment) { p.CallID = pan }),
		"payments.state":          pay(func(p *Payment) { p.State = pan }),
		"payments.reason":         pay(func(p *Payment) { p.Reason = pan }),
		"payments.amount":         pay(func(p *Payment) { p.Amount = amount }),
		"payments.currency":       pay(func(p *Payment) { p.Currency = pan }),
		"payments.merchant_ref":   pay(func(p *Payment) { p.MerchantRef = "ref " + pan }),
		"payments.description":    pay(func(p *Payment) { p.Description = "card " + pan + " please" }),
		"payments.merchant":       pay(func(p *Payment) { p.Merchant = pan }),
		"payments.brand":          pay(func(p *Payment) { p.Brand = pan }),
		"payments.masked_pan":     pay(func(p *Payment) { p.MaskedPAN = pan }),
		"payments.token":          pay(func(p *Payment) { p.Token = pan }),
		"payments.outcome":        pay(func(p *Payment) { p.Outcome = pan }),
		"payments.auth_code":      pay(func(p *Payment) { p.AuthCode = pan }),
		"payments.response_code":  pay(func(p *Payment) { p.ResponseCode = pan }),
		"payments.entry_mode":     pay(func(p *Payment) { p.EntryMode = pan }),
		"payments.condition_code": pay(func(p *Payment) { p.ConditionCode = pan }),
		"payments.field_60":       pay(func(p *Payment) { p.Field60 = pan }),
		"payments.field_61":       pay(func(p *Payment) { p.Field61 = "2033 " + pan }),
		"payments.node":           pay(func(p *Payment) { p.Node = pan }),
		"payments.snapshot":       pay(func(p *Payment) { p.Snapshot = `{"fields":[{"masked":"` + pan + `"}]}` }),
		"outbox.body (with a payment)": func() error {
			e := testEvent("evt_pay-2_2")
			e.Body = []byte(`{"payment":{"masked":"` + pan + `"}}`)
			_, err := s.UpsertPayment(c, approved(testPayment("pay-2", "call-2", 1), 2), e)
			return err
		},
		"payment_correlations.name": pay(func(p *Payment) { p.Correlation = map[string]string{pan: "v"} }),
		"payment_correlations.value": pay(func(p *Payment) {
			p.Correlation = map[string]string{"X-Interaction-ID": pan}
		}),
		"idempotency_keys.body": func() error {
			i, err := s.BeginIdempotent(c, IdempotencyClaim{Key: "k-" + pan, Fingerprint: fp[:], TTL: time.Hour})
			if err != nil {
				return err
			}
			defer s.AbandonIdempotent(c, "k-"+pan, i.Claim)
			return s.FinishIdempotent(c, "k-"+pan, i.Claim, IdempotentResponse{Status: 201, Body: []byte(`{"x":"` + pan + `"}`)})
		},
		"idempotency_keys.location": func() error {
			i, err := s.BeginIdempotent(c, IdempotencyClaim{Key: "l-" + pan, Fingerprint: fp[:], TTL: time.Hour})
			if err != nil {
				return err
			}
			defer s.AbandonIdempotent(c, "l-"+pan, i.Claim)
			return s.FinishIdempotent(c, "l-"+pan, i.Claim, IdempotentResponse{Status: 201, Location: "/v1/x/" + pan})
		},
		"outbox.id":         evt(func(e *OutboxEvent) { e.ID = pan }),
		"outbox.kind":       evt(func(e *OutboxEvent) { e.Kind = pan }),
		"outbox.payment_id": evt(func(e *OutboxEvent) { e.PaymentID = pan }),
		"outbox.body":       evt(func(e *OutboxEvent) { e.Body = []byte(`{"card":"` + pan + `"}`) }),
		"outbox.lease_owner": func() error {
			_, err := s.ClaimOutbox(c, pan, 1, time.Minute)
			return err
		},
		"reversals.lease_owner": func() error {
			_, err := s.LeaseReversals(c, pan, 1, time.Minute)
			return err
		},
		"reversals.lease_owner (intent)": rev(func(r *Reversal) { r.LeaseOwner, r.LeaseUntil = pan, time.Now() }),
		"reversals.reason (release)": func() error {
			return s.ReleaseReversal(c, "000001-1206101500", "node-a", pan, time.Now())
		},
		"counters.name": func() error {
			_, err := s.AdvanceCounter(c, "stan/"+pan, 1, 0)
			return err
		},
		"reversals.orig_mti":     rev(func(r *Reversal) { r.OrigMTI = pan }),
		"reversals.stan":         rev(func(r *Reversal) { r.STAN = pan }),
		"reversals.rrn":          rev(func(r *Reversal) { r.RRN = pan }),
		"reversals.transmission": rev(func(r *Reversal) { r.Transmission = pan }),
		"reversals.local_time":   rev(func(r *Reversal) { r.LocalTime = pan }),
		"reversals.local_date":   rev(func(r *Reversal) { r.LocalDate = pan }),
		"reversals.proc_code":    rev(func(r *Reversal) { r.ProcCode = pan }),
		"reversals.amount":       rev(func(r *Reversal) { r.Amount = amount }),
		"reversals.currency":     rev(func(r *Reversal) { r.Currency = pan }),
		"reversals.terminal":     rev(func(r *Reversal) { r.Terminal = pan }),
		"reversals.merchant":     rev(func(r *Reversal) { r.Merchant = pan }),
		"reversals.reference":    rev(func(r *Reversal) { r.Reference = "order " + pan }),
		"reversals.reason":       rev(func(r *Reversal) { r.Reason = pan }),
		"reversals.rev_stan":     rev(func(r *Reversal) { r.RevSTAN = pan }),
	}
	for column, try := range refused {
		if err := try(); !errors.Is(err, ErrCardData) && !errors.Is(err, ErrInvalid) {
			t.Errorf("%s took a card number (%q): %v", column, pan, err)
		}
	}

	// Taken, as digests or masked.
	i, err := s.BeginIdempotent(c, IdempotencyClaim{Key: pan, Fingerprint: fp[:], TTL: time.Hour})
	if err != nil || i.State != IdemNew {
		t.Fatalf("idempotency key: %+v %v", i, err)
	}
	if err := s.FinishIdempotent(c, pan, i.Claim, IdempotentResponse{Status: 201}); err != nil {
		t.Fatal(err)
	}
	if err := s.RevokeToken(c, pan, time.Now().Add(time.Hour)); err != nil {
		t.Fatal(err)
	}
	if ok, err := s.TokenRevoked(c, pan); err != nil || !ok {
		t.Fatalf("revoked token not found by its digest: %v %v", ok, err)
	}
	offers++
	id := "evt_pay-3_" + strconv.Itoa(offers)
	if _, err := s.EnqueueOutbox(c, testEvent(id)); err != nil {
		t.Fatal(err)
	}
	if _, err := s.ClaimOutbox(c, "node-a", 10, time.Minute); err != nil {
		t.Fatal(err)
	}
	e, err := s.MarkFailed(c, id, "node-a", DeliveryFailure{Status: 500, Error: "receiver echoed " + pan})
	if err != nil {
		t.Fatal(err)
	}
	if strings.Contains(e.LastError, pan) {
		t.Errorf("failure text kept %q", e.LastError)
	}
}

// onDisk returns the database as stored: the SQLite files, or a pg_dump.
func onDisk(t *testing.T, s *Store, cfg Config) []byte {
	t.Helper()
	if s.Driver() == DriverSQLite {
		return sqliteFiles(t, cfg.SQLite.Path)
	}
	u, err := url.Parse(cfg.Postgres.URL)
	if err != nil {
		t.Fatal(err)
	}
	dump, err := pgServer(t).Dump(strings.TrimPrefix(u.Path, "/"))
	if err != nil {
		t.Fatal(err)
	}
	if !bytes.Contains(dump, []byte("CREATE TABLE public.payments")) {
		t.Fatal("the dump lacks the payments table")
	}
	return dump
}

// sqliteFiles returns the database file, its -wal and -shm, one after the
// other.
func sqliteFiles(t *testing.T, path string) []byte {
	t.Helper()
	var all []byte
	for _, suffix := range []string{"", "-wal", "-shm"} {
		b, err := os.ReadFile(path + suffix)
		if errors.Is(err, os.ErrNotExist) && suffix != "" {
			continue // gone after a clean close
		}
		if err != nil {
			t.Fatal(err)
		}
		all = append(all, b...)
		all = append(all, 0) // no match across two files
	}
	return all
}

func search(b []byte) []string {
	var found []string
	for _, pan := range testCards {
		for _, form := range cardForms(pan) {
			if bytes.Contains(b, []byte(form)) {
				found = append(found, form)
			}
		}
	}
	return found
}

func slicesContains(s []string, v string) bool {
	for _, x := range s {
		if x == v {
			return true
		}
	}
	return false
}
