package main

import (
	"bytes"
	"strings"
	"testing"
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
		{"--relay", "rtpengine", "--rtpengine-profile", "random"},
		{"--relay", "bare", "--record"},
	} {
		var out, errb bytes.Buffer
		if code := run(append([]string{"load"}, args...), &out, &errb); code != 2 {
			t.Errorf("load %v: exit %d, want 2 (%s)", args, code, errb.String())
		}
	}
	var out bytes.Buffer
	if run([]string{"load", "--help"}, &out, &out) != 0 || !strings.Contains(out.String(), "--digits-every") ||
		!strings.Contains(out.String(), "--rtpengine-profile") || !strings.Contains(out.String(), "--record") {
		t.Error("help")
	}
}
