package main

import (
	"flag"
	"fmt"
	"io"
	"os"
	"os/exec"
	"strconv"
	"time"

	"github.com/tonevault/tonevault/dtmf"
	"github.com/tonevault/tonevault/media"
	"github.com/tonevault/tonevault/media/loadtest"
)

func init() {
	register(command{name: "load", summary: "load-test the RTP media relay on loopback and report its CPU, loss and latency", run: loadCmd})
}

const loadUsage = `Usage: tonevault load [options]

Run CALLS concurrent calls' worth of G.711 RTP both ways (50 packets/s per
direction per call) through a media relay on 127.0.0.1 and report the
relay's CPU time per packet, loss and added latency.

The relay runs in a child process (this binary, 'load --relay-only'), so
its CPU time is read from /proc/PID/stat apart from the generator's. Each
packet carries its index and send time in the payload; the receiver finds
them again after the relay's look-ahead shifted the audio, and the kernel
stamps the arrival (SO_TIMESTAMPNS), so latency is measured on the wire,
not from RTP timestamps nor from when the generator got round to reading.
Each call sends on its own 1 ms slot of the 20 ms interval; the generator
plays all customers and agents from two sockets per side with sendmmsg and
recvmmsg, to leave the relay as much of the machine as it can.

Beside the latency it reports how long the relay's and the generator's
threads waited for a CPU while runnable (/proc/PID/task/*/schedstat) and
the CPUs' steal time (/proc/stat): on a shared or virtual machine the
tail follows these more than the relay's own work.

Options:
  --calls N           concurrent calls (default 100)
  --duration D        how long to send (default 10s), after a 1s warm-up
  --digits-every D    every D, every tenth call presses a digit in-band
                      (default 5s; 0: none)
  --lookahead D       the masker's look-ahead (default 30ms)
  --relay KIND        what to load (default tonevault):
                        tonevault  the product's relay: per-call ports,
                                   inspection and masking
                        bare       a bare Go UDP relay with the same
                                   per-call ports, no inspection
                        batched    every call on one port per side,
                                   recvmmsg/sendmmsg, no inspection: the
                                   floor of what UDP costs on this machine
                        rtpengine  Debian's rtpengine-daemon in userspace
                                   (table=-1), started by this command on
                                   loopback and driven over its ng protocol;
                                   its CPU is the daemon's
  --rtpengine-profile P
                      pass (default): plain forwarding; mask: block DTMF
                      with DTMF-security=silence and delay-buffer=100, the
                      setting that masks in-band digits
  --rtpengine PATH    the rtpengine binary (default: rtpengine on PATH;
                      scripts/install-deps.sh rtpengine installs it)
  --io MODE           the tonevault relay's packet engine: auto (default),
                      io_uring or goroutines (media.io in the config)
  --ring-scheduling P --ring-priority N
                      the io_uring rings' threads' scheduling
                      (media.ring_scheduling, media.ring_priority): other
                      (default) with a nice value, or fifo or rr with a
                      real-time priority 1-99 (needs CAP_SYS_NICE)
  --srtp              SDES-SRTP (AES_CM_128_HMAC_SHA1_80) on both legs of
                      every call: the relay authenticates, decrypts, masks
                      and protects again each packet (tonevault relay only)
  --record            open a SIPREC recording fork on every call (tonevault
                      relay only): the relay also sends each call's masked
                      customer stream and its agent stream, as plain RTP, to
                      two sockets of the generator that count them; compare
                      "relay CPU per call" with a run without it
  --pin               the generator on the first CPU, the relay's process
                      on the others: neither waits behind the other's
                      threads for a CPU (needs 2 CPUs; not --in-process)
  --in-process        run the relay in this process (no CPU split)
  --help              show this help
`

func loadCmd(args []string, stdout, stderr io.Writer) int {
	fs := flag.NewFlagSet("load", flag.ContinueOnError)
	fs.SetOutput(io.Discard)
	var o loadtest.Options
	fs.IntVar(&o.Calls, "calls", 100, "")
	fs.DurationVar(&o.Duration, "duration", 10*time.Second, "")
	fs.DurationVar(&o.DigitsEvery, "digits-every", 5*time.Second, "")
	fs.DurationVar(&o.LookAhead, "lookahead", dtmf.DefaultLookAhead, "")
	fs.StringVar(&o.Relay, "relay", loadtest.RelayTonevault, "")
	fs.StringVar(&o.IO, "io", media.IOAuto, "")
	fs.StringVar(&o.RingScheduling, "ring-scheduling", media.SchedOther, "")
	fs.IntVar(&o.RingPriority, "ring-priority", 0, "")
	fs.BoolVar(&o.SRTP, "srtp", false, "")
	fs.BoolVar(&o.Record, "record", false, "")
	fs.StringVar(&o.RtpengineProfile, "rtpengine-profile", loadtest.RtpenginePass, "")
	fs.StringVar(&o.Rtpengine, "rtpengine", "", "")
	fs.BoolVar(&o.Pin, "pin", false, "")
	inProcess := fs.Bool("in-process", false, "")
	relayOnly := fs.Bool("relay-only", false, "")
	if code, ok := parseOptions(fs, "load", loadUsage, args, stdout, stderr); !ok {
		return code
	}
	if err := o.Validate(); err != nil {
		fmt.Fprintf(stderr, "tonevault load: %v\n", err)
		return 2
	}
	if *relayOnly {
		if err := loadtest.ServeRelay(o, os.Stdin, stdout); err != nil {
			fmt.Fprintf(stderr, "tonevault load --relay-only: %v\n", err)
			return 1
		}
		return 0
	}
	if !*inProcess {
		exe, err := os.Executable()
		if err != nil {
			fmt.Fprintf(stderr, "tonevault load: %v\n", err)
			return 1
		}
		o.Child = func() *exec.Cmd {
			return exec.Command(exe, "load", "--relay-only", "--relay", o.Relay, "--io", o.IO,
				"--calls", strconv.Itoa(o.Calls), "--lookahead", o.LookAhead.String(), "--srtp="+strconv.FormatBool(o.SRTP), "--record="+strconv.FormatBool(o.Record),
				"--ring-scheduling", o.RingScheduling, "--ring-priority", strconv.Itoa(o.RingPriority))
		}
	}
	res, err := loadtest.Run(o, stderr)
	if err != nil {
		fmt.Fprintf(stderr, "tonevault load: %v\n", err)
		return 1
	}
	res.Print(stdout, o)
	return 0
}
