package loadtest

import (
	"bytes"
	"encoding/binary"
	"fmt"
	"io"
	"os"
	"os/exec"
	"strings"
	"testing"
	"time"

	"golang.org/x/sys/unix"
)

// childEnv makes this test binary the relay child (ServeRelay on its
// standard input and output), as 'tonevault load --relay-only' is.
const childEnv = "TONEVAULT_LOADTEST_RELAY"

func TestMain(m *testing.M) {
	if relay := os.Getenv(childEnv); relay != "" {
		o := Options{Calls: 10, Duration: time.Second, LookAhead: 30 * time.Millisecond, Relay: relay}
		if err := ServeRelay(o, os.Stdin, os.Stdout); err != nil {
			fmt.Fprintln(os.Stderr, err)
			os.Exit(1)
		}
		os.Exit(0)
	}
	os.Exit(m.Run())
}

// testChild runs this test binary as the relay child (TestMain), as
// 'tonevault load --relay-only' is run.
func testChild(relay string) func() *exec.Cmd {
	return func() *exec.Cmd {
		cmd := exec.Command(os.Args[0], "-test.run=^$")
		cmd.Env = append(os.Environ(), childEnv+"="+relay)
		return cmd
	}
}

// TestLoadChild runs the relay in a child process, as 'tonevault load'
// does: the set-up protocol works both ways, and the relay's CPU time is
// measured apart from the generator's.
func TestLoadChild(t *testing.T) {
	o := Options{Calls: 10, Duration: time.Second, DigitsEvery: 400 * time.Millisecond, LookAhead: 30 * time.Millisecond, Relay: RelayTonevault}
	o.Child = testChild(o.Relay)
	var log bytes.Buffer
	res, err := Run(o, &log)
	if err != nil {
		t.Fatal(err, log.String())
	}
	var out bytes.Buffer
	res.Print(&out, o)
	t.Log("\n" + out.String())
	if !res.cpuOK || res.relayCPU <= 0 {
		t.Errorf("relay CPU not measured in the child (ok %v, %v)", res.cpuOK, res.relayCPU)
	}
	if !strings.Contains(out.String(), "µs (") {
		t.Error("no CPU per packet printed")
	}
	for d := range 2 {
		if sent, recv := res.sent[d].Load(), res.recv[d].Load(); recv == 0 || recv > sent {
			t.Errorf("direction %d: sent %d, received %d", d, sent, recv)
		}
	}
	if got, seen := res.digitsSent.Load(), res.digitsSeen; got == 0 || seen != got {
		t.Errorf("digits pressed %d, reported by the child %d", got, seen)
	}
}

// TestValidate: options that cannot run are refused, naming the flag.
func TestValidate(t *testing.T) {
	ok := Options{Calls: 10, Duration: time.Second, LookAhead: 30 * time.Millisecond}
	if err := ok.Validate(); err != nil {
		t.Fatalf("valid options: %v", err)
	}
	for _, tc := range []struct {
		name, want string
		mod        func(*Options)
	}{
		{"no calls", "--calls", func(o *Options) { o.Calls = 0 }},
		{"too many calls", "--calls", func(o *Options) { o.Calls = 20001 }},
		{"no duration", "--duration", func(o *Options) { o.Duration = 0 }},
		{"negative digits", "--digits-every", func(o *Options) { o.DigitsEvery = -time.Second }},
		{"unknown relay", "--relay", func(o *Options) { o.Relay = "kernel" }},
		{"unknown engine", "io", func(o *Options) { o.IO = "epoll" }},
		{"look-ahead too short", "look", func(o *Options) { o.LookAhead = time.Millisecond }},
	} {
		o := ok
		tc.mod(&o)
		if err := o.Validate(); err == nil || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("%s: %v, want an error naming %s", tc.name, err, tc.want)
		}
	}
}

// TestLoadInProcess runs a short load with the relay in this process: the
// test binary cannot be re-run as 'tonevault load --relay-only'.
func TestLoadInProcess(t *testing.T) {
	for _, relay := range RelayKinds {
		t.Run(relay, func(t *testing.T) {
			if relay == RelayRtpengine {
				t.Skip("a daemon of its own: TestRtpengine")
			}
			o := Options{Calls: 10, Duration: 1500 * time.Millisecond, DigitsEvery: 600 * time.Millisecond, LookAhead: 30 * time.Millisecond, Relay: relay}
			var log bytes.Buffer
			res, err := Run(o, &log)
			if err != nil {
				t.Fatal(err, log.String())
			}
			var out bytes.Buffer
			res.Print(&out, o)
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
			if relay != RelayTonevault {
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

// TestRunSRTP: with --srtp every relayed packet reaches the generator
// protected with the relay's own key for that leg (none fails to
// authenticate), nothing is lost, and the digits are still reported.
func TestRunSRTP(t *testing.T) {
	o := Options{Calls: 10, Duration: 1500 * time.Millisecond, DigitsEvery: 600 * time.Millisecond, LookAhead: 30 * time.Millisecond, SRTP: true}
	res, err := Run(o, io.Discard)
	if err != nil {
		t.Fatal(err)
	}
	for d := range 2 {
		if s, r := res.sent[d].Load(), res.recv[d].Load(); s == 0 || r < s*99/100 {
			t.Errorf("direction %d: %d sent, %d received", d, s, r)
		}
	}
	if n := res.srtpFail.Load(); n != 0 {
		t.Errorf("%d relayed packets did not authenticate", n)
	}
	if res.digitsSeen == 0 || res.digitsSeen != res.digitsSent.Load() {
		t.Errorf("digits pressed %d, reported %d", res.digitsSent.Load(), res.digitsSeen)
	}
	if _, n := res.lat[0].quantile(0.5); n == 0 {
		t.Error("no stamp read back through SRTP")
	}
	if err := (Options{Calls: 1, Duration: time.Second, SRTP: true, Relay: RelayBare}).Validate(); err == nil {
		t.Error("--srtp accepted with the bare relay")
	}
}

// TestRunRecord: with --record every call's fork sends the recorder what
// the relay forwards each way, as plain RTP (with --srtp too: the stamps
// are readable), in the relay child and in this process; and the report
// says so.
func TestRunRecord(t *testing.T) {
	for _, tc := range []struct {
		name        string
		child, srtp bool
	}{{"child", true, false}, {"in-process/srtp", false, true}} {
		t.Run(tc.name, func(t *testing.T) {
			o := Options{Calls: 10, Duration: 1500 * time.Millisecond, DigitsEvery: 600 * time.Millisecond, LookAhead: 30 * time.Millisecond,
				Relay: RelayTonevault, Record: true, SRTP: tc.srtp}
			if tc.child {
				o.Child = testChild(o.Relay)
			}
			var log bytes.Buffer
			res, err := Run(o, &log)
			if err != nil {
				t.Fatal(err, log.String())
			}
			var out bytes.Buffer
			res.Print(&out, o)
			t.Log("\n" + out.String())
			for d := range 2 {
				recv, rec, stamped := res.recv[d].Load(), res.recorded[d].Load(), res.recordedStamped[d].Load()
				if recv == 0 || rec < recv*99/100 || rec > recv {
					t.Errorf("stream %d: %d relayed, %d recorded", d, recv, rec)
				}
				if stamped < rec/2 {
					t.Errorf("stream %d: %d of %d recorded packets carry a readable stamp", d, stamped, rec)
				}
			}
			if !strings.Contains(out.String(), "recorded customer stream") {
				t.Error("the report does not show the recording")
			}
			if tc.child && !strings.Contains(out.String(), "relay CPU per call") {
				t.Error("no CPU per call in the report")
			}
			if res.digitsSeen == 0 || res.digitsSeen != res.digitsSent.Load() {
				t.Errorf("digits pressed %d, reported %d", res.digitsSent.Load(), res.digitsSeen)
			}
		})
	}
	if err := (Options{Calls: 1, Duration: time.Second, Record: true, Relay: RelayBatched}).Validate(); err == nil || !strings.Contains(err.Error(), "--record") {
		t.Errorf("--record with the batched relay: %v", err)
	}
}
