package refdetect

import (
	"bufio"
	"bytes"
	"fmt"
	"os/exec"
	"strconv"
	"strings"
)

// SpanDSP runs SpanDSP's DTMF receiver (dtmf_rx with its default settings)
// over pcm through the helper built from test/tools/spandsp-dtmf/main.c and
// returns one Hit per digit, with Sample the position at which SpanDSP
// confirmed it. SpanDSP reports all 16 digits, A-D included.
func SpanDSP(pcm []int16) ([]Hit, error) {
	bin, err := SpanDSPPath()
	if err != nil {
		return nil, err
	}
	cmd := exec.Command(bin)
	cmd.Stdin = bytes.NewReader(pcmBytes(pcm))
	var stdout, stderr bytes.Buffer
	cmd.Stdout = &stdout
	cmd.Stderr = &stderr
	if err := cmd.Run(); err != nil {
		return nil, fmt.Errorf("spandsp-dtmf: %v: %s", err, stderrTail(stderr.Bytes()))
	}
	return parseSpanDSP(stdout.Bytes())
}

// parseSpanDSP parses "<digit> <sample_index>" lines.
func parseSpanDSP(out []byte) ([]Hit, error) {
	var hits []Hit
	sc := bufio.NewScanner(bytes.NewReader(out))
	for sc.Scan() {
		line := strings.TrimSpace(sc.Text())
		if line == "" {
			continue
		}
		f := strings.Fields(line)
		if len(f) != 2 || len(f[0]) != 1 {
			return nil, fmt.Errorf("spandsp-dtmf: unexpected output line %q", line)
		}
		n, err := strconv.ParseInt(f[1], 10, 64)
		if err != nil {
			return nil, fmt.Errorf("spandsp-dtmf: unexpected output line %q", line)
		}
		hits = append(hits, Hit{Digit: f[0][0], Sample: n})
	}
	return hits, sc.Err()
}
