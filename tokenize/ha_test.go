package tokenize

import (
	"context"
	"net/http"
	"net/http/httptest"
	"sync/atomic"
	"testing"
	"time"

	"github.com/hashicorp/vault/api"
	"go.uber.org/zap"
)

// fakeNode answers sys/health with the status it is set to.
func fakeNode(t *testing.T, status *atomic.Int32) *httptest.Server {
	t.Helper()
	s := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.URL.Path != "/v1/sys/health" {
			http.NotFound(w, r)
			return
		}
		w.WriteHeader(int(status.Load()))
	}))
	t.Cleanup(s.Close)
	return s
}

func TestFollowerFindsActiveNode(t *testing.T) {
	var sa, sb, sc atomic.Int32
	sa.Store(200)
	sb.Store(429)
	sc.Store(429)
	a, b, c := fakeNode(t, &sa), fakeNode(t, &sb), fakeNode(t, &sc)
	cfg := api.DefaultConfig()
	cfg.Address = a.URL
	client, err := api.NewClient(cfg)
	if err != nil {
		t.Fatal(err)
	}
	f := newFollower([]string{a.URL, b.URL, c.URL}, client, http.DefaultClient, zap.NewNop())
	step := func(want string) {
		t.Helper()
		f.last = time.Time{} // no spacing between the steps of this test
		f.unavailable(context.Background())
		if got := client.Address(); got != want {
			t.Fatalf("client at %s, want %s", got, want)
		}
	}
	// The active node answers: the client stays.
	step(a.URL)
	// a killed, election under way: b and c are standbys; move to one, which forwards once a leader is elected.
	a.Close()
	step(b.URL)
	// c elected.
	sc.Store(200)
	step(c.URL)
	// Nothing answers: the client stays where it was.
	sb.Store(503)
	sc.Store(503)
	step(c.URL)
	// Searches are spaced out.
	sb.Store(200)
	f.last = time.Now()
	f.unavailable(context.Background())
	if client.Address() != c.URL {
		t.Fatal("searched again at once")
	}
}

func TestValidateAddresses(t *testing.T) {
	c := DefaultConfig()
	c.Addresses = []string{"http://127.0.0.1:8200", "https://vault-2.example:8200"}
	if err := c.Validate(); err != nil {
		t.Fatal(err)
	}
	c.Addresses = []string{"127.0.0.1:8200"}
	if err := c.Validate(); err == nil {
		t.Fatal("an address without a scheme was taken")
	}
}
