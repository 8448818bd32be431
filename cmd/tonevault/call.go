package main

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"errors"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"os"
	"os/signal"
	"syscall"
	"time"

	"github.com/emiago/sipgo/sip"

	"github.com/tonevault/tonevault/dtmf"
	"github.com/tonevault/tonevault/dtmf/wav"
	"github.com/tonevault/tonevault/internal/secret"
	"github.com/tonevault/tonevault/sip/caller"
)

func init() {
	register(command{name: "call", summary: "place a SIP call and type digits into it (demos, tests)", run: call})
}

// callStdin is where --digits - reads from; tests replace it.
var callStdin io.Reader = os.Stdin

const callUsage = `Usage: tonevault call [options] [URI]

Dial URI (default ` + caller.DefaultTarget + `, the gateway's carrier side),
offering PCMU, PCMA and telephone-event/8000, and once answered send 20 ms
G.711 packets of a quiet background while typing --digits like a person
on a phone keypad. Progress goes to stderr; the digits are never printed
unless --show-digits (they are card numbers in demos).

Options (before or after URI):
  --to URI           the SIP URI to call (instead of the URI operand)
  --from URI         our SIP URI (default sip:caller@<local IP>)
  --local IP:PORT    SIP bind address; RTP uses the same IP (default ` + caller.DefaultLocal + `)
  --transport T      udp, tcp or tls (default udp; a sips: URI means tls)
  --tls              call over TLS (--transport tls): the gateway's TLS
                     port, e.g. sip:pay@127.0.0.1:5061 (the default URI
                     then); its certificate is verified against --ca-file
                     or the system's roots
  --ca-file FILE     CA certificates (PEM) that verify the far end over TLS
  --cert-file FILE   our certificate (PEM), for a far end that asks for one
  --key-file FILE    its key (PEM)
  --srtp             offer SDES-SRTP (RTP/SAVP, a=crypto with each suite):
                     our media is encrypted and what we get must
                     authenticate; a plain answer ends the call
  --digits KEYS      keys to type: 0-9 * # A-D, at most 64, e.g.
                     1234#; "-" reads them from stdin,
                     which keeps them out of the process list and history
  --keypad PATH      type the keys of each line written to the named pipe
                     PATH (created if absent), e.g. echo '1234#' > PATH,
                     for as long as the call lasts: a customer who types
                     when the agent asks. Not with --digits
  --header 'N: V'    add a header to the INVITE, e.g.
                     'X-Interaction-ID: demo-1' (a CRM finds the call by
                     it); repeatable
  --dtmf MODE        inband (tones in the audio, default), rfc4733
                     (telephone-event packets) or info (SIP INFO
                     application/dtmf-relay)
  --audio FILE       background audio: a WAV file (16-bit PCM, A-law or
                     µ-law, any rate: resampled to 8 kHz, first channel),
                     looped; default comfort noise
  --seed N           seed for the random timing (default: random)
  --press D          fix every press to D (default random 80-150ms)
  --gap D            fix every gap to D (default random 120-400ms; a
                     longer pause follows '#')
  --level DB,DB      in-band low,high tone levels, dBm0 (default -8,-6)
  --delay D          wait D after the answer before typing, e.g. while the
                     agent starts the payment (default 0)
  --wait D           stay in the call D after the digits (default 2s;
                     with --keypad, D after the last keys typed, default
                     10m)
  --hangup           send BYE at the end (default true); with
                     --hangup=false, wait for the far end to hang up
  --answer-timeout D give up (CANCEL) when not answered within D
                     (default 30s)
  --record FILE      write the audio received from the far end as a
                     16-bit 8 kHz WAV file
  --verbose          more progress: SIP statuses, packet counts
  --show-digits      print the digits typed (never with real cards)
  --help             show this help

Exit status: 0 when the call was answered and completed (also when the far
end hung up first: a note says so), 1 when the call failed (the SIP status
is printed) or typing failed, 2 on a usage error.
`

type callFlags struct {
	opts          caller.Options
	digits        string
	keypad        string
	mode          caller.Mode
	audio, record string
	wait, answer  time.Duration
	delay         time.Duration
	hangup        bool
	tls           bool
	caFile        string
	certFile      string
	keyFile       string
}

// keypadWait is how long a --keypad call stays up after the last keys
// typed, unless --wait says: long enough for an agent to start a payment
// by hand, submit it and read the outcome.
const keypadWait = 10 * time.Minute

// headerFlags collects repeated --header values.
type headerFlags struct{ h *[]caller.Header }

func (f headerFlags) String() string { return "" }

func (f headerFlags) Set(s string) error {
	h, err := caller.ParseHeader(s)
	if err != nil {
		return err
	}
	*f.h = append(*f.h, h)
	return nil
}

func call(args []string, stdout, stderr io.Writer) int {
	cf, code, ok := parseCallFlags(args, stdout, stderr)
	if !ok {
		return code
	}
	usageErr := func(format string, a ...any) int {
		fmt.Fprintf(stderr, "tonevault call: %s\n%s\nRun 'tonevault call --help' for details.\n", fmt.Sprintf(format, a...), firstLine(callUsage))
		return 2
	}
	if cf.audio != "" {
		a, err := readWAV(cf.audio)
		if err != nil {
			return usageErr("--audio %s", fileError(cf.audio, err))
		}
		if cf.opts.Audio, err = wav.To8k(a.Channel(0), a.Format.Rate); err != nil {
			return usageErr("--audio %s: %v", cf.audio, err)
		}
	}
	var digits []byte
	switch cf.digits {
	case "":
	case "-":
		var err error
		if digits, err = readDigits(callStdin); err != nil {
			return usageErr("--digits -: %v", err)
		}
	default:
		digits = []byte(cf.digits)
	}
	defer secret.Wipe(digits)
	if err := checkKeys(digits); err != nil {
		return usageErr("--digits: %v", err)
	}
	cf.opts.Progress = stderr
	if err := cf.opts.Validate(); err != nil {
		return usageErr("%v", err)
	}
	var keypad *os.File
	if cf.keypad != "" {
		var err error
		if keypad, err = openKeypad(cf.keypad); err != nil {
			return usageErr("--keypad %s: %v", cf.keypad, err)
		}
		defer keypad.Close()
	}
	// sipgo sends a few messages to its global logger; this process is ours.
	sip.SetDefaultLogger(slog.New(slog.DiscardHandler))

	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	return runCall(ctx, cf, digits, keypad, stderr)
}

// checkKeys reports the first key that is not 0-9 * # A-D by its
// position, never its value, or too many keys.
func checkKeys(keys []byte) error {
	for i, b := range keys {
		if !dtmf.Digit(b).Valid() {
			return fmt.Errorf("key %d of %d is not 0-9 * # A-D", i+1, len(keys))
		}
	}
	if len(keys) > caller.MaxDigits {
		return fmt.Errorf("%d keys, at most %d", len(keys), caller.MaxDigits)
	}
	return nil
}

// openKeypad opens the named pipe at path, making it if absent. Anything
// else there is refused: keys written to a regular file would be card data
// left on disk. Opened for reading and writing, it never blocks nor ends
// between two writers.
func openKeypad(path string) (*os.File, error) {
	fi, err := os.Lstat(path)
	switch {
	case errors.Is(err, os.ErrNotExist):
		if err := syscall.Mkfifo(path, 0o600); err != nil {
			return nil, fmt.Errorf("cannot make a named pipe: %w", err)
		}
	case err != nil:
		return nil, err
	case fi.Mode()&os.ModeNamedPipe == 0:
		return nil, errors.New("exists and is not a named pipe (keys written to a file stay on disk): remove it or choose another path")
	}
	return os.OpenFile(path, os.O_RDWR, 0)
}

// keyLines reads r line by line into lines until r fails or done closes.
// Each line is its own buffer, read byte by byte (a buffered reader would
// keep copies no one wipes); the receiver wipes it. A line longer than a
// call can type is sent as nil.
func keyLines(r io.Reader, lines chan<- []byte, done <-chan struct{}) {
	defer close(lines)
	var one [1]byte
	defer func() { one[0] = 0 }()
	for {
		line := make([]byte, 0, caller.MaxDigits+1)
		long := false
		for {
			n, err := r.Read(one[:])
			if err != nil {
				secret.Wipe(line)
				return
			}
			if n == 0 {
				continue
			}
			if one[0] == '\n' {
				break
			}
			if len(line) == cap(line) {
				long = true
				continue
			}
			line = append(line, one[0])
		}
		if n := len(line); n > 0 && line[n-1] == '\r' {
			line[n-1] = 0
			line = line[:n-1]
		}
		if long || len(line) > caller.MaxDigits {
			secret.Wipe(line)
			line = nil
		} else if len(line) == 0 {
			continue
		}
		select {
		case lines <- line:
		case <-done:
			secret.Wipe(line)
			return
		}
	}
}

// typeKeypad types each line from the keypad pipe until the far end hangs
// up, ctx ends, or wait passes without keys. It returns the exit status.
func typeKeypad(ctx context.Context, c *caller.Call, keypad *os.File, cf callFlags, stderr io.Writer) int {
	lines := make(chan []byte)
	done := make(chan struct{})
	defer close(done)
	go keyLines(keypad, lines, done)
	fmt.Fprintf(stderr, "tonevault call: keypad: type keys with: echo 'KEYS' > %s (the call stays up %v after the last keys; Ctrl-C hangs up)\n", cf.keypad, cf.wait)
	idle := time.NewTimer(cf.wait)
	defer idle.Stop()
	for n := 1; ; n++ {
		select {
		case <-idle.C:
			fmt.Fprintf(stderr, "tonevault call: keypad: no keys for %v\n", cf.wait)
			return 0
		case <-c.Done():
			return 0
		case <-ctx.Done():
			return 0 // runCall reports the interruption
		case line, ok := <-lines:
			if !ok {
				fmt.Fprintf(stderr, "tonevault call: keypad %s: cannot read it any more\n", cf.keypad)
				return 1
			}
			err := errors.New("longer than a call types")
			if line != nil {
				err = checkKeys(line)
			}
			if err != nil {
				secret.Wipe(line)
				fmt.Fprintf(stderr, "tonevault call: keypad line %d not typed: %v\n", n, err)
				continue
			}
			err = c.Type(ctx, line, cf.mode)
			secret.Wipe(line)
			switch {
			case err == nil:
			case errors.Is(err, caller.ErrHungUp), ctx.Err() != nil:
				return 0
			default:
				fmt.Fprintf(stderr, "tonevault call: typing failed: %v\n", err)
				return 1
			}
			idle.Reset(cf.wait)
		}
	}
}

func runCall(ctx context.Context, cf callFlags, digits []byte, keypad *os.File, stderr io.Writer) int {
	dctx, cancel := context.WithTimeout(ctx, cf.answer)
	c, err := caller.Dial(dctx, cf.opts)
	cancel()
	if err != nil {
		var se *caller.StatusError
		switch {
		case errors.As(err, &se):
			fmt.Fprintf(stderr, "tonevault call: %v\n", se)
		case errors.Is(err, context.DeadlineExceeded) && ctx.Err() == nil:
			fmt.Fprintf(stderr, "tonevault call: call failed: not answered within %v\n", cf.answer)
		default:
			fmt.Fprintf(stderr, "tonevault call: call failed: %v\n", err)
		}
		return 1
	}
	status := 0
	if (len(digits) > 0 || keypad != nil) && cf.delay > 0 {
		fmt.Fprintf(stderr, "tonevault call: waiting %v before typing\n", cf.delay)
		t := time.NewTimer(cf.delay)
		select {
		case <-t.C:
		case <-c.Done():
		case <-ctx.Done():
		}
		t.Stop()
	}
	if len(digits) > 0 {
		err := c.Type(ctx, digits, cf.mode)
		switch {
		case err == nil, errors.Is(err, caller.ErrHungUp):
		case ctx.Err() != nil:
			fmt.Fprintln(stderr, "tonevault call: interrupted")
			status = 1
		default:
			fmt.Fprintf(stderr, "tonevault call: typing failed: %v\n", err)
			status = 1
		}
	}
	if keypad != nil {
		status = typeKeypad(ctx, c, keypad, cf, stderr)
	} else if status == 0 {
		t := time.NewTimer(cf.wait)
		select {
		case <-t.C:
		case <-c.Done():
		case <-ctx.Done():
		}
		t.Stop()
	}
	if status == 0 && !cf.hangup && ctx.Err() == nil {
		select {
		case <-c.Done():
		case <-ctx.Done():
		}
	}
	hctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	if err := c.Hangup(hctx); err != nil {
		fmt.Fprintf(stderr, "tonevault call: %v\n", err)
	}
	if c.RemoteHangup() {
		fmt.Fprintln(stderr, "tonevault call: note: the far end ended the call")
	}
	if cf.record != "" {
		a, err := wav.New(wav.NewFormat(wav.PCM, dtmf.SampleRate, 1), [][]int16{c.Received()})
		if err == nil {
			err = writeAtomic(cf.record, 0o644, a)
		}
		if err != nil {
			fmt.Fprintf(stderr, "tonevault call: --record %s: %v\n", cf.record, err)
			return 1
		}
	}
	if status == 0 && ctx.Err() != nil {
		fmt.Fprintln(stderr, "tonevault call: interrupted")
		status = 1
	}
	return status
}

func parseCallFlags(args []string, stdout, stderr io.Writer) (callFlags, int, bool) {
	var cf callFlags
	fs := flag.NewFlagSet("tonevault call", flag.ContinueOnError)
	fs.SetOutput(io.Discard)
	fs.Usage = func() {}
	o := &cf.opts
	fs.StringVar(&o.Target, "to", "", "")
	fs.StringVar(&o.From, "from", "", "")
	fs.StringVar(&o.Local, "local", caller.DefaultLocal, "")
	fs.StringVar(&o.Transport, "transport", "udp", "")
	fs.BoolVar(&cf.tls, "tls", false, "")
	fs.StringVar(&cf.caFile, "ca-file", "", "")
	fs.StringVar(&cf.certFile, "cert-file", "", "")
	fs.StringVar(&cf.keyFile, "key-file", "", "")
	fs.BoolVar(&o.SRTP, "srtp", false, "")
	fs.StringVar(&cf.digits, "digits", "", "")
	fs.StringVar(&cf.keypad, "keypad", "", "")
	fs.Var(headerFlags{&o.Headers}, "header", "")
	mode := fs.String("dtmf", "inband", "")
	fs.StringVar(&cf.audio, "audio", "", "")
	fs.Uint64Var(&o.Timing.Seed, "seed", 0, "")
	fs.DurationVar(&o.Timing.Press, "press", 0, "")
	fs.DurationVar(&o.Timing.Gap, "gap", 0, "")
	level := fs.String("level", "", "")
	fs.DurationVar(&cf.wait, "wait", 2*time.Second, "")
	fs.DurationVar(&cf.delay, "delay", 0, "")
	fs.BoolVar(&cf.hangup, "hangup", true, "")
	fs.DurationVar(&cf.answer, "answer-timeout", 30*time.Second, "")
	fs.StringVar(&cf.record, "record", "", "")
	fs.BoolVar(&o.Verbose, "verbose", false, "")
	fs.BoolVar(&o.ShowDigits, "show-digits", false, "")
	fail := func(format string, a ...any) (callFlags, int, bool) {
		fmt.Fprintf(stderr, "tonevault call: %s\n%s\nRun 'tonevault call --help' for details.\n", fmt.Sprintf(format, a...), firstLine(callUsage))
		return cf, 2, false
	}
	var operands []string
	for {
		if err := fs.Parse(args); err != nil {
			if errors.Is(err, flag.ErrHelp) {
				io.WriteString(stdout, callUsage)
				return cf, 0, false
			}
			return fail("%v", err)
		}
		rest := fs.Args()
		if consumed := len(args) - len(rest); consumed > 0 && args[consumed-1] == "--" {
			operands = append(operands, rest...)
			break
		}
		if len(rest) == 0 {
			break
		}
		operands = append(operands, rest[0])
		args = rest[1:]
	}
	switch {
	case len(operands) > 1:
		return fail("want at most one URI, got %d", len(operands))
	case len(operands) == 1 && o.Target != "":
		return fail("give the URI as an operand or with --to, not both")
	case len(operands) == 1:
		o.Target = operands[0]
	}
	var err error
	if cf.mode, err = caller.ParseMode(*mode); err != nil {
		return fail("--dtmf: %v", err)
	}
	if *level != "" {
		if _, err := fmt.Sscanf(*level, "%g,%g", &o.ToneLow, &o.ToneHigh); err != nil {
			return fail("--level %q: want LOW,HIGH in dBm0, e.g. -8,-6", *level)
		}
	}
	if cf.wait < 0 || cf.delay < 0 || cf.answer <= 0 {
		return fail("--wait and --delay must not be negative and --answer-timeout must be positive")
	}
	if cf.tls {
		if o.Transport != "udp" && o.Transport != "tls" {
			return fail("--tls and --transport %s: choose one", o.Transport)
		}
		o.Transport = "tls"
		if o.Target == "" {
			o.Target = caller.DefaultTLSTarget
		}
	}
	if (cf.certFile == "") != (cf.keyFile == "") {
		return fail("--cert-file and --key-file go together")
	}
	if cf.caFile != "" || cf.certFile != "" {
		tc := &tls.Config{MinVersion: tls.VersionTLS12}
		if cf.caFile != "" {
			pem, err := os.ReadFile(cf.caFile)
			if err != nil {
				return fail("--ca-file: %v", err)
			}
			tc.RootCAs = x509.NewCertPool()
			if !tc.RootCAs.AppendCertsFromPEM(pem) {
				return fail("--ca-file %s: no PEM certificate in it", cf.caFile)
			}
		}
		if cf.certFile != "" {
			pair, err := tls.LoadX509KeyPair(cf.certFile, cf.keyFile)
			if err != nil {
				return fail("--cert-file, --key-file: %v", err)
			}
			tc.Certificates = []tls.Certificate{pair}
		}
		o.TLS = tc
	}
	if cf.keypad != "" {
		if cf.digits != "" {
			return fail("give keys with --digits or --keypad, not both")
		}
		waitSet := false
		fs.Visit(func(f *flag.Flag) { waitSet = waitSet || f.Name == "wait" })
		if !waitSet {
			cf.wait = keypadWait
		}
	}
	return cf, 0, true
}

// readDigits reads one line of keys, as bytes that the caller wipes. It
// reads byte by byte: a buffered reader would keep a copy it cannot wipe.
func readDigits(r io.Reader) ([]byte, error) {
	line := make([]byte, 0, caller.MaxDigits+2)
	var one [1]byte
	for len(line) <= caller.MaxDigits+1 {
		n, err := r.Read(one[:])
		if n == 1 {
			if one[0] == '\n' {
				break
			}
			line = append(line, one[0])
			continue
		}
		if err == io.EOF {
			break
		}
		if err != nil {
			secret.Wipe(line)
			return nil, err
		}
	}
	one[0] = 0
	if n := len(line); n > 0 && line[n-1] == '\r' {
		line[n-1] = 0
		line = line[:n-1]
	}
	if len(line) == 0 {
		return nil, errors.New("no keys on stdin")
	}
	return line, nil
}
