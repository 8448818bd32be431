package tokenize

import (
	"errors"
	"testing"
	"time"

	"github.com/tonevault/tonevault/test/vaultserver"
)

// TestHAFollowsActiveNode: a 3-node Raft cluster whose active node is
// killed between two tokenizations of one card. A gateway that knows
// every address finds the new active node and gets the same token; one
// that knows only the dead node's address cannot (the control).
func TestHAFollowsActiveNode(t *testing.T) {
	if testing.Short() {
		t.Skip("starts three Vault servers")
	}
	c := vaultserver.StartCluster(t, 3)
	active, err := c.WaitActive(30 * time.Second)
	if err != nil {
		t.Fatal(err)
	}
	e := &env{srv: c.Nodes[active], logs: &syncBuffer{}}
	e.cfg = DefaultConfig()
	e.cfg.Address = c.Nodes[active].Addr
	ctx := testCtx(t)
	if _, err := Setup(ctx, c.Client(active), e.cfg); err != nil {
		t.Fatalf("Setup: %v", err)
	}
	e.cfg.Auth.TokenFile = e.policyTokenFile(t, 0)
	// Election takes a few seconds: enough tries to outlast it.
	e.cfg.Retries, e.cfg.Backoff = MaxRetries, 500*time.Millisecond
	alone := e.gateway(t, e.cfg)
	ha := e.cfg
	ha.Addresses = c.Addrs()
	follows := e.gateway(t, ha)
	t.Cleanup(func() { e.checkNoLeak(t, "4111111111111111", "1230") })

	before, err := follows.Tokenize(ctx, sec("4111111111111111"), sec("1230"), "visa", "m1")
	if err != nil {
		t.Fatal(e.noteErr(err))
	}
	c.Kill(active)
	start := time.Now()
	// One call's retries outlast an election on a quiet machine; on a
	// loaded one the election can take longer, and the agent submits
	// again (a 503 keeps the card): so may the test, for a minute.
	var after Token
	tries := 0
	for {
		tries++
		after, err = follows.Tokenize(ctx, sec("4111111111111111"), sec("1230"), "visa", "m1")
		if err == nil || !errors.Is(err, ErrUnavailable) || time.Since(start) > time.Minute {
			break
		}
	}
	if err != nil {
		t.Fatalf("after the active node died (%d tries): %v", tries, e.noteErr(err))
	}
	t.Logf("tokenized again %v after the kill (%d tries)", time.Since(start).Round(time.Millisecond), tries)
	if after.Value != before.Value {
		t.Errorf("token %q after failover, %q before", after.Value, before.Value)
	}
	if _, err := alone.Tokenize(ctx, sec("4111111111111111"), sec("1230"), "visa", "m1"); !errors.Is(e.noteErr(err), ErrUnavailable) {
		t.Errorf("a gateway on the dead node alone: %v, want ErrUnavailable", err)
	}
}
