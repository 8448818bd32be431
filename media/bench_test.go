package media

import (
	"net"
	"net/netip"
	"syscall"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/tonevault/tonevault/media/sdes"
)

// BenchmarkCarrierPacket is the per-packet work on the carrier path
// without sockets: source check, parse, mask (look-ahead, detector),
// digit bookkeeping, header rewrite. One op is one 20 ms PCMU packet of
// noise-like audio.
func BenchmarkCarrierPacket(b *testing.B) {
	s := fuzzSession(b)
	pcm := toneSignal("", 0, 0, 0, 0)
	for i := range pcm { // louder noise than the default bed: speech-like level
		pcm[i] *= 200
	}
	raw := encode(pcm[:1600], PCMU)
	pkts := make([][]byte, 10)
	out := make([]byte, MaxPacket)
	digits := make([]Digit, 0, 8)
	for i := range pkts {
		pkts[i] = rtpPkt(0, 0, 0, 7, false, raw[i*160:(i+1)*160])
	}
	now := time.Now()
	b.ReportAllocs()
	b.SetBytes(160)
	defer reportCPU(b)()
	b.ResetTimer()
	for i := 0; i < b.N; i++ {
		p := pkts[i%len(pkts)]
		putRTPHeader(p, false, 0, uint16(i), uint32(i*160), 7)
		res := s.carrierPacket(p, fuzzPeer, now, out, digits[:0], nil)
		if res.n != len(p) {
			b.Fatalf("sent %d bytes", res.n)
		}
	}
}

// BenchmarkRelayLoopback is one carrier packet through real sockets:
// carrier peer → relay → platform peer, in lock-step, so it measures the
// relay's path including two syscalls and a goroutine wake-up (and the
// peers' own send and receive).
func BenchmarkRelayLoopback(b *testing.B) { relayLoopback(b, false) }

// BenchmarkRelayFork is BenchmarkRelayLoopback without and with a
// recording fork: with it, each carrier packet is also copied (masked)
// and sent from the fork's customer socket to an SRS socket. The SRS
// socket is never read, as another process's would not be by this one:
// once its buffer is full the kernel drops what arrives, after the
// relay's send has been paid for.
func BenchmarkRelayFork(b *testing.B) {
	b.Run("fork=off", func(b *testing.B) { relayLoopback(b, false) })
	b.Run("fork=on", func(b *testing.B) { relayLoopback(b, true) })
}

func relayLoopback(b *testing.B, fork bool) {
	reg := prometheus.NewRegistry()
	r, err := NewRelay(testConfig(), Options{Registerer: reg})
	if err != nil {
		b.Fatal(err)
	}
	defer r.Close()
	s, err := r.Open("bench")
	if err != nil {
		b.Fatal(err)
	}
	e := &env{relay: r, sess: s}
	e.carrier, e.platform = benchListen(b), benchListen(b)
	s.SetRemote(Carrier, Stream{Addr: addrOf(e.carrier), PayloadTypes: g711PTs})
	s.SetRemote(Platform, Stream{Addr: addrOf(e.platform), PayloadTypes: g711PTs})
	if fork {
		rec, err := s.Record()
		if err != nil {
			b.Fatal(err)
		}
		srs := benchListen(b)
		if err := rec.SetRemote(Stream{Addr: addrOf(srs)}, Stream{Addr: addrOf(srs)}); err != nil {
			b.Fatal(err)
		}
	}
	payload := encode(toneSignal("", 0, 0, 0, 0)[:160], PCMU)
	pkt := rtpPkt(0, 0, 0, 7, false, payload)
	buf := make([]byte, recvBuf)
	dst := s.Local(Carrier)
	b.ReportAllocs()
	defer reportCPU(b)()
	b.ResetTimer()
	for i := 0; i < b.N; i++ {
		putRTPHeader(pkt, false, 0, uint16(i), uint32(i*160), 7)
		if _, err := e.carrier.WriteToUDPAddrPort(pkt, dst); err != nil {
			b.Fatal(err)
		}
		e.platform.SetReadDeadline(time.Now().Add(2 * time.Second))
		if _, _, err := e.platform.ReadFromUDPAddrPort(buf); err != nil {
			b.Fatal(err)
		}
	}
	b.StopTimer()
	if fork {
		// The fork's sends complete after the platform's packet arrives.
		sent := func() float64 {
			return gauge(b, reg, "tonevault_recording_packets_total", map[string]string{"stream": "customer", "result": "sent"})
		}
		for range 200 {
			if sent() >= float64(b.N) {
				break
			}
			time.Sleep(10 * time.Millisecond)
		}
		if n := sent(); n != float64(b.N) {
			b.Fatalf("the fork sent %v packets of %d", n, b.N)
		}
	}
}

// BenchmarkCarrierPacketFork is BenchmarkCarrierPacket with a recording
// fork: the masked packet is also copied for the fork's customer stream.
// Its difference to BenchmarkCarrierPacket is the copy's cost; the send
// is the engine's (BenchmarkRelayFork).
func BenchmarkCarrierPacketFork(b *testing.B) {
	s := fuzzSession(b)
	rec, err := s.Record()
	if err != nil {
		b.Fatal(err)
	}
	if err := rec.SetRemote(Stream{Addr: netip.MustParseAddrPort("127.0.0.1:4004")}, Stream{}); err != nil {
		b.Fatal(err)
	}
	pcm := toneSignal("", 0, 0, 0, 0)
	for i := range pcm {
		pcm[i] *= 200
	}
	raw := encode(pcm[:1600], PCMU)
	pkts := make([][]byte, 10)
	out := make([]byte, MaxPacket)
	fk := forkOut{buf: make([]byte, MaxPacket)}
	digits := make([]Digit, 0, 8)
	for i := range pkts {
		pkts[i] = rtpPkt(0, 0, 0, 7, false, raw[i*160:(i+1)*160])
	}
	now := time.Now()
	b.ReportAllocs()
	b.SetBytes(160)
	defer reportCPU(b)()
	b.ResetTimer()
	for i := 0; i < b.N; i++ {
		p := pkts[i%len(pkts)]
		putRTPHeader(p, false, 0, uint16(i), uint32(i*160), 7)
		fk.n = 0
		res := s.carrierPacket(p, fuzzPeer, now, out, digits[:0], &fk)
		if res.n != len(p) || fk.n != res.n {
			b.Fatalf("sent %d bytes, copied %d", res.n, fk.n)
		}
	}
}

func benchListen(b *testing.B) *net.UDPConn {
	c, err := net.ListenUDP("udp", &net.UDPAddr{IP: net.IPv4(127, 0, 0, 1)})
	if err != nil {
		b.Fatal(err)
	}
	b.Cleanup(func() { c.Close() })
	return c
}

// reportCPU adds cpu-ns/op: the process's CPU time (user+system) per op.
// The machine is shared, so wall-clock ns/op includes time spent waiting
// for a core; CPU time is what the relay costs.
func reportCPU(b *testing.B) func() {
	start := cpuNanos()
	return func() { b.ReportMetric(float64(cpuNanos()-start)/float64(b.N), "cpu-ns/op") }
}

func cpuNanos() int64 {
	var ru syscall.Rusage
	syscall.Getrusage(syscall.RUSAGE_SELF, &ru)
	return ru.Utime.Nano() + ru.Stime.Nano()
}

// BenchmarkCarrierPacketSRTP is BenchmarkCarrierPacket with SRTP on
// both legs: authenticate and decrypt the carrier's packet, inspect and
// mask it, protect it with the platform leg's key. Its difference to
// BenchmarkCarrierPacket is what SRTP costs per 20 ms packet. The
// carrier's packets are protected in batches outside the timer.
func BenchmarkCarrierPacketSRTP(b *testing.B) {
	for _, suite := range sdes.Suites {
		b.Run(suite.String(), func(b *testing.B) {
			s := fuzzSession(b)
			ck, pk := srtpKeys(b, suite, 0), srtpKeys(b, suite, 0)
			for leg, k := range map[Leg]*SRTP{Carrier: ck, Platform: pk} {
				addr := fuzzPeer
				if leg == Platform {
					addr = netip.MustParseAddrPort("127.0.0.1:4002")
				}
				if err := s.SetRemote(leg, Stream{Addr: addr, PayloadTypes: g711PTs, SRTP: k}); err != nil {
					b.Fatal(err)
				}
			}
			cp := newPeerCrypto(b, ck)
			pcm := toneSignal("", 0, 0, 0, 0)
			for i := range pcm {
				pcm[i] *= 200
			}
			raw := encode(pcm[:1600], PCMU)
			const batch = 1024
			pkts := make([][]byte, batch)
			for i := range pkts {
				pkts[i] = make([]byte, 0, recvBuf)
			}
			plain := make([]byte, rtpHeaderLen+160)
			out := make([]byte, MaxPacket, recvBuf)
			digits := make([]Digit, 0, 8)
			now := time.Now()
			b.ReportAllocs()
			b.SetBytes(160)
			// CPU time of the timed stretches only (the machine is shared:
			// wall time includes waiting for a core).
			var cpu, c0 int64
			b.ResetTimer()
			for i := 0; i < b.N; i++ {
				k := i % batch
				if k == 0 {
					if i > 0 {
						cpu += cpuNanos() - c0
					}
					b.StopTimer()
					for j := range pkts {
						n := i + j
						copy(plain[rtpHeaderLen:], raw[n%10*160:])
						putRTPHeader(plain, false, 0, uint16(n), uint32(n*160), 7)
						var err error
						if pkts[j], err = cp.enc.EncryptRTP(pkts[j][:0], plain, nil); err != nil {
							b.Fatal(err)
						}
					}
					b.StartTimer()
					c0 = cpuNanos()
				}
				res := s.carrierPacket(pkts[k], fuzzPeer, now, out, digits[:0], nil)
				if res.n <= rtpHeaderLen+160 {
					b.Fatalf("sent %d bytes", res.n)
				}
			}
			cpu += cpuNanos() - c0
			b.ReportMetric(float64(cpu)/float64(b.N), "cpu-ns/op")
		})
	}
}
