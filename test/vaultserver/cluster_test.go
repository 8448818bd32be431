package vaultserver

import (
	"context"
	"testing"
	"time"

	"github.com/hashicorp/vault/api"
)

// TestClusterFailover: three Raft nodes; the active one killed, another
// takes over with the data written before.
func TestClusterFailover(t *testing.T) {
	c := StartCluster(t, 3)
	first, err := c.WaitActive(30 * time.Second)
	if err != nil {
		t.Fatal(err)
	}
	ctx := context.Background()
	cl := c.Client(first)
	if err := cl.Sys().MountWithContext(ctx, "kv", &api.MountInput{Type: "kv"}); err != nil {
		t.Fatal(err)
	}
	if _, err := cl.Logical().WriteWithContext(ctx, "kv/probe", map[string]any{"v": "kept"}); err != nil {
		t.Fatal(err)
	}
	c.Kill(first)
	next, err := c.WaitActive(30 * time.Second)
	if err != nil {
		for i, n := range c.Nodes {
			if i != first {
				t.Logf("node %d:\n%s", i, n.Log())
			}
		}
		t.Fatal(err)
	}
	if next == first {
		t.Fatal("the killed node is still active")
	}
	s, err := c.Client(next).Logical().ReadWithContext(ctx, "kv/probe")
	if err != nil || s == nil || s.Data["v"] != "kept" {
		t.Fatalf("read after failover: %v %v", s, err)
	}
	if err := c.Restart(first); err != nil {
		t.Fatalf("restart: %v\n%s", err, c.Nodes[first].Log())
	}
}
