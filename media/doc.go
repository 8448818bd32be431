// Package media is ToneVault's RTP/RTCP relay: per call, an RTP/RTCP port
// pair on each leg, symmetric-RTP latching, and on the carrier→platform
// direction every packet through the dtmf masker so that no customer digit
// reaches the platform (DESIGN.md invariants 1, 3 and 5).
//
// # Use (package sip)
//
//	r, _ := media.NewRelay(cfg, media.Options{Logger: l, Registerer: reg, Digits: sink})
//	s, _ := r.Open(callID)              // both legs' ports, or ErrPortsExhausted
//	s.Local(media.Carrier)              // goes into the SDP sent to the carrier (RTCP: port+1)
//	s.SetRemote(media.Carrier, stream)  // after every offer/answer from that leg
//	s.InfoDigit('5', 160*time.Millisecond)
//	s.SetCapture(true)                  // CaptureOnly policy
//	<-s.Done(); s.Err()                 // ErrMediaTimeout, ErrMaxDuration; nil after Close
//	s.Close()                           // frees the ports; idempotent
//
// # Ports
//
// RTP on even ports, RTCP on the next one, from [PortMin, PortMax] on
// BindIP. Freed pairs go to the back of a FIFO, so a port is reused as late
// as possible; a pair another process holds is skipped. PortMin = PortMax
// = 0 lets the kernel pick (still even/odd pairs): that is for tests.
//
// # Symmetric RTP
//
// A leg accepts RTP from its latched source. Until one is latched, the
// first packet from the signalled IP (any port: NATs rewrite ports) is
// latched; a packet from the exact signalled address:port always takes the
// latch back; a new signalled address unlatches. Everything else is a
// foreign source: dropped and counted. Packets toward a peer go from the
// relay socket of its leg to the latched source, else the signalled
// address. RTCP is accepted from the peer's IP, latched the same way, and
// relayed unchanged and uninspected.
//
// # SRTP
//
// Each leg is plain RTP or SDES-SRTP (RFC 4568) on its own, as its
// Stream.SRTP says: the suites of package sdes (AES_CM_128_HMAC_SHA1_80
// and _32, AEAD_AES_128_GCM), keys with an MKI, several keys by MKI,
// SRTCP, through pion/srtp. A leg's peer keys authenticate and decrypt
// what it sends, RTP and RTCP, with a replay window of 128 packets; the
// relay's own key for that leg, drawn for it alone by package sip,
// protects what goes to it. So the customer's keys never protect
// anything sent to the platform, and SRTP and plain RTP mix freely: the
// masker always sees decrypted audio, and what it sends is protected
// the platform leg's way. A packet that does not authenticate (forged,
// tampered, under another key, plain RTP on an SRTP leg) or replays one
// already seen is dropped and counted (reasons srtp_auth_failed and
// srtp_rejected), never forwarded, in both directions; on the carrier
// leg Options.FailClosed hears of it once per call. Decryption and
// protection happen in place under the session's lock, so a packet
// allocates nothing: AES-CM adds about 1 µs per 20 ms packet, GCM about
// 0.3 µs (BENCHMARKS.md). The same keys signalled again keep the leg's
// state (rollover counters, replay windows); new keys replace it. Keys
// never reach a log: package sdes prints them as a mask.
//
// # The carrier→platform direction
//
// Each packet is parsed with every length checked (version, CSRC count,
// extension, padding, MaxPacket). An unparseable packet is dropped and
// counted. Parseable ones, by payload type (both legs' SDP merged; a
// number the legs map to different codecs is unknown):
//
//   - G.711 (PCMU/PCMA): through the masker. The packet keeps its header
//     (sequence number, timestamp, marker, SSRC) and its payload becomes the
//     masker's output, the audio that arrived Delay() samples earlier. The
//     platform stream is exactly as continuous as the carrier's and the
//     added latency is the look-ahead, nothing more. The first Delay()
//     samples of a call are the masker's initial silence. In-band tones are
//     masked whether or not telephone-event was negotiated.
//   - telephone-event (RFC 4733): never forwarded while masking. The packet
//     feeds the call's EventAssembler and its slot is filled with mask audio
//     (beep or comfort noise, the masker's signal) in the carrier's audio
//     format: the packet's sequence number (see below) and SSRC, marker clear, timestamp
//     start+duration-one packet (the audio the packet stands for), never
//     older than the newest timestamp sent. End retransmissions repeat the
//     duration, so they go out with the timestamp of the first End: equal
//     timestamps are legal RTP and a jitter buffer keeps one; a strictly
//     increasing invented timestamp would collide with the next audio of
//     senders that resume at the event's end. The masker is fed mask audio
//     for the slot, so what sat in the look-ahead when the event began (a
//     tone's first milliseconds sent in-band before the sender switched to
//     events) never leaves, and the look-ahead is mask when audio resumes.
//     Senders that keep sending audio during an event (baresip, some SBCs)
//     would so give the platform two packets per slot; once audio arrives
//     between two packets of one event, the event's further packets are
//     dropped (metric reason telephone_event_with_audio) and the sequence
//     numbers toward the platform are lowered past each drop, so the
//     platform sees no gap and at most the event's first slot doubled.
//   - comfort noise: relayed; while masking only its level byte (the
//     spectral shape is audio the relay does not inspect).
//   - anything else while masking: replaced by mask audio like an event
//     (fail closed).
//
// Only the fixed RTP header goes to the platform: CSRC lists and header
// extensions are carrier data the relay does not inspect.
//
// A new carrier SSRC (re-INVITE, transfer) reports the old stream's press
// in progress, resets the assembler, and restarts the output timestamp
// tracking. The masker is kept: the customer's audio continues across
// the switch, so a tone that straddles it stays one tone to the detector
// and stays masked, and the look-ahead's content leaves through the masker,
// never around it. A codec change (PCMU↔PCMA) starts a new masker: the old
// look-ahead is dropped, not sent.
//
// # Digits
//
// In-band presses (the masker's detector), RFC 4733 presses and SIP INFO
// digits go through one dtmf.Deduper per call, on one clock: the carrier's
// extended RTP timestamp, continued across SSRC changes by wall-clock time.
// A SIP INFO digit is placed at the clock's position at its arrival. Each
// press reaches the DigitSink once, with the transport it was first seen
// on and the wall-clock time of its start, outside the session's lock.
//
// # Policy
//
// Always masks for the whole call. CaptureOnly masks between
// SetCapture(true) and SetCapture(false); outside, carrier packets pass
// unmasked and undelayed (digits still reported, RFC 4733 passed through).
// The masker runs all the time, so at the moment capture starts its
// look-ahead is already masked; the switch repeats (on) or skips (off) one
// look-ahead of audio, never leaks.
//
// # Platform→carrier
//
// Relayed unchanged, only the address rewritten.
//
// # Browser agents
//
// A browser agent's WebRTC leg (package media/webrtc) is a platform peer
// like any other: sip signals its loopback socket as the platform's
// address, so the browser is fed from what this direction sends, after
// the masker, and from nothing else. The relay needs no change for it.
//
// # Recording (SIPREC)
//
// Session.Record opens a call's recording fork (RFC 7866: ToneVault is
// the recording client, package sip signals the recording session): two
// RTP/RTCP pairs from the same range, whose addresses (Recording.Local)
// go into the SDP offered to the recording server. Recording.SetRemote
// takes its answer; a stream it does not receive (port 0, 0.0.0.0,
// sendonly, inactive) is not sent, and nothing is sent before it. The
// customer stream is a copy of each packet exactly as the platform leg
// gets it, taken after the masker: a tone replaced, an event replaced or
// dropped toward the platform is recorded replaced or not at all, never
// as it came (DESIGN.md invariant 5 holds for the recorder as for the
// agent). The agent stream is each packet as the carrier leg gets it.
// The copies are taken before the SRTP of either leg and leave as plain
// RTP with their payload type, sequence number, timestamp and SSRC; the
// fork sends no RTCP and never reads its sockets (their receive buffers
// are as small as the kernel allows), so nothing the recorder sends
// reaches anyone.
//
// The copy is made under the session's lock into a buffer of the
// engine's thread and sent after the packet itself: from the fork's
// socket by the loop's goroutine, or queued on the session's ring like
// the relay's own sends (the fork's sockets are bare descriptors there
// too). Nothing is allocated per packet. A fork never affects its call:
// a send error is counted and forgotten, and a panic in fork code (the
// copy, the send) is recovered there, counted, and closes the fork
// alone. Recording.Close, and Session.Close, wait for the engine to be
// done with the fork's sockets before they close and the ports go back.
//
// # Media timeout and hold
//
// Once both legs are signalled (so not while the platform rings), and
// while at least one peer's SDP says it sends (sendrecv or sendonly), no
// RTP accepted from either leg for MediaTimeout closes Done with
// ErrMediaTimeout. A customer on hold hears music (the platform, sendonly,
// sends) and the timeout runs on that. When no peer sends (both inactive
// or recvonly), silence is what the SDP asked for: the timeout is
// suspended and SIP (session timers, BYE) decides; it restarts from zero on
// resume. RTP toward a peer on hold (0.0.0.0, port 0, sendonly, inactive)
// is dropped and counted; RTCP continues (RFC 3264 §5.1). MaxDuration
// closes Done with ErrMaxDuration.
//
// # Metrics
//
// tonevault_rtp_packets_total{direction,action,reason} (action relayed,
// replaced or dropped), tonevault_digits_total{transport},
// tonevault_mask_delay_seconds (arrival of the packet that brought an
// output packet's first sample to that packet leaving), and
// tonevault_media_sessions, tonevault_media_faults_total{scope} (session,
// ring; see Faults), and for recording forks
// tonevault_recording_packets_total{stream,result} (stream customer or
// agent; result sent, send_error or fault) and tonevault_recordings.
// Registered on Options.Registerer only.
//
// # Concurrency and cost
//
// Config.IO picks how packets move. IOUring (the default where the kernel
// allows it, "auto") puts every socket on one of a few io_uring rings, one
// per P (at most 4), each driven by one locked OS thread, filled in order
// (500 calls a ring) so that at low call counts one thread works and the
// others sleep: a multishot receive stays armed on every socket, each
// datagram landing in one of the ring's provided buffers with its source
// address; each completion runs through the same packet functions as
// below, and the resulting sends, destination in the entry, are queued on
// the ring, so that one io_uring_enter submits a whole batch across calls
// and waits for the next. The sockets are bare descriptors that Go's
// poller never sees. IOGoroutines (the fallback when io_uring_setup is
// refused: seccomp, kernel.io_uring_disabled, a kernel before 6.3,
// non-Linux) reads each socket in its own goroutine into a reused buffer.
// On a 2-core VM io_uring costs about half the goroutines' CPU per packet
// at 50 calls and 1.1–1.4 times the batched-syscall floor at 500 and 1000
// (BENCHMARKS.md). Config.RingScheduling and RingPriority set the ring
// threads' CPU scheduling (a nice value, or real time): a ring thread
// waiting behind other threads holds every call's packets, so raising it
// shortens the latency tail on a busy machine, at more CPU per packet as
// batches get smaller. Either way the DigitSink runs on the
// relaying thread and must not block: with io_uring a slow sink holds up
// every call on its ring.
//
// A session's state is behind one mutex, taken once per packet and by the
// SIP-side methods. The carrier path does not allocate per packet (except
// at a codec change). Most of its CPU is the kernel's receive and send;
// the masker's detector is about a tenth (perf at 500 calls).
//
// # Faults
//
// One fault, one call (DESIGN.md invariant 8). A panic while relaying a
// session's packet (the masker, the DigitSink, SRTP, FailClosed, the
// media timeout check, a SIP INFO digit) is recovered around that
// session alone: the packet is dropped, and so is every later packet of
// the session, counted as dropped/fault, since audio the masker has not
// masked must never leave and its state can no longer be trusted. Done
// closes with ErrFault and package sip ends the call (BYE on both legs,
// call.failed). The engine's thread goes on with the other sessions.
//
// An io_uring ring that fails (io_uring_enter refused with anything but
// EINTR, EAGAIN or EBUSY, or a panic on its thread outside a session's
// packet handling) ends the sessions on it, and those on their way to it,
// with ErrRingFailed (an ErrFault), lets whoever waits for it go on, and
// closes the ring. It is retired for good: new sessions go to the rings
// left, and once none is left, to the goroutine engine (a session whose
// sockets were made for a ring that failed before it started is moved to
// goroutines on the same ports). A failed ring is not replaced, since
// whatever made it fail would likely fail the next. Its provided buffers
// (8 MB) and its sockets' send buffers (1.5 KB a socket, four a call)
// stay allocated until the process ends: the kernel may still be
// finishing a receive into them or a send out of them. tonevault_media_faults_total{scope} counts session
// and ring faults; the log says where, with the stack, never the panic's
// value (internal/panics).
//
// Tests inject faults through unexported hooks (testFault in the masker's
// path, testRingFault before each io_uring_enter) that only test files
// set; nothing in the configuration or on the network reaches them.
//
// # What it must not do
//
// It does not parse SIP: package sip owns signalling and the SDP
// offer/answer and hands the relay addresses, payload types and keys. It blocks
// on nothing but its own sockets. It never forwards carrier audio it
// could not inspect while masking (fail closed, DESIGN.md invariant 5),
// and it knows of card data only "a digit happened on call X": digits
// leave through the DigitSink and nowhere else. Its load generator lives
// apart, in media/loadtest.
package media
