package main

import (
	"bytes"
	"fmt"
	"path/filepath"
	"strings"
	"testing"
)

func TestDtmfTones(t *testing.T) {
	dir := t.TempDir()
	cases := []struct {
		name  string
		args  []string
		code  int
		lines string // scan output, when code is 0
		err   string
	}{
		{name: "default", args: []string{"159#"}, lines: "1 100\n5 260\n9 420\n# 580\n"},
		{name: "ulaw 44.1k twisted", args: []string{"--rate", "44100", "--encoding", "ulaw", "--twist", "-6", "--on", "50ms", "--off", "60ms", "--lead", "0s", "AD*0"}, lines: "A 0\nD 110\n* 220\n0 330\n"},
		{name: "alaw quiet", args: []string{"--encoding", "alaw", "--level", "-25", "78"}, lines: "7 100\n8 260\n"},
		{name: "bad digit", args: []string{"12x"}, code: 2, err: "not a keypad digit"},
		{name: "bad encoding", args: []string{"--encoding", "mp3", "1"}, code: 2, err: "unknown encoding"},
		{name: "too loud", args: []string{"--level", "6", "1"}, code: 2, err: "between -60 and +3 dBm0"},
		{name: "no output", args: []string{"1"}, code: 2, err: "want DIGITS and OUT.wav"},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			out := filepath.Join(dir, strings.ReplaceAll(c.name, " ", "_")+".wav")
			args := append([]string{"dtmf", "tones"}, c.args...)
			if c.name != "no output" {
				args = append(args, out)
			}
			var stdout, stderr bytes.Buffer
			if code := run(args, &stdout, &stderr); code != c.code {
				t.Fatalf("exit %d, want %d; stderr %s", code, c.code, stderr.String())
			}
			if c.code != 0 {
				if !strings.Contains(stderr.String(), c.err) {
					t.Fatalf("stderr %q, want %q", stderr.String(), c.err)
				}
				return
			}
			stdout.Reset()
			if code := run([]string{"dtmf", "scan", "--reveal", out}, &stdout, &stderr); code != 1 {
				t.Fatalf("scan exit %d: %s", code, stderr.String())
			}
			if got := stdout.String(); !sameDigitsWithin(got, c.lines, 8) {
				t.Fatalf("scan:\n%s\nwant:\n%s", got, c.lines)
			}
		})
	}
	var stdout, stderr bytes.Buffer
	if code := run([]string{"dtmf", "tones", "--help"}, &stdout, &stderr); code != 0 || !strings.Contains(stdout.String(), "Usage: tonevault dtmf tones") {
		t.Fatalf("--help: exit %d, %q", code, stdout.String())
	}
}

// sameDigitsWithin compares "<digit> <ms>" lines, allowing tol ms.
func sameDigitsWithin(got, want string, tol int) bool {
	g, w := strings.Fields(got), strings.Fields(want)
	if len(g) != len(w) {
		return false
	}
	for i := 0; i < len(g); i += 2 {
		if g[i] != w[i] {
			return false
		}
		var a, b int
		if _, err := fmt.Sscan(g[i+1], &a); err != nil {
			return false
		}
		if _, err := fmt.Sscan(w[i+1], &b); err != nil {
			return false
		}
		if a-b > tol || b-a > tol {
			return false
		}
	}
	return true
}
