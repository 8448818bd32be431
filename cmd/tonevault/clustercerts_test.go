package main

import (
	"bytes"
	"path/filepath"
	"strings"
	"testing"

	"github.com/tonevault/tonevault/cluster"
)

func TestClusterCerts(t *testing.T) {
	dir := filepath.Join(t.TempDir(), "certs")
	var out, errb bytes.Buffer
	if code := clusterCerts([]string{"--dir", dir, "gw1", "gw2"}, &out, &errb); code != 0 {
		t.Fatalf("exit %d: %s", code, errb.String())
	}
	c := cluster.DefaultConfig()
	c.Node, c.CertFile, c.KeyFile, c.CAFile = "gw2", filepath.Join(dir, "gw2.pem"), filepath.Join(dir, "gw2.key"), filepath.Join(dir, "ca.pem")
	if _, err := cluster.LoadTLS(c); err != nil {
		t.Fatalf("the certificate written for gw2: %v", err)
	}
	c.Node = "gw3" // gw2's certificate does not name gw3
	if _, err := cluster.LoadTLS(c); err == nil {
		t.Fatal("gw2's certificate taken for gw3")
	}
	for _, args := range [][]string{{"gw1"}, {"--dir", dir}, {"--dir", dir, "GW1"}} {
		errb.Reset()
		if code := clusterCerts(args, &out, &errb); code == 0 || strings.TrimSpace(errb.String()) == "" {
			t.Errorf("%v: exit %d, %q", args, code, errb.String())
		}
	}
}
