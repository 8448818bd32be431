package main

import (
	"context"
	"flag"
	"fmt"
	"io"
	"net/netip"
	"os"
	"os/signal"
	"path/filepath"
	"syscall"

	"github.com/tonevault/tonevault/siprec/srs"
)

func init() {
	register(command{
		name:    "srs",
		summary: "a small SIPREC recording server for tests and demos: one stereo WAV per call",
		run: func(args []string, stdout, stderr io.Writer) int {
			ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
			defer stop()
			return srsCommand(ctx, args, stdout, stderr, nil)
		},
	})
}

// defaultSRSListen is clear of the gateway's default ports (DESIGN.md).
const defaultSRSListen = "127.0.0.1:5095"

var srsUsage = `Usage: tonevault srs [options]

A small SIPREC recording server (RFC 7866), to try ToneVault's call
recording and for tests; not a production recorder. It answers a
recording client's INVITE (Require: siprec; a multipart body with the SDP
and the RFC 7865 metadata) with a receive-only stream for each stream
offered, takes both RTP streams (PCMU or PCMA) and, when the session
ends with a BYE or the server stops, writes to --dir:

  NAME.wav   stereo, 8 kHz, 16-bit: left the first stream (the customer,
             as the agent heard them: masked), right the second (the
             agent); silence where packets are missing
  NAME.xml   the metadata as received (participants, the call's
             correlation headers)
  NAME.json  what arrived: packets per stream, telephone-events, types

NAME is the time and the gateway's call id. An INVITE that is not a
SIPREC one gets 488 with a Warning saying why.

Options:
  --listen ADDR   SIP address, UDP and TCP (default ` + defaultSRSListen + `);
                  RTP uses free ports on the same address
  --dir DIR       where recordings go (default ./recordings, created)
  --print-dir     print the absolute recording directory and exit
  --help          show this help

Point the gateway at it in its configuration:

  sip:
    trunks:
      carrier:
        recording:
          srs: sip:srs@` + defaultSRSListen + `

Output: "srs: listening on sip:srs@ADDR ..." on stdout, then a line per
session opened, refused and written ("srs: recorded FILE.wav ...").
Stops on SIGINT or SIGTERM, writing the sessions still open. Exit
status: 0 after a clean stop, 1 when it cannot listen or write, 2 on a
usage error.
`

// srsCommand runs until ctx ends. ready, when not nil, gets the server.
func srsCommand(ctx context.Context, args []string, stdout, stderr io.Writer, ready func(*srs.Server)) int {
	fs := flag.NewFlagSet("srs", flag.ContinueOnError)
	fs.SetOutput(io.Discard)
	listen := fs.String("listen", defaultSRSListen, "")
	dir := fs.String("dir", "recordings", "")
	printDir := fs.Bool("print-dir", false, "")
	usageErr := func(format string, a ...any) int {
		fmt.Fprintf(stderr, "tonevault srs: %s\nRun 'tonevault srs --help' for details.\n", fmt.Sprintf(format, a...))
		return 2
	}
	if code, ok := parseOptions(fs, "srs", srsUsage, args, stdout, stderr); !ok {
		return code
	}
	addr, err := netip.ParseAddrPort(*listen)
	if err != nil || addr.Addr().IsUnspecified() {
		return usageErr("--listen %q: want IP:port with an address peers reach (not 0.0.0.0)", *listen)
	}
	abs, err := filepath.Abs(*dir)
	if err != nil {
		return usageErr("--dir: %v", err)
	}
	if *printDir {
		fmt.Fprintln(stdout, abs)
		return 0
	}
	s, err := srs.Start(srs.Config{Listen: addr, Dir: abs, Log: &syncWriter{w: stdout}})
	if err != nil {
		fmt.Fprintf(stderr, "tonevault srs: %v\n", err)
		return 1
	}
	if ready != nil {
		ready(s)
	}
	<-ctx.Done()
	if err := s.Close(); err != nil {
		fmt.Fprintf(stderr, "tonevault srs: %v\n", err)
		return 1
	}
	fmt.Fprintf(stdout, "srs: stopped after %d recordings\n", len(s.Recordings()))
	return 0
}
