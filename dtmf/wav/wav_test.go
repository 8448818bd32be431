package wav

import (
	"bytes"
	"encoding/binary"
	"errors"
	"io"
	"math"
	"slices"
	"strings"
	"testing"
	"testing/iotest"
)

// hdr describes a WAV file to build by hand, including broken ones.
type hdr struct {
	tag        uint16
	channels   int
	rate       int
	bits       int
	blockAlign int // 0: channels*bits/8
	ext        bool
	sub        uint16 // sub-format tag when ext
	guid       []byte // whole GUID when ext, overrides sub
	fmtSize    int    // 0: natural size
	before     [][2]string
	after      [][2]string
	dataFirst  bool
	data       []byte
	dataSize   int64 // -1: len(data)
	noFmt      bool
	noData     bool
}

func chunk(id string, body []byte) []byte {
	b := append([]byte(id), binary.LittleEndian.AppendUint32(nil, uint32(len(body)))...)
	b = append(b, body...)
	if len(body)%2 == 1 {
		b = append(b, 0)
	}
	return b
}

func (h hdr) bytes() []byte {
	le := binary.LittleEndian
	ba := h.blockAlign
	if ba == 0 {
		ba = h.channels * h.bits / 8
	}
	var f []byte
	f = le.AppendUint16(f, h.tag)
	f = le.AppendUint16(f, uint16(h.channels))
	f = le.AppendUint32(f, uint32(h.rate))
	f = le.AppendUint32(f, uint32(h.rate*ba))
	f = le.AppendUint16(f, uint16(ba))
	f = le.AppendUint16(f, uint16(h.bits))
	if h.ext {
		f = le.AppendUint16(f, 22)
		f = le.AppendUint16(f, uint16(h.bits))
		f = le.AppendUint32(f, 3)
		if h.guid != nil {
			f = append(f, h.guid...)
		} else {
			f = le.AppendUint16(f, h.sub)
			f = append(f, guidSuffix[:]...)
		}
	}
	if h.fmtSize > 0 {
		f = append(f, make([]byte, max(0, h.fmtSize-len(f)))...)[:h.fmtSize]
	}
	var body []byte
	for _, c := range h.before {
		body = append(body, chunk(c[0], []byte(c[1]))...)
	}
	fmtC := chunk("fmt ", f)
	var dataC []byte
	if !h.noData {
		size := h.dataSize
		if size < 0 {
			size = int64(len(h.data))
		}
		dataC = append([]byte("data"), le.AppendUint32(nil, uint32(size))...)
		dataC = append(dataC, h.data...)
		if len(h.data)%2 == 1 && len(h.after) > 0 {
			dataC = append(dataC, 0)
		}
	}
	switch {
	case h.noFmt:
		body = append(body, dataC...)
	case h.dataFirst:
		body = append(body, dataC...)
		body = append(body, fmtC...)
	default:
		body = append(body, fmtC...)
		body = append(body, dataC...)
	}
	for _, c := range h.after {
		body = append(body, chunk(c[0], []byte(c[1]))...)
	}
	out := append([]byte("RIFF"), le.AppendUint32(nil, uint32(4+len(body)))...)
	out = append(out, "WAVE"...)
	return append(out, body...)
}

func pcm16(s ...int16) []byte {
	var b []byte
	for _, v := range s {
		b = binary.LittleEndian.AppendUint16(b, uint16(v))
	}
	return b
}

func TestParseFormats(t *testing.T) {
	mono := pcm16(1, -2, 300, -32768, 32767)
	stereo := pcm16(1, 10, 2, 20, 3, 30)
	for _, tc := range []struct {
		name   string
		h      hdr
		format Format
		want   [][]int16
	}{
		{"pcm mono 8k", hdr{tag: 1, channels: 1, rate: 8000, bits: 16, data: mono, dataSize: -1},
			NewFormat(PCM, 8000, 1), [][]int16{{1, -2, 300, -32768, 32767}}},
		{"pcm stereo 44.1k", hdr{tag: 1, channels: 2, rate: 44100, bits: 16, data: stereo, dataSize: -1},
			NewFormat(PCM, 44100, 2), [][]int16{{1, 2, 3}, {10, 20, 30}}},
		{"ulaw mono", hdr{tag: 7, channels: 1, rate: 8000, bits: 8, fmtSize: 18, before: [][2]string{{"fact", "\x03\x00\x00\x00"}}, data: []byte{0xFF, 0x7F, 0x00}, dataSize: -1},
			NewFormat(ULaw, 8000, 1), [][]int16{{0, 0, -32124}}},
		{"alaw stereo", hdr{tag: 6, channels: 2, rate: 8000, bits: 8, data: []byte{0xD5, 0x55, 0x2A, 0xAA}, dataSize: -1},
			NewFormat(ALaw, 8000, 2), [][]int16{{8, -32256}, {-8, 32256}}},
		{"extensible pcm", hdr{tag: 0xFFFE, channels: 2, rate: 48000, bits: 16, ext: true, sub: 1, data: stereo, dataSize: -1},
			Format{Tag: 0xFFFE, Encoding: PCM, Channels: 2, Rate: 48000, Bits: 16, ValidBits: 16, ChannelMask: 3}, [][]int16{{1, 2, 3}, {10, 20, 30}}},
		{"extensible ulaw", hdr{tag: 0xFFFE, channels: 1, rate: 16000, bits: 8, ext: true, sub: 7, data: []byte{0xFF}, dataSize: -1},
			Format{Tag: 0xFFFE, Encoding: ULaw, Channels: 1, Rate: 16000, Bits: 8, ValidBits: 8, ChannelMask: 3}, [][]int16{{0}}},
		{"extensible alaw", hdr{tag: 0xFFFE, channels: 1, rate: 8000, bits: 8, ext: true, sub: 6, data: []byte{0xD5}, dataSize: -1},
			Format{Tag: 0xFFFE, Encoding: ALaw, Channels: 1, Rate: 8000, Bits: 8, ValidBits: 8, ChannelMask: 3}, [][]int16{{8}}},
		{"8 channels 384k", hdr{tag: 1, channels: 8, rate: 384000, bits: 16, data: pcm16(0, 1, 2, 3, 4, 5, 6, 7), dataSize: -1},
			NewFormat(PCM, 384000, 8), [][]int16{{0}, {1}, {2}, {3}, {4}, {5}, {6}, {7}}},
		{"1000 Hz", hdr{tag: 1, channels: 1, rate: 1000, bits: 16, data: pcm16(5), dataSize: -1},
			NewFormat(PCM, 1000, 1), [][]int16{{5}}},
		{"odd LIST before fmt", hdr{tag: 1, channels: 1, rate: 8000, bits: 16, before: [][2]string{{"LIST", "INFOabc"}, {"junk", ""}}, data: mono, dataSize: -1},
			NewFormat(PCM, 8000, 1), [][]int16{{1, -2, 300, -32768, 32767}}},
		{"data before fmt", hdr{tag: 1, channels: 1, rate: 8000, bits: 16, dataFirst: true, data: pcm16(7, 8), dataSize: -1},
			NewFormat(PCM, 8000, 1), [][]int16{{7, 8}}},
		{"odd 8-bit data then LIST", hdr{tag: 7, channels: 1, rate: 8000, bits: 8, data: []byte{0xFF, 0xFF, 0xFF}, dataSize: -1, after: [][2]string{{"LIST", "x"}}},
			NewFormat(ULaw, 8000, 1), [][]int16{{0, 0, 0}}},
		{"empty data", hdr{tag: 1, channels: 2, rate: 8000, bits: 16, dataSize: -1},
			NewFormat(PCM, 8000, 2), [][]int16{{}, {}}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			b := tc.h.bytes()
			a, err := Read(iotest.OneByteReader(bytes.NewReader(b)))
			if err != nil {
				t.Fatal(err)
			}
			if a.Format != tc.format {
				t.Errorf("format %+v, want %+v", a.Format, tc.format)
			}
			got := a.Decode()
			if len(got) != len(tc.want) {
				t.Fatalf("%d channels, want %d", len(got), len(tc.want))
			}
			for c := range got {
				if !slices.Equal(got[c], tc.want[c]) {
					t.Errorf("channel %d = %v, want %v", c, got[c], tc.want[c])
				}
			}
			// Written back, the file reads the same, data bit-exact.
			var buf bytes.Buffer
			if _, err := a.WriteTo(&buf); err != nil {
				t.Fatal(err)
			}
			b2, err := Parse(buf.Bytes())
			if err != nil {
				t.Fatal(err)
			}
			if b2.Format != a.Format || !bytes.Equal(b2.Data, a.Data) {
				t.Errorf("round trip changed the audio: %+v", b2.Format)
			}
		})
	}
}

func TestParseErrors(t *testing.T) {
	ok := hdr{tag: 1, channels: 1, rate: 8000, bits: 16, data: pcm16(1, 2), dataSize: -1}
	with := func(f func(*hdr)) []byte { h := ok; f(&h); return h.bytes() }
	full := ok.bytes()
	floatGUID := append(binary.LittleEndian.AppendUint16(nil, 3), guidSuffix[:]...)
	oddGUID := []byte("0123456789abcdef")
	for _, tc := range []struct {
		name string
		in   []byte
		is   error
		msg  string
	}{
		{"empty", nil, ErrNotWAV, "not a WAV file: empty file"},
		{"text", []byte("hello, this is a text file\n"), ErrNotWAV, "not a WAV file: no RIFF/WAVE header"},
		{"short text", []byte("hi"), ErrNotWAV, "no RIFF/WAVE header"},
		{"RIFF not WAVE", append([]byte("RIFF\x04\x00\x00\x00AVI "), full[12:]...), ErrNotWAV, "no RIFF/WAVE header"},
		{"RIFF header cut", []byte("RIFF\x24\x00"), ErrTruncated, "shorter than a RIFF/WAVE header"},
		{"RIFX", append([]byte("RIFX"), full[4:]...), ErrUnsupported, "big-endian"},
		{"RF64", append([]byte("RF64"), full[4:]...), ErrUnsupported, "RF64"},
		{"header only", full[:12], ErrTruncated, "no fmt chunk"},
		{"no fmt", with(func(h *hdr) { h.noFmt = true }), ErrTruncated, "no fmt chunk"},
		{"no data", with(func(h *hdr) { h.noData = true }), ErrTruncated, "no data chunk"},
		{"cut in data", full[:len(full)-2], ErrTruncated, `"data" chunk declares 4 bytes, only 2 present`},
		{"cut in data header", full[:len(full)-6], ErrTruncated, "no data chunk"},
		{"cut in fmt", full[:30], ErrTruncated, `"fmt " chunk declares 16 bytes, only 10 present`},
		{"4 GB data", with(func(h *hdr) { h.dataSize = 0xFFFFFFFF }), ErrTruncated, "declares 4294967295 bytes, only 4 present"},
		{"huge LIST", with(func(h *hdr) { h.before = [][2]string{{"LIST", "abc"}} })[:20], ErrTruncated, `"LIST" chunk declares 3 bytes`},
		{"partial frame", with(func(h *hdr) { h.data = []byte{1, 2, 3} }), ErrTruncated, "ending inside a frame"},
		{"partial stereo frame", with(func(h *hdr) { h.channels = 2; h.data = pcm16(1, 2, 3) }), ErrTruncated, "data is 6 bytes, ending inside a frame (4 bytes a frame)"},
		{"float", with(func(h *hdr) { h.tag = 3; h.bits = 32; h.data = make([]byte, 8) }), ErrUnsupported,
			"unsupported encoding: IEEE float 32-bit (format 3); ToneVault reads 16-bit PCM, G.711 µ-law and A-law"},
		{"pcm 24", with(func(h *hdr) { h.bits = 24; h.data = make([]byte, 6) }), ErrUnsupported, "unsupported encoding: PCM 24-bit (format 1)"},
		{"pcm 8", with(func(h *hdr) { h.bits = 8 }), ErrUnsupported, "unsupported encoding: PCM 8-bit (format 1)"},
		{"ulaw 16", with(func(h *hdr) { h.tag = 7 }), ErrUnsupported, "unsupported encoding: µ-law 16-bit (format 7)"},
		{"mp3", with(func(h *hdr) { h.tag = 0x55; h.bits = 0; h.blockAlign = 1 }), ErrUnsupported, "unsupported encoding: MPEG Layer 3 0-bit (format 85)"},
		{"gsm", with(func(h *hdr) { h.tag = 0x31; h.blockAlign = 65 }), ErrUnsupported, "GSM 6.10"},
		{"unknown tag", with(func(h *hdr) { h.tag = 0x1234 }), ErrUnsupported, "format 0x1234 16-bit (format 4660)"},
		{"extensible float", with(func(h *hdr) { h.tag = 0xFFFE; h.ext = true; h.bits = 32; h.guid = floatGUID; h.data = make([]byte, 8) }), ErrUnsupported,
			"unsupported encoding: IEEE float 32-bit (format 0xFFFE, sub-format 3)"},
		{"extensible other GUID", with(func(h *hdr) { h.tag = 0xFFFE; h.ext = true; h.guid = oddGUID }), ErrUnsupported,
			"unsupported encoding: sub-format {33323130-3534-3736-3839-616263646566} 16-bit (format 0xFFFE)"},
		{"extensible pcm 24", with(func(h *hdr) { h.tag = 0xFFFE; h.ext = true; h.sub = 1; h.bits = 24; h.data = make([]byte, 6) }), ErrUnsupported,
			"PCM 24-bit (format 0xFFFE, sub-format 1)"},
		{"extensible short", with(func(h *hdr) { h.tag = 0xFFFE; h.ext = true; h.sub = 1; h.fmtSize = 18 }), ErrMalformed, "extensible fmt chunk is 18 bytes"},
		{"9 channels", with(func(h *hdr) { h.channels = 9; h.data = make([]byte, 18) }), ErrUnsupported, "9 channels (ToneVault reads 1 to 8)"},
		{"0 channels", with(func(h *hdr) { h.channels = 0 }), ErrMalformed, "0 channels"},
		{"rate 500", with(func(h *hdr) { h.rate = 500 }), ErrUnsupported, "sample rate 500 Hz"},
		{"rate 0", with(func(h *hdr) { h.rate = 0 }), ErrUnsupported, "sample rate 0 Hz"},
		{"rate 4G", with(func(h *hdr) { h.rate = 0xFFFFFFFF }), ErrUnsupported, "sample rate 4294967295 Hz"},
		{"block align", with(func(h *hdr) { h.blockAlign = 4 }), ErrMalformed, "block align 4, but 1 channels of 16 bits make 2"},
		{"fmt too short", with(func(h *hdr) { h.fmtSize = 14 }), ErrMalformed, "fmt chunk is 14 bytes"},
		{"two fmt", with(func(h *hdr) { h.before = [][2]string{{"fmt ", string(full[20:36])}} }), ErrMalformed, "two fmt chunks"},
		{"unfinished recording", append(with(func(h *hdr) { h.dataSize = 0; h.data = nil }), pcm16(100, -100, 200, -200, 300)...), ErrMalformed,
			"data chunk declares 0 bytes but 10 bytes follow it"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			a, err := Parse(tc.in)
			if err == nil {
				t.Fatalf("no error, got %+v", a.Format)
			}
			if !errors.Is(err, tc.is) {
				t.Errorf("error %q is not %q", err, tc.is)
			}
			n := 0
			for _, e := range []error{ErrNotWAV, ErrTruncated, ErrUnsupported, ErrMalformed} {
				if errors.Is(err, e) {
					n++
				}
			}
			if n != 1 {
				t.Errorf("error %q matches %d sentinels, want 1", err, n)
			}
			if !strings.Contains(err.Error(), tc.msg) {
				t.Errorf("error %q does not say %q", err, tc.msg)
			}
		})
	}
}

func TestUnsupportedErrorAs(t *testing.T) {
	h := hdr{tag: 3, channels: 1, rate: 8000, bits: 32, data: make([]byte, 4), dataSize: -1}
	_, err := Parse(h.bytes())
	var ue *UnsupportedError
	if !errors.As(err, &ue) || ue.Tag != 3 || ue.Bits != 32 {
		t.Fatalf("err %v, as %+v", err, ue)
	}
}

type failReader struct{}

func (failReader) Read([]byte) (int, error) { return 0, io.ErrUnexpectedEOF }

func TestReadError(t *testing.T) {
	if _, err := Read(failReader{}); !errors.Is(err, io.ErrUnexpectedEOF) {
		t.Fatalf("err %v", err)
	}
}

func TestTrailingJunkIgnored(t *testing.T) {
	h := hdr{tag: 1, channels: 1, rate: 8000, bits: 16, data: pcm16(1, 2), dataSize: -1}
	b := append(h.bytes(), "\x00\x01garbage that is not a chunk"...)
	a, err := Parse(b)
	if err != nil {
		t.Fatal(err)
	}
	if !slices.Equal(a.Channel(0), []int16{1, 2}) {
		t.Fatal(a.Channel(0))
	}
}

func TestWriteFormats(t *testing.T) {
	n := 1001 // odd: 8-bit mono data needs a pad byte
	ch := func(k int) []int16 {
		s := make([]int16, n)
		for i := range s {
			s[i] = int16(8000 * math.Sin(float64(i*(k+1))/7))
		}
		return s
	}
	for _, f := range []Format{
		NewFormat(PCM, 8000, 1), NewFormat(PCM, 44100, 2), NewFormat(ULaw, 8000, 1), NewFormat(ALaw, 8000, 2),
		NewFormat(ULaw, 48000, 8),
		{Tag: TagExtensible, Encoding: PCM, Channels: 2, Rate: 48000, Bits: 16, ValidBits: 16, ChannelMask: 3},
		{Tag: TagExtensible, Encoding: ULaw, Channels: 1, Rate: 8000, Bits: 8, ValidBits: 8, ChannelMask: 4},
		{Tag: TagExtensible, Encoding: ALaw, Channels: 3, Rate: 11025, Bits: 8, ValidBits: 8, ChannelMask: 7},
	} {
		t.Run(f.String(), func(t *testing.T) {
			in := make([][]int16, f.Channels)
			for c := range in {
				in[c] = ch(c)
			}
			var buf bytes.Buffer
			if err := Write(&buf, f, in); err != nil {
				t.Fatal(err)
			}
			if buf.Len()%2 != 0 {
				t.Errorf("file is %d bytes, RIFF wants even", buf.Len())
			}
			if got := binary.LittleEndian.Uint32(buf.Bytes()[4:]); int(got) != buf.Len()-8 {
				t.Errorf("RIFF size %d, file %d", got, buf.Len())
			}
			a, err := Parse(buf.Bytes())
			if err != nil {
				t.Fatal(err)
			}
			if a.Format != f {
				t.Errorf("format %+v, want %+v", a.Format, f)
			}
			if a.Frames() != n {
				t.Errorf("%d frames, want %d", a.Frames(), n)
			}
			for c, got := range a.Decode() {
				for i, v := range got {
					want := in[c][i]
					if f.Encoding != PCM { // G.711 quantizes: within a step
						if math.Abs(float64(v)-float64(want)) > math.Max(16, math.Abs(float64(want))/16) {
							t.Fatalf("channel %d sample %d = %d, want ≈ %d", c, i, v, want)
						}
					} else if v != want {
						t.Fatalf("channel %d sample %d = %d, want %d", c, i, v, want)
					}
				}
			}
		})
	}
}

func TestWriteErrors(t *testing.T) {
	for _, tc := range []struct {
		name string
		f    Format
		ch   [][]int16
	}{
		{"channel count", NewFormat(PCM, 8000, 2), [][]int16{{1}}},
		{"ragged", NewFormat(PCM, 8000, 2), [][]int16{{1}, {1, 2}}},
		{"float", Format{Tag: 3, Encoding: 3, Channels: 1, Rate: 8000, Bits: 32}, [][]int16{{1}}},
		{"tag mismatch", Format{Tag: 1, Encoding: ULaw, Channels: 1, Rate: 8000, Bits: 8}, [][]int16{{1}}},
		{"rate", NewFormat(PCM, 100, 1), [][]int16{{1}}},
		{"bits", Format{Tag: 1, Encoding: PCM, Channels: 1, Rate: 8000, Bits: 8}, [][]int16{{1}}},
	} {
		if err := Write(io.Discard, tc.f, tc.ch); err == nil {
			t.Errorf("%s: no error", tc.name)
		}
	}
}

// Put re-encodes only the samples it is given: every other byte, including
// G.711 codes that do not survive a decode/encode round trip (µ-law 0x7F,
// negative zero), stays as read.
func TestPutKeepsOtherBytes(t *testing.T) {
	for _, f := range []Format{NewFormat(ULaw, 8000, 2), NewFormat(ALaw, 8000, 2), NewFormat(PCM, 8000, 2)} {
		t.Run(f.String(), func(t *testing.T) {
			data := make([]byte, 64*f.BlockAlign())
			for i := range data {
				data[i] = byte(i*37 + 0x7F)
			}
			if f.Encoding == ULaw {
				data[0], data[2] = 0x7F, 0x7F
			}
			orig := slices.Clone(data)
			a := &Audio{Format: f, Data: data}
			if err := a.Put(1, 10, []int16{1000, -1000, 0}); err != nil {
				t.Fatal(err)
			}
			bps := f.Bits / 8
			for i := range data {
				frame, c := i/f.BlockAlign(), (i%f.BlockAlign())/bps
				inside := c == 1 && frame >= 10 && frame < 13
				if !inside && data[i] != orig[i] {
					t.Fatalf("byte %d (frame %d channel %d) changed", i, frame, c)
				}
			}
			got := make([]int16, 3)
			if n := a.DecodeChannel(got, 1, 10); n != 3 {
				t.Fatalf("decoded %d", n)
			}
			for i, want := range []int16{1000, -1000, 0} {
				if math.Abs(float64(got[i]-want)) > 64 {
					t.Errorf("sample %d = %d, want ≈ %d", i, got[i], want)
				}
			}
			if a.Put(2, 0, []int16{1}) == nil || a.Put(0, 63, []int16{1, 2}) == nil || a.Put(0, -1, []int16{1}) == nil {
				t.Error("out-of-range Put accepted")
			}
		})
	}
}

func TestDecodeChannelBounds(t *testing.T) {
	a := &Audio{Format: NewFormat(PCM, 8000, 2), Data: pcm16(1, 10, 2, 20, 3, 30)}
	buf := make([]int16, 8)
	if n := a.DecodeChannel(buf, 1, 1); n != 2 || buf[0] != 20 || buf[1] != 30 {
		t.Errorf("n=%d buf=%v", n, buf)
	}
	for _, c := range [][2]int{{2, 0}, {-1, 0}, {0, 3}, {0, -1}} {
		if n := a.DecodeChannel(buf, c[0], c[1]); n != 0 {
			t.Errorf("channel %d from %d: decoded %d", c[0], c[1], n)
		}
	}
	if a.Duration().Microseconds() != 375 {
		t.Errorf("duration %v", a.Duration())
	}
}
