package main

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"os/signal"
	"sync"
	"syscall"
	"time"

	"github.com/tonevault/tonevault/api"
)

func init() {
	register(command{
		name:    "webhook-echo",
		summary: "receive the gateway's webhooks, check their signatures and print them",
		run: func(args []string, stdout, stderr io.Writer) int {
			ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
			defer stop()
			return webhookEcho(ctx, args, stdout, stderr, nil)
		},
	})
}

// defaultEchoListen is clear of the gateway's default ports (DESIGN.md).
const defaultEchoListen = "127.0.0.1:8099"

var webhookEchoUsage = `Usage: tonevault webhook-echo --secret-file FILE [options]

Receive the payment webhooks that tonevault serve posts, the way a CRM
would, and print them: to try webhooks without writing a receiver (make
run starts one). Each delivery's X-ToneVault-Signature is checked with the
secret in FILE (the gateway's api.webhook.secret_file) and its
X-ToneVault-Timestamp must be within --tolerance of now. A valid delivery
is printed on stdout and answered 204; a retry of an event already printed
is answered 204 and noted. Any other request is answered 401 (signature
or timestamp), 405 (not a POST) or 413 (over 1 MiB), with a line on
stderr saying why; its body is not printed. Webhooks hold no card data.

Options:
  --secret-file FILE  the webhook secret: at least 32 bytes, a trailing
                      newline is ignored (required)
  --listen ADDR       address to listen on (default ` + defaultEchoListen + `)
  --tolerance D       how far a delivery's timestamp may be from now
                      (default 5m)
  --json              print each event's body alone, one JSON line each
  --help              show this help

Point the gateway at it in its configuration:

  api:
    webhook:
      url: http://` + defaultEchoListen + `/
      secret_file: FILE

Output: "webhook-echo: listening on http://ADDR/" on stderr, then per
event a line "TIME TYPE PAYMENT (EVENT ID)" and the body, indented, on
stdout. Stops on SIGINT or SIGTERM. Exit status: 0 after a clean stop, 1
when it cannot read the secret or listen, 2 on a usage error.
`

// maxWebhookBody caps what the receiver reads of a request.
const maxWebhookBody = 1 << 20

// webhookEcho runs until ctx ends. ready, when not nil, gets the address.
func webhookEcho(ctx context.Context, args []string, stdout, stderr io.Writer, ready func(addr string)) int {
	fs := flag.NewFlagSet("webhook-echo", flag.ContinueOnError)
	fs.SetOutput(io.Discard)
	listen := fs.String("listen", defaultEchoListen, "")
	secretFile := fs.String("secret-file", "", "")
	tolerance := fs.Duration("tolerance", 5*time.Minute, "")
	jsonOut := fs.Bool("json", false, "")
	usageErr := func(format string, a ...any) int {
		fmt.Fprintf(stderr, "tonevault webhook-echo: %s\nRun 'tonevault webhook-echo --help' for details.\n", fmt.Sprintf(format, a...))
		return 2
	}
	if code, ok := parseOptions(fs, "webhook-echo", webhookEchoUsage, args, stdout, stderr); !ok {
		return code
	}
	if *secretFile == "" {
		return usageErr("--secret-file is required: the file the gateway's api.webhook.secret_file names")
	}
	if *tolerance <= 0 {
		return usageErr("--tolerance must be positive")
	}
	secret, err := api.ReadSecretFile(*secretFile)
	if err != nil {
		fmt.Fprintf(stderr, "tonevault webhook-echo: %v\n", err)
		return 1
	}
	ln, err := net.Listen("tcp", *listen)
	if err != nil {
		fmt.Fprintf(stderr, "tonevault webhook-echo: %v\n", err)
		return 1
	}
	h := &echoHandler{secret: secret, tolerance: *tolerance, json: *jsonOut,
		out: &syncWriter{w: stdout}, errw: &syncWriter{w: stderr}, seen: map[string]bool{}}
	srv := &http.Server{
		Handler:           h,
		ReadHeaderTimeout: 5 * time.Second,
		ReadTimeout:       15 * time.Second,
		WriteTimeout:      15 * time.Second,
		IdleTimeout:       60 * time.Second,
		MaxHeaderBytes:    16 << 10,
	}
	fmt.Fprintf(h.errw, "webhook-echo: listening on http://%s/ (secret from %s)\n", ln.Addr(), *secretFile)
	if ready != nil {
		ready(ln.Addr().String())
	}
	done := make(chan error, 1)
	go func() { done <- srv.Serve(ln) }()
	select {
	case <-ctx.Done():
	case err := <-done:
		fmt.Fprintf(stderr, "tonevault webhook-echo: %v\n", err)
		return 1
	}
	sctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	_ = srv.Shutdown(sctx)
	fmt.Fprintf(h.errw, "webhook-echo: stopped after %d events\n", h.count())
	return 0
}

// echoHandler checks and prints webhook deliveries.
type echoHandler struct {
	secret    []byte
	tolerance time.Duration
	json      bool
	out, errw io.Writer

	mu   sync.Mutex
	seen map[string]bool // event ids printed: a retry is noted, not printed again
}

func (h *echoHandler) count() int {
	h.mu.Lock()
	defer h.mu.Unlock()
	return len(h.seen)
}

func (h *echoHandler) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	refuse := func(code int, why string) {
		fmt.Fprintf(h.errw, "webhook-echo: refused %s %s from %s: %d, %s\n", r.Method, r.URL.Path, r.RemoteAddr, code, why)
		http.Error(w, http.StatusText(code), code)
	}
	if r.Method != http.MethodPost {
		w.Header().Set("Allow", http.MethodPost)
		refuse(http.StatusMethodNotAllowed, "webhooks are POSTed")
		return
	}
	body, err := io.ReadAll(http.MaxBytesReader(w, r.Body, maxWebhookBody))
	if err != nil {
		var tooBig *http.MaxBytesError
		if errors.As(err, &tooBig) {
			refuse(http.StatusRequestEntityTooLarge, "body over 1 MiB")
			return
		}
		refuse(http.StatusBadRequest, "cannot read the body")
		return
	}
	switch err := api.VerifyWebhook(h.secret, r.Header, body, h.tolerance); {
	case errors.Is(err, api.ErrWebhookSignature):
		refuse(http.StatusUnauthorized, "bad signature: no v1 signature matches the secret (is --secret-file the gateway's api.webhook.secret_file?)")
		return
	case errors.Is(err, api.ErrWebhookTimestamp):
		refuse(http.StatusUnauthorized, fmt.Sprintf("timestamp missing or more than %v from now (a replay, or clocks apart)", h.tolerance))
		return
	case err != nil:
		refuse(http.StatusUnauthorized, err.Error())
		return
	}
	var ev api.WebhookEvent
	if err := json.Unmarshal(body, &ev); err != nil || ev.ID == "" {
		// Signed by the gateway, so not an attacker's: say so and take it.
		fmt.Fprintf(h.errw, "webhook-echo: a signed delivery that is not an event (%d bytes)\n", len(body))
		w.WriteHeader(http.StatusNoContent)
		return
	}
	h.mu.Lock()
	again := h.seen[ev.ID]
	h.seen[ev.ID] = true
	h.mu.Unlock()
	if again {
		fmt.Fprintf(h.errw, "webhook-echo: %s again (a retry: receivers drop duplicates by event id)\n", ev.ID)
		w.WriteHeader(http.StatusNoContent)
		return
	}
	var b bytes.Buffer
	if h.json {
		b.Write(body)
	} else {
		fmt.Fprintf(&b, "%s %s %s (%s), signature ok\n", ev.CreatedAt.UTC().Format(time.RFC3339), ev.Type, ev.Payment.ID, ev.ID)
		b.WriteString("  ")
		if json.Indent(&b, body, "  ", "  ") != nil {
			b.Write(body)
		}
	}
	b.WriteByte('\n')
	_, _ = h.out.Write(b.Bytes())
	w.WriteHeader(http.StatusNoContent)
}
