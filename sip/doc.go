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
// Privacy), the configured correlation headers, Max-Forwards less one.
// Supported, Require, Session-Expires and Min-SE are the gateway's own on
// each leg (see Call flows): option tags are not copied across.
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
// gateway (200, Allow, Accept, Supported). REFER from the platform is
// carried out by the gateway (Transfers); from the carrier it is refused
// (403).
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
// unknown method 501, REFER 403. A PRACK is answered by the gateway (it
// acknowledges the gateway's own reliable 18x, or gets 481) and goes no
// further. In-dialog requests from the
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
// # Call flows
//
// Targets and failover (RFC 3263). A trunk's Target, then each of its
// Failover targets, is tried in order. A host name without a port is
// looked up as DNS SRV (_sip._udp, _sip._tcp or _sips._tcp after the
// target's transport; weights shuffled as RFC 2782 says), else as A and
// AAAA records on 5060 (5061 over TLS); a name with a port is its A and
// AAAA records; every address found is a target of its own (over TLS
// the request goes to the name, which the certificate is checked
// against). The Request-URI keeps the configured URI. Resolutions are
// kept 30 s (Options.Resolver; net.DefaultResolver by default). An
// INVITE that gets no answer at all (a 100 Trying will do) within the
// trunk's FailoverTimeout (1 s), whose destination an ICMP error says
// cannot be reached, whose TCP or TLS connection is refused or not made
// within that time, or that gets 503, is given up and the next target
// tried; the caller gets 503 only when every one failed. ICMP errors are
// read from the trunk's UDP socket (IP_RECVERR, Linux; sipgo reads no
// errors from an unconnected socket), so a dead target is left at once;
// an ICMP error the kernel does not send (its rate limits,
// net.ipv4.icmp_msgs_per_sec, are per host) leaves it to the timeout.
// A given-up target that answers late gets a CANCEL, or an ACK and a BYE
// for a 2xx. A target that failed is tried after the others for 30 s;
// with ProbeInterval, OPTIONS probes mark each target down (no answer,
// unreachable, 503) and up (any other answer) and
// tonevault_sip_target_up shows it; a target marked down is still tried
// when the others fail. The same applies to a transfer's target.
//
// Reliable provisional responses (RFC 3262), on each leg on its own.
// The gateway offers 100rel to the callee (not with a late offer, whose
// callee could put an offer in a reliable 18x that the caller could not
// answer) and PRACKs each reliable 18x on its early dialog. To a caller
// that requires 100rel every 18x goes reliably, to one that supports it
// those with SDP: Require: 100rel and RSeq, retransmitted at T1 doubling
// until its PRACK (answered 200; one for nothing gets 481); a second
// reliable 18x waits for the first's PRACK (only the newest waiting one
// goes), and the 2xx waits for the PRACK of one that carried the answer
// and then carries no SDP. No PRACK in 64*T1: the caller gets 503 and
// the callee a CANCEL. A PRACK with an offer gets 488.
//
// Session timers (RFC 4028), on each leg on its own (SessionTimerConfig):
// the gateway asks the callee for Expires (Min-SE MinSE; a 422 is
// answered with the interval it asks) and takes the caller's interval
// unless it is under MinSE (422 with Min-SE). A peer that supports timers
// refreshes when it says so, or when nobody said; otherwise, and when a
// callee's 2xx says nothing, the gateway refreshes that leg at half the
// interval: an UPDATE without SDP, or, to a peer whose Allow has no
// UPDATE, a re-INVITE with the SDP the gateway last sent there,
// unchanged (its answer is not passed on). A re-INVITE or UPDATE that
// crosses the gateway refreshes both legs, each with its own headers. A
// leg not refreshed by the interval less a third (32 s at most), or whose
// refresh gets 408, 481 or no answer, ends the call: BYE on both legs, a
// sip.call_ended record with reason session_expired (trunk: the leg), and
// tonevault_sip_sessions_expired_total.
//
// Forking. Early dialogs of the callee (a forking proxy's several 18x
// with their own To tags) each get their own dialog state and PRACKs;
// the relay takes the early media of the latest 18x with SDP. The first
// 2xx wins: the relay takes that dialog's answer (its 2xx's SDP, or the
// SDP of its 18x), and the 2xx of any other dialog gets an ACK and a
// BYE. The caller sees one dialog throughout. A caller that got an
// answer reliably keeps it when another dialog wins (the relay follows
// the winner; the answer is not changed with the caller).
//
// Transfers (RFC 3515, 3891, 5589). A REFER from the platform, in a
// call that is answered, gets 202 (491 while another transfer goes on,
// 400 without exactly one sip: or sips: Refer-To for INVITE, 403 under
// TransferConfig.Refer refuse) and a NOTIFY (message/sipfrag) "100
// Trying". The gateway places a new leg to the Refer-To URI through the
// platform trunk (its targets' failover applies to the URI's
// destinations): its own offer, drawn from the customer's last
// description (SRTP keys drawn for the new leg), sending and receiving;
// the caller's identity and correlation headers as on the first leg; the
// Replaces of an attended transfer and the REFER's Referred-By. When that
// leg answers, the relay takes the new agent's media, the new dialog
// becomes the call's platform leg (registry, session timer), a customer
// held before the transfer is taken off hold with a re-INVITE, the
// transferor gets NOTIFY "200 OK" (subscription terminated) and a BYE,
// the trail a sip.call_transferred record, and Registry.OnTransfer's
// subscribers the Transfer (serve cancels a payment capture in progress
// unless TransferConfig.Capture is keep). The customer's leg is the same
// dialog throughout, and its audio never leaves the relay, masking
// included. A new leg that fails gets the transferor a NOTIFY with its
// final status and the call stays as it was; a transferor that hung up
// after the 202 does not stop the transfer, but its failure then ends the
// call. A BYE on the replaced dialog is answered; nothing else is taken
// on it.
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
// # Recording (SIPREC)
//
// A trunk with recording.srs (RecordingConfig) has its calls recorded:
// the gateway is the SIPREC client (RFC 7866). Once a call is answered,
// the call's media session opens its recording fork
// (MediaSession.Record) and the gateway a dialog of its own with the
// recording server, through the platform trunk, offering the fork's two
// streams (the customer's, masked, and the agent's) with the RFC 7865
// metadata of package siprec; a BYE ends it with the call, and an answer
// that changes the call's codec re-offers it. A recording that fails is
// audited (recording.failed) and leaves the call alone, unless
// recording.required: then new calls get 503 while the server's OPTIONS
// probe says it is down, and a call whose recording fails is ended.
// Requests the server sends in its dialog (its BYE) come in on the
// platform trunk and are matched as a call's are.
//
// # Faults
//
// One fault, one call (DESIGN.md invariant 8). A panic in a sipgo
// handler is recovered there: the request gets 500 when it has no final
// answer yet, and the call whose dialog it is in (Call-ID and both tags)
// is ended; a request in no call's dialog ends nothing. A panic while a
// call's INVITE runs (ringing, failing over, being answered) answers the
// caller 500, CANCELs the callee's INVITE while it is pending, or BYEs
// the legs already answered. A panic in one of a call's own goroutines
// or timers (its media watcher, session timers, reliable 18x, PRACK,
// transfer, failover timer) ends that call. Each ends as a hang-up by
// the gateway does, BYE on both legs once answered, with a call.failed
// record before its sip.call_ended, both with reason sip_fault, and
// tonevault_sip_faults_total{where} counts it; the log has where and the
// stack, never the panic's value. A media session that ends with
// media.ErrFault (its packets panicked; nothing of it is forwarded any
// more) or media.ErrRingFailed (its io_uring ring failed) ends the call
// the same way, with reason media_fault or ring_failed. The other calls
// and the listeners go on. A panic in the goroutines that end a call or
// a dialog already (a BYE, a CANCEL, an abandoned INVITE's answers) is
// logged only. Tests inject faults through an unexported hook
// (testFault); nothing in the configuration or on the network reaches
// it. Not covered: a panic while a call's lock is held leaves it held,
// and whoever then waits for that call waits for good (the process and
// the other calls go on).
//
// # Limits
//
// Not supported: DTLS-SRTP; NAPTR (SRV is looked up for the target's
// transport only); a transfer's early media (the customer hears the first
// agent, or silence, until the new agent answers); REFER from the
// carrier; transfers to a dialog of the gateway itself (Replaces is
// passed to the target, which must hold the replaced dialog). Key-press
// bodies of a type not listed above are refused, not forwarded, and
// their digit is lost.
package sip
