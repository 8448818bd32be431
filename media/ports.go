package media

import (
	"fmt"
	"net"
	"net/netip"
	"sync"
)

// portPool hands out RTP/RTCP port pairs (RTP even, RTCP = RTP+1) from the
// configured range. Freed pairs go to the back of the queue, so a port is
// reused as late as possible and stray packets of an ended call rarely
// reach the next one.
type portPool struct {
	ip        netip.Addr
	min, max  int
	ephemeral bool
	raw       func() bool // bare descriptors for the io_uring engine, else *net.UDPConn; asked at each bind

	mu   sync.Mutex
	free []int // RTP ports, FIFO
	used int
}

func newPortPool(ip netip.Addr, min, max int, raw func() bool) *portPool {
	p := &portPool{ip: ip, min: min, max: max, ephemeral: min == 0 && max == 0, raw: raw}
	if !p.ephemeral {
		for port := min; port+1 <= max; port += 2 {
			p.free = append(p.free, port)
		}
	}
	return p
}

// pair is one bound RTP/RTCP socket pair.
type pair struct {
	rtp, rtcp sock
	port      int
}

// sock is one bound UDP socket: a *net.UDPConn, read by a goroutine
// through Go's poller, or a bare descriptor (raw) that the io_uring engine
// reads and writes and Go's poller never sees.
type sock struct {
	conn *net.UDPConn
	fd   int
	raw  bool
}

// shut stops reads on a conn (its goroutine returns); a bare descriptor is
// left to the engine, which must be done with it before close.
func (s sock) shut() {
	if s.conn != nil {
		s.conn.Close()
	}
}

func (s sock) close() {
	if s.conn != nil {
		s.conn.Close()
	} else if s.raw {
		closeFD(s.fd)
	}
}

// listen binds ip:port (0: the kernel picks) and says which port it got.
func (p *portPool) listen(port int, raw bool) (sock, int, error) {
	if raw {
		return listenRaw(p.ip, port)
	}
	c, err := net.ListenUDP("udp", net.UDPAddrFromAddrPort(netip.AddrPortFrom(p.ip, uint16(port))))
	if err != nil {
		return sock{}, 0, err
	}
	return sock{conn: c}, c.LocalAddr().(*net.UDPAddr).Port, nil
}

// get binds a free pair, of the kind the engine asks for now (raw).
func (p *portPool) get() (pair, error) {
	return p.getAs(p.raw != nil && p.raw())
}

// getAs binds a free pair: bare descriptors for the io_uring engine
// (raw), else *net.UDPConn. Pairs that fail to bind (another process
// holds one of the ports) go back to the end of the queue and the next
// is tried.
func (p *portPool) getAs(raw bool) (pair, error) {
	if p.ephemeral {
		return p.getEphemeral(raw)
	}
	p.mu.Lock()
	defer p.mu.Unlock()
	var lastErr error
	for tries := len(p.free); tries > 0; tries-- {
		port := p.free[0]
		p.free = p.free[1:]
		pr, err := p.bind(port, raw)
		if err == nil {
			p.used++
			return pr, nil
		}
		lastErr = err
		p.free = append(p.free, port)
	}
	if lastErr != nil {
		return pair{}, fmt.Errorf("%w: %d-%d on %v: %d pairs in use, the others failed to bind: %v", ErrPortsExhausted, p.min, p.max, p.ip, p.used, lastErr)
	}
	return pair{}, fmt.Errorf("%w: %d-%d on %v: all %d pairs in use", ErrPortsExhausted, p.min, p.max, p.ip, p.used)
}

// getEphemeral lets the kernel pick the RTP port and retries until it is
// even and the next one is free too.
func (p *portPool) getEphemeral(raw bool) (pair, error) {
	var lastErr error
	for range 64 {
		rtp, port, err := p.listen(0, raw)
		if err != nil {
			return pair{}, fmt.Errorf("media: bind %v: %w", p.ip, err)
		}
		if port%2 != 0 || port == 65535 {
			rtp.close()
			continue
		}
		rtcp, _, err := p.listen(port+1, raw)
		if err != nil {
			rtp.close()
			lastErr = err
			continue
		}
		p.mu.Lock()
		p.used++
		p.mu.Unlock()
		return pair{rtp: rtp, rtcp: rtcp, port: port}, nil
	}
	return pair{}, fmt.Errorf("%w: no even ephemeral port with a free odd neighbour on %v: %v", ErrPortsExhausted, p.ip, lastErr)
}

func (p *portPool) bind(port int, raw bool) (pair, error) {
	rtp, _, err := p.listen(port, raw)
	if err != nil {
		return pair{}, err
	}
	rtcp, _, err := p.listen(port+1, raw)
	if err != nil {
		rtp.close()
		return pair{}, err
	}
	return pair{rtp: rtp, rtcp: rtcp, port: port}, nil
}

// put closes the pair's sockets and returns the port to the pool.
func (p *portPool) put(pr pair) {
	pr.rtp.close()
	pr.rtcp.close()
	p.mu.Lock()
	defer p.mu.Unlock()
	p.used--
	if !p.ephemeral {
		p.free = append(p.free, pr.port)
	}
}

// inUse is how many pairs are bound now.
func (p *portPool) inUse() int {
	p.mu.Lock()
	defer p.mu.Unlock()
	return p.used
}
