package main

import (
	"flag"
	"fmt"
	"io"
	"os"
	"os/exec"
	"strconv"
	"time"

	"github.com/tonevault/tonevault/media"
	"github.com/tonevault/tonevault/media/webrtc/webrtcload"
)

func init() {
	register(command{name: "load-webrtc", summary: "load-test browser agents' WebRTC legs (pion peers, no browser) against plain RTP agents", run: loadWebRTCCmd})
}

const loadWebRTCUsage = `Usage: tonevault load-webrtc [options]

Run CALLS concurrent calls through the media relay on 127.0.0.1: the
customer side plain RTP, the agent side a WebRTC leg (one PeerConnection
per call, DTLS-SRTP, to a pion peer standing in for the browser) or, with
--leg rtp, plain RTP as a SIP agent. G.711 both ways, 50 packets/s per
direction per call, for a 2 s warm-up and then --duration. The gateway
side (relay and legs) runs in a child process, this binary's
'load-webrtc --serve', so that its CPU is read from /proc apart from the
load client's. Reports the gateway's CPU per call, loss both ways and the
load average.

Options:
  --calls N       concurrent calls (default 200)
  --duration D    how long to measure (default 20s)
  --leg KIND      webrtc (default) or rtp
  --io MODE       the relay's packet engine: auto (default), io_uring or goroutines
  --in-process    run the gateway side in this process (no CPU split)
  --help          show this help
`

func loadWebRTCCmd(args []string, stdout, stderr io.Writer) int {
	fs := flag.NewFlagSet("load-webrtc", flag.ContinueOnError)
	fs.SetOutput(io.Discard)
	var o webrtcload.Options
	fs.IntVar(&o.Calls, "calls", 200, "")
	fs.DurationVar(&o.Duration, "duration", 20*time.Second, "")
	fs.StringVar(&o.Leg, "leg", webrtcload.LegWebRTC, "")
	fs.StringVar(&o.IO, "io", media.IOAuto, "")
	inProcess := fs.Bool("in-process", false, "")
	serve := fs.Bool("serve", false, "")
	if code, ok := parseOptions(fs, "load-webrtc", loadWebRTCUsage, args, stdout, stderr); !ok {
		return code
	}
	if err := o.Validate(); err != nil {
		fmt.Fprintf(stderr, "tonevault load-webrtc: %v\n", err)
		return 2
	}
	if *serve {
		if err := webrtcload.Serve(o, os.Stdin, stdout); err != nil {
			fmt.Fprintf(stderr, "tonevault load-webrtc --serve: %v\n", err)
			return 1
		}
		return 0
	}
	if !*inProcess {
		exe, err := os.Executable()
		if err != nil {
			fmt.Fprintf(stderr, "tonevault load-webrtc: %v\n", err)
			return 1
		}
		o.Child = func() *exec.Cmd {
			return exec.Command(exe, "load-webrtc", "--serve", "--io", o.IO, "--leg", o.Leg, "--calls", strconv.Itoa(o.Calls))
		}
	}
	res, err := webrtcload.Run(o, stderr)
	if err != nil {
		fmt.Fprintf(stderr, "tonevault load-webrtc: %v\n", err)
		return 1
	}
	res.Print(stdout)
	return 0
}
