package vaultserver

import (
	"testing"

	"github.com/hashicorp/vault/api"
)

func TestDevServer(t *testing.T) {
	s := Start(t)
	if _, err := s.Client.Logical().Write("secret/data/x", map[string]any{"data": map[string]any{"k": "v"}}); err != nil {
		t.Fatal(err)
	}
	h, err := s.Client.Sys().Health()
	if err != nil || h.Sealed || !h.Initialized {
		t.Fatalf("health %+v, %v", h, err)
	}
	s.Stop()
	if _, err := s.Client.Sys().Health(); err == nil {
		t.Fatal("server answers after Stop")
	}
	s.Restart()
	// A dev server comes back empty with the same root token.
	got, err := s.Client.Logical().Read("secret/data/x")
	if err != nil || got != nil {
		t.Fatalf("after restart: %v %v, want empty", got, err)
	}
}

func TestPersistentServer(t *testing.T) {
	s := StartWith(t, Options{Persistent: true})
	if err := s.Client.Sys().Mount("kv", &apiMountKV); err != nil {
		t.Fatal(err)
	}
	if _, err := s.Client.Logical().Write("kv/x", map[string]any{"k": "v"}); err != nil {
		t.Fatal(err)
	}
	s.Restart()
	got, err := s.Client.Logical().Read("kv/x")
	if err != nil || got == nil || got.Data["k"] != "v" {
		t.Fatalf("after restart: %v %v, want the data back", got, err)
	}
}

var apiMountKV = api.MountInput{Type: "kv"}

// TestSealAndKill: a sealed server refuses reads until unsealed; a killed
// one is gone at once and comes back from Restart with its data.
func TestSealAndKill(t *testing.T) {
	s := StartWith(t, Options{Persistent: true})
	if err := s.Client.Sys().Mount("kv", &apiMountKV); err != nil {
		t.Fatal(err)
	}
	if _, err := s.Client.Logical().Write("kv/x", map[string]any{"k": "v"}); err != nil {
		t.Fatal(err)
	}
	s.Seal()
	if h, err := s.Client.Sys().Health(); err != nil || !h.Sealed {
		t.Fatalf("health after Seal: %+v %v, want sealed", h, err)
	}
	if _, err := s.Client.Logical().Read("kv/x"); err == nil {
		t.Fatal("a sealed server answered a read")
	}
	s.Unseal()
	if got, err := s.Client.Logical().Read("kv/x"); err != nil || got == nil || got.Data["k"] != "v" {
		t.Fatalf("after Unseal: %v %v", got, err)
	}
	s.Kill()
	if _, err := s.Client.Sys().Health(); err == nil {
		t.Fatal("server answers after Kill")
	}
	s.Restart()
	if got, err := s.Client.Logical().Read("kv/x"); err != nil || got == nil || got.Data["k"] != "v" {
		t.Fatalf("after Kill and Restart: %v %v, want the data back", got, err)
	}
}
