// Package wav reads and writes the RIFF/WAVE files that call recorders
// produce — 16-bit PCM, G.711 A-law and µ-law, plain or
// WAVE_FORMAT_EXTENSIBLE, 1 to 8 channels, 1 kHz to 384 kHz — and
// resamples audio to the detector's 8 kHz.
//
// The package parses and encodes bytes only; it opens no files. Parsing
// never panics and never allocates more than the input's real size,
// whatever the header claims.
package wav

import (
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"time"

	"github.com/zaf/g711"
)

// Encoding is the sample encoding, numbered as the WAVE format tag that
// carries it in a plain (non-extensible) fmt chunk.
type Encoding uint16

const (
	PCM  Encoding = 1 // 16-bit signed little-endian linear PCM
	ALaw Encoding = 6 // G.711 A-law, 8 bits a sample
	ULaw Encoding = 7 // G.711 µ-law, 8 bits a sample
)

func (e Encoding) String() string {
	switch e {
	case PCM:
		return "16-bit PCM"
	case ALaw:
		return "G.711 A-law"
	case ULaw:
		return "G.711 µ-law"
	}
	return fmt.Sprintf("Encoding(%d)", uint16(e))
}

// TagExtensible is the format tag of WAVE_FORMAT_EXTENSIBLE, whose real
// encoding is given by a sub-format GUID.
const TagExtensible = 0xFFFE

// Limits on what Read accepts (and Write produces).
const (
	MinRate     = 1000
	MaxRate     = 384000
	MaxChannels = 8
)

// Format describes a file's audio as stored, so that a file can be written
// back the way it was read.
type Format struct {
	Tag      uint16   // format tag of the fmt chunk: 1, 6, 7 or TagExtensible
	Encoding Encoding // sample encoding (for TagExtensible, the sub-format)
	Channels int      // 1..MaxChannels
	Rate     int      // frames a second, MinRate..MaxRate
	Bits     int      // bits a sample: 16 for PCM, 8 for G.711

	// For TagExtensible only: the valid bits in each sample (0 means all
	// of Bits) and the speaker-position mask.
	ValidBits   int
	ChannelMask uint32
}

// NewFormat returns the plain (non-extensible) format for enc.
func NewFormat(enc Encoding, rate, channels int) Format {
	f := Format{Tag: uint16(enc), Encoding: enc, Channels: channels, Rate: rate, Bits: 8}
	if enc == PCM {
		f.Bits = 16
	}
	return f
}

// BlockAlign is the size in bytes of one frame (one sample of every channel).
func (f Format) BlockAlign() int { return f.Channels * f.Bits / 8 }

func (f Format) String() string {
	s := fmt.Sprintf("%s, %d Hz, %d channel", f.Encoding, f.Rate, f.Channels)
	if f.Channels != 1 {
		s += "s"
	}
	if f.Tag == TagExtensible {
		s += " (extensible)"
	}
	return s
}

// Validate reports whether f is a format this package reads and writes.
func (f Format) Validate() error {
	switch f.Tag {
	case uint16(PCM), uint16(ALaw), uint16(ULaw):
		if Encoding(f.Tag) != f.Encoding {
			return fmt.Errorf("wav: format tag %d does not match encoding %v", f.Tag, f.Encoding)
		}
	case TagExtensible:
	default:
		return &UnsupportedError{Tag: f.Tag, Bits: f.Bits}
	}
	want := 8
	switch f.Encoding {
	case PCM:
		want = 16
	case ALaw, ULaw:
	default:
		return &UnsupportedError{Tag: f.Tag, SubFormat: uint16(f.Encoding), Bits: f.Bits}
	}
	if f.Bits != want {
		return &UnsupportedError{Tag: f.Tag, SubFormat: uint16(f.Encoding), Bits: f.Bits}
	}
	if f.ValidBits < 0 || f.ValidBits > f.Bits {
		return fmt.Errorf("%w: %d valid bits in a %d-bit sample", ErrMalformed, f.ValidBits, f.Bits)
	}
	if f.Channels < 1 {
		return fmt.Errorf("%w: %d channels", ErrMalformed, f.Channels)
	}
	if f.Channels > MaxChannels {
		return fmt.Errorf("%w: %d channels (ToneVault reads 1 to %d)", ErrUnsupported, f.Channels, MaxChannels)
	}
	if f.Rate < MinRate || f.Rate > MaxRate {
		return fmt.Errorf("%w: sample rate %d Hz (ToneVault reads %d to %d Hz)", ErrUnsupported, f.Rate, MinRate, MaxRate)
	}
	return nil
}

// Errors returned by Read and Parse. Each returned error wraps exactly one
// of them (test with errors.Is) and adds the specifics.
var (
	// ErrNotWAV: the input does not start with a RIFF/WAVE header.
	ErrNotWAV = errors.New("not a WAV file")
	// ErrTruncated: the input ends before what its headers declare — a
	// chunk longer than the bytes left, no fmt or data chunk, or a data
	// chunk that ends inside a frame.
	ErrTruncated = errors.New("truncated WAV file")
	// ErrUnsupported: a valid WAV this package does not read: an encoding
	// other than 16-bit PCM, A-law or µ-law (reported as an
	// *UnsupportedError), or a channel count or rate out of range.
	ErrUnsupported = errors.New("unsupported WAV")
	// ErrMalformed: headers that contradict themselves, such as a block
	// alignment that does not match channels and bits.
	ErrMalformed = errors.New("malformed WAV file")
)

// UnsupportedError names an encoding this package does not read. It
// matches ErrUnsupported under errors.Is.
type UnsupportedError struct {
	Tag       uint16 // format tag in the fmt chunk
	SubFormat uint16 // for TagExtensible: the sub-format's tag (0 if the GUID is not a standard one)
	GUID      [16]byte
	Bits      int
}

func (e *UnsupportedError) Is(target error) bool { return target == ErrUnsupported }

func (e *UnsupportedError) Error() string {
	var what string
	if e.Tag == TagExtensible {
		if e.SubFormat == 0 && e.GUID != ([16]byte{}) {
			what = fmt.Sprintf("sub-format %s %d-bit (format 0xFFFE)", guidString(e.GUID), e.Bits)
		} else {
			what = fmt.Sprintf("%s %d-bit (format 0xFFFE, sub-format %d)", tagName(e.SubFormat), e.Bits, e.SubFormat)
		}
	} else {
		what = fmt.Sprintf("%s %d-bit (format %d)", tagName(e.Tag), e.Bits, e.Tag)
	}
	return "unsupported encoding: " + what + "; ToneVault reads 16-bit PCM, G.711 µ-law and A-law"
}

func tagName(tag uint16) string {
	switch tag {
	case 0x0001:
		return "PCM"
	case 0x0002:
		return "Microsoft ADPCM"
	case 0x0003:
		return "IEEE float"
	case 0x0006:
		return "A-law"
	case 0x0007:
		return "µ-law"
	case 0x0011:
		return "IMA ADPCM"
	case 0x0031:
		return "GSM 6.10"
	case 0x0040:
		return "G.721 ADPCM"
	case 0x0050:
		return "MPEG"
	case 0x0055:
		return "MPEG Layer 3"
	case 0x0064:
		return "G.726 ADPCM"
	case 0x0065:
		return "G.722 ADPCM"
	case 0x00FF:
		return "AAC"
	case 0x2000:
		return "AC-3"
	case 0xF1AC:
		return "FLAC"
	case TagExtensible:
		return "extensible"
	}
	return fmt.Sprintf("format 0x%04X", tag)
}

// guidSuffix is the tail shared by the standard KSDATAFORMAT sub-format
// GUIDs {xxxxxxxx-0000-0010-8000-00AA00389B71}; the first two bytes are
// the plain format tag.
var guidSuffix = [14]byte{0x00, 0x00, 0x00, 0x00, 0x10, 0x00, 0x80, 0x00, 0x00, 0xAA, 0x00, 0x38, 0x9B, 0x71}

func guidString(g [16]byte) string {
	return fmt.Sprintf("{%08X-%04X-%04X-%X-%X}",
		binary.LittleEndian.Uint32(g[0:]), binary.LittleEndian.Uint16(g[4:]),
		binary.LittleEndian.Uint16(g[6:]), g[8:10], g[10:16])
}

// Audio is a WAV file's audio: its format and the data chunk's bytes
// exactly as stored (interleaved frames). Keeping the bytes lets a caller
// change some samples and write everything else back bit-exact.
type Audio struct {
	Format Format
	Data   []byte // len is a multiple of Format.BlockAlign()
}

// Frames is the length in frames (samples per channel).
func (a *Audio) Frames() int {
	if ba := a.Format.BlockAlign(); ba > 0 {
		return len(a.Data) / ba
	}
	return 0
}

// Duration is the audio's length.
func (a *Audio) Duration() time.Duration {
	if a.Format.Rate <= 0 {
		return 0
	}
	return time.Duration(int64(a.Frames()) * int64(time.Second) / int64(a.Format.Rate))
}

// Read reads a whole WAV file from r. See Parse.
func Read(r io.Reader) (*Audio, error) {
	b, err := io.ReadAll(r)
	if err != nil {
		return nil, err
	}
	return Parse(b)
}

// Parse parses a whole WAV file held in b. The returned Audio's Data
// aliases b. Unknown chunks (LIST, fact, cue, …) are skipped; parsing stops
// once both fmt and data have been seen, so whatever follows the data chunk
// is ignored. The RIFF size field is not trusted (writers often get it
// wrong); the chunks themselves must fit in b.
//
// Every error wraps ErrNotWAV, ErrTruncated, ErrUnsupported or
// ErrMalformed.
func Parse(b []byte) (*Audio, error) {
	if len(b) == 0 {
		return nil, fmt.Errorf("%w: empty file", ErrNotWAV)
	}
	if len(b) >= 4 {
		switch string(b[:4]) {
		case "RIFX":
			return nil, fmt.Errorf("%w: big-endian RIFX files are not supported", ErrUnsupported)
		case "RF64", "BW64":
			if len(b) >= 12 && string(b[8:12]) == "WAVE" {
				return nil, fmt.Errorf("%w: %s (WAV larger than 4 GB) is not supported", ErrUnsupported, b[:4])
			}
		}
	}
	if len(b) < 12 {
		if len(b) >= 4 && string(b[:4]) == "RIFF" {
			return nil, fmt.Errorf("%w: %d bytes, shorter than a RIFF/WAVE header", ErrTruncated, len(b))
		}
		return nil, fmt.Errorf("%w: no RIFF/WAVE header", ErrNotWAV)
	}
	if string(b[:4]) != "RIFF" || string(b[8:12]) != "WAVE" {
		return nil, fmt.Errorf("%w: no RIFF/WAVE header", ErrNotWAV)
	}

	var (
		fmtChunk  []byte
		data      []byte
		haveData  bool
		dataStart int
	)
	p := 12
	for !(fmtChunk != nil && haveData) {
		rest := len(b) - p
		if rest < 8 {
			missing := "fmt"
			if fmtChunk != nil {
				missing = "data"
			}
			return nil, fmt.Errorf("%w: no %s chunk", ErrTruncated, missing)
		}
		id := string(b[p : p+4])
		size := int64(binary.LittleEndian.Uint32(b[p+4:]))
		p += 8
		rest -= 8
		if size > int64(rest) {
			return nil, fmt.Errorf("%w: %q chunk declares %d bytes, only %d present", ErrTruncated, id, size, rest)
		}
		body := b[p : p+int(size)]
		switch id {
		case "fmt ":
			if fmtChunk != nil {
				return nil, fmt.Errorf("%w: two fmt chunks", ErrMalformed)
			}
			if size < 16 {
				return nil, fmt.Errorf("%w: fmt chunk is %d bytes, at least 16 expected", ErrMalformed, size)
			}
			fmtChunk = body
		case "data":
			if !haveData {
				haveData, data, dataStart = true, body, p
			}
		}
		p += int(size)
		if size%2 == 1 && p < len(b) {
			p++ // RIFF pads odd-sized chunks to an even length
		}
	}

	f, err := parseFmt(fmtChunk)
	if err != nil {
		return nil, err
	}
	ba := f.BlockAlign()
	if len(data)%ba != 0 {
		return nil, fmt.Errorf("%w: data is %d bytes, ending inside a frame (%d bytes a frame)", ErrTruncated, len(data), ba)
	}
	if len(data) == 0 {
		// An unfinished recording often has a data size of 0 with the
		// audio after it. Reporting such a file as silent would be wrong.
		end := dataStart
		if end < len(b) && !plausibleChunk(b[end:]) {
			return nil, fmt.Errorf("%w: data chunk declares 0 bytes but %d bytes follow it (recording not finalized?)", ErrMalformed, len(b)-end)
		}
	}
	return &Audio{Format: f, Data: data}, nil
}

// plausibleChunk reports whether b starts with something that looks like a
// chunk header: a printable ASCII id and a size that fits.
func plausibleChunk(b []byte) bool {
	if len(b) < 8 {
		return len(b) == 1 // a lone pad byte
	}
	for _, c := range b[:4] {
		if c < 0x20 || c > 0x7E {
			return false
		}
	}
	return int64(binary.LittleEndian.Uint32(b[4:])) <= int64(len(b)-8)
}

func parseFmt(c []byte) (Format, error) {
	tag := binary.LittleEndian.Uint16(c[0:])
	f := Format{
		Tag:      tag,
		Channels: int(binary.LittleEndian.Uint16(c[2:])),
		Rate:     int(binary.LittleEndian.Uint32(c[4:])),
		Bits:     int(binary.LittleEndian.Uint16(c[14:])),
	}
	blockAlign := int(binary.LittleEndian.Uint16(c[12:]))
	switch tag {
	case uint16(PCM), uint16(ALaw), uint16(ULaw):
		f.Encoding = Encoding(tag)
	case TagExtensible:
		if len(c) < 40 {
			return f, fmt.Errorf("%w: extensible fmt chunk is %d bytes, 40 expected", ErrMalformed, len(c))
		}
		if cb := binary.LittleEndian.Uint16(c[16:]); cb < 22 {
			return f, fmt.Errorf("%w: extensible fmt chunk has %d extra bytes, 22 expected", ErrMalformed, cb)
		}
		f.ValidBits = int(binary.LittleEndian.Uint16(c[18:]))
		f.ChannelMask = binary.LittleEndian.Uint32(c[20:])
		var g [16]byte
		copy(g[:], c[24:40])
		if [14]byte(g[2:]) != guidSuffix {
			return f, &UnsupportedError{Tag: tag, GUID: g, Bits: f.Bits}
		}
		sub := binary.LittleEndian.Uint16(g[:])
		switch Encoding(sub) {
		case PCM, ALaw, ULaw:
			f.Encoding = Encoding(sub)
		default:
			return f, &UnsupportedError{Tag: tag, SubFormat: sub, GUID: g, Bits: f.Bits}
		}
	default:
		return f, &UnsupportedError{Tag: tag, Bits: f.Bits}
	}
	if err := f.Validate(); err != nil {
		return f, err
	}
	if blockAlign != f.BlockAlign() {
		return f, fmt.Errorf("%w: block align %d, but %d channels of %d bits make %d", ErrMalformed, blockAlign, f.Channels, f.Bits, f.BlockAlign())
	}
	return f, nil
}

// Channel decodes channel c (0-based) to linear 16-bit samples.
func (a *Audio) Channel(c int) []int16 {
	out := make([]int16, a.Frames())
	a.DecodeChannel(out, c, 0)
	return out
}

// Decode decodes every channel: out[c] holds channel c.
func (a *Audio) Decode() [][]int16 {
	out := make([][]int16, a.Format.Channels)
	for c := range out {
		out[c] = a.Channel(c)
	}
	return out
}

// DecodeChannel decodes len(dst) samples of channel c starting at frame
// from into dst and returns how many it decoded (fewer at the end of the
// audio, 0 for a channel or frame out of range).
func (a *Audio) DecodeChannel(dst []int16, c, from int) int {
	f := a.Format
	if c < 0 || c >= f.Channels || from < 0 || from >= a.Frames() {
		return 0
	}
	n := min(len(dst), a.Frames()-from)
	ba := f.BlockAlign()
	switch f.Encoding {
	case PCM:
		d := a.Data[from*ba+2*c:]
		for i := range n {
			j := i * ba
			dst[i] = int16(binary.LittleEndian.Uint16(d[j:]))
		}
	case ULaw:
		d := a.Data[from*ba+c:]
		for i := range n {
			dst[i] = g711.DecodeUlawFrame(d[i*ba])
		}
	case ALaw:
		d := a.Data[from*ba+c:]
		for i := range n {
			dst[i] = g711.DecodeAlawFrame(d[i*ba])
		}
	default:
		return 0
	}
	return n
}

// Put encodes samples into channel c from frame from on, changing only
// the bytes of those samples; every other byte of Data stays as it was.
func (a *Audio) Put(c, from int, samples []int16) error {
	f := a.Format
	if c < 0 || c >= f.Channels {
		return fmt.Errorf("wav: channel %d out of range (%d channels)", c, f.Channels)
	}
	if from < 0 || from+len(samples) > a.Frames() {
		return fmt.Errorf("wav: frames [%d, %d) out of range (%d frames)", from, from+len(samples), a.Frames())
	}
	if len(samples) == 0 {
		return nil // an empty file's channels: there is no byte to slice from
	}
	ba := f.BlockAlign()
	switch f.Encoding {
	case PCM:
		d := a.Data[from*ba+2*c:]
		for i, s := range samples {
			binary.LittleEndian.PutUint16(d[i*ba:], uint16(s))
		}
	case ULaw:
		d := a.Data[from*ba+c:]
		for i, s := range samples {
			d[i*ba] = g711.EncodeUlawFrame(s)
		}
	case ALaw:
		d := a.Data[from*ba+c:]
		for i, s := range samples {
			d[i*ba] = g711.EncodeAlawFrame(s)
		}
	default:
		return fmt.Errorf("wav: cannot encode %v", f.Encoding)
	}
	return nil
}
