package sip

import (
	"encoding/binary"
	"errors"
	"net"
	"net/netip"
	"syscall"
)

// icmpConn is the trunk's UDP socket with IP_RECVERR on: an ICMP error
// for a datagram it sent (port or host unreachable) is queued on the
// socket and the next read fails with it. Without that Linux drops ICMP
// errors for unconnected UDP sockets, and a request to a dead target
// waits for its transaction timer (32 s). ReadFrom reads the queued
// errors, hands the destinations they name to unreachable, and goes on
// reading: sipgo's reader stops at any read error.
type icmpConn struct {
	*net.UDPConn
	unreachable func(netip.AddrPort)
}

// watchICMP turns on ICMP error reporting on pc when it is a UDP socket
// on Linux, and returns what to serve instead of pc.
func watchICMP(pc net.PacketConn, unreachable func(netip.AddrPort)) net.PacketConn {
	u, ok := pc.(*net.UDPConn)
	if !ok {
		return pc
	}
	raw, err := u.SyscallConn()
	if err != nil {
		return pc
	}
	var serr error
	_ = raw.Control(func(fd uintptr) {
		if la, ok := u.LocalAddr().(*net.UDPAddr); ok && la.IP.To4() == nil {
			serr = syscall.SetsockoptInt(int(fd), syscall.IPPROTO_IPV6, syscall.IPV6_RECVERR, 1)
			_ = syscall.SetsockoptInt(int(fd), syscall.IPPROTO_IP, syscall.IP_RECVERR, 1) // v4-mapped peers
			return
		}
		serr = syscall.SetsockoptInt(int(fd), syscall.IPPROTO_IP, syscall.IP_RECVERR, 1)
	})
	if serr != nil {
		return pc
	}
	return &icmpConn{UDPConn: u, unreachable: unreachable}
}

// icmpErrnos are what an ICMP error becomes on a socket (Linux's
// icmp_err_convert): none of them is the socket's own failure.
var icmpErrnos = []syscall.Errno{syscall.ECONNREFUSED, syscall.EHOSTUNREACH, syscall.ENETUNREACH, syscall.EHOSTDOWN,
	syscall.ENONET, syscall.EACCES, syscall.EMSGSIZE, syscall.ENOPROTOOPT, syscall.EOPNOTSUPP, syscall.EPROTO}

func (c *icmpConn) ReadFrom(b []byte) (int, net.Addr, error) {
	for {
		n, addr, err := c.UDPConn.ReadFrom(b)
		if err == nil || !isICMPErr(err) {
			return n, addr, err
		}
		c.drainErrors()
	}
}

func isICMPErr(err error) bool {
	var errno syscall.Errno
	if !errors.As(err, &errno) {
		return false
	}
	for _, e := range icmpErrnos {
		if errno == e {
			return true
		}
	}
	return false
}

// drainErrors reads the socket's error queue; each unreachable error
// names the destination of the datagram that caused it.
func (c *icmpConn) drainErrors() {
	raw, err := c.SyscallConn()
	if err != nil {
		return
	}
	buf := make([]byte, 512)
	oob := make([]byte, 512)
	_ = raw.Read(func(fd uintptr) bool {
		for range 64 {
			_, oobn, _, from, err := syscall.Recvmsg(int(fd), buf, oob, syscall.MSG_ERRQUEUE|syscall.MSG_DONTWAIT)
			if err != nil {
				return true // EAGAIN: the queue is empty
			}
			if ap, ok := sockaddrAddrPort(from); ok && unreachableErr(oob[:oobn]) {
				c.unreachable(ap)
			}
		}
		return true
	})
}

// unreachableErr reports whether a control message from the error queue
// is an ICMP error saying the destination cannot be reached.
func unreachableErr(oob []byte) bool {
	msgs, err := syscall.ParseSocketControlMessage(oob)
	if err != nil {
		return false
	}
	for _, m := range msgs {
		if !(m.Header.Level == syscall.IPPROTO_IP && m.Header.Type == syscall.IP_RECVERR ||
			m.Header.Level == syscall.IPPROTO_IPV6 && m.Header.Type == syscall.IPV6_RECVERR) || len(m.Data) < 8 {
			continue
		}
		// struct sock_extended_err: ee_errno (u32), ee_origin (u8), ...
		errno := syscall.Errno(binary.NativeEndian.Uint32(m.Data))
		origin := m.Data[4]
		const originICMP, originICMP6 = 2, 3
		if origin != originICMP && origin != originICMP6 {
			continue
		}
		switch errno {
		case syscall.ECONNREFUSED, syscall.EHOSTUNREACH, syscall.ENETUNREACH, syscall.EHOSTDOWN, syscall.ENONET, syscall.EACCES:
			return true
		}
	}
	return false
}

func sockaddrAddrPort(sa syscall.Sockaddr) (netip.AddrPort, bool) {
	switch a := sa.(type) {
	case *syscall.SockaddrInet4:
		return netip.AddrPortFrom(netip.AddrFrom4(a.Addr), uint16(a.Port)), true
	case *syscall.SockaddrInet6:
		return netip.AddrPortFrom(netip.AddrFrom16(a.Addr).Unmap(), uint16(a.Port)), true
	}
	return netip.AddrPort{}, false
}
