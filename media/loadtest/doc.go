// Package loadtest puts a media relay under load on loopback: CALLS
// concurrent calls of G.711 RTP both ways, 50 packets/s per direction per
// call, and measures the relay's CPU time per packet, loss and added
// latency. It is what `tonevault load` runs; BENCHMARKS.md has its
// figures.
//
// The relay under load is the product's (media.Relay) or one of two
// yardsticks run through the same generator: a bare Go UDP relay and the
// batched-syscall floor (RelayKinds); or Debian's rtpengine, started by
// the run in userspace and driven over its ng control protocol (bencode
// over UDP), passing or masking (RtpenginePass, RtpengineMask). The generator plays every call from
// a few shared sockets with sendmmsg/recvmmsg, each call on its own 1 ms
// slot, and latency comes from kernel receive stamps.
//
// # What it must not do
//
// It is a measuring tool, not part of the gateway: nothing in the serving
// path imports it. It binds loopback only and carries no card data (its
// digits are a tone of the key 5).
package loadtest
