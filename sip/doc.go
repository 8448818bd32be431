// Package sip is ToneVault's SIP back-to-back user agent (B2BUA), built on
// sipgo: it sits between the carrier (the customer) and the contact-centre
// platform (agent, PBX, recorder), terminates every call's dialog on each
// side and makes its own on the other, so that all media goes through the
// relay in package media and no key press in the signalling reaches the
// platform.
//
// # Trunks and calls
//
// There are two trunks, "carrier" and "platform" (Config), each with its
// own sipgo user agent, listening address (UDP and TCP on the same port,
// TLS on its own, see TLS), allow list and target. A call may start on
// either trunk; it leaves through the other one to that trunk's Target. Requests from a peer outside a trunk's
// Allow list get 403 and a sip.peer_refused audit record (one per peer
// address per 10 s, so that a scanner cannot flood the fsynced trail; the
// tonevault_sip_requests_refused_total metric counts every one).
// In-dialog requests are matched on Call-ID, both tags and the trunk they
// arrive on; anything else gets 481.
//
// The outgoing leg is the gateway's own request: new Call-ID, tags, CSeq,
// Via and Contact of the outgoing trunk, sent from its listening socket
// (UDP). Copied from the incoming INVITE: the From display name and user
// (host replaced by the gateway's), Privacy and P-Asserted-Identity (see
// Privacy), Session-Expires, Min-SE, Supported and Require (without
// 100rel), the configured correlation headers, Max-Forwards less one.
//
// # TLS
//
// A trunk whose transports include "tls" listens for SIP over TLS on its
// own port (TLSConfig.Port, 5061 on the carrier side by default), TLS 1.2
// and 1.3 (TLSConfig.MinVersion), with the certificate and key of
// TLSConfig.CertFile and KeyFile. Both are read again at the next
// handshake after either file changes, so a renewal needs no restart; a
// file that does not load leaves the previous certificate in use (and a
// warning in the log). With ClientCAFile, TLS is mutual: a peer must
// present a certificate of one of those CAs (read again when the file
// changes). Requests reach a target over TLS when it is a sips: URI or
// says ;transport=tls: the server is verified against CAFile (or the
// system's roots) and the host of the URI, and the trunk's certificate
// is shown when the server asks for one. On a TLS dialog the gateway's
// Contact names its TLS port with transport=tls, or is a sips: URI when
// the dialog was made with one (RFC 5630), and its Via says TLS with the
// TLS port. The gateway is a B2BUA, not a proxy: it adds no Record-Route
// (each leg's dialog ends at its Contact). Responses go back over the
// connection their request came on.
//
// # Message size
//
// Responses go back over the transport their request came on, whatever
// their size (RFC 3261 18.2.2): a 200 OK to a caller behind an SBC chain
// (three Vias, four Record-Routes) is over 1300 bytes and still goes over
// UDP. sipgo refuses to write any UDP message over sip.UDPMTUSize-200
// bytes; the package raises that variable to the largest UDP payload at
// init, which is the way sipgo's maintainer gives for it (it is global:
// every sipgo user in the binary gets it). A request the
// gateway sends over UDP that is over 1300 bytes goes over TCP instead
// (RFC 3261 18.1.1, its top Via saying TCP) when the trunk has TCP and
// the peer accepts a connection within 2 s; a peer that refuses gets it
// over UDP, and large requests to it go over UDP for 5 minutes. The
// dialog stays on its transport: only that request moves. ACKs stay on
// the dialog's transport whatever their size.
//
// Responses: 18x (with their SDP turned, for early media) and 2xx are
// carried back; failures keep their code (486, 603, 404, 5xx, ...) except
// 3xx (the gateway does not follow redirects: 480) and 401/407 (a
// challenge is for the gateway, not the caller: 403). A CANCEL from the
// caller is answered 200 and 487 and a CANCEL goes to the callee; a 2xx
// that crosses it is ACKed and BYEd. BYE from either side is answered and
// sent to the other. re-INVITE and UPDATE (hold, resume, codec change,
// session refresh) go across with their SDP turned both ways; one offer
// at a time per call (491 otherwise), and a failed offer restores the
// relay's previous view of the offering side. OPTIONS is answered by the
// gateway (200, Allow, Accept). REFER is refused (403): a transfer would
// take the call off the gateway.
//
// # SDP
//
// RewriteSDP turns every SDP around: c= and the audio m= port point at the
// relay's address for the leg it is sent on, a=rtcp at its port+1, the
// o= line is the gateway's own (one session id per leg, version raised on
// change), and ICE, DTLS, SDES crypto and rtcp-mux attributes are removed
// so media cannot go around the relay. Only the first RTP/AVP(F) or
// RTP/SAVP(F) audio stream is kept (others rejected with port 0) and only
// codecs the relay can inspect (PCMU, PCMA, telephone-event, CN at 8000 Hz). An
// offer with neither PCMU nor PCMA gets 488 unless Config.RejectUninspectable is
// false, in which case it is forwarded whole and the relay mutes what it
// cannot inspect (fail closed).
//
// # SRTP
//
// Each trunk has an SDES-SRTP policy (RFC 4568, TrunkConfig.SRTP), and
// each leg of a call is settled by its own trunk's, so SRTP and plain RTP
// mix across the two. An offer from a peer: with srtp off, RTP/SAVP gets
// 488 and a=crypto in an RTP/AVP offer is passed over; otherwise the
// first a=crypto the gateway can use (package sdes: AES_CM_128_HMAC_SHA1_80
// and _32, AEAD_AES_128_GCM, lifetime and MKI, several keys by MKI; not
// UNENCRYPTED_*, UNAUTHENTICATED_SRTP, KDR or FEC) is taken, and the
// answer carries its tag and suite with a fresh key of the gateway's,
// with an MKI of the offer's length when the offer's key has one
// (symmetric MKI, as Microsoft Teams expects). With srtp required a plain
// offer gets 488; RTP/SAVP with no usable a=crypto gets 488 whatever the
// policy. An offer by the gateway: off, RTP/AVP; optional, RTP/AVP with
// one a=crypto per suite (best-effort SRTP: a peer without SDES answers
// plain); required, RTP/SAVP with them, and a plain answer ends the call
// (488 to the caller). Offered keys have no MKI (Twilio refuses them).
// The keys a peer sent only decrypt what it sends, in the relay
// (media.Stream.SRTP); every key the gateway sends is drawn for that leg
// alone, so the customer's keys never protect what goes to the platform,
// nor the platform's what goes to the customer. A re-offer that keeps its
// key gets the gateway's same key back, and a re-offer by the gateway
// keeps its key for the suite in use, so the relay keeps the leg's SRTP
// state. The keys are wiped when the call ends; no log or error shows one.
//
// # No key press in the signalling
//
// The carrier's in-dialog requests reach the platform through an
// allowlist: BYE, re-INVITE and UPDATE, each rebuilt by the gateway (its
// own headers, session timers and identity, the SDP turned); ACK and
// CANCEL are the gateway's own toward the platform; OPTIONS is answered.
// Nothing else from the carrier is forwarded: a request that is not on
// the list never reaches code that could forward it.
//
// Key presses are taken off the signalling in every form carriers use:
// INFO with application/dtmf-relay (or its alias application/dtmf-info),
// application/dtmf, application/vnd.nortelnetworks.digits ("d=5"),
// audio/telephone-event (an RFC 4733 block) or a multipart body holding
// one of these; NOTIFY of event telephone-event (Cisco's unsolicited
// NOTIFY: an RFC 4733 block, duration in milliseconds) or kpml (RFC 4730
// kpml-response, each symbol of its digits a key). Each is answered 200
// after its digits went to MediaSession.InfoDigit, which de-duplicates
// them with the in-band and RFC 4733 copies of the same key press. One
// INFO is one press (the first key-press part of a multipart body
// counts); RFC 4733 reports spread over several messages (a start, its
// refreshes and its end) are one press (pressTracker). A key-press body
// with no valid key gets 400 and yields nothing.
//
// Everything else from the carrier is answered by the gateway and counted
// in tonevault_sip_carrier_requests_refused_total{method,reason}:
// another INFO body type 415 (with Accept), an INFO of an Info-Package
// 469, a NOTIFY of another event 489 (the gateway subscribes to nothing),
// an INFO or NOTIFY without body 200, MESSAGE, SUBSCRIBE, PUBLISH and
// other known methods 405 (the carrier trunk's Allow has no MESSAGE), an
// unknown method 501, REFER 403, PRACK 481. In-dialog requests from the
// platform (the agent's INFO, MESSAGE, NOTIFY) are forwarded to the
// carrier as before.
//
// Message bodies are never logged, and no error quotes one: the gateway
// logs method, reason and status only, and sipgo's own log
// (Options.SIPLog) goes through QuietLog, which withholds the raw
// messages sipgo logs when it cannot parse one.
//
// Parsing follows RFC 4475 where it matters here: From and To parameters
// with whitespace around "=" (and names in any case) are read as such, a
// request whose CSeq names another method gets 400, an unknown body type
// 415.
//
// # Browser agents
//
// A platform target may be "agents:NAME", a pool of browser agents
// (package agents), on the platform trunk or for one called number
// (Config.Routes, looked up by the Request-URI user of calls from the
// carrier). Such a call has no SIP dialog on the platform side
// (agentcall.go): the gateway sends 180 to the caller and rings the pool
// (Options.Agents); when an agent's WebRTC leg connects, the relay's
// platform side is set to the leg's loopback socket (plain RTP, the
// caller's codec alone, whatever the platform trunk's SRTP policy) and
// the caller gets the 200 with the relay's address. Nobody signed in or
// nobody answering in the pool's ring_timeout is 480, or the call goes to
// the pool's fallback SIP target as any call would (runInvite). A CANCEL,
// a BYE or the gateway stopping while it rings stops the ring. The
// agent's hang-up, or its media gone (agent_gone), is a BYE to the
// caller; re-INVITEs and UPDATEs from the caller are answered by the
// gateway for the agent (hold, resume, refresh), keeping the leg's codec.
// A late offer cannot go to browser agents (the codec must be known
// before one answers): 488, or the fallback.
//
// # Limits
//
// sipgo has no reliable provisional responses (RFC 3262, PRACK), so the
// gateway removes 100rel from Supported and Require. A UAC that only
// Supports 100rel is served as RFC 3262 allows; one that Requires it gets
// unreliable provisionals anyway (its Require is dropped rather than the
// call refused with 420, which is what such callers usually prefer; an
// early-media answer in a 18x is then a preview and the 2xx carries it
// again). Not supported: forking to several early dialogs (the last tag
// wins), DTLS-SRTP, transfers (REFER), session timer refreshes by the
// gateway itself, DNS SRV and failover. Key-press bodies of a type not
// listed above are refused, not forwarded, and their digit is lost.
package sip
