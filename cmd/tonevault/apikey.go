package main

import (
	"bufio"
	"crypto/rand"
	"encoding/base64"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"strings"

	"github.com/tonevault/tonevault/api"
)

func init() {
	register(command{
		name:    "api-key",
		summary: "create an API key for the CRM, or hash an existing one",
		run:     func(args []string, stdout, stderr io.Writer) int { return apiKey(args, os.Stdin, stdout, stderr) },
	})
}

const apiKeyUsage = `Usage: tonevault api-key --name NAME
       tonevault api-key --hash < KEYFILE

Create a new random API key and print it once, with the lines to add under
"api: keys:" in configs/tonevault.yaml. The gateway stores only the key's
SHA-256 hash; the key itself is shown here and nowhere else, so hand it to
the CRM now. NAME is the actor the audit trail records for the key's
requests (letters, digits, '-', '_', '.').

With --hash, read an existing key from standard input (one line) and print
its hash only.

Options:
  --name NAME  the key's name (required unless --hash)
  --hash       hash a key read from standard input
  --help       show this help
`

func apiKey(args []string, stdin io.Reader, stdout, stderr io.Writer) int {
	fs := flag.NewFlagSet("api-key", flag.ContinueOnError)
	fs.SetOutput(io.Discard)
	name := fs.String("name", "", "")
	hash := fs.Bool("hash", false, "")
	if code, ok := parseOptions(fs, "api-key", apiKeyUsage, args, stdout, stderr); !ok {
		return code
	}
	if *hash {
		line, err := bufio.NewReader(io.LimitReader(stdin, 4096)).ReadString('\n')
		key := strings.TrimRight(line, "\r\n")
		if key == "" {
			if err == nil || errors.Is(err, io.EOF) {
				err = errors.New("no key on standard input")
			}
			fmt.Fprintf(stderr, "tonevault api-key: %v\n", err)
			return 2
		}
		fmt.Fprintln(stdout, api.HashKey(key))
		return 0
	}
	if !validKeyName(*name) {
		fmt.Fprintf(stderr, "tonevault api-key: --name must be 1 to 64 letters, digits, '-', '_' or '.'\n\n%s", apiKeyUsage)
		return 2
	}
	raw := make([]byte, 32)
	if _, err := rand.Read(raw); err != nil {
		fmt.Fprintf(stderr, "tonevault api-key: %v\n", err)
		return 1
	}
	key := "tvk_" + base64.RawURLEncoding.EncodeToString(raw)
	fmt.Fprintf(stdout, "API key for %s (shown once; give it to the CRM):\n\n  %s\n\n", *name, key)
	fmt.Fprintf(stdout, "Add to configs/tonevault.yaml:\n\napi:\n  keys:\n    - name: %s\n      hash: %q\n", *name, api.HashKey(key))
	return 0
}

func validKeyName(n string) bool {
	if n == "" || len(n) > 64 {
		return false
	}
	for _, c := range n {
		if !(c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c >= '0' && c <= '9' || c == '-' || c == '_' || c == '.') {
			return false
		}
	}
	return true
}
