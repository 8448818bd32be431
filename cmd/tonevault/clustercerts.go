package main

import (
	"errors"
	"flag"
	"fmt"
	"io"
	"time"

	"github.com/tonevault/tonevault/cluster"
)

func init() {
	register(command{name: "cluster-certs", summary: "write a development CA and certificates for a cluster's nodes", run: clusterCerts})
}

const clusterCertsUsage = `Usage: tonevault cluster-certs --dir DIR NODE...

Write a throwaway CA (DIR/ca.pem) and, for each NODE, a certificate and
key (DIR/NODE.pem, DIR/NODE.key) naming the node and the loopback
addresses: the mutual TLS between the nodes of a cluster on one machine
(cluster.cert_file, key_file, ca_file), as make cluster uses them. The
CA's key is not kept. Production uses certificates from the operator's
own CA, each naming its node in its SAN.

Options:
  --dir DIR      where to write them (created 0700)
  --valid D      how long they are valid (default 720h)
  --help         show this help
`

func clusterCerts(args []string, stdout, stderr io.Writer) int {
	fs := flag.NewFlagSet("cluster-certs", flag.ContinueOnError)
	fs.SetOutput(io.Discard)
	dir := fs.String("dir", "", "")
	valid := fs.Duration("valid", 720*time.Hour, "")
	if err := fs.Parse(args); err != nil {
		if errors.Is(err, flag.ErrHelp) {
			io.WriteString(stdout, clusterCertsUsage)
			return 0
		}
		fmt.Fprintf(stderr, "tonevault cluster-certs: %v\nRun 'tonevault cluster-certs --help' for details.\n", err)
		return 2
	}
	if *dir == "" || fs.NArg() == 0 {
		fmt.Fprintf(stderr, "tonevault cluster-certs: --dir and at least one node name are required\nRun 'tonevault cluster-certs --help' for details.\n")
		return 2
	}
	if err := cluster.DevCerts(*dir, fs.Args(), *valid); err != nil {
		fmt.Fprintf(stderr, "tonevault cluster-certs: %v\n", err)
		return 1
	}
	fmt.Fprintf(stdout, "wrote %s/ca.pem and a certificate and key for %d nodes\n", *dir, fs.NArg())
	return 0
}
