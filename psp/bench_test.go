package psp_test

import (
	"context"
	"testing"
	"time"

	"github.com/tonevault/tonevault/psp"
	"github.com/tonevault/tonevault/psp/sim"
)

func benchEnv(b *testing.B, conns int) (*psp.ISO, func()) {
	s, err := sim.Listen("127.0.0.1:0", sim.Config{})
	if err != nil {
		b.Fatal(err)
	}
	addrs := make([]string, conns)
	for i := range addrs {
		addrs[i] = s.Addr()
	}
	c, err := psp.NewISO(psp.Config{Addrs: addrs, Terminal: "T1", Merchant: "M1"}, testStore(b))
	if err != nil {
		b.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	for s.Stats().SignOns < int64(conns) {
		if ctx.Err() != nil {
			b.Fatal("connections never signed on")
		}
		time.Sleep(5 * time.Millisecond)
	}
	return c, func() { c.Close(); s.Close() }
}

// BenchmarkAuthorizeLoopback is one 0100 round trip to psp-sim over
// loopback TCP, one at a time on one connection.
func BenchmarkAuthorizeLoopback(b *testing.B) {
	c, stop := benchEnv(b, 1)
	defer stop()
	r := request("4111111111111111", 1000)
	b.ReportAllocs()
	for b.Loop() {
		resp, err := c.Authorize(context.Background(), r)
		if err != nil || resp.Outcome != psp.Approved {
			b.Fatalf("%+v %v", resp, err)
		}
	}
}

// BenchmarkAuthorizeLoopbackParallel runs GOMAXPROCS callers through a
// pool of 4 connections.
func BenchmarkAuthorizeLoopbackParallel(b *testing.B) {
	c, stop := benchEnv(b, 4)
	defer stop()
	b.ReportAllocs()
	b.RunParallel(func(pb *testing.PB) {
		r := request("5555555555554444", 1000)
		for pb.Next() {
			resp, err := c.Authorize(context.Background(), r)
			if err != nil || resp.Outcome != psp.Approved {
				b.Errorf("%+v %v", resp, err)
				return
			}
		}
	})
}
