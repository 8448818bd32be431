package vaultserver

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"os"
	"strconv"
	"syscall"
	"testing"
	"time"

	"github.com/hashicorp/vault/api"
)

// Cluster is a Vault HA cluster on loopback: n servers with integrated
// storage (Raft), the first initialised and the others joined to it, all
// unsealed with the one key.
type Cluster struct {
	Nodes     []*Server
	RootToken string
}

// StartCluster starts n persistent servers as one Raft cluster and waits
// until one is active and every other is a standby. They stop when the
// test ends.
func StartCluster(t testing.TB, n int) *Cluster {
	t.Helper()
	bin, err := Binary()
	if err != nil {
		if os.Getenv(EnvRequireTools) == "1" {
			t.Fatalf("vaultserver: %v", err)
		}
		t.Skipf("vaultserver: %v (set %s=1 to fail instead of skipping)", err, EnvRequireTools)
	}
	c := &Cluster{}
	var leader string
	for i := range n {
		opts := Options{Persistent: true, nodeID: "vault-" + strconv.Itoa(i+1)}
		if i > 0 {
			opts.joins = []string{leader}
		}
		s := &Server{t: t, bin: bin, opts: opts, dir: t.TempDir()}
		t.Cleanup(s.Stop)
		var lastErr error
		for attempt := 0; attempt < 5; attempt++ {
			if s.port, lastErr = freePortPair(); lastErr != nil {
				continue
			}
			if lastErr = s.start(); lastErr == nil {
				break
			}
			s.Stop()
		}
		if lastErr != nil {
			t.Fatalf("vaultserver: node %d: %v\n%s", i+1, lastErr, s.Log())
		}
		if i == 0 {
			if err := s.initAndUnseal(); err != nil {
				t.Fatalf("vaultserver: node 1: %v\n%s", err, s.Log())
			}
			leader, c.RootToken = s.Addr, s.RootToken
			// Autopilot makes a joined node a voter once it has been
			// healthy this long (10 s by default).
			if _, err := s.Client.Logical().Write("sys/storage/raft/autopilot/configuration", map[string]any{"server_stabilization_time": "1s"}); err != nil {
				t.Fatalf("vaultserver: autopilot: %v", err)
			}
		} else {
			s.unsealKey, s.RootToken = c.Nodes[0].unsealKey, c.RootToken
			s.Client.SetToken(c.RootToken)
			if err := s.unsealStandby(); err != nil {
				t.Fatalf("vaultserver: node %d: %v\n%s", i+1, err, s.Log())
			}
		}
		c.Nodes = append(c.Nodes, s)
	}
	if err := c.waitVoters(n); err != nil {
		t.Fatalf("vaultserver: %v", err)
	}
	return c
}

// waitVoters waits until the Raft configuration has n voters: a joined
// node only votes once autopilot has promoted it, and a cluster whose
// leader dies before then cannot elect another.
func (c *Cluster) waitVoters(n int) error {
	deadline := time.Now().Add(startTimeout)
	for time.Now().Before(deadline) {
		if i := c.Active(); i >= 0 {
			s, err := c.Nodes[i].Client.Logical().Read("sys/storage/raft/configuration")
			if err == nil && s != nil {
				cfg, _ := s.Data["config"].(map[string]any)
				servers, _ := cfg["servers"].([]any)
				voters := 0
				for _, sv := range servers {
					if m, _ := sv.(map[string]any); m["voter"] == true {
						voters++
					}
				}
				if voters == n {
					return nil
				}
			}
		}
		time.Sleep(200 * time.Millisecond)
	}
	return fmt.Errorf("the raft cluster does not have %d voters within %v", n, startTimeout)
}

// Addrs are the nodes' addresses, in order.
func (c *Cluster) Addrs() []string {
	out := make([]string, len(c.Nodes))
	for i, s := range c.Nodes {
		out[i] = s.Addr
	}
	return out
}

// Active is the index of the node that answers health as active, or -1.
func (c *Cluster) Active() int {
	hc := &http.Client{Timeout: time.Second}
	for i, s := range c.Nodes {
		resp, err := hc.Head(s.Addr + "/v1/sys/health")
		if err != nil {
			continue
		}
		resp.Body.Close()
		if resp.StatusCode == http.StatusOK {
			return i
		}
	}
	return -1
}

// WaitActive waits up to d for a node to be active and returns it.
func (c *Cluster) WaitActive(d time.Duration) (int, error) {
	deadline := time.Now().Add(d)
	for time.Now().Before(deadline) {
		if i := c.Active(); i >= 0 {
			return i, nil
		}
		time.Sleep(100 * time.Millisecond)
	}
	return -1, fmt.Errorf("vaultserver: no active node within %v", d)
}

// Kill ends node i with SIGKILL: no step-down, no goodbye to its peers.
func (c *Cluster) Kill(i int) {
	s := c.Nodes[i]
	s.mu.Lock()
	cmd, done, logf := s.cmd, s.done, s.log
	s.cmd, s.done, s.log = nil, nil, nil
	s.mu.Unlock()
	if cmd == nil {
		return
	}
	_ = cmd.Process.Signal(syscall.SIGKILL)
	<-done
	_ = logf.Close()
}

// Restart starts node i again (after Kill or Stop) and unseals it; it
// comes back as a standby.
func (c *Cluster) Restart(i int) error {
	s := c.Nodes[i]
	if err := s.start(); err != nil {
		return err
	}
	return s.unsealStandby()
}

// unsealStandby unseals a node that joins (or rejoins) a cluster and
// waits until it is a standby or the active node.
func (s *Server) unsealStandby() error {
	ctx, cancel := context.WithTimeout(context.Background(), startTimeout)
	defer cancel()
	for ctx.Err() == nil {
		st, err := s.Client.Sys().UnsealWithContext(ctx, s.unsealKey)
		if err == nil && !st.Sealed {
			break
		}
		// Not joined yet (retry_join runs on its own schedule): again.
		time.Sleep(200 * time.Millisecond)
	}
	for ctx.Err() == nil {
		resp, err := http.Head(s.Addr + "/v1/sys/health")
		if err == nil {
			resp.Body.Close()
			if resp.StatusCode == http.StatusOK || resp.StatusCode == http.StatusTooManyRequests {
				return nil
			}
		}
		time.Sleep(100 * time.Millisecond)
	}
	return errors.New("not a standby within the start timeout")
}

// Client is a root client of node i.
func (c *Cluster) Client(i int) *api.Client { return c.Nodes[i].Client }
