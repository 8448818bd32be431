package siprec

import (
	"errors"
	"fmt"
	"net/netip"
	"strconv"
	"strings"

	"github.com/pion/sdp/v3"
)

// ErrBadSDP is a recording session description ReadSDP refuses.
var ErrBadSDP = errors.New("siprec: malformed session description")

// Limits of ReadSDP: a recording session has two streams; a few more
// (video a recorder rejects) are allowed.
const (
	MaxSDP     = 16 << 10
	maxStreams = 8
	maxFormats = 32
)

// Format is one payload type of a stream (a=rtpmap, a=fmtp).
type Format struct {
	PT   uint8
	Name string // encoding name as signalled: "PCMU", "telephone-event"
	Rate int    // clock rate
	Fmtp string // a=fmtp parameters, "" when none
}

// MediaStream is one m= line of a recording session.
type MediaStream struct {
	Media string // "audio" for a stream the recording uses
	Proto string // "RTP/AVP"
	Label string // a=label: LabelCustomer, LabelAgent
	// Addr is where this side takes the stream's RTP (RTCP on +1); the
	// sending side of a sendonly stream names the port it sends from.
	// Port 0: the stream is rejected or not used.
	Addr      netip.AddrPort
	Direction string // sendonly, recvonly, sendrecv, inactive
	Formats   []Format
}

// Audio reports whether s is an RTP audio stream in use.
func (s MediaStream) Audio() bool {
	return s.Media == "audio" && s.Proto == "RTP/AVP" && s.Addr.Port() != 0
}

// Origin is the o= line's session id and version (RFC 3264 section 8).
type Origin struct {
	User      string // "tonevault", "srs"
	SessionID uint64
	Version   uint64
}

// WriteSDP writes a description of streams, each with its own c= line;
// the session's c= is the first stream's address.
func WriteSDP(o Origin, streams []MediaStream) []byte {
	var b strings.Builder
	addr := netip.IPv4Unspecified()
	if len(streams) > 0 {
		addr = streams[0].Addr.Addr()
	}
	user := o.User
	if user == "" {
		user = "-"
	}
	fmt.Fprintf(&b, "v=0\r\no=%s %d %d IN %s %s\r\ns=-\r\nc=IN %s %s\r\nt=0 0\r\n", user, o.SessionID, o.Version, ipVer(addr), addr, ipVer(addr), addr)
	for _, s := range streams {
		media, proto := s.Media, s.Proto
		if media == "" {
			media = "audio"
		}
		if proto == "" {
			proto = "RTP/AVP"
		}
		pts := make([]string, 0, len(s.Formats))
		for _, f := range s.Formats {
			pts = append(pts, strconv.Itoa(int(f.PT)))
		}
		if len(pts) == 0 {
			pts = []string{"0"} // RFC 4566: a m= line has a format, even rejected
		}
		fmt.Fprintf(&b, "m=%s %d %s %s\r\n", media, s.Addr.Port(), proto, strings.Join(pts, " "))
		if s.Addr.Addr().IsValid() {
			fmt.Fprintf(&b, "c=IN %s %s\r\n", ipVer(s.Addr.Addr()), s.Addr.Addr())
		}
		for _, f := range s.Formats {
			fmt.Fprintf(&b, "a=rtpmap:%d %s/%d\r\n", f.PT, f.Name, f.Rate)
			if f.Fmtp != "" {
				fmt.Fprintf(&b, "a=fmtp:%d %s\r\n", f.PT, f.Fmtp)
			}
		}
		if s.Addr.Port() != 0 {
			fmt.Fprintf(&b, "a=rtcp:%d\r\n", s.Addr.Port()+1)
		}
		if s.Label != "" {
			fmt.Fprintf(&b, "a=label:%s\r\n", s.Label)
		}
		if s.Direction != "" {
			fmt.Fprintf(&b, "a=%s\r\n", s.Direction)
		}
	}
	return []byte(b.String())
}

func ipVer(a netip.Addr) string {
	if a.Is6() && !a.Is4In6() {
		return "IP6"
	}
	return "IP4"
}

// staticFormats are RFC 3551's static audio payload types a recording
// takes without an a=rtpmap.
var staticFormats = map[uint8]Format{
	0:  {PT: 0, Name: "PCMU", Rate: 8000},
	8:  {PT: 8, Name: "PCMA", Rate: 8000},
	13: {PT: 13, Name: "CN", Rate: 8000},
}

// ReadSDP reads every m= line of a recording session description, in
// order. Errors name the line's index, never its text.
func ReadSDP(b []byte) ([]MediaStream, error) {
	if len(b) > MaxSDP {
		return nil, fmt.Errorf("%w: %d bytes", ErrBadSDP, len(b))
	}
	if !strings.HasPrefix(string(b), "v=") {
		return nil, fmt.Errorf("%w: does not start with v=", ErrBadSDP)
	}
	var sd sdp.SessionDescription
	if err := sd.UnmarshalString(string(b)); err != nil {
		return nil, fmt.Errorf("%w: unreadable", ErrBadSDP)
	}
	if len(sd.MediaDescriptions) > maxStreams {
		return nil, fmt.Errorf("%w: %d m= lines, more than %d", ErrBadSDP, len(sd.MediaDescriptions), maxStreams)
	}
	sessAddr, err := connAddr(sd.ConnectionInformation)
	if err != nil {
		return nil, err
	}
	sessDir := direction(sd.Attributes, "sendrecv")
	out := make([]MediaStream, 0, len(sd.MediaDescriptions))
	for i, md := range sd.MediaDescriptions {
		s := MediaStream{Media: md.MediaName.Media, Proto: strings.Join(md.MediaName.Protos, "/"),
			Direction: direction(md.Attributes, sessDir)}
		addr := sessAddr
		if md.ConnectionInformation != nil {
			if addr, err = connAddr(md.ConnectionInformation); err != nil {
				return nil, err
			}
		}
		port := md.MediaName.Port.Value
		if port < 0 || port > 65535 {
			return nil, fmt.Errorf("%w: m= line %d: port out of range", ErrBadSDP, i)
		}
		if port != 0 && !addr.IsValid() {
			return nil, fmt.Errorf("%w: m= line %d has no c= address", ErrBadSDP, i)
		}
		s.Addr = netip.AddrPortFrom(addr, uint16(port))
		if v, ok := md.Attribute("label"); ok {
			s.Label = strings.TrimSpace(v)
		}
		if len(md.MediaName.Formats) > maxFormats {
			return nil, fmt.Errorf("%w: m= line %d: more than %d formats", ErrBadSDP, i, maxFormats)
		}
		if s.Media == "audio" && s.Proto == "RTP/AVP" {
			if s.Formats, err = formats(md); err != nil {
				return nil, fmt.Errorf("%w: m= line %d: %v", ErrBadSDP, i, err)
			}
		}
		out = append(out, s)
	}
	return out, nil
}

// formats are an RTP m= line's payload types with their rtpmap and fmtp.
func formats(md *sdp.MediaDescription) ([]Format, error) {
	maps, fmtps := map[uint8]Format{}, map[uint8]string{}
	for _, a := range md.Attributes {
		switch a.Key {
		case "rtpmap", "fmtp":
			ptS, rest, _ := strings.Cut(a.Value, " ")
			pt, err := strconv.ParseUint(ptS, 10, 7)
			if err != nil {
				return nil, errors.New("a payload type out of range")
			}
			if a.Key == "fmtp" {
				fmtps[uint8(pt)] = strings.TrimSpace(rest)
				continue
			}
			name, rate, _ := strings.Cut(strings.TrimSpace(rest), "/")
			rate, _, _ = strings.Cut(rate, "/")
			r, err := strconv.Atoi(rate)
			if err != nil || r <= 0 || name == "" {
				return nil, errors.New("an unreadable a=rtpmap")
			}
			maps[uint8(pt)] = Format{PT: uint8(pt), Name: name, Rate: r}
		}
	}
	var out []Format
	for _, f := range md.MediaName.Formats {
		pt, err := strconv.ParseUint(f, 10, 7)
		if err != nil {
			return nil, errors.New("a payload type out of range")
		}
		ft, ok := maps[uint8(pt)]
		if !ok {
			if ft, ok = staticFormats[uint8(pt)]; !ok {
				continue // a dynamic type without rtpmap: nothing to play it with
			}
		}
		ft.Fmtp = fmtps[uint8(pt)]
		out = append(out, ft)
	}
	return out, nil
}

func connAddr(ci *sdp.ConnectionInformation) (netip.Addr, error) {
	if ci == nil || ci.Address == nil {
		return netip.Addr{}, nil
	}
	host, _, _ := strings.Cut(ci.Address.Address, "/")
	a, err := netip.ParseAddr(host)
	if err != nil {
		return netip.Addr{}, fmt.Errorf("%w: a c= line that is not an IP address", ErrBadSDP)
	}
	return a, nil
}

func direction(attrs []sdp.Attribute, def string) string {
	for _, a := range attrs {
		switch a.Key {
		case "sendonly", "recvonly", "sendrecv", "inactive":
			return a.Key
		}
	}
	return def
}

// ByLabel returns the stream labelled label, or the one at index i when
// no stream has labels (an answer may leave them out: RFC 7866 wants
// them, but the order of m= lines already says which is which).
func ByLabel(streams []MediaStream, label string, i int) (MediaStream, bool) {
	labelled := false
	for _, s := range streams {
		if s.Label == label {
			return s, true
		}
		labelled = labelled || s.Label != ""
	}
	if !labelled && i < len(streams) {
		return streams[i], true
	}
	return MediaStream{}, false
}
