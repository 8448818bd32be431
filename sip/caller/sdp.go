package caller

import (
	"errors"
	"fmt"
	"net/netip"
	"strconv"
	"strings"

	"github.com/pion/sdp/v3"

	"github.com/tonevault/tonevault/dtmf"
	"github.com/tonevault/tonevault/media/sdes"
)

// Static payload types of RFC 3551 and the dynamic one we offer for
// telephone-event (the value most phones use).
const (
	ptPCMU  = 0
	ptPCMA  = 8
	ptEvent = 101
)

// maxSDP bounds what we parse; real descriptions are well under 2 KiB.
const maxSDP = 16 << 10

var errBadSDP = errors.New("sdp: malformed or unusable")

// format is one payload type of an m= line as we understand it.
type format struct {
	pt   uint8
	name string // PCMU, PCMA or telephone-event
}

// offerFormats is what we offer in the INVITE: both G.711 laws and
// telephone-event, so the far end can pick.
var offerFormats = []format{{ptPCMU, "PCMU"}, {ptPCMA, "PCMA"}, {ptEvent, "telephone-event"}}

// stream is the far end's audio stream as its SDP describes it.
type stream struct {
	addr    netip.AddrPort // where to send RTP; invalid when it may not be sent
	pt      uint8          // the G.711 payload type to send
	codec   dtmf.Codec     // PCMU or PCMA
	eventPT int            // telephone-event payload type, -1 when not offered
	dir     string         // the far end's direction: sendrecv, sendonly, recvonly, inactive
	formats []format       // every format of its m= line we can do, in its order
	savp    bool           // RTP/SAVP(F): SDES-SRTP
	crypto  []sdes.Crypto  // its a=crypto we can use, in its order
}

// canSend reports whether the far end wants our audio.
func (s stream) canSend() bool {
	return s.addr.IsValid() && (s.dir == "sendrecv" || s.dir == "recvonly")
}

// answerDir is our direction in answer to the far end's (RFC 3264 6.1).
func answerDir(theirs string) string {
	switch theirs {
	case "sendonly":
		return "recvonly"
	case "recvonly":
		return "sendonly"
	case "inactive":
		return "inactive"
	}
	return "sendrecv"
}

// buildSDP writes a description of our one audio stream at local, as
// RTP/SAVP with crypto as its a=crypto when crypto is not empty.
func buildSDP(local netip.AddrPort, sessID, version uint64, formats []format, dir string, crypto []sdes.Crypto) ([]byte, error) {
	ip := local.Addr().Unmap()
	addrType := "IP4"
	if ip.Is6() {
		addrType = "IP6"
	}
	md := &sdp.MediaDescription{
		MediaName: sdp.MediaName{
			Media:  "audio",
			Port:   sdp.RangedPort{Value: int(local.Port())},
			Protos: []string{"RTP", "AVP"},
		},
	}
	if len(crypto) > 0 {
		md.MediaName.Protos[1] = "SAVP"
	}
	for _, f := range formats {
		md.MediaName.Formats = append(md.MediaName.Formats, strconv.Itoa(int(f.pt)))
	}
	for _, f := range formats {
		md.WithValueAttribute("rtpmap", fmt.Sprintf("%d %s/8000", f.pt, f.name))
		if f.name == "telephone-event" {
			md.WithValueAttribute("fmtp", fmt.Sprintf("%d 0-16", f.pt))
		}
	}
	md.WithValueAttribute("ptime", "20")
	for _, c := range crypto {
		md.WithValueAttribute("crypto", c.Marshal())
	}
	md.WithPropertyAttribute(dir)
	sd := &sdp.SessionDescription{
		Origin: sdp.Origin{
			Username: "tonevault-call", SessionID: sessID, SessionVersion: version,
			NetworkType: "IN", AddressType: addrType, UnicastAddress: ip.String(),
		},
		SessionName: "tonevault call",
		ConnectionInformation: &sdp.ConnectionInformation{
			NetworkType: "IN", AddressType: addrType, Address: &sdp.Address{Address: ip.String()},
		},
		TimeDescriptions:  []sdp.TimeDescription{{}},
		MediaDescriptions: []*sdp.MediaDescription{md},
	}
	return sd.Marshal()
}

// parseSDP reads the far end's description: the first audio stream with
// a port, its address, the first G.711 law it lists and its
// telephone-event payload type.
func parseSDP(body []byte) (stream, error) {
	if len(body) == 0 || len(body) > maxSDP {
		return stream{}, fmt.Errorf("%w: %d bytes", errBadSDP, len(body))
	}
	var sd sdp.SessionDescription
	if err := sd.Unmarshal(body); err != nil {
		return stream{}, fmt.Errorf("%w: %v", errBadSDP, err)
	}
	dir := sessionDir(sd.Attributes)
	for _, md := range sd.MediaDescriptions {
		if md == nil || md.MediaName.Media != "audio" || md.MediaName.Port.Value == 0 {
			continue
		}
		st := stream{eventPT: -1, dir: dir}
		if d := sessionDir(md.Attributes); d != "" {
			st.dir = d
		}
		if st.dir == "" {
			st.dir = "sendrecv"
		}
		st.formats = formatsOf(md)
		p := strings.ToUpper(strings.Join(md.MediaName.Protos, "/"))
		st.savp = p == "RTP/SAVP" || p == "RTP/SAVPF"
		for _, a := range md.Attributes {
			if a.Key == "crypto" {
				if c, err := sdes.Parse(a.Value); err == nil {
					st.crypto = append(st.crypto, c)
				}
			}
		}
		found := false
		for _, f := range st.formats {
			switch {
			case f.name == "telephone-event" && st.eventPT < 0:
				st.eventPT = int(f.pt)
			case (f.name == "PCMU" || f.name == "PCMA") && !found:
				found = true
				st.pt, st.codec = f.pt, dtmf.PCMU
				if f.name == "PCMA" {
					st.codec = dtmf.PCMA
				}
			}
		}
		if !found {
			return stream{}, fmt.Errorf("%w: no PCMU or PCMA in the audio stream", errBadSDP)
		}
		ci := md.ConnectionInformation
		if ci == nil {
			ci = sd.ConnectionInformation
		}
		if ci == nil || ci.Address == nil {
			return stream{}, fmt.Errorf("%w: no c= address", errBadSDP)
		}
		ip, err := netip.ParseAddr(ci.Address.Address)
		if err != nil {
			return stream{}, fmt.Errorf("%w: c= address is not an IP address", errBadSDP)
		}
		port := md.MediaName.Port.Value
		if port < 0 || port > 65535 {
			return stream{}, fmt.Errorf("%w: port %d", errBadSDP, port)
		}
		// c=0.0.0.0 is the RFC 2543 way of putting a call on hold.
		if !ip.IsUnspecified() {
			st.addr = netip.AddrPortFrom(ip.Unmap(), uint16(port))
		} else if st.dir == "sendrecv" {
			st.dir = "sendonly"
		}
		return st, nil
	}
	return stream{}, fmt.Errorf("%w: no audio stream", errBadSDP)
}

func sessionDir(attrs []sdp.Attribute) string {
	for _, a := range attrs {
		switch a.Key {
		case "sendrecv", "sendonly", "recvonly", "inactive":
			return a.Key
		}
	}
	return ""
}

// formatsOf lists the formats of md we can send or receive, in md's
// order: G.711 by static payload type or rtpmap, telephone-event/8000.
func formatsOf(md *sdp.MediaDescription) []format {
	names := map[uint8]string{}
	for _, a := range md.Attributes {
		if a.Key != "rtpmap" {
			continue
		}
		pt, enc, ok := strings.Cut(a.Value, " ")
		n, err := strconv.ParseUint(pt, 10, 7)
		if !ok || err != nil {
			continue
		}
		names[uint8(n)] = strings.ToLower(strings.TrimSpace(enc))
	}
	var out []format
	for _, f := range md.MediaName.Formats {
		n, err := strconv.ParseUint(f, 10, 7)
		if err != nil {
			continue
		}
		pt := uint8(n)
		enc, mapped := names[pt]
		switch {
		case enc == "pcmu/8000" || enc == "pcmu/8000/1" || (!mapped && pt == ptPCMU):
			out = append(out, format{pt, "PCMU"})
		case enc == "pcma/8000" || enc == "pcma/8000/1" || (!mapped && pt == ptPCMA):
			out = append(out, format{pt, "PCMA"})
		case enc == "telephone-event/8000":
			out = append(out, format{pt, "telephone-event"})
		}
	}
	return out
}
