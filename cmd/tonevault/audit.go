package main

import (
	"bufio"
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"strings"
	"time"

	vaultapi "github.com/hashicorp/vault/api"

	"github.com/tonevault/tonevault/audit"
	"github.com/tonevault/tonevault/tokenize"
)

func init() {
	register(command{
		name:    "audit",
		summary: "verify an audit trail, or search and export it",
		run: func(args []string, stdout, stderr io.Writer) int {
			return subcommands("audit", []command{
				{name: "verify", summary: "check that an audit trail is intact and signed", run: auditVerify},
				{name: "query", summary: "print the records of an audit trail that match, as JSON lines or CSV", run: auditQuery},
			}, args, stdout, stderr)
		},
	})
}

const auditVerifyUsage = `Usage: tonevault audit verify [--hmac-key-file FILE --key-id ID | --vault] TRAIL

Check that the audit trail TRAIL is intact: every line is a complete record
exactly as the gateway wrote it, seq counts up from 1 with no gap, each
record's prev is the SHA-256 of the line before it (so no line was changed,
removed, inserted or moved), and the file ends with a checkpoint (so it was
not cut short after its last checkpoint). With --hmac-key-file, every
checkpoint's HMAC-SHA256 signature is checked too; with --vault, every
checkpoint's Vault transit (ed25519) signature, by Vault (audit.signer:
vault). Without either a warning is printed: whoever can write the file
could then have rewritten it whole.

Options:
  --hmac-key-file FILE  the key the gateway signs checkpoints with: the
                        file's bytes exactly, at least 32
  --key-id ID           the id of that key, as in the checkpoints' key_id
                        (required with --hmac-key-file)
  --vault               check signatures with Vault's transit/verify, at
                        VAULT_ADDR with VAULT_TOKEN (a token allowed to
                        verify with the key, e.g. the gateway's policy)
  --vault-key MOUNT/KEY the transit signing key (default
                        tonevault-transit/tonevault-audit)
  --help                show this help

Output, one line on stdout:
  TRAIL: OK: 1234 records, 2 checkpoints, last seq 1234, signatures verified (key id "k1")
  TRAIL: FAILED: line 7 (seq 7): record changed: its SHA-256 no longer matches ...
A failure names the first bad record: its line number, its seq when it
has one, and what is wrong.

Exit status: 0 when the trail is intact, 1 when a record is bad (changed,
removed, inserted, reordered, truncated, a missing or bad checkpoint), 2 on
a usage error or when a file cannot be read.
`

var auditQueryUsage = `Usage: tonevault audit query [options] TRAIL

Print the records of the audit trail TRAIL that match every option given,
in file order: as JSON lines, each exactly as it is in the trail, or as CSV.
Query does not check the trail: run 'tonevault audit verify' for that.

Options (before or after TRAIL; "--" ends them):
  --call ID      records of this call id
  --payment ID   records of this payment id
  --since T      records at or after T
  --until T      records before T
                 T is RFC 3339 (2025-11-23T19:46:01Z, 2025-11-23T20:46:01+01:00,
                 fractions of a second allowed) or a date (2025-11-23: its
                 start, UTC)
  --event E      records of event E, or of a whole area with "area.*"
                 (field.*); repeat it or separate with commas for several
  --csv          CSV (RFC 4180) with a header row:
                 ` + strings.Join(audit.CSVHeader[:13], ",") + `,
                 ` + strings.Join(audit.CSVHeader[13:], ",") + `
                 (the typed fields after prev; a cell is empty when the
                 record has no such field)
                 A cell that starts with = + - @ gets a leading ' so that a
                 spreadsheet shows it rather than running it.
  --help         show this help

Events:
` + eventList() + `
Exit status: 0 when the matches (none included) were printed, 2 on a usage
error, a file that cannot be read, or a line that is not a record (the
matches before it are printed).
`

func eventList() string {
	var b strings.Builder
	line := " "
	for _, e := range audit.Events() {
		if len(line)+1+len(e) > 76 {
			b.WriteString(line + "\n")
			line = " "
		}
		line += " " + string(e)
	}
	b.WriteString(line + "\n")
	return b.String()
}

// auditFlags parses fs from args, letting options and operands mix; "--"
// ends the options. It returns the operands, or an exit code when the
// command should stop: 0 after --help, 2 after a usage error.
func auditFlags(fs *flag.FlagSet, usage, cmd string, args []string, stdout, stderr io.Writer) ([]string, int, bool) {
	fs.SetOutput(io.Discard)
	fs.Usage = func() {}
	var operands []string
	for {
		if err := fs.Parse(args); err != nil {
			if errors.Is(err, flag.ErrHelp) {
				io.WriteString(stdout, usage)
				return nil, 0, false
			}
			return nil, auditUsageError(stderr, cmd, usage, "%v", err), false
		}
		rest := fs.Args()
		if consumed := len(args) - len(rest); consumed > 0 && args[consumed-1] == "--" {
			return append(operands, rest...), 0, true
		}
		if len(rest) == 0 {
			return operands, 0, true
		}
		operands = append(operands, rest[0])
		args = rest[1:]
	}
}

func auditUsageError(stderr io.Writer, cmd, usage, format string, a ...any) int {
	first, _, _ := strings.Cut(usage, "\n")
	fmt.Fprintf(stderr, "tonevault audit %s: %s\n%s\nRun 'tonevault audit %s --help' for details.\n", cmd, fmt.Sprintf(format, a...), first, cmd)
	return 2
}

func auditVerify(args []string, stdout, stderr io.Writer) int {
	fs := flag.NewFlagSet("verify", flag.ContinueOnError)
	keyFile := fs.String("hmac-key-file", "", "")
	keyID := fs.String("key-id", "", "")
	useVault := fs.Bool("vault", false, "")
	vaultKey := fs.String("vault-key", "tonevault-transit/tonevault-audit", "")
	ops, code, ok := auditFlags(fs, auditVerifyUsage, "verify", args, stdout, stderr)
	if !ok {
		return code
	}
	if len(ops) != 1 {
		return auditUsageError(stderr, "verify", auditVerifyUsage, "want one TRAIL, got %d", len(ops))
	}
	if (*keyFile == "") != (*keyID == "") {
		return auditUsageError(stderr, "verify", auditVerifyUsage, "--hmac-key-file and --key-id go together")
	}
	if *useVault && *keyFile != "" {
		return auditUsageError(stderr, "verify", auditVerifyUsage, "--vault and --hmac-key-file exclude each other")
	}
	name := ops[0]
	var v audit.Verifier
	if *useVault {
		ts, err := vaultVerifier(*vaultKey)
		if err != nil {
			fmt.Fprintf(stderr, "tonevault audit verify: %v\n", err)
			return 2
		}
		v, *keyID = ts, ts.KeyID()
	}
	if *keyFile != "" {
		key, err := audit.LoadHMACKey(*keyFile)
		if err != nil {
			fmt.Fprintf(stderr, "tonevault audit verify: %v\n", err)
			return 2
		}
		h, err := audit.NewHMAC(audit.HMACKey{ID: *keyID, Key: key})
		if err != nil {
			fmt.Fprintf(stderr, "tonevault audit verify: %v\n", err)
			return 2
		}
		v = h
	}
	f, err := os.Open(name)
	if err != nil {
		fmt.Fprintf(stderr, "tonevault audit verify: %v\n", err)
		return 2
	}
	defer f.Close()
	sum, err := audit.Verify(context.Background(), f, v)
	var ve *audit.VerifyError
	switch {
	case errors.As(err, &ve):
		fmt.Fprintf(stdout, "%s: FAILED: %v\n", name, ve)
		return 1
	case err != nil:
		fmt.Fprintf(stderr, "tonevault audit verify: %s: %v\n", name, err)
		return 2
	}
	signed := "signatures NOT checked (no --hmac-key-file or --vault)"
	if v != nil {
		signed = fmt.Sprintf("signatures verified (key id %q)", *keyID)
	} else {
		fmt.Fprintf(stderr, "tonevault audit verify: warning: %s: checkpoint signatures not checked; give --hmac-key-file and --key-id, or --vault, to check them\n", name)
	}
	fmt.Fprintf(stdout, "%s: OK: %d records, %d checkpoints, last seq %d, %s\n", name, sum.Records, sum.Checkpoints, sum.LastSeq, signed)
	return 0
}

func auditQuery(args []string, stdout, stderr io.Writer) int {
	fs := flag.NewFlagSet("query", flag.ContinueOnError)
	var f audit.Filter
	fs.StringVar(&f.CallID, "call", "", "")
	fs.StringVar(&f.PaymentID, "payment", "", "")
	fs.Func("since", "", func(s string) (err error) {
		f.Since, err = parseQueryTime(s)
		return err
	})
	fs.Func("until", "", func(s string) (err error) {
		f.Until, err = parseQueryTime(s)
		return err
	})
	fs.Func("event", "", func(s string) error {
		for e := range strings.SplitSeq(s, ",") {
			e = strings.TrimSpace(e)
			if err := audit.CheckEventPattern(e); err != nil {
				return fmt.Errorf("%v (see the list in --help)", err)
			}
			f.Events = append(f.Events, e)
		}
		return nil
	})
	csvOut := fs.Bool("csv", false, "")
	ops, code, ok := auditFlags(fs, auditQueryUsage, "query", args, stdout, stderr)
	if !ok {
		return code
	}
	if len(ops) != 1 {
		return auditUsageError(stderr, "query", auditQueryUsage, "want one TRAIL, got %d", len(ops))
	}
	if !f.Since.IsZero() && !f.Until.IsZero() && !f.Since.Before(f.Until) {
		return auditUsageError(stderr, "query", auditQueryUsage, "--since must be before --until")
	}
	name := ops[0]
	in, err := os.Open(name)
	if err != nil {
		fmt.Fprintf(stderr, "tonevault audit query: %v\n", err)
		return 2
	}
	defer in.Close()
	format := audit.JSONLines
	if *csvOut {
		format = audit.CSV
	}
	out := bufio.NewWriter(stdout)
	_, err = audit.Query(in, f, out, format)
	if ferr := out.Flush(); err == nil {
		err = ferr
	}
	if err != nil {
		fmt.Fprintf(stderr, "tonevault audit query: %s: %v\n", name, err)
		return 2
	}
	return 0
}

// parseQueryTime reads RFC 3339 with or without fractions, or a date
// (its midnight, UTC).
func parseQueryTime(s string) (time.Time, error) {
	if t, err := time.Parse(time.RFC3339Nano, s); err == nil {
		return t, nil
	}
	if t, err := time.Parse(time.DateOnly, s); err == nil {
		return t, nil
	}
	return time.Time{}, fmt.Errorf("%q is not an RFC 3339 time (2025-11-23T19:46:01Z) or a date (2025-11-23)", s)
}

// vaultVerifier checks checkpoints with Vault's transit/verify, as the
// standard VAULT_ADDR and VAULT_TOKEN say.
func vaultVerifier(mountKey string) (*tokenize.TransitSigner, error) {
	mount, key, ok := strings.Cut(mountKey, "/")
	if !ok {
		return nil, fmt.Errorf("--vault-key %q: want MOUNT/KEY", mountKey)
	}
	if os.Getenv("VAULT_TOKEN") == "" {
		return nil, errors.New("--vault: VAULT_TOKEN is not set")
	}
	client, err := vaultapi.NewClient(vaultapi.DefaultConfig())
	if err != nil {
		return nil, fmt.Errorf("--vault: %w", err)
	}
	return tokenize.NewTransitSigner(client, mount, key)
}

// auditCode is the audit reason code for a code from another package (a
// metric label of media, a reversal reason of psp): the code itself when
// the audit trail knows it, unlisted otherwise, so that the record is
// written rather than refused.
func auditCode(s string) audit.Reason {
	if r := audit.Reason(s); r.Known() {
		return r
	}
	return audit.ReasonUnlisted
}
