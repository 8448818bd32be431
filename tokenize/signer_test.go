package tokenize

import (
	"bytes"
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/tonevault/tonevault/audit"
	"github.com/tonevault/tonevault/test/vaultserver"
)

// TestTransitSignerAudit writes an audit trail whose checkpoints are signed
// by Vault transit (as the gateway, policy-only token) and verifies it end
// to end, also after the signing key is rotated.
func TestTransitSignerAudit(t *testing.T) {
	e := newEnv(t, vaultserver.Options{}, nil)
	ctx := testCtx(t)
	s, err := NewTransitSigner(e.v.Client(), e.cfg.Transit.Mount, e.cfg.Transit.SigningKey)
	if err != nil {
		t.Fatal(err)
	}
	path := filepath.Join(t.TempDir(), "audit.jsonl")
	w, err := audit.Open(ctx, path, audit.Options{Signer: s, CheckpointEvery: 3})
	if err != nil {
		t.Fatal(err)
	}
	for i := 0; i < 7; i++ {
		if _, err := w.Append(ctx, audit.Record{Actor: "system", Event: audit.EventTokenizationResult,
			Outcome: audit.Success, MaskedPAN: "411111******1111"}); err != nil {
			t.Fatal(err)
		}
	}
	if err := w.Close(ctx); err != nil {
		t.Fatal(err)
	}
	data, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	sum, err := audit.Verify(ctx, bytes.NewReader(data), s)
	if err != nil {
		t.Fatalf("Verify: %v", err)
	}
	t.Logf("verified: %+v", sum)
	if !strings.Contains(string(data), `"key_id":"`+s.KeyID()+`"`) || !strings.Contains(string(data), `"sig":"vault:v1:`) {
		t.Fatal("checkpoints not signed by the transit key")
	}

	// The key rotates; the old checkpoints still verify, new ones use v2.
	if _, err := e.srv.Client.Logical().Write(e.cfg.Transit.Mount+"/keys/"+e.cfg.Transit.SigningKey+"/rotate", nil); err != nil {
		t.Fatal(err)
	}
	w, err = audit.Open(ctx, path, audit.Options{Signer: s})
	if err != nil {
		t.Fatalf("reopen after rotation: %v", err)
	}
	if err := w.Close(ctx); err != nil {
		t.Fatal(err)
	}
	data, _ = os.ReadFile(path)
	if _, err := audit.Verify(ctx, bytes.NewReader(data), s); err != nil {
		t.Fatalf("Verify after rotation: %v", err)
	}
	if !strings.Contains(string(data), `"sig":"vault:v2:`) {
		t.Fatal("no checkpoint signed with key version 2")
	}

	// A changed signature, another key id, a forged file.
	sig, _, err := s.Sign(ctx, []byte("x"))
	if err != nil {
		t.Fatal(err)
	}
	if err := s.Verify(ctx, []byte("y"), sig, s.KeyID()); !errors.Is(err, audit.ErrBadSignature) {
		t.Errorf("Verify of other data: %v, want ErrBadSignature", err)
	}
	if err := s.Verify(ctx, []byte("x"), "vault:v1:AAAA", s.KeyID()); !errors.Is(err, audit.ErrBadSignature) {
		t.Errorf("Verify of a junk signature: %v, want ErrBadSignature", err)
	}
	if err := s.Verify(ctx, []byte("x"), sig, "hmac-1"); !errors.Is(err, audit.ErrUnknownKey) {
		t.Errorf("Verify with another key id: %v, want ErrUnknownKey", err)
	}
	hm, _ := audit.NewHMAC(audit.HMACKey{ID: s.KeyID(), Key: bytes.Repeat([]byte{7}, 32)})
	forged := filepath.Join(t.TempDir(), "forged.jsonl")
	fw, err := audit.Open(ctx, forged, audit.Options{Signer: hm})
	if err != nil {
		t.Fatal(err)
	}
	_ = fw.Close(ctx)
	fdata, _ := os.ReadFile(forged)
	if _, err := audit.Verify(ctx, bytes.NewReader(fdata), s); err == nil {
		t.Fatal("a trail signed with another key under the same key id verified")
	}
}
