// Package webrtc is the browser agent's media leg: one pion/webrtc
// PeerConnection per call, bridged to the platform leg of the call's
// media.Session.
//
// # Where the audio comes from
//
// To the media session, a leg is an ordinary platform peer: package sip
// tells the session (SetRemote) that the platform's RTP address is the
// leg's loopback socket (Leg.Addr), and the session sends there what it
// sends any platform: the carrier's audio after the look-ahead masker,
// telephone-events removed, unknown payloads replaced (media/doc.go). The
// leg feeds the browser's track from that socket alone, from the
// session's own address alone and of the call's payload type alone, so
// there is no second path around the masker, and what the session does
// not send (fail closed, hold) the browser does not hear. The agent's
// microphone goes the other way into the session's platform port, and
// the session relays it to the carrier unchanged.
//
// # Codecs
//
// G.711 end to end: each leg's media engine knows one codec, the
// carrier's (PCMU or PCMA, static payload types 0 and 8), so a browser
// is answered with that alone and nothing is transcoded. Browsers all
// offer both. No Opus: it would need a transcoder (and a decoder in the
// masking path) for no gain on a telephone call.
//
// # Security and ICE
//
// DTLS-SRTP always (WebRTC has nothing else; an offer without a
// fingerprint is ErrBadSDP). ICE host candidates are on media.bind_ip
// alone (webrtc.public_ip replaces it in the candidates behind a 1:1
// NAT); the gateway is ICE-lite when it has a public address
// (webrtc.ice_lite: auto), and uses STUN itself only when it is not.
// STUN and TURN servers for the browser come from the configuration
// (Engine.ICEServers). webrtc.udp_port puts every leg's ICE on one port.
// No multicast DNS, no interceptors (no NACK or congestion control for
// G.711 audio).
//
// # Ends
//
// NewLeg refuses an offer it cannot answer (ErrBadSDP, with a reason in
// words the agent page shows). After the answer, ICE and DTLS must be up
// within webrtc.connect_timeout: otherwise Err is ErrICEFailed (no
// connectivity: no candidates, a firewall) or ErrDTLSFailed (ICE up, the
// handshake failed). A connected leg whose browser closes the connection
// (DTLS close_notify, a closed tab) or stops answering ICE for
// webrtc.disconnect_timeout ends with ErrGone. Close ends it from the
// gateway's side (the call ended). Metrics: tonevault_webrtc_legs and
// tonevault_webrtc_legs_ended_total{reason}.
package webrtc
