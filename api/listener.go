package api

import (
	"net"
	"net/netip"
	"sync"

	"golang.org/x/net/netutil"
)

// LimitListener caps the connections a listener keeps open: at most total
// at once, and at most perIP from one client (an IPv4 address, or an IPv6
// /64, which one host usually has whole). 0 is no cap.
//
// Past total, Accept waits until a connection closes: clients wait in the
// kernel's listen backlog and hold no descriptor of this process, so a
// flood of idle connections cannot take the descriptors that calls need.
// Past perIP, a connection is closed as soon as it is accepted, so that
// one client cannot take every place either. refused, when not nil, is
// told of each connection closed that way.
func LimitListener(ln net.Listener, total, perIP int, refused func(netip.Addr)) net.Listener {
	if total > 0 {
		ln = netutil.LimitListener(ln, total)
	}
	if perIP <= 0 {
		return ln
	}
	return &perIPListener{Listener: ln, max: perIP, open: map[netip.Prefix]int{}, refused: refused}
}

type perIPListener struct {
	net.Listener
	max     int
	refused func(netip.Addr)

	mu   sync.Mutex
	open map[netip.Prefix]int // entries are deleted at zero: the map holds only clients with connections
}

func (l *perIPListener) Accept() (net.Conn, error) {
	for {
		c, err := l.Listener.Accept()
		if err != nil {
			return nil, err
		}
		ap, perr := netip.ParseAddrPort(c.RemoteAddr().String())
		if perr != nil {
			return c, nil // not IP: nothing to count by
		}
		addr := ap.Addr().Unmap()
		key := netip.PrefixFrom(addr, addr.BitLen())
		if addr.Is6() {
			key, _ = addr.Prefix(64)
		}
		l.mu.Lock()
		if l.open[key] >= l.max {
			l.mu.Unlock()
			c.Close()
			if l.refused != nil {
				l.refused(addr)
			}
			continue
		}
		l.open[key]++
		l.mu.Unlock()
		return &countedConn{Conn: c, release: func() { l.release(key) }}, nil
	}
}

func (l *perIPListener) release(key netip.Prefix) {
	l.mu.Lock()
	defer l.mu.Unlock()
	if l.open[key]--; l.open[key] <= 0 {
		delete(l.open, key)
	}
}

// countedConn gives its place back once, on the first Close.
type countedConn struct {
	net.Conn
	once    sync.Once
	release func()
}

func (c *countedConn) Close() error {
	err := c.Conn.Close()
	c.once.Do(c.release)
	return err
}
