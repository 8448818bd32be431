package sip

import (
	"errors"
	"fmt"
	"net/netip"
	"strconv"
	"strings"
	"time"

	"github.com/pion/sdp/v3"

	"github.com/tonevault/tonevault/media"
	"github.com/tonevault/tonevault/media/sdes"
)

// Errors of RewriteSDP. ErrUninspectable leads to 488 Not Acceptable Here.
var (
	ErrBadSDP        = errors.New("sdp: malformed")
	ErrNoAudio       = errors.New("sdp: no usable audio stream")
	ErrUninspectable = errors.New("sdp: no codec the gateway can inspect (PCMU, PCMA)")
)

// maxSDP bounds the bodies the gateway parses; real offers are < 2 KiB.
const maxSDP = 16 << 10

// Origin is the o= line the gateway puts in the SDP it sends on one leg.
// RFC 3264 section 8 wants the same session id on a leg for the whole call
// and the version raised by one each time the description changes.
type Origin struct {
	SessionID uint64
	Version   uint64
}

// RewriteOptions say how one SDP body is turned around.
type RewriteOptions struct {
	// Local is the relay's address for the leg the SDP is sent on: it
	// replaces every c= and the audio m= port, so the peer sends to the
	// relay and never straight to the other side.
	Local  netip.AddrPort
	Origin Origin
	// KeepUninspectable forwards codecs the relay cannot inspect instead
	// of removing them (sip.reject_uninspectable: false). The relay then
	// mutes what it cannot inspect (fail closed).
	KeepUninspectable bool
	// TelephoneEvent, when set, makes sure the audio stream offers
	// telephone-event/8000, adding it with payload type TelephoneEventPT
	// (or the first free dynamic one, if that is taken) when the SDP has
	// none. The gateway sets it on every SDP sent to the carrier: the
	// relay takes the customer's RFC 4733 digits itself (they never reach
	// the platform), so they must be possible even when the platform does
	// not support telephone-event. Otherwise the customer's phone falls
	// back to in-band tones or, worse, to SIP INFO only.
	TelephoneEvent   bool
	TelephoneEventPT uint8
	// AcceptSAVP lets an RTP/SAVP(F) audio stream (SDES-SRTP) be the
	// call's stream; without it only RTP/AVP(F) streams are, and an
	// SRTP-only offer has no usable audio.
	AcceptSAVP bool
	// Crypto are the a=crypto attributes of the stream sent, keys
	// included (none: plain RTP); SAVP makes its transport RTP/SAVP(F)
	// rather than RTP/AVP(F) (best-effort SRTP, or plain). Whatever the
	// received SDP had is never copied.
	Crypto []sdes.Crypto
	SAVP   bool
}

// sdpIn is a received SDP, parsed, with the call's audio stream chosen:
// what the gateway needs to know of it before it writes its own.
type sdpIn struct {
	sd       sdp.SessionDescription
	md       *sdp.MediaDescription
	addr     netip.Addr
	remote   media.Stream
	kept     map[string]bool
	pts      []media.PayloadType
	savp     bool          // RTP/SAVP(F)
	feedback bool          // RTP/(S)AVPF
	crypto   []sdes.Crypto // the stream's a=crypto attributes the gateway can use, in order
	nCrypto  int           // how many it had, usable or not
}

// stripAttrs are attributes that would let media go around the relay
// (ICE candidates, DTLS, SDES keys) or that the relay does not do (it
// keeps RTP and RTCP on separate ports).
var stripAttrs = map[string]bool{
	"rtcp-mux": true, "rtcp-rsize": true,
	"ice-ufrag": true, "ice-pwd": true, "ice-options": true, "ice-lite": true, "ice-mismatch": true,
	"candidate": true, "remote-candidates": true, "end-of-candidates": true,
	"crypto": true, "fingerprint": true, "setup": true, "connection": true, "tls-id": true,
}

// inspectable reports the relay codec for a payload type, as signalled.
func codecOf(name string) media.Codec {
	switch strings.ToUpper(name) {
	case "PCMU":
		return media.PCMU
	case "PCMA":
		return media.PCMA
	case "TELEPHONE-EVENT":
		return media.TelephoneEvent
	case "CN":
		return media.ComfortNoise
	}
	return media.CodecUnknown
}

// staticPT is RFC 3551's static audio payload types the relay knows, for
// offers that leave out a=rtpmap.
var staticPT = map[uint8]media.PayloadType{
	0:  {PT: 0, Codec: media.PCMU, Name: "PCMU", Rate: 8000},
	8:  {PT: 8, Codec: media.PCMA, Name: "PCMA", Rate: 8000},
	13: {PT: 13, Codec: media.ComfortNoise, Name: "CN", Rate: 8000},
}

// RewriteSDP parses an offer or answer received on one leg and returns the
// body to send on the other leg, and what the received SDP says about its
// sender (for MediaSession.SetRemote on the receiving leg).
//
// The first audio m= line with RTP/AVP(F) (or, with opts.AcceptSAVP,
// RTP/SAVP(F)) is the call's stream; every other m= line is rejected with
// port 0, as RFC 3264 allows. Its payload types are cut down to those the
// relay can inspect (PCMU, PCMA, telephone-event, CN) unless
// opts.KeepUninspectable; no PCMU or PCMA left is ErrUninspectable. c=
// and the port point at opts.Local, a=rtcp at its port+1, and ICE, DTLS,
// SDES and rtcp-mux attributes are removed (opts.Crypto puts the
// gateway's own a=crypto in). An unspecified address (RFC 2543 hold)
// stays unspecified.
func RewriteSDP(in []byte, opts RewriteOptions) (out []byte, remote media.Stream, err error) {
	p, err := readSDP(in, opts)
	if err != nil {
		return nil, remote, err
	}
	out, err = p.write(opts)
	return out, p.remote, err
}

// readSDP parses a received SDP and chooses its audio stream.
func readSDP(in []byte, opts RewriteOptions) (*sdpIn, error) {
	if len(in) > maxSDP {
		return nil, fmt.Errorf("%w: body of %d bytes", ErrBadSDP, len(in))
	}
	if !strings.HasPrefix(string(in), "v=") {
		return nil, fmt.Errorf("%w: does not start with v=", ErrBadSDP)
	}
	p := &sdpIn{}
	sd := &p.sd
	if err := sd.UnmarshalString(string(in)); err != nil {
		return nil, fmt.Errorf("%w: %v", ErrBadSDP, err)
	}
	sessAddr, err := connAddr(sd.ConnectionInformation)
	if err != nil {
		return nil, err
	}
	sessDir := direction(sd.Attributes, "sendrecv")

	chosen := -1
	for i, md := range sd.MediaDescriptions {
		if chosen < 0 && md.MediaName.Media == "audio" && md.MediaName.Port.Value != 0 {
			if ok, savp, fb := rtpProto(md.MediaName.Protos); ok && (!savp || opts.AcceptSAVP) {
				chosen, p.savp, p.feedback = i, savp, fb
				continue
			}
		}
		rejectMedia(md)
	}
	if chosen < 0 {
		return nil, ErrNoAudio
	}
	md := sd.MediaDescriptions[chosen]
	p.md = md

	addr := sessAddr
	if md.ConnectionInformation != nil {
		if addr, err = connAddr(md.ConnectionInformation); err != nil {
			return nil, err
		}
	}
	if !addr.IsValid() {
		return nil, fmt.Errorf("%w: no c= line for the audio stream", ErrBadSDP)
	}
	p.addr = addr
	port := md.MediaName.Port.Value
	if port < 0 || port > 65535 {
		return nil, fmt.Errorf("%w: port %d", ErrBadSDP, port)
	}
	remote := &p.remote
	remote.Addr = netip.AddrPortFrom(addr, uint16(port))
	remote.RTCP = netip.AddrPortFrom(addr, uint16(port+1))
	if port == 65535 {
		remote.RTCP = netip.AddrPortFrom(addr, 0)
	}
	remote.Direction = direction(md.Attributes, sessDir)

	if p.pts, p.kept, err = payloadTypes(md, opts.KeepUninspectable); err != nil {
		return nil, err
	}
	remote.PayloadTypes = p.pts
	for _, a := range md.Attributes {
		switch a.Key {
		case "ptime":
			if ms, err := strconv.Atoi(strings.TrimSpace(a.Value)); err == nil && ms > 0 && ms <= 1000 {
				remote.PTime = time.Duration(ms) * time.Millisecond
			}
		case "rtcp":
			if rp, ok := rtcpAttr(a.Value, addr); ok {
				remote.RTCP = rp
			}
		case "crypto":
			// An attribute the gateway cannot use (another suite,
			// parameters it does not do) is passed over, as RFC 4568
			// has an answerer do; the error would quote nothing useful.
			p.nCrypto++
			if c, err := sdes.Parse(a.Value); err == nil && len(p.crypto) < 16 {
				p.crypto = append(p.crypto, c)
			}
		}
	}
	return p, nil
}

// sendrecv makes p's stream send and receive, wherever it was held:
// direction attributes at both levels are dropped (sendrecv is the
// default) and an RFC 2543 hold address becomes a real one when written.
func sendrecv(p *sdpIn) {
	drop := func(attrs []sdp.Attribute) []sdp.Attribute {
		out := attrs[:0:0]
		for _, a := range attrs {
			switch a.Key {
			case "sendonly", "recvonly", "inactive", "sendrecv":
				continue
			}
			out = append(out, a)
		}
		return out
	}
	p.sd.Attributes = drop(p.sd.Attributes)
	p.md.Attributes = drop(p.md.Attributes)
	if p.addr.IsUnspecified() {
		p.addr = netip.IPv4Unspecified().Next() // anything specified: write puts the relay's address
	}
	p.remote.Direction = "sendrecv"
}

// write builds the SDP to send on the other leg from a received one.
// It changes p: read it again to write it again.
func (p *sdpIn) write(opts RewriteOptions) ([]byte, error) {
	sd, md, addr := &p.sd, p.md, p.addr
	// Rebuild the attribute list: drop what would bypass the relay and
	// what belongs to removed payload types.
	attrs := md.Attributes[:0:0]
	for _, a := range md.Attributes {
		switch {
		case stripAttrs[a.Key], a.Key == "rtcp":
			continue // a=rtcp is written again below, pointing at the relay
		case a.Key == "rtpmap" || a.Key == "fmtp" || a.Key == "rtcp-fb":
			pt, _, _ := strings.Cut(a.Value, " ")
			if !p.kept[pt] && pt != "*" {
				continue
			}
		}
		attrs = append(attrs, a)
	}
	local := opts.Local
	if addr.IsUnspecified() {
		local = netip.AddrPortFrom(unspecifiedLike(local.Addr()), local.Port())
	}
	attrs = append(attrs, sdp.Attribute{Key: "rtcp", Value: strconv.Itoa(int(local.Port()) + 1)})
	for _, c := range opts.Crypto {
		attrs = append(attrs, sdp.Attribute{Key: "crypto", Value: c.Marshal()})
	}
	md.Attributes = attrs
	proto := "AVP"
	if opts.SAVP {
		proto = "SAVP"
	}
	if p.feedback {
		proto += "F"
	}
	md.MediaName.Protos = []string{"RTP", proto}
	formats := md.MediaName.Formats[:0:0]
	for _, f := range md.MediaName.Formats {
		if p.kept[f] {
			formats = append(formats, f)
		}
	}
	md.MediaName.Formats = formats
	if opts.TelephoneEvent && !hasCodec(p.pts, media.TelephoneEvent) && p.remote.Direction != "inactive" {
		pt := freePT(opts.TelephoneEventPT, formats)
		md.MediaName.Formats = append(md.MediaName.Formats, pt)
		md.Attributes = append(md.Attributes,
			sdp.Attribute{Key: "rtpmap", Value: pt + " telephone-event/8000"},
			sdp.Attribute{Key: "fmtp", Value: pt + " 0-16"})
	}
	md.MediaName.Port = sdp.RangedPort{Value: int(local.Port())}
	if md.ConnectionInformation != nil {
		md.ConnectionInformation = connInfo(local.Addr())
	}
	md.EncryptionKey = nil

	sd.ConnectionInformation = connInfo(local.Addr())
	sess := sd.Attributes[:0:0]
	for _, a := range sd.Attributes {
		if !stripAttrs[a.Key] && a.Key != "group" {
			sess = append(sess, a)
		}
	}
	sd.Attributes = sess
	sd.Origin = sdp.Origin{
		Username:       "tonevault",
		SessionID:      opts.Origin.SessionID,
		SessionVersion: opts.Origin.Version,
		NetworkType:    "IN",
		AddressType:    addrType(opts.Local.Addr()),
		UnicastAddress: opts.Local.Addr().String(),
	}
	b, err := sd.Marshal()
	if err != nil {
		return nil, fmt.Errorf("%w: %v", ErrBadSDP, err)
	}
	return b, nil
}

func hasCodec(pts []media.PayloadType, c media.Codec) bool {
	for _, p := range pts {
		if p.Codec == c {
			return true
		}
	}
	return false
}

// freePT is want, or when a format already uses it (or it is not a
// dynamic type), the first free one of 96-127 (101 when want is 0).
func freePT(want uint8, formats []string) string {
	used := map[string]bool{}
	for _, f := range formats {
		used[f] = true
	}
	if want < 96 || want > 127 {
		want = 101
	}
	if !used[strconv.Itoa(int(want))] {
		return strconv.Itoa(int(want))
	}
	for pt := 96; pt <= 127; pt++ {
		if !used[strconv.Itoa(pt)] {
			return strconv.Itoa(pt)
		}
	}
	return strconv.Itoa(int(want)) // 32 formats in use: cannot happen with the kept codecs
}

// rtpProto reports whether the m= protocol is RTP the relay can read,
// plain or SDES-SRTP (savp), with or without feedback (RFC 4585). DTLS
// (UDP/TLS/RTP/SAVP) is not: its keys are not in the SDP.
func rtpProto(protos []string) (ok, savp, feedback bool) {
	switch strings.ToUpper(strings.Join(protos, "/")) {
	case "RTP/AVP":
		return true, false, false
	case "RTP/AVPF":
		return true, false, true
	case "RTP/SAVP":
		return true, true, false
	case "RTP/SAVPF":
		return true, true, true
	}
	return false, false, false
}

// rejectMedia turns an m= line into a rejected one (port 0) without the
// attributes that would still offer a transport.
func rejectMedia(md *sdp.MediaDescription) {
	md.MediaName.Port = sdp.RangedPort{Value: 0}
	attrs := md.Attributes[:0:0]
	for _, a := range md.Attributes {
		if !stripAttrs[a.Key] && a.Key != "rtcp" {
			attrs = append(attrs, a)
		}
	}
	md.Attributes = attrs
	md.EncryptionKey = nil
	if md.ConnectionInformation != nil {
		md.ConnectionInformation = nil
	}
	if len(md.MediaName.Formats) == 0 {
		md.MediaName.Formats = []string{"0"}
	}
}

// payloadTypes lists the stream's payload types and which m= formats are
// kept.
func payloadTypes(md *sdp.MediaDescription, keepAll bool) ([]media.PayloadType, map[string]bool, error) {
	rtpmaps := map[string]media.PayloadType{}
	for _, a := range md.Attributes {
		if a.Key != "rtpmap" {
			continue
		}
		ptStr, enc, ok := strings.Cut(strings.TrimSpace(a.Value), " ")
		pt, err := strconv.ParseUint(ptStr, 10, 7)
		if !ok || err != nil {
			continue
		}
		name, rest, _ := strings.Cut(strings.TrimSpace(enc), "/")
		rateStr, _, _ := strings.Cut(rest, "/")
		rate, _ := strconv.Atoi(rateStr)
		rtpmaps[ptStr] = media.PayloadType{PT: uint8(pt), Codec: codecOf(name), Name: name, Rate: rate}
	}
	var (
		pts     []media.PayloadType
		kept    = map[string]bool{}
		hasG711 bool
	)
	for _, f := range md.MediaName.Formats {
		pt, err := strconv.ParseUint(f, 10, 7)
		if err != nil {
			if keepAll {
				kept[f] = true
			}
			continue
		}
		p, ok := rtpmaps[f]
		if !ok {
			p, ok = staticPT[uint8(pt)]
			if !ok {
				p = media.PayloadType{PT: uint8(pt)}
			}
		}
		// G.711 and events are only inspectable at 8000 Hz.
		if p.Codec != media.CodecUnknown && p.Rate != 8000 {
			p.Codec = media.CodecUnknown
		}
		if p.Codec == media.PCMU || p.Codec == media.PCMA {
			hasG711 = true
		}
		if p.Codec == media.CodecUnknown && !keepAll {
			continue
		}
		kept[f] = true
		pts = append(pts, p)
	}
	if !hasG711 && !keepAll {
		return nil, nil, ErrUninspectable
	}
	if len(kept) == 0 {
		return nil, nil, ErrNoAudio
	}
	return pts, kept, nil
}

func connAddr(ci *sdp.ConnectionInformation) (netip.Addr, error) {
	if ci == nil {
		return netip.Addr{}, nil
	}
	if ci.Address == nil {
		return netip.Addr{}, fmt.Errorf("%w: c= without address", ErrBadSDP)
	}
	// IPv4 multicast carries /ttl; unicast has no suffix.
	host, _, _ := strings.Cut(ci.Address.Address, "/")
	a, err := netip.ParseAddr(host)
	if err != nil {
		return netip.Addr{}, fmt.Errorf("%w: c= address is not an IP address", ErrBadSDP)
	}
	if a.IsMulticast() {
		return netip.Addr{}, fmt.Errorf("%w: multicast c= address", ErrBadSDP)
	}
	return a.Unmap(), nil
}

func connInfo(a netip.Addr) *sdp.ConnectionInformation {
	return &sdp.ConnectionInformation{NetworkType: "IN", AddressType: addrType(a), Address: &sdp.Address{Address: a.String()}}
}

func addrType(a netip.Addr) string {
	if a.Is6() && !a.Is4In6() {
		return "IP6"
	}
	return "IP4"
}

func unspecifiedLike(a netip.Addr) netip.Addr {
	if a.Is6() && !a.Is4In6() {
		return netip.IPv6Unspecified()
	}
	return netip.IPv4Unspecified()
}

// rtcpAttr parses RFC 3605 "a=rtcp:port [IN IP4 addr]".
func rtcpAttr(v string, def netip.Addr) (netip.AddrPort, bool) {
	f := strings.Fields(v)
	if len(f) == 0 {
		return netip.AddrPort{}, false
	}
	p, err := strconv.ParseUint(f[0], 10, 16)
	if err != nil {
		return netip.AddrPort{}, false
	}
	if len(f) == 4 {
		if a, err := netip.ParseAddr(f[3]); err == nil {
			def = a.Unmap()
		}
	}
	return netip.AddrPortFrom(def, uint16(p)), true
}

// direction is the last direction attribute in attrs, or def.
func direction(attrs []sdp.Attribute, def string) string {
	for _, a := range attrs {
		switch a.Key {
		case "sendrecv", "sendonly", "recvonly", "inactive":
			def = a.Key
		}
	}
	return def
}
