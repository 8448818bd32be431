package callertest

import (
	"context"
	"net"
	"net/netip"
	"strings"
	"sync"
	"testing"

	"golang.org/x/net/dns/dnsmessage"
)

// SRV is one SRV record of a DNS zone.
type SRV struct {
	Priority, Weight, Port uint16
	Target                 string // a host name of the zone
}

// Zone is what a DNS server of a test answers: SRV records by their full
// name ("_sip._udp.agents.test") and addresses by host name. Names are
// written without the final dot.
type Zone struct {
	SRV   map[string][]SRV
	Hosts map[string][]netip.Addr
}

// DNS is an authoritative DNS server on a loopback UDP port that answers
// from a Zone, so that a test can resolve names without any other DNS.
type DNS struct {
	conn *net.UDPConn
	zone Zone

	mu      sync.Mutex
	queries []string // "SRV _sip._udp.agents.test", "A live.agents.test", ...
}

// NewDNS starts a DNS server for zone; it stops when the test ends.
func NewDNS(t testing.TB, zone Zone) *DNS {
	t.Helper()
	c, err := net.ListenUDP("udp", &net.UDPAddr{IP: net.IPv4(127, 0, 0, 1)})
	if err != nil {
		t.Fatal(err)
	}
	d := &DNS{conn: c, zone: zone}
	done := make(chan struct{})
	go func() {
		defer close(done)
		buf := make([]byte, 1500)
		for {
			n, from, err := c.ReadFromUDPAddrPort(buf)
			if err != nil {
				return
			}
			if out, ok := d.answer(buf[:n]); ok {
				_, _ = c.WriteToUDPAddrPort(out, from)
			}
		}
	}()
	t.Cleanup(func() { c.Close(); <-done })
	return d
}

// Resolver is a resolver that asks this server only.
func (d *DNS) Resolver() *net.Resolver {
	addr := d.conn.LocalAddr().String()
	return &net.Resolver{PreferGo: true, Dial: func(ctx context.Context, _, _ string) (net.Conn, error) {
		var dl net.Dialer
		return dl.DialContext(ctx, "udp", addr)
	}}
}

// Queries are the questions asked so far, as "TYPE name".
func (d *DNS) Queries() []string {
	d.mu.Lock()
	defer d.mu.Unlock()
	return append([]string(nil), d.queries...)
}

func (d *DNS) answer(msg []byte) ([]byte, bool) {
	var p dnsmessage.Parser
	h, err := p.Start(msg)
	if err != nil {
		return nil, false
	}
	q, err := p.Question()
	if err != nil {
		return nil, false
	}
	name := strings.TrimSuffix(strings.ToLower(q.Name.String()), ".")
	d.mu.Lock()
	d.queries = append(d.queries, strings.TrimPrefix(q.Type.String(), "Type")+" "+name)
	d.mu.Unlock()
	_, hostKnown := d.zone.Hosts[name]
	srvs, srvKnown := d.zone.SRV[name]
	rh := dnsmessage.Header{ID: h.ID, Response: true, Authoritative: true, RecursionDesired: h.RecursionDesired}
	if !hostKnown && !srvKnown {
		rh.RCode = dnsmessage.RCodeNameError
	}
	b := dnsmessage.NewBuilder(nil, rh)
	b.EnableCompression()
	if b.StartQuestions() != nil || b.Question(q) != nil || b.StartAnswers() != nil {
		return nil, false
	}
	rr := dnsmessage.ResourceHeader{Name: q.Name, Class: dnsmessage.ClassINET, TTL: 5}
	switch q.Type {
	case dnsmessage.TypeSRV:
		for _, s := range srvs {
			target, err := dnsmessage.NewName(s.Target + ".")
			if err != nil {
				return nil, false
			}
			if b.SRVResource(rr, dnsmessage.SRVResource{Priority: s.Priority, Weight: s.Weight, Port: s.Port, Target: target}) != nil {
				return nil, false
			}
		}
	case dnsmessage.TypeA, dnsmessage.TypeAAAA:
		for _, a := range d.zone.Hosts[name] {
			switch {
			case q.Type == dnsmessage.TypeA && a.Is4():
				if b.AResource(rr, dnsmessage.AResource{A: a.As4()}) != nil {
					return nil, false
				}
			case q.Type == dnsmessage.TypeAAAA && a.Is6():
				if b.AAAAResource(rr, dnsmessage.AAAAResource{AAAA: a.As16()}) != nil {
					return nil, false
				}
			}
		}
	}
	out, err := b.Finish()
	return out, err == nil
}
