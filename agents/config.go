package agents

import (
	"fmt"
	"maps"
	"regexp"
	"slices"
	"strings"
	"time"
)

// Config is the "agents:" section of configs/tonevault.yaml: the pools of
// browser agents that calls can be routed to (sip.trunks.platform.target
// or a sip.routes entry of "agents:NAME").
type Config struct {
	Pools map[string]PoolConfig `yaml:"pools"`
}

// PoolConfig is one pool.
type PoolConfig struct {
	// RingTimeout is how long a call rings the pool's agents before the
	// caller gets 480 or the fallback (default 30s).
	RingTimeout time.Duration `yaml:"ring_timeout"`
	// Fallback is a SIP URI the call goes to instead when no agent is
	// signed in and available, or none answers in time ("": 480).
	Fallback string `yaml:"fallback"`
}

// DefaultRingTimeout is a pool's ring timeout when it sets none.
const DefaultRingTimeout = 30 * time.Second

// DefaultConfig has one pool, "default", without fallback.
func DefaultConfig() Config {
	return Config{Pools: map[string]PoolConfig{"default": {RingTimeout: DefaultRingTimeout}}}
}

// poolName is a pool's name: what follows "agents:" in a target, and what
// agent tokens list.
var poolName = regexp.MustCompile(`^[a-z0-9][a-z0-9_-]{0,31}$`)

// ValidPool reports whether s may name a pool.
func ValidPool(s string) bool { return poolName.MatchString(s) }

// Validate reports a setting that cannot work, naming its key.
func (c Config) Validate() error {
	for _, name := range slices.Sorted(maps.Keys(c.Pools)) {
		p := c.Pools[name]
		key := "agents.pools." + name
		if !ValidPool(name) {
			return fmt.Errorf("%s: a pool name is 1 to 32 lowercase letters, digits, '-' or '_'", key)
		}
		if p.RingTimeout < 0 {
			return fmt.Errorf("%s.ring_timeout: negative", key)
		}
		if p.Fallback != "" && !strings.HasPrefix(p.Fallback, "sip:") && !strings.HasPrefix(p.Fallback, "sips:") {
			return fmt.Errorf("%s.fallback: %q is not a sip: or sips: URI", key, p.Fallback)
		}
	}
	return nil
}
