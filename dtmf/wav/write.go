package wav

import (
	"encoding/binary"
	"fmt"
	"io"
	"math"
)

// New encodes per-channel linear samples (channels[c] is channel c, all
// the same length) as audio in format f.
func New(f Format, channels [][]int16) (*Audio, error) {
	if err := f.Validate(); err != nil {
		return nil, err
	}
	if len(channels) != f.Channels {
		return nil, fmt.Errorf("wav: %d channels of samples for a %d-channel format", len(channels), f.Channels)
	}
	n := len(channels[0])
	for c, s := range channels {
		if len(s) != n {
			return nil, fmt.Errorf("wav: channel %d has %d samples, channel 0 has %d", c, len(s), n)
		}
	}
	size := int64(n) * int64(f.BlockAlign())
	if size > maxData(f) {
		return nil, fmt.Errorf("wav: %d bytes of audio do not fit in a WAV file", size)
	}
	a := &Audio{Format: f, Data: make([]byte, size)}
	for c, s := range channels {
		if err := a.Put(c, 0, s); err != nil {
			return nil, err
		}
	}
	return a, nil
}

// Write writes per-channel linear samples as a WAV file in format f.
func Write(w io.Writer, f Format, channels [][]int16) error {
	a, err := New(f, channels)
	if err != nil {
		return err
	}
	_, err = a.WriteTo(w)
	return err
}

// fmtSize is the size of the fmt chunk written for f.
func fmtSize(f Format) int {
	switch {
	case f.Tag == TagExtensible:
		return 40
	case f.Encoding == PCM:
		return 16
	}
	return 18 // WAVEFORMATEX with cbSize 0, as non-PCM formats require
}

// hasFact: non-PCM formats carry a fact chunk with the frame count.
func hasFact(f Format) bool { return f.Encoding != PCM }

func headerSize(f Format) int {
	n := 12 + 8 + fmtSize(f) + 8
	if hasFact(f) {
		n += 12
	}
	return n
}

func maxData(f Format) int64 {
	m := int64(math.MaxUint32) - int64(headerSize(f)) + 8 - 1 // room for the pad byte
	return m - m%int64(f.BlockAlign())
}

// WriteTo writes a as a complete WAV file in a.Format: RIFF header, fmt
// chunk (plain, or extensible with the same sub-format, valid bits and
// channel mask), a fact chunk for G.711, and the data chunk holding
// a.Data unchanged. Chunks other than these are not written.
func (a *Audio) WriteTo(w io.Writer) (int64, error) {
	f := a.Format
	if err := f.Validate(); err != nil {
		return 0, err
	}
	if len(a.Data)%f.BlockAlign() != 0 {
		return 0, fmt.Errorf("wav: %d bytes of data are not whole %d-byte frames", len(a.Data), f.BlockAlign())
	}
	if int64(len(a.Data)) > maxData(f) {
		return 0, fmt.Errorf("wav: %d bytes of audio do not fit in a WAV file", len(a.Data))
	}
	pad := len(a.Data) % 2
	h := make([]byte, 0, headerSize(f))
	le := binary.LittleEndian
	h = append(h, "RIFF"...)
	h = le.AppendUint32(h, uint32(headerSize(f)-8+len(a.Data)+pad))
	h = append(h, "WAVE"...)

	h = append(h, "fmt "...)
	h = le.AppendUint32(h, uint32(fmtSize(f)))
	h = le.AppendUint16(h, f.Tag)
	h = le.AppendUint16(h, uint16(f.Channels))
	h = le.AppendUint32(h, uint32(f.Rate))
	h = le.AppendUint32(h, uint32(f.Rate*f.BlockAlign()))
	h = le.AppendUint16(h, uint16(f.BlockAlign()))
	h = le.AppendUint16(h, uint16(f.Bits))
	switch fmtSize(f) {
	case 18:
		h = le.AppendUint16(h, 0)
	case 40:
		h = le.AppendUint16(h, 22)
		vb := f.ValidBits
		if vb == 0 {
			vb = f.Bits
		}
		h = le.AppendUint16(h, uint16(vb))
		h = le.AppendUint32(h, f.ChannelMask)
		h = le.AppendUint16(h, uint16(f.Encoding))
		h = append(h, guidSuffix[:]...)
	}
	if hasFact(f) {
		h = append(h, "fact"...)
		h = le.AppendUint32(h, 4)
		h = le.AppendUint32(h, uint32(a.Frames()))
	}
	h = append(h, "data"...)
	h = le.AppendUint32(h, uint32(len(a.Data)))

	var total int64
	n, err := w.Write(h)
	total += int64(n)
	if err != nil {
		return total, err
	}
	n, err = w.Write(a.Data)
	total += int64(n)
	if err != nil {
		return total, err
	}
	if pad == 1 {
		n, err = w.Write([]byte{0})
		total += int64(n)
	}
	return total, err
}
