// Package sip is ToneVault's SIP back-to-back user agent (B2BUA), built on
// sipgo: it sits between the carrier (the customer) and the contact-centre
// platform (agent, PBX, recorder), terminates every call's dialog on each
// side and makes its own on the other, so that all media goes through the
// relay in package media and no SIP INFO key press reaches the platform.
//
// # Trunks and calls
//
// There are two trunks, "carrier" and "platform" (Config), each with its own
// sipgo user agent, listening address (UDP and TCP on the same port), allow
// list and target. A call may start on either trunk; it leaves through the
// other one to that trunk's Target. Requests from a peer outside a trunk's
// Allow list get 403 and a sip.peer_refused audit record (one per peer
// address per 10 s, so that a scanner cannot flood the fsynced trail; the
// tonevault_sip_requests_refused_total metric counts every one).
// In-dialog requests are matched on Call-ID, both tags and the trunk they
// arrive on; anything else gets 481.
//
// The outgoing leg is the gateway's own request: new Call-ID, tags, CSeq,
// Via and Contact of the outgoing trunk, sent from its listening socket
// (UDP). Copied from the incoming INVITE: the From display name and user
// (host replaced by the gateway's), P-Asserted-Identity, Session-Expires,
// Min-SE, Supported and Require (without 100rel), the configured
// correlation headers, Max-Forwards less one.
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
// so media cannot go around the relay. Only the first plain RTP/AVP(F)
// audio stream is kept (others rejected with port 0) and only codecs the
// relay can inspect (PCMU, PCMA, telephone-event, CN at 8000 Hz). An offer
// with neither PCMU nor PCMA gets 488 unless Config.RejectUninspectable is
// false, in which case it is forwarded whole and the relay mutes what it
// cannot inspect (fail closed).
//
// # SIP INFO
//
// INFO from the carrier with application/dtmf-relay or application/dtmf is
// answered 200 (400 when it holds no digit), never forwarded, and its digit
// goes to MediaSession.InfoDigit (before the 200 is sent), which
// de-duplicates it with the in-band and RFC 4733 copies of the same key
// press. Other INFO is forwarded. Message bodies are never logged: the
// gateway logs no body, and sipgo's own log (Options.SIPLog) goes through
// QuietLog, which withholds the raw messages sipgo logs when it cannot
// parse one.
//
// # Limits
//
// sipgo has no reliable provisional responses (RFC 3262, PRACK), so the
// gateway removes 100rel from Supported and Require. A UAC that only
// Supports 100rel is served as RFC 3262 allows; one that Requires it gets
// unreliable provisionals anyway (its Require is dropped rather than the
// call refused with 420, which is what such callers usually prefer; an
// early-media answer in a 18x is then a preview and the 2xx carries it
// again). Not supported: INVITE without SDP (late offer) and re-INVITE
// without SDP (488), forking to several early dialogs (the last tag wins),
// TLS and SRTP.
package sip
