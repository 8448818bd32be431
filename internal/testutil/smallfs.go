package testutil

import (
	"errors"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"syscall"
	"testing"
)

// SmallFS mounts a tmpfs of size bytes (a multiple of the page size) on a
// new directory and unmounts it when the test ends, for tests of what
// happens when a file system fills up. It needs root (mount); without it
// the test is skipped, or fails with TONEVAULT_REQUIRE_TOOLS=1.
func SmallFS(t testing.TB, size int) string {
	t.Helper()
	dir := t.TempDir()
	why := ""
	if os.Geteuid() != 0 {
		why = "mounting a small tmpfs needs root"
	} else if out, err := exec.Command("mount", "-t", "tmpfs", "-o", "size="+strconv.Itoa(size)+",mode=0700", "tmpfs", dir).CombinedOutput(); err != nil {
		why = "mount -t tmpfs: " + err.Error() + ": " + string(out)
	}
	if why != "" {
		if os.Getenv("TONEVAULT_REQUIRE_TOOLS") == "1" {
			t.Fatalf("%s (TONEVAULT_REQUIRE_TOOLS=1)", why)
		}
		t.Skipf("skipping: %s; set TONEVAULT_REQUIRE_TOOLS=1 to make this a failure", why)
	}
	t.Cleanup(func() {
		if out, err := exec.Command("umount", dir).CombinedOutput(); err != nil {
			t.Errorf("umount %s: %v: %s", dir, err, out)
		}
	})
	return dir
}

// Fill writes a file in dir until the file system is full, and returns
// its path: removing it frees the space again.
func Fill(t testing.TB, dir string) string {
	t.Helper()
	path := filepath.Join(dir, "filler")
	f, err := os.OpenFile(path, os.O_WRONLY|os.O_CREATE|os.O_APPEND, 0o600)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	block := make([]byte, 512)
	for {
		if _, err := f.Write(block); err != nil {
			if errors.Is(err, syscall.ENOSPC) {
				break
			}
			t.Fatalf("filling %s: %v", dir, err)
		}
	}
	// Smaller writes take what the large ones left.
	for _, n := range []int{64, 1} {
		for {
			if _, err := f.Write(block[:n]); err != nil {
				break
			}
		}
	}
	return path
}
