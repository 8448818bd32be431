package main

import (
	"bytes"
	"encoding/binary"
	"strings"
	"testing"
	"time"

	"golang.org/x/sys/unix"
)

func TestLoadFlags(t *testing.T) {
	for _, args := range [][]string{
		{"--calls", "0"},
		{"--duration", "-1s"},
		{"--digits-every", "-1s"},
		{"--bogus"},
		{"extra"},
		{"--relay", "kernel"},
		{"--io", "epoll"},
	} {
		var out, errb bytes.Buffer
		if code := run(append([]string{"load"}, args...), &out, &errb); code != 2 {
			t.Errorf("load %v: exit %d, want 2 (%s)", args, code, errb.String())
		}
	}
	var out bytes.Buffer
	if run([]string{"load", "--help"}, &out, &out) != 0 || !strings.Contains(out.String(), "--digits-every") {
		t.Error("help")
	}
}

// TestLoadInProcess runs a short load with the relay in this process: the
// test binary cannot be re-run as 'tonevault load --relay-only'.
func TestLoadInProcess(t *testing.T) {
	for _, relay := range relayKinds {
		t.Run(relay, func(t *testing.T) {
			o := loadOpts{calls: 10, duration: 1500 * time.Millisecond, digitsEvery: 600 * time.Millisecond, lookahead: 30 * time.Millisecond, inProcess: true, relay: relay}
			var log bytes.Buffer
			res, err := runLoad(o, &log)
			if err != nil {
				t.Fatal(err, log.String())
			}
			var out bytes.Buffer
			res.print(&out, o)
			t.Log("\n" + out.String())
			for d := range 2 {
				sent, recv := res.sent[d].Load(), res.recv[d].Load()
				// 10 calls × 50 packets/s × 2.5 s, give or take a slot.
				if sent < 1200 || recv == 0 || recv > sent {
					t.Fatalf("direction %d: sent %d, received %d", d, sent, recv)
				}
				if _, n := res.lat[d].quantile(0.5); n == 0 {
					t.Errorf("direction %d: no stamp survived the relay", d)
				}
			}
			if !res.kernelStamps {
				t.Error("no kernel receive timestamps on loopback")
			}
			if relay != relayTonevault {
				return
			}
			// Two presses per digit call (at 0.6 s and 1.8 s; the one at
			// 1.2 s too), one call in ten: every press reported once.
			if got, seen := res.digitsSent.Load(), res.digitsSeen; got == 0 || seen != got {
				t.Errorf("digits pressed %d, reported %d", got, seen)
			}
		})
	}
}

func TestRxTimestamp(t *testing.T) {
	// A cmsghdr (len 32, SOL_SOCKET, SCM_TIMESTAMPNS) and a timespec.
	oob := make([]byte, 32)
	binary.NativeEndian.PutUint64(oob[0:], 32)
	binary.NativeEndian.PutUint32(oob[8:], unix.SOL_SOCKET)
	binary.NativeEndian.PutUint32(oob[12:], unix.SCM_TIMESTAMPNS)
	binary.NativeEndian.PutUint64(oob[16:], 1700000000)
	binary.NativeEndian.PutUint64(oob[24:], 123)
	for _, tc := range []struct {
		name string
		oob  []byte
		want int64
	}{
		{"stamp", oob, 1700000000*1e9 + 123},
		{"empty", nil, 0},
		{"short", oob[:20], 0},
		{"bad length", append([]byte{255, 0, 0, 0, 0, 0, 0, 0}, oob[8:]...), 0},
	} {
		if got := rxTimestamp(tc.oob); got != tc.want {
			t.Errorf("%s: %d, want %d", tc.name, got, tc.want)
		}
	}
}

func TestProcCPU(t *testing.T) {
	if _, ok := procCPU(0); ok {
		t.Error("pid 0 should be n/a")
	}
	if _, ok := procCPU(1); !ok {
		t.Skip("no /proc")
	}
}
