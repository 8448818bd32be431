package sip

import (
	"context"
	"fmt"
	"strings"

	"github.com/emiago/sipgo/sip"

	"github.com/tonevault/tonevault/agents"
	"github.com/tonevault/tonevault/media"
)

// agentsScheme starts a target that is a pool of browser agents rather
// than a SIP URI: "agents:NAME" (package agents).
const agentsScheme = "agents:"

// Route sends the calls to one called number somewhere else than the
// platform trunk's target (sip.routes).
type Route struct {
	// Callee is the Request-URI user the call arrives with on the
	// carrier trunk, as dialled ("08001234567", "+448001234567").
	Callee string `yaml:"callee"`
	// Target is a SIP URI ({user} as in a trunk's target) or
	// "agents:NAME", a pool of browser agents.
	Target string `yaml:"target"`
}

// AgentPools are the browser agents calls can be routed to; package
// agents' Service is one.
type AgentPools interface {
	// Pool reports whether name is a pool, and its fallback SIP target
	// ("" for none).
	Pool(name string) (fallback string, ok bool)
	// Ring offers the call to the pool's agents and returns the leg of
	// the one whose answer connected (agents.ErrNoAgents,
	// agents.ErrNoAnswer, or ctx's error otherwise).
	Ring(ctx context.Context, pool string, call agents.Call) (agents.Leg, error)
}

// validateTarget checks a target: a SIP URI, or, where pools are
// allowed, "agents:NAME".
func validateTarget(key, target string, tlsOn, pools bool) error {
	if name, ok := strings.CutPrefix(target, agentsScheme); ok {
		if !pools {
			return fmt.Errorf("%s: %q: browser agents are on the platform side only", key, target)
		}
		if !agents.ValidPool(name) {
			return fmt.Errorf("%s: %q: a pool name is 1 to 32 lowercase letters, digits, '-' or '_'", key, target)
		}
		return nil
	}
	var u sip.Uri
	if !strings.HasPrefix(target, "sip:") && !strings.HasPrefix(target, "sips:") {
		return fmt.Errorf("%s: %q is not a sip: or sips: URI, nor agents:NAME", key, target)
	}
	if err := sip.ParseUri(strings.ReplaceAll(target, "{user}", "x"), &u); err != nil || u.Host == "" {
		return fmt.Errorf("%s: %q is not a SIP URI", key, target)
	}
	if transportFor(u) == "TLS" && !tlsOn {
		return fmt.Errorf("%s: %q goes over TLS: add tls to the transports of the trunk it leaves on", key, target)
	}
	return nil
}

// poolsNamed are the pools the configuration routes calls to.
func (c Config) poolsNamed() []string {
	var out []string
	for _, t := range append([]string{c.Trunks.Platform.Target}, routeTargets(c.Routes)...) {
		if name, ok := strings.CutPrefix(t, agentsScheme); ok {
			out = append(out, name)
		}
	}
	return out
}

func routeTargets(rs []Route) []string {
	out := make([]string, len(rs))
	for i, r := range rs {
		out[i] = r.Target
	}
	return out
}

// checkPools makes sure every pool the configuration names exists.
func (g *Gateway) checkPools() error {
	for _, name := range g.cfg.poolsNamed() {
		if g.agents == nil {
			return fmt.Errorf("sip: target agents:%s, but the gateway has no browser agents", name)
		}
		if _, ok := g.agents.Pool(name); !ok {
			return fmt.Errorf("sip: target agents:%s: no such pool in agents.pools", name)
		}
	}
	return nil
}

// route picks where a new call leaving on trunk out goes: a pool of
// browser agents (pool not ""), with uris its fallback SIP target, or a
// placeholder that is never sent when it has none; or SIP targets, the
// trunk's own with its failover list. A call from the carrier first looks
// up its called number in sip.routes.
func (g *Gateway) route(out *trunk, req *sip.Request) (pool string, uris []sip.Uri, err error) {
	tmpl := out.cfg.Target
	if out.leg == media.Platform {
		for _, r := range g.cfg.Routes {
			if r.Callee == req.Recipient.User {
				tmpl = r.Target
				break
			}
		}
	}
	name, isPool := strings.CutPrefix(tmpl, agentsScheme)
	if !isPool {
		if tmpl == out.cfg.Target {
			uris, err = out.targets(req.Recipient.User)
			return "", uris, err
		}
		u, err := resolveTarget(tmpl, req)
		return "", []sip.Uri{u}, err
	}
	if g.agents == nil {
		return "", nil, fmt.Errorf("sip: no browser agents for pool %q", name)
	}
	fallback, ok := g.agents.Pool(name)
	if !ok {
		return "", nil, fmt.Errorf("sip: no pool %q", name)
	}
	if fallback == "" {
		return name, []sip.Uri{{Scheme: "sip", User: "agents", Host: out.addr.Addr().String(), Port: int(out.addr.Port())}}, nil
	}
	u, err := resolveTarget(fallback, req)
	return name, []sip.Uri{u}, err
}

// resolveTarget is a target URI with {user} replaced, as trunk.target
// does for the trunk's own.
func resolveTarget(tmpl string, req *sip.Request) (sip.Uri, error) {
	user := req.Recipient.User
	if strings.Contains(tmpl, "{user}") && !safeUser(user) {
		return sip.Uri{}, fmt.Errorf("sip: Request-URI user %q cannot be routed", user)
	}
	var u sip.Uri
	s := strings.ReplaceAll(tmpl, "{user}", user)
	if err := sip.ParseUri(s, &u); err != nil {
		return sip.Uri{}, fmt.Errorf("sip: target %q: %w", s, err)
	}
	return u, nil
}
