package cluster

import (
	"errors"
	"fmt"
	"net"
	"strconv"
	"time"
)

// Config is the "cluster:" section of the configuration. The zero Node
// is one gateway alone: no peers, no peer listener, call ids without a
// node name.
type Config struct {
	// Node is this gateway's name: 1 to 32 lowercase letters, digits, '-'
	// or '_', starting with a letter. It names the gateway's calls
	// (c-NODE-...), so that any node routes a call's commands to the node
	// holding it, and its payments in the store. Keep it stable across
	// restarts: a node restarting ends the live payments left under its
	// name.
	Node string `yaml:"node"`
	// Listen is the host:port of the listener for peers: the API over
	// mutual TLS, for the requests other nodes forward, and their health
	// probes.
	Listen string `yaml:"listen"`
	// Peers are the other nodes.
	Peers []Peer `yaml:"peers"`
	// CertFile and KeyFile are this node's certificate (PEM), which must
	// name Node (a DNS name in its SAN) and be signed by CAFile; peers
	// refuse any other. CAFile is the CA that signs every node's.
	CertFile string `yaml:"cert_file"`
	KeyFile  string `yaml:"key_file"`
	CAFile   string `yaml:"ca_file"`
	// ProbeInterval is how often each peer's health is asked.
	ProbeInterval time.Duration `yaml:"probe_interval"`
	// DeadAfter is how long a peer may go unanswered before it is taken
	// for dead: its live payments are then ended (failed,
	// gateway_restarted) by a surviving node. Its reversals need nothing:
	// any node sends them once their lease runs out (psp).
	DeadAfter time.Duration `yaml:"dead_after"`
}

// Peer is another node of the cluster.
type Peer struct {
	Name string `yaml:"name"` // its Config.Node
	Addr string `yaml:"addr"` // its Config.Listen, as this node reaches it
}

// DefaultConfig is one gateway alone.
func DefaultConfig() Config {
	return Config{ProbeInterval: time.Second, DeadAfter: 5 * time.Second}
}

// Enabled reports whether this gateway is a node of a cluster.
func (c Config) Enabled() bool { return c.Node != "" }

// maxNode bounds a node name: a call id (at most 64 characters) holds it
// beside "c-", "-" and 16 random characters.
const maxNode = 32

// ValidNode reports whether s can name a node.
func ValidNode(s string) bool {
	if len(s) == 0 || len(s) > maxNode || s[0] < 'a' || s[0] > 'z' {
		return false
	}
	digits := 0
	for i := 0; i < len(s); i++ {
		c := s[i]
		switch {
		case c >= '0' && c <= '9':
			// An id never holds 12 digits in a row (audit.ValidID): the
			// operational log would take them for a card number.
			if digits++; digits > 6 {
				return false
			}
			continue
		case c >= 'a' && c <= 'z', c == '-', c == '_':
		default:
			return false
		}
		digits = 0
	}
	return true
}

// Validate reports the first problem, naming its key.
func (c Config) Validate() error {
	if c.ProbeInterval < 100*time.Millisecond || c.ProbeInterval > time.Minute {
		return fmt.Errorf("cluster.probe_interval %v: want 100ms to 1m", c.ProbeInterval)
	}
	if c.DeadAfter < 2*c.ProbeInterval {
		return fmt.Errorf("cluster.dead_after %v: want at least two probe intervals (%v)", c.DeadAfter, 2*c.ProbeInterval)
	}
	if !c.Enabled() {
		if len(c.Peers) > 0 || c.Listen != "" {
			return errors.New("cluster.node: a node of a cluster needs a name (cluster.peers or cluster.listen are set)")
		}
		return nil
	}
	if !ValidNode(c.Node) {
		return fmt.Errorf("cluster.node %q: want 1 to %d lowercase letters, digits, '-' or '_', starting with a letter (at most 6 digits in a row)", c.Node, maxNode)
	}
	if err := hostPort(c.Listen); err != nil {
		return fmt.Errorf("cluster.listen %q: %v", c.Listen, err)
	}
	for k, v := range map[string]string{"cert_file": c.CertFile, "key_file": c.KeyFile, "ca_file": c.CAFile} {
		if v == "" {
			return fmt.Errorf("cluster.%s: required for a node of a cluster (peers talk over mutual TLS)", k)
		}
	}
	seen := map[string]bool{c.Node: true}
	for i, p := range c.Peers {
		if !ValidNode(p.Name) {
			return fmt.Errorf("cluster.peers[%d].name %q: not a node name", i, p.Name)
		}
		if seen[p.Name] {
			return fmt.Errorf("cluster.peers[%d].name %q: given twice (or this node's own)", i, p.Name)
		}
		seen[p.Name] = true
		if err := hostPort(p.Addr); err != nil {
			return fmt.Errorf("cluster.peers[%d].addr %q: %v", i, p.Addr, err)
		}
	}
	return nil
}

func hostPort(s string) error {
	host, port, err := net.SplitHostPort(s)
	if err != nil {
		return errors.New("want host:port")
	}
	if host == "" {
		return errors.New("want a host: a node listening on every address is reached on none in particular")
	}
	if n, err := strconv.Atoi(port); err != nil || n <= 0 || n > 65535 {
		return errors.New("want a port from 1 to 65535")
	}
	return nil
}

// Peer returns the peer named node.
func (c Config) Peer(node string) (Peer, bool) {
	for _, p := range c.Peers {
		if p.Name == node {
			return p, true
		}
	}
	return Peer{}, false
}
