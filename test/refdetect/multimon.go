package refdetect

import (
	"bufio"
	"bytes"
	"fmt"
	"os/exec"
	"strings"
)

// MultimonRate is the input rate multimon-ng's DTMF demodulator expects.
const MultimonRate = 22050

// soxTo22050 resamples raw s16le 8 kHz mono to raw s16 22050 Hz mono
// (stdin to stdout). -D (no dither) and -R (repeatable) keep it
// deterministic.
var soxTo22050 = []string{
	"-D", "-R", "-V1",
	"-t", "raw", "-r", "8000", "-e", "signed-integer", "-b", "16", "-c", "1", "-L", "-",
	"-t", "raw", "-r", "22050", "-e", "signed-integer", "-b", "16", "-c", "1", "-",
}

// multimonArgs runs only the DTMF demodulator on raw input from stdin;
// -q drops the banner.
var multimonArgs = []string{"-q", "-t", "raw", "-a", "DTMF", "-"}

// Multimon runs Debian's multimon-ng DTMF demodulator over pcm, which is
// resampled from 8 kHz to 22050 Hz with sox on the way:
//
//	sox -D -R -V1 -t raw -r 8000 -e signed-integer -b 16 -c 1 -L - \
//	    -t raw -r 22050 -e signed-integer -b 16 -c 1 - |
//	multimon-ng -q -t raw -a DTMF -
//
// multimon-ng prints "DTMF: X" per digit and no positions, so every Hit has
// Sample -1. It reports all 16 digits, A-D included.
func Multimon(pcm []int16) ([]Hit, error) {
	sox := exec.Command("sox", soxTo22050...)
	sox.Stdin = bytes.NewReader(pcmBytes(pcm))
	var soxErr, mmErr, out bytes.Buffer
	sox.Stderr = &soxErr
	pipe, err := sox.StdoutPipe()
	if err != nil {
		return nil, err
	}
	mm := exec.Command("multimon-ng", multimonArgs...)
	mm.Stdin = pipe
	mm.Stdout = &out
	mm.Stderr = &mmErr
	if err := sox.Start(); err != nil {
		return nil, fmt.Errorf("multimon: sox: %w", err)
	}
	if err := mm.Start(); err != nil {
		_ = sox.Process.Kill()
		_ = sox.Wait()
		return nil, fmt.Errorf("multimon: multimon-ng: %w", err)
	}
	soxWait := sox.Wait()
	mmWait := mm.Wait()
	if soxWait != nil {
		return nil, fmt.Errorf("multimon: sox: %v: %s", soxWait, stderrTail(soxErr.Bytes()))
	}
	if mmWait != nil {
		return nil, fmt.Errorf("multimon: multimon-ng: %v: %s", mmWait, stderrTail(mmErr.Bytes()))
	}
	return parseMultimon(out.Bytes()), nil
}

// parseMultimon picks the "DTMF: X" lines out of multimon-ng's output.
func parseMultimon(out []byte) []Hit {
	var hits []Hit
	sc := bufio.NewScanner(bytes.NewReader(out))
	for sc.Scan() {
		line := strings.TrimSpace(sc.Text())
		rest, ok := strings.CutPrefix(line, "DTMF:")
		if !ok {
			continue
		}
		rest = strings.TrimSpace(rest)
		if len(rest) != 1 {
			continue
		}
		hits = append(hits, Hit{Digit: rest[0], Sample: -1})
	}
	return hits
}
