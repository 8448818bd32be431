package store

import (
	"crypto/sha256"
	"errors"
	"testing"
	"time"
)

func TestIdempotency(t *testing.T) {
	fpA := sha256.Sum256([]byte("call-1 {amount:100}"))
	fpB := sha256.Sum256([]byte("call-1 {amount:200}"))
	claimA := IdempotencyClaim{Key: "crm:key-1", Fingerprint: fpA[:], TTL: 24 * time.Hour}
	claimB := claimA
	claimB.Fingerprint = fpB[:]
	resp := IdempotentResponse{Status: 201, Body: []byte(`{"id":"pay-1"}`), Location: "/v1/payments/pay-1"}

	each(t, func(t *testing.T, s *Store, clk *clock) {
		c := ctx(t)
		begin := func(cl IdempotencyClaim, want IdempotencyState) Idempotency {
			t.Helper()
			got, err := s.BeginIdempotent(c, cl)
			if err != nil {
				t.Fatal(err)
			}
			if got.State != want {
				t.Fatalf("state %d, want %d", got.State, want)
			}
			return got
		}
		first := begin(claimA, IdemNew)
		begin(claimA, IdemBusy)
		begin(claimB, IdemMismatch)
		if err := s.FinishIdempotent(c, claimA.Key, first.Claim, resp); err != nil {
			t.Fatal(err)
		}
		replay := begin(claimA, IdemReplay)
		if replay.Response.Status != 201 || string(replay.Response.Body) != string(resp.Body) || replay.Response.Location != resp.Location {
			t.Errorf("replayed %+v", replay.Response)
		}
		begin(claimB, IdemMismatch)
		if err := s.FinishIdempotent(c, claimA.Key, first.Claim, resp); !errors.Is(err, ErrNotLeased) {
			t.Errorf("finishing twice: %v", err)
		}

		// Another key: abandoned, it can be claimed again.
		other := claimA
		other.Key = "crm:key-2"
		o := begin(other, IdemNew)
		if err := s.AbandonIdempotent(c, other.Key, "someone-else"); !errors.Is(err, ErrNotLeased) {
			t.Errorf("abandon with another claim: %v", err)
		}
		if err := s.AbandonIdempotent(c, other.Key, o.Claim); err != nil {
			t.Fatal(err)
		}
		begin(other, IdemNew)

		// After the TTL the key is new again, even for another request.
		clk.Advance(24*time.Hour + time.Second)
		begin(claimB, IdemNew)
		if n, err := s.ExpireIdempotencyKeys(c); err != nil || n != 1 {
			t.Errorf("expired %d keys, %v; want key-2's", n, err)
		}
	})
}

// TestIdempotencyHold: an unfinished claim whose holder crashed is taken
// over after Hold, and the old holder can no longer answer for the key.
func TestIdempotencyHold(t *testing.T) {
	fp := sha256.Sum256([]byte("req"))
	cl := IdempotencyClaim{Key: "k", Fingerprint: fp[:], TTL: time.Hour, Hold: time.Minute}
	each(t, func(t *testing.T, s *Store, clk *clock) {
		c := ctx(t)
		old, err := s.BeginIdempotent(c, cl)
		if err != nil || old.State != IdemNew {
			t.Fatal(old, err)
		}
		clk.Advance(30 * time.Second)
		if got, _ := s.BeginIdempotent(c, cl); got.State != IdemBusy {
			t.Fatalf("within the hold: %d", got.State)
		}
		clk.Advance(31 * time.Second)
		took, err := s.BeginIdempotent(c, cl)
		if err != nil || took.State != IdemNew || took.Claim == old.Claim {
			t.Fatalf("after the hold: %+v %v", took, err)
		}
		if err := s.FinishIdempotent(c, cl.Key, old.Claim, IdempotentResponse{Status: 201}); !errors.Is(err, ErrNotLeased) {
			t.Errorf("the old holder finished: %v", err)
		}
		if err := s.FinishIdempotent(c, cl.Key, took.Claim, IdempotentResponse{Status: 202}); err != nil {
			t.Fatal(err)
		}
		if got, _ := s.BeginIdempotent(c, cl); got.State != IdemReplay || got.Response.Status != 202 {
			t.Errorf("replay %+v", got)
		}
	})
}

func TestIdempotencyRefused(t *testing.T) {
	s := openT(t, backends[0].config(t))
	fp := sha256.Sum256([]byte("req"))
	for _, cl := range []IdempotencyClaim{
		{Key: "", Fingerprint: fp[:], TTL: time.Hour},
		{Key: "k", Fingerprint: fp[:5], TTL: time.Hour},
		{Key: "k", Fingerprint: fp[:], TTL: 0},
	} {
		if _, err := s.BeginIdempotent(ctx(t), cl); !errors.Is(err, ErrInvalid) {
			t.Errorf("%+v: %v, want ErrInvalid", cl, err)
		}
	}
	got, err := s.BeginIdempotent(ctx(t), IdempotencyClaim{Key: "k", Fingerprint: fp[:], TTL: time.Hour})
	if err != nil {
		t.Fatal(err)
	}
	for _, r := range []IdempotentResponse{
		{Status: 201, Body: []byte(`{"description":"4111111111111111"}`)},
		{Status: 201, Location: "/v1/payments/4111111111111111"},
	} {
		if err := s.FinishIdempotent(ctx(t), "k", got.Claim, r); !errors.Is(err, ErrCardData) {
			t.Errorf("answer with a card number: %v, want ErrCardData", err)
		}
	}
	if err := s.FinishIdempotent(ctx(t), "k", got.Claim, IdempotentResponse{Status: 42}); !errors.Is(err, ErrInvalid) {
		t.Errorf("status 42: %v", err)
	}
}

func TestRevocations(t *testing.T) {
	each(t, func(t *testing.T, s *Store, clk *clock) {
		c := ctx(t)
		if err := s.RevokeToken(c, "wt1.abc.def", clk.Now().Add(15*time.Minute)); err != nil {
			t.Fatal(err)
		}
		// Revoking again with an earlier expiry keeps the later one.
		if err := s.RevokeToken(c, "wt1.abc.def", clk.Now().Add(time.Minute)); err != nil {
			t.Fatal(err)
		}
		check := func(tok string, want bool) {
			t.Helper()
			got, err := s.TokenRevoked(c, tok)
			if err != nil || got != want {
				t.Errorf("TokenRevoked(%q) = %v, %v; want %v", tok, got, err, want)
			}
		}
		check("wt1.abc.def", true)
		check("wt1.abc.xyz", false)
		clk.Advance(10 * time.Minute)
		check("wt1.abc.def", true)
		if n, err := s.ExpireRevocations(c); err != nil || n != 0 {
			t.Errorf("expired %d before the token's expiry, %v", n, err)
		}
		clk.Advance(5 * time.Minute)
		check("wt1.abc.def", false)
		if n, err := s.ExpireRevocations(c); err != nil || n != 1 {
			t.Errorf("expired %d, %v; want 1", n, err)
		}
		if err := s.RevokeToken(c, "", clk.Now()); !errors.Is(err, ErrInvalid) {
			t.Errorf("empty token: %v", err)
		}
	})
}
