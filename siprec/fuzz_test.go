package siprec

import (
	"bytes"
	"os"
	"path/filepath"
	"reflect"
	"testing"
)

// FuzzParseMetadata: whatever a peer sends, ParseMetadata returns a
// document or ErrBadMetadata, never panics, and a document it takes
// survives Marshal and ParseMetadata again unchanged. Seeds:
// testdata/fuzz/FuzzParseMetadata and the documents in testdata.
func FuzzParseMetadata(f *testing.F) {
	if b, err := NewMetadata(testCall, testCall.Start).Marshal(); err == nil {
		f.Add(b)
	}
	if b, err := os.ReadFile(filepath.Join("testdata", "rfc7865-style.xml")); err == nil {
		f.Add(b)
	}
	f.Fuzz(func(t *testing.T, b []byte) {
		m, err := ParseMetadata(b)
		if err != nil {
			if m != nil {
				t.Fatal("a document with an error")
			}
			return
		}
		out, err := m.Marshal()
		if err != nil {
			t.Fatalf("Marshal of a parsed document: %v", err)
		}
		again, err := ParseMetadata(out)
		if err != nil {
			t.Fatalf("ParseMetadata(Marshal(m)) = %v\n%s", err, out)
		}
		again.XMLName = m.XMLName
		if !reflect.DeepEqual(m, again) {
			out2, _ := again.Marshal()
			if !bytes.Equal(out, out2) {
				t.Fatalf("round trip changed the document:\n%s\n%s", out, out2)
			}
		}
	})
}

// FuzzReadBody: ReadBody and ReadSDP on whatever a peer sends never
// panic.
func FuzzReadBody(f *testing.F) {
	sdp := []byte("v=0\r\no=- 1 1 IN IP4 127.0.0.1\r\ns=-\r\nc=IN IP4 127.0.0.1\r\nt=0 0\r\nm=audio 4000 RTP/AVP 0 101\r\na=rtpmap:101 telephone-event/8000\r\na=label:1\r\na=sendonly\r\n")
	meta, _ := NewMetadata(testCall, testCall.Start).Marshal()
	body, ct := Body(sdp, meta)
	f.Add(ct, body)
	f.Add("application/sdp", sdp)
	f.Fuzz(func(t *testing.T, ct string, b []byte) {
		s, m, err := ReadBody(ct, b)
		if err == nil && s == nil {
			t.Fatal("no error, no SDP")
		}
		if s != nil {
			_, _ = ReadSDP(s)
		}
		if m != nil {
			_, _ = ParseMetadata(m)
		}
	})
}
