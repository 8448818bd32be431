// Package refdetect holds the reference DTMF detectors that prove
// ToneVault's masking leaks nothing (DESIGN.md invariant 2): two detectors
// nobody here wrote — SpanDSP's dtmf_rx (through the small C program in
// test/tools/spandsp-dtmf) and Debian's multimon-ng — and a deliberately
// aggressive detector of our own (Aggressive).
//
// All inputs are 8 kHz mono 16-bit linear PCM. This is test tooling: it runs
// subprocesses and is never imported by product code. It is written
// independently of package dtmf's detector and does not import package dtmf.
package refdetect

import (
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
)

// SampleRate is the rate of every PCM slice this package accepts.
const SampleRate = 8000

// Hit is one digit reported by a detector.
type Hit struct {
	Digit byte // '0'-'9', '*', '#', 'A'-'D'
	// Sample is the detector's position for the digit on the input's 8 kHz
	// clock, or -1 when the detector does not report positions (multimon-ng).
	// SpanDSP reports the sample at which it confirmed the digit (up to about
	// 204 samples after the tone's first sample); Aggressive reports the first
	// sample of the first window that matched.
	Sample int64
}

func (h Hit) String() string { return fmt.Sprintf("%c@%d", h.Digit, h.Sample) }

// Digits returns the digits of hits as a string, in order.
func Digits(hits []Hit) string {
	b := make([]byte, len(hits))
	for i, h := range hits {
		b[i] = h.Digit
	}
	return string(b)
}

// EnvSpanDSP names the environment variable that overrides the location of
// the SpanDSP helper binary.
const EnvSpanDSP = "TONEVAULT_SPANDSP_DTMF"

// EnvRequireTools, when "1", turns a missing tool into a test failure
// instead of a skip (make test sets it).
const EnvRequireTools = "TONEVAULT_REQUIRE_TOOLS"

// Tool names understood by Require besides plain commands looked up in PATH.
const (
	ToolSpanDSP      = "spandsp-dtmf"    // the SpanDSP helper binary (see SpanDSPPath)
	ToolMultimon     = "multimon-ng"     // Debian multimon-ng
	ToolSox          = "sox"             // Debian sox
	ToolEspeak       = "espeak-ng"       // Debian espeak-ng
	ToolAsteriskSnd  = "asterisk-sounds" // Debian asterisk-core-sounds-en-wav data
	ToolAsteriskMoH  = "asterisk-moh"    // Debian asterisk-moh-opsound-wav data
	installDepsHint  = "scripts/install-deps.sh dtmf"
	spandspBuildHint = "cc -O2 -o bin/spandsp-dtmf test/tools/spandsp-dtmf/main.c $(pkg-config --cflags --libs spandsp)"
)

// Asterisk data directories as installed by Debian. The "en" link is made
// by asterisk-core-sounds-en (a Recommends of the -wav package), so the
// versioned directories are tried as well.
var (
	AsteriskSoundsGlobs = []string{"/usr/share/asterisk/sounds/en", "/usr/share/asterisk/sounds/en_US_f_Allison", "/usr/share/asterisk/sounds/en_*"}
	AsteriskMoHDir      = "/usr/share/asterisk/moh"
)

// AsteriskSoundsDir returns the installed English Asterisk prompt directory
// (the one holding digits/), or an error.
func AsteriskSoundsDir() (string, error) {
	for _, g := range AsteriskSoundsGlobs {
		m, _ := filepath.Glob(g)
		for _, d := range m {
			if st, err := os.Stat(filepath.Join(d, "digits")); err == nil && st.IsDir() {
				return d, nil
			}
		}
	}
	return "", errors.New("asterisk English prompts not found under /usr/share/asterisk/sounds (Debian package asterisk-core-sounds-en-wav)")
}

// ModuleRoot walks up from the working directory to the directory that
// holds go.mod.
func ModuleRoot() (string, error) {
	dir, err := os.Getwd()
	if err != nil {
		return "", err
	}
	for {
		if _, err := os.Stat(filepath.Join(dir, "go.mod")); err == nil {
			return dir, nil
		}
		parent := filepath.Dir(dir)
		if parent == dir {
			return "", errors.New("go.mod not found above the working directory")
		}
		dir = parent
	}
}

// SpanDSPPath returns the SpanDSP helper: $TONEVAULT_SPANDSP_DTMF if set,
// else <module root>/bin/spandsp-dtmf. It reports an error when the file
// is not there.
func SpanDSPPath() (string, error) {
	p := os.Getenv(EnvSpanDSP)
	if p == "" {
		root, err := ModuleRoot()
		if err != nil {
			return "", fmt.Errorf("spandsp-dtmf: %w", err)
		}
		p = filepath.Join(root, "bin", "spandsp-dtmf")
	}
	st, err := os.Stat(p)
	if err != nil {
		return "", fmt.Errorf("spandsp-dtmf helper not found at %s (build it: %s)", p, spandspBuildHint)
	}
	if st.IsDir() || st.Mode()&0o111 == 0 {
		return "", fmt.Errorf("spandsp-dtmf helper at %s is not an executable file", p)
	}
	return p, nil
}

// toolError returns nil when tool is available, else an error with a hint.
func toolError(tool string) error {
	switch tool {
	case ToolSpanDSP:
		_, err := SpanDSPPath()
		return err
	case ToolAsteriskSnd:
		_, err := AsteriskSoundsDir()
		if err != nil {
			return fmt.Errorf("%v; install: %s", err, installDepsHint)
		}
		return nil
	case ToolAsteriskMoH:
		m, _ := filepath.Glob(filepath.Join(AsteriskMoHDir, "*.wav"))
		if len(m) == 0 {
			return fmt.Errorf("no music on hold in %s (Debian package asterisk-moh-opsound-wav); install: %s", AsteriskMoHDir, installDepsHint)
		}
		return nil
	}
	if _, err := exec.LookPath(tool); err != nil {
		return fmt.Errorf("%s not found in PATH; install: %s", tool, installDepsHint)
	}
	return nil
}

// Available reports, without a testing.TB, whether every tool is present;
// the error names the first missing one and how to install it.
func Available(tools ...string) error {
	for _, tool := range tools {
		if err := toolError(tool); err != nil {
			return err
		}
	}
	return nil
}

// Require stops the test when a needed tool is missing: t.Fatal when
// TONEVAULT_REQUIRE_TOOLS=1 (make test), t.Skip otherwise, with the install
// hint either way. Tools are command names looked up in PATH or one of the
// Tool* names (ToolSpanDSP, ToolAsteriskSnd, ToolAsteriskMoH).
func Require(t testing.TB, tools ...string) {
	t.Helper()
	err := Available(tools...)
	if err == nil {
		return
	}
	if os.Getenv(EnvRequireTools) == "1" {
		t.Fatalf("required tool missing (%s=1): %v", EnvRequireTools, err)
	}
	t.Skipf("skipping: %v (set %s=1 to make this a failure)", err, EnvRequireTools)
}

// pcmBytes encodes pcm as signed 16-bit little-endian.
func pcmBytes(pcm []int16) []byte {
	b := make([]byte, 2*len(pcm))
	for i, s := range pcm {
		b[2*i] = byte(uint16(s))
		b[2*i+1] = byte(uint16(s) >> 8)
	}
	return b
}

// stderrTail trims a subprocess's stderr for an error message.
func stderrTail(b []byte) string {
	s := strings.TrimSpace(string(b))
	if len(s) > 400 {
		s = "…" + s[len(s)-400:]
	}
	return s
}
