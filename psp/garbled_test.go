package psp_test

import (
	"bufio"
	"context"
	"net"
	"strings"
	"testing"
	"time"

	"github.com/moov-io/iso8583"

	"github.com/tonevault/tonevault/psp"
)

// fakeAcquirer signs on, then answers every 0100 with answer(request) as
// raw bytes (framed with a binary2 header).
func fakeAcquirer(t *testing.T, answer func(req *iso8583.Message) []byte) string {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { ln.Close() })
	go func() {
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			go func() {
				defer c.Close()
				r := bufio.NewReader(c)
				for {
					m, err := psp.Binary2.ReadMessage(r)
					if err != nil {
						return
					}
					mti, _ := m.GetMTI()
					var out []byte
					switch mti {
					case "0800":
						reply := iso8583.NewMessage(psp.Spec)
						reply.MTI("0810")
						for _, id := range []int{7, 11, 70} {
							v, _ := m.GetString(id)
							reply.Field(id, v)
						}
						reply.Field(39, "00")
						out, _ = psp.Pack(reply)
					case "0100":
						out = answer(m)
					case "0400":
						reply := iso8583.NewMessage(psp.Spec)
						reply.MTI("0410")
						v, _ := m.GetString(11)
						reply.Field(11, v)
						reply.Field(39, "00")
						out, _ = psp.Pack(reply)
					}
					if out == nil {
						continue
					}
					psp.Binary2.WriteLength(c, len(out))
					c.Write(out)
				}
			}()
		}
	}()
	return ln.Addr().String()
}

func connectTo(t *testing.T, addr string, log *syncBuffer) *psp.ISO {
	t.Helper()
	c, err := psp.NewISO(psp.Config{
		// The answers never match: each request times out. Long enough
		// that a loaded machine still writes the reversal ahead and sends
		// within it (the test is about what comes back).
		Addrs: []string{addr}, Timeout: 2 * time.Second, Terminal: "T1", Merchant: "M1",
		Logger: rawLogger(log), ReversalBackoff: 50 * time.Millisecond,
	}, testStore(t))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { c.Close() })
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	if err := c.WaitReady(ctx); err != nil {
		t.Fatal(err)
	}
	return c
}

func TestGarbledResponseLeaksNothing(t *testing.T) {
	const pan = "4111111111111111"
	for name, answer := range map[string]func(*iso8583.Message) []byte{
		// the PAN where the amount should be, and so on
		"PAN in numeric fields": func(m *iso8583.Message) []byte {
			stan, _ := m.GetString(11)
			return []byte("0110" + "3020000002000000" + "00" + pan[:4] + pan + stan + "00")
		},
		"bitmap says field 2, too short": func(*iso8583.Message) []byte {
			return []byte("0110" + "4000000000000000" + "19" + pan)
		},
		"binary junk around the PAN": func(*iso8583.Message) []byte {
			return []byte("0110\xff\xfe" + pan + "\x00\x01")
		},
	} {
		t.Run(name, func(t *testing.T) {
			log := &syncBuffer{}
			c := connectTo(t, fakeAcquirer(t, answer), log)
			resp, err := c.Authorize(context.Background(), request(pan, 1000))
			if err != nil || resp.Outcome != psp.Error || resp.Reason != psp.ReasonTimeout {
				t.Fatalf("%+v %v", resp, err)
			}
			eventually(t, "the bad response logged", func() bool {
				return strings.Contains(log.String(), "failed to read message") || strings.Contains(log.String(), "unmatched response")
			})
			if testing.Verbose() {
				t.Log(log.String())
			}
			c.Close()
			checkNoCardData(t, map[string]string{"log": log.String(), "response": resp.Reason + resp.ResponseCode + resp.AuthCode})
		})
	}
}

func TestEchoedPANIsNotKept(t *testing.T) {
	const pan = "5555555555554444"
	log := &syncBuffer{}
	c := connectTo(t, fakeAcquirer(t, func(m *iso8583.Message) []byte {
		reply := iso8583.NewMessage(psp.Spec)
		reply.MTI("0110")
		reply.BinaryField(2, []byte(pan)) // some acquirers echo field 2
		for _, id := range []int{4, 7, 11, 37} {
			v, _ := m.GetString(id)
			reply.Field(id, v)
		}
		reply.Field(38, "ABC123")
		reply.Field(39, "00")
		b, _ := psp.Pack(reply)
		return b
	}), log)
	resp, err := c.Authorize(context.Background(), request(pan, 1000))
	if err != nil || resp.Outcome != psp.Approved || resp.AuthCode != "ABC123" {
		t.Fatalf("%+v %v", resp, err)
	}
	c.Close()
	checkNoCardData(t, map[string]string{"log": log.String()})
}
