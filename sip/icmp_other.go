//go:build !linux

package sip

import (
	"net"
	"net/netip"
)

// watchICMP is Linux only: elsewhere a dead UDP target is found by
// FailoverTimeout alone.
func watchICMP(pc net.PacketConn, _ func(netip.AddrPort)) net.PacketConn { return pc }
