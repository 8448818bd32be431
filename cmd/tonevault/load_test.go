package main

import (
	"bytes"
	"strings"
	"testing"
	"time"
)

func TestLoadFlags(t *testing.T) {
	for _, args := range [][]string{
		{"--calls", "0"},
		{"--duration", "-1s"},
		{"--digits-every", "-1s"},
		{"--bogus"},
		{"extra"},
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
	o := loadOpts{calls: 10, duration: 1500 * time.Millisecond, digitsEvery: 600 * time.Millisecond, lookahead: 30 * time.Millisecond, inProcess: true}
	var log bytes.Buffer
	res, err := runLoad(o, &log)
	if err != nil {
		t.Fatal(err, log.String())
	}
	var out bytes.Buffer
	res.print(&out, o)
	t.Log("\n" + out.String())
	for d := range 2 {
		if res.sent[d] == 0 || res.recv[d] == 0 {
			t.Fatalf("direction %d: sent %d, received %d", d, res.sent[d], res.recv[d])
		}
		if _, n := res.lat[d].quantile(0.5); n == 0 {
			t.Errorf("direction %d: no stamp survived the relay", d)
		}
	}
	if res.digitsSent == 0 || res.digitsSeen == 0 {
		t.Errorf("digits pressed %d, reported %d", res.digitsSent, res.digitsSeen)
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
