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

const auditVerifyUsage = `Usage: tonevault audit verify [--hmac-key-file FILE --key-id ID | --vault]
                              [--anchor-file FILE | --anchor-vault] TRAIL

Check that the audit trail TRAIL is intact: every line is a complete record
exactly as the gateway wrote it, seq counts up from 1 with no gap, and each
record's prev is the SHA-256 of the line before it (so no line was changed,
removed, inserted or moved). With --hmac-key-file, every checkpoint's
HMAC-SHA256 signature is checked too; with --vault, every checkpoint's Vault
transit (ed25519) signature, by Vault (audit.signer: vault).

With --anchor-file or --anchor-vault, the trail is checked against the
copies of its checkpoints the gateway anchored outside it (audit.anchor):
the last anchored checkpoint must be in the trail, and each anchored
checkpoint must be the same line there. That detects a trail whose end was
cut off (even right after a checkpoint), that was replaced by an older copy
or another trail, or rewritten by someone holding the key. Only the records
after the last anchored checkpoint (at most audit.checkpoint_interval of
them) are not covered.

A trail being written, or whose gateway stopped without closing it, does
not end with a checkpoint: it verifies, and the output says how far it is
checkpointed. Without a key, or without an anchor, a warning is printed:
whoever can write the file could then have rewritten it whole, or cut it.

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
  --anchor-file FILE    the anchor file (audit.anchor_file; the gateway's
                        default is TRAIL.anchor)
  --anchor-vault        the anchors in Vault KV v2, at VAULT_ADDR with
                        VAULT_TOKEN (audit.anchor: vault)
  --anchor-kv MOUNT/PREFIX  where they are (default
                        tonevault-kv/tonevault/audit-anchor: vault.kv.mount,
                        vault.kv.prefix + /audit-anchor)
  --help                show this help

Output, one line on stdout:
  TRAIL: OK: 1234 records, 12 checkpoints, last seq 1234, closed, signatures
    verified (key id "k1"), anchored through seq 1234
  TRAIL: OK: 1240 records, 12 checkpoints, last seq 1240, not closed:
    checkpointed through seq 1234, 6 records after it (a live trail, or its
    writer stopped), signatures ..., anchored through seq 1234
  TRAIL: FAILED: line 7 (seq 7): record changed: its SHA-256 no longer matches ...
  TRAIL: FAILED: seq 1240: records cut off the end: the anchor holds
    checkpoint seq 1240 of ..., but the trail ends at seq 1100
(each on one line). A failure names the first bad record: its line number,
its seq when it has one, and what is wrong.

Exit status: 0 when the trail is intact, 1 when a record is bad (changed,
removed, inserted, reordered, truncated, a bad checkpoint, a cut or
mismatch the anchor shows), 2 on a usage error or when a file or the
anchor cannot be read.
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
	anchorFile := fs.String("anchor-file", "", "")
	anchorVault := fs.Bool("anchor-vault", false, "")
	anchorKV := fs.String("anchor-kv", "tonevault-kv/tonevault/audit-anchor", "")
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
	if *anchorVault && *anchorFile != "" {
		return auditUsageError(stderr, "verify", auditVerifyUsage, "--anchor-vault and --anchor-file exclude each other")
	}
	name := ops[0]
	fail := func(err error) int {
		fmt.Fprintf(stderr, "tonevault audit verify: %v\n", err)
		return 2
	}
	var v audit.Verifier
	if *useVault {
		ts, err := vaultVerifier(*vaultKey)
		if err != nil {
			return fail(err)
		}
		v, *keyID = ts, ts.KeyID()
	}
	if *keyFile != "" {
		key, err := audit.LoadHMACKey(*keyFile)
		if err != nil {
			return fail(err)
		}
		h, err := audit.NewHMAC(audit.HMACKey{ID: *keyID, Key: key})
		if err != nil {
			return fail(err)
		}
		v = h
	}
	var anchor audit.Anchor
	switch {
	case *anchorFile != "":
		if _, err := os.Stat(*anchorFile); err != nil {
			return fail(fmt.Errorf("--anchor-file: %w", err))
		}
		anchor = &audit.FileAnchor{Path: *anchorFile}
	case *anchorVault:
		a, err := vaultAnchor(*anchorKV)
		if err != nil {
			return fail(err)
		}
		anchor = a
	}
	f, err := os.Open(name)
	if err != nil {
		return fail(err)
	}
	defer f.Close()
	var sum audit.Summary
	if anchor != nil {
		sum, err = audit.VerifyAnchored(context.Background(), f, v, anchor)
	} else {
		sum, err = audit.Verify(context.Background(), f, v)
	}
	var ve *audit.VerifyError
	switch {
	case errors.As(err, &ve):
		fmt.Fprintf(stdout, "%s: FAILED: %v\n", name, ve)
		return 1
	case err != nil:
		fmt.Fprintf(stderr, "tonevault audit verify: %s: %v\n", name, err)
		return 2
	}
	end := "closed"
	switch {
	case sum.Checkpointed == 0:
		end = fmt.Sprintf("not closed: no checkpoint yet, %d records (a live trail, or its writer stopped)", sum.LastSeq)
	case !sum.Closed:
		end = fmt.Sprintf("not closed: checkpointed through seq %d, %d records after it (a live trail, or its writer stopped)",
			sum.Checkpointed, sum.LastSeq-sum.Checkpointed)
	}
	signed := "signatures NOT checked (no --hmac-key-file or --vault)"
	if v != nil {
		signed = fmt.Sprintf("signatures verified (key id %q)", *keyID)
	} else {
		fmt.Fprintf(stderr, "tonevault audit verify: warning: %s: checkpoint signatures not checked; give --hmac-key-file and --key-id, or --vault, to check them\n", name)
	}
	anchored := "end NOT checked against an anchor (no --anchor-file or --anchor-vault)"
	if anchor != nil {
		anchored = fmt.Sprintf("anchored through seq %d", sum.Anchored)
	} else {
		fmt.Fprintf(stderr, "tonevault audit verify: warning: %s: not checked against its anchor, so a cut after a checkpoint or an older copy would pass; give --anchor-file or --anchor-vault\n", name)
	}
	fmt.Fprintf(stdout, "%s: OK: %d records, %d checkpoints, last seq %d, %s, %s, %s\n",
		name, sum.Records, sum.Checkpoints, sum.LastSeq, end, signed, anchored)
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
	client, err := envVaultClient("--vault")
	if err != nil {
		return nil, err
	}
	return tokenize.NewTransitSigner(client, mount, key)
}

// auditAnchorTimeout bounds one anchoring in Vault: the queue waits for
// it, and a checkpoint not anchored in time counts as a failure.
const auditAnchorTimeout = 10 * time.Second

// vaultAnchor reads the anchors the gateway keeps in Vault KV v2, as the
// standard VAULT_ADDR and VAULT_TOKEN say.
func vaultAnchor(mountPrefix string) (audit.Anchor, error) {
	mount, prefix, ok := strings.Cut(mountPrefix, "/")
	if !ok || mount == "" || prefix == "" {
		return nil, fmt.Errorf("--anchor-kv %q: want MOUNT/PREFIX", mountPrefix)
	}
	client, err := envVaultClient("--anchor-vault")
	if err != nil {
		return nil, err
	}
	return audit.KVAnchor{Prefix: prefix, KV: vaultKV{mount: mount, client: func() (*vaultapi.Client, error) { return client, nil }}}, nil
}

func envVaultClient(flag string) (*vaultapi.Client, error) {
	if os.Getenv("VAULT_TOKEN") == "" {
		return nil, fmt.Errorf("%s: VAULT_TOKEN is not set", flag)
	}
	client, err := vaultapi.NewClient(vaultapi.DefaultConfig())
	if err != nil {
		return nil, fmt.Errorf("%s: %w", flag, err)
	}
	return client, nil
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

// vaultKV is audit.KV on Vault KV v2: the gateway's anchors (with its
// own login) and verify's (with VAULT_TOKEN).
type vaultKV struct {
	mount  string
	client func() (*vaultapi.Client, error)
}

func (k vaultKV) Put(ctx context.Context, key string, data map[string]any) error {
	c, err := k.client()
	if err != nil {
		return err
	}
	ctx, cancel := context.WithTimeout(ctx, auditAnchorTimeout)
	defer cancel()
	_, err = c.KVv2(k.mount).Put(ctx, key, data)
	return err
}

func (k vaultKV) Get(ctx context.Context, key string) (map[string]any, error) {
	c, err := k.client()
	if err != nil {
		return nil, err
	}
	ctx, cancel := context.WithTimeout(ctx, auditAnchorTimeout)
	defer cancel()
	s, err := c.KVv2(k.mount).Get(ctx, key)
	if errors.Is(err, vaultapi.ErrSecretNotFound) {
		return nil, nil
	}
	if err != nil {
		return nil, err
	}
	return s.Data, nil
}
