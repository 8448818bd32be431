package main

import (
	"bytes"
	"context"
	"path/filepath"
	"strings"
	"testing"

	"github.com/tonevault/tonevault/siprec/srs"
)

func TestSRSCommand(t *testing.T) {
	dir := t.TempDir()
	cases := []struct {
		name string
		args []string
		code int
		out  string
	}{
		{"help", []string{"--help"}, 0, "SIPREC recording server"},
		{"print dir", []string{"--dir", filepath.Join(dir, "rec"), "--print-dir"}, 0, filepath.Join(dir, "rec") + "\n"},
		{"bad listen", []string{"--listen", "nowhere"}, 2, "--listen"},
		{"unspecified", []string{"--listen", "0.0.0.0:5095"}, 2, "not 0.0.0.0"},
		{"argument", []string{"extra"}, 2, "unexpected argument"},
	}
	for _, c := range cases {
		var out, errb bytes.Buffer
		code := srsCommand(context.Background(), c.args, &out, &errb, nil)
		if code != c.code || !strings.Contains(out.String()+errb.String(), c.out) {
			t.Errorf("%s: exit %d, output %q %q; want %d and %q", c.name, code, out.String(), errb.String(), c.code, c.out)
		}
	}
	ctx, cancel := context.WithCancel(context.Background())
	var out, errb bytes.Buffer
	done := make(chan int)
	var uri string
	go func() {
		done <- srsCommand(ctx, []string{"--listen", "127.0.0.1:0", "--dir", dir}, &out, &errb, func(s *srs.Server) { uri = s.URI(); cancel() })
	}()
	if code := <-done; code != 0 || !strings.Contains(out.String(), "listening on "+uri) || !strings.Contains(out.String(), "stopped after 0 recordings") {
		t.Errorf("run: exit %d, %q %q", code, out.String(), errb.String())
	}
}
