package tokenize

import (
	"context"
	"net/http"
	"net/url"
	"sync"
	"time"

	"github.com/hashicorp/vault/api"
	"go.uber.org/zap"
)

// follower keeps the client on the active node of a Vault HA cluster
// (integrated storage, Raft), whose every address the configuration
// lists (Config.Addresses). A standby would forward requests to the
// active node, but only while it knows one, and at the cost of a hop:
// when a call finds Vault unavailable, the follower asks each address's
// health (sys/health: 200 on the active node, 429 on a standby) and moves
// the client to the active one, so that the call's next try goes there.
// While a new active node is being elected none answers 200, and the
// tries (Config.Retries, with backoff) wait for one.
type follower struct {
	addrs  []string
	client *api.Client
	hc     *http.Client
	log    *zap.Logger

	mu      sync.Mutex
	current string
	last    time.Time // of the last search, which is not repeated within minSearch
}

// minSearch spaces searches out: a hundred calls failing at once search
// once.
const minSearch = 200 * time.Millisecond

func newFollower(addrs []string, client *api.Client, hc *http.Client, log *zap.Logger) *follower {
	return &follower{addrs: addrs, client: client, hc: hc, log: log, current: client.Address()}
}

// unavailable is called after a try found Vault unavailable: it looks for
// the active node and, when it is another, moves the client there.
func (f *follower) unavailable(ctx context.Context) {
	f.mu.Lock()
	defer f.mu.Unlock()
	if time.Since(f.last) < minSearch {
		return
	}
	f.last = time.Now()
	active, standby := f.search(ctx)
	next := active
	if next == "" {
		// No active node yet: a standby forwards once one is elected.
		next = standby
	}
	if next == "" || next == f.current {
		return
	}
	if err := f.client.SetAddress(next); err != nil {
		return
	}
	f.log.Info("vault: following the active node", zap.String("from", f.current), zap.String("to", next), zap.Bool("active", active != ""))
	f.current = next
}

// search asks every address's health at once; it returns the active
// node's address and an unsealed standby's, either "" when none answered
// so.
func (f *follower) search(ctx context.Context) (active, standby string) {
	ctx, cancel := context.WithTimeout(ctx, time.Second)
	defer cancel()
	codes := make([]int, len(f.addrs))
	var wg sync.WaitGroup
	for i, a := range f.addrs {
		wg.Add(1)
		go func() {
			defer wg.Done()
			codes[i] = f.health(ctx, a)
		}()
	}
	wg.Wait()
	for i, c := range codes {
		switch c {
		case http.StatusOK:
			if active == "" {
				active = f.addrs[i]
			}
		case http.StatusTooManyRequests:
			if standby == "" {
				standby = f.addrs[i]
			}
		}
	}
	return active, standby
}

// health is the status of addr's sys/health (unauthenticated), 0 when it
// does not answer.
func (f *follower) health(ctx context.Context, addr string) int {
	u, err := url.JoinPath(addr, "/v1/sys/health")
	if err != nil {
		return 0
	}
	req, err := http.NewRequestWithContext(ctx, http.MethodHead, u, nil)
	if err != nil {
		return 0
	}
	resp, err := f.hc.Do(req)
	if err != nil {
		return 0
	}
	resp.Body.Close()
	return resp.StatusCode
}
