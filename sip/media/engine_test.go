package media

import (
	"os"
	"os/exec"
	"runtime"
	"strings"
	"testing"
)

// TestEngine checks which engine the package's tests run on: io_uring on
// Linux unless the kernel refuses it, or what TONEVAULT_MEDIA_IO says.
func TestEngine(t *testing.T) {
	r, err := NewRelay(testConfig(), Options{})
	if err != nil {
		t.Fatal(err)
	}
	defer r.Close()
	want := os.Getenv(envMediaIO)
	switch {
	case want != "" && want != IOAuto:
	case runtime.GOOS != "linux":
		want = IOGoroutines
	default:
		if _, err := newUringEngine(); err != nil {
			t.Skipf("io_uring unavailable here (%v): the tests run on goroutines", err)
		}
		want = IOUring
	}
	if r.IO() != want {
		t.Errorf("relay runs on %s, want %s", r.IO(), want)
	}
}

// TestGoroutineEngine runs this package's tests again, in a child test
// binary, on the goroutine engine: both engines must pass every test.
func TestGoroutineEngine(t *testing.T) {
	if os.Getenv(envMediaIO) != "" {
		t.Skip("already the child run")
	}
	if testing.Short() {
		t.Skip("short")
	}
	args := []string{"-test.count=1", "-test.skip=^(TestGoroutineEngine)$"}
	if testing.Verbose() {
		args = append(args, "-test.v")
	}
	cmd := exec.Command(os.Args[0], args...)
	cmd.Env = append(os.Environ(), envMediaIO+"="+IOGoroutines)
	out, err := cmd.CombinedOutput()
	if err != nil {
		t.Fatalf("tests on the goroutine engine: %v\n%s", err, out)
	}
	if !strings.Contains(string(out), "PASS") {
		t.Fatalf("no PASS from the child run:\n%s", out)
	}
}

func TestConfigIO(t *testing.T) {
	for _, tc := range []struct {
		io string
		ok bool
	}{{"", true}, {IOAuto, true}, {IOUring, true}, {IOGoroutines, true}, {"epoll", false}} {
		c := testConfig()
		c.IO = tc.io
		if err := c.Validate(); (err == nil) != tc.ok {
			t.Errorf("io %q: %v", tc.io, err)
		}
	}
}
