// Package audit is ToneVault's audit trail: an append-only, hash-chained
// JSON Lines file with signed checkpoints, kept apart from the operational
// logs, that never holds card data (PCI DSS 10.2, 10.3).
//
// # File format
//
// One record per line, UTF-8 JSON, each line ending in "\n". A line is
// exactly what encoding/json writes for the record (fields in the order
// below, empty optional fields left out, no spaces), so any byte added,
// removed or changed makes the line fail to verify:
//
//	{"seq":6,"time":"2025-11-23T19:46:01.123456789Z","actor":"customer",
//	 "call_id":"c-7f3a6ek2qzm4tbw5","payment_id":"pay_k5bqx2m7rt3vhn4wzc6yd2ja",
//	 "event":"field.failed","outcome":"failure","reason":"expired","field":"expiry",
//	 "prev":"<64 hex digits>"}
//
// (shown on four lines here; one line in the file). Fields:
//
//	seq           1 for the first record of the file, then +1 with no gaps
//	time          when the record was handed to the trail (Queue.Append; Writer.Append for
//	              records written directly, and the Writer's own): RFC 3339, UTC, 9
//	              fractional digits (TimeLayout). Through a Queue, a record written after
//	              an outage keeps the time it was handed over, so times may step back by
//	              the queue's delay

//	actor         who (API key name, "system", "customer", "sip:<peer>", ...)
//	origin        from where (IP, host:port); optional
//	call_id       the gateway's call id; optional
//	payment_id    the payment session's id; optional
//	event         one of Events()
//	outcome       success, failure or info
//	reason        optional: a code from Reasons(), listed below
//	masked_pan    optional; at most the first 6 and last 4 digits, the rest '*'
//	field         optional: a payment session's field (card_number, expiry, security_code, an extra field)
//	state         optional: a payment session's final state (approved, declined, failed, cancelled, expired)
//	trunk         optional: a SIP trunk, carrier or platform
//	method        optional: a SIP or HTTP method (INVITE, OPTIONS, GET)
//	status        optional: a SIP or HTTP status code, 100 to 699 (a number)
//	route         optional: an API route pattern ("GET /v1/payments/{id}"), never a client's path
//	digest        optional: a SHA-256 in lowercase hex (of the configuration file)
//	version       optional: the gateway's Go module version ("v1.4.0", "(devel)")
//	stan          optional: an ISO 8583 system trace audit number, 6 digits
//	response_code optional: an ISO 8583 response code, 2 characters ("05", "N7")
//	expires_at    optional: when what the event issued expires, written like time
//	lost          audit.resumed only: records dropped, never written (a number)
//	key_id, sig   checkpoints only
//	prev          lowercase hex SHA-256 of the previous line's bytes (without
//	              its "\n"); for seq 1, GenesisPrev (64 zeros)
//
// Fields from field to lost were added after the first version of
// the format, as was the closed set of reason codes: lines written before
// have none of them and may hold free text in reason. Such lines are in
// canonical form still, and verify; Verify checks integrity, not codes.
//
// The first record a Writer writes, on a new file or each time it continues
// one, is audit.started. Every Options.CheckpointEvery records, on
// Writer.Checkpoint and on Writer.Close, it writes an audit.checkpoint
// record whose sig is the Signer's signature of
//
//	"tonevault audit checkpoint v1\n" + the checkpoint's own line without key_id and sig
//
// That line holds the checkpoint's seq, time and prev, and prev chains to
// every line before it, so one signature covers the whole file up to the
// checkpoint. A file that was closed ends with a checkpoint whose reason is
// "close". Each checkpoint, once on disk, is also handed to the Anchor
// (Options.Anchor): its seq and the SHA-256 of its line, filed under the
// trail's id (the SHA-256 of its first line), in Vault KV or an
// append-only file on another path.
//
// # The queue
//
// The gateway writes through a Queue, never the Writer itself: Append
// checks and stamps a record and returns without waiting, so that the
// relay's thread (a key press), SIP and API handlers never wait for a
// disk or for Vault; one goroutine writes the records in order, a batch
// per fsync, and a checkpoint every CheckpointInterval (10 s) when
// records came. When the trail cannot be written (a write or fsync
// error, a full file system, a signer or an anchor that fails) the Queue
// keeps what it holds, says so (Err, Sync, Watch, tonevault_audit_up,
// tonevault_audit_errors_total) and tries again with backoff; the payment
// sessions stop meanwhile (capture). Once a write, a signed checkpoint
// and its anchoring all work again, it writes audit.resumed. Records
// that find the queue full are dropped and counted, and audit.resumed
// says how many (lost).
//
// # Events, reasons and fields
//
// Which event carries which reason codes and fields (see the Reason
// constants for when each code is used):
//
//	audit.started            created, continued, continued_after_unclean_stop
//	audit.checkpoint         interval, requested, close
//	audit.resumed            disk_full, io_error, signer_unavailable, anchor_unavailable, queue_full; lost
//	service.started          version
//	service.stopped          stop_requested, http_failed
//	config.loaded            default, file; digest for a file
//	api.auth_failed          missing_credentials, unknown_key, key_in_query, invalid_token,
//	                         expired_token, token_not_allowed, revoked_token,
//	                         token_key_removed; route
//	api.token_issued         call_id, expires_at
//	api.token_revoked        (actor: the key that revoked its token)
//	sip.peer_refused         peer_not_allowed; trunk, method
//	sip.call_started         call_id, trunk (the call came in on it, and leaves on the other)
//	sip.call_ended           the call's outcome: completed, busy, declined, cancelled, not_found,
//	                         no_answer, not_acceptable, rejected, failed, media_timeout,
//	                         max_duration, no_ack, shutdown, bye, session_expired, agent_gone,
//	                         recording_failed, or a fault
//	                         (media_fault, ring_failed, sip_fault; a call.failed comes first);
//	                         trunk, method, status when known
//	call.failed              media_fault, ring_failed, sip_fault: a fault ended this call (BYE on
//	                         both legs), and no other; outcome failure
//	sip.call_transferred     transferred, or the new leg's failure (busy, declined, cancelled,
//	                         not_found, no_answer, not_acceptable, rejected, failed); trunk,
//	                         method REFER, status
//	agent.token_issued       expires_at (actor: the key and the agent)
//	agent.token_revoked      (actor: the key that revoked its token)
//	agent.signed_in          (actor: the agent)
//	agent.signed_out         (actor: the agent)
//	agent.call_answered      call_id (actor: the agent)
//	agent.answer_failed      bad_sdp, ice_failed, dtls_failed; call_id
//	agent.call_ended         agent_hangup, agent_gone, or the call's outcome; call_id
//	recording.started        call_id, trunk (the recording left through it), status
//	recording.failed         recorder_timeout, recorder_rejected, recorder_unreachable,
//	                         recorder_bad_answer, recorder_bye, recording_fork_failed; call_id,
//	                         trunk, status when the recorder answered; or recording_unavailable:
//	                         a call refused (503, no call_id; trunk: the one it came in on)
//	recording.ended          the call's outcome; call_id
//	masking.failed           unknown_payload_type, oversize, short_header, bad_version,
//	                         bad_csrc_count, bad_extension, bad_padding
//	session.started          (ids, actor)
//	field.completed          field; masked_pan for the card number
//	field.failed             luhn, length, brand_not_accepted, unknown_brand, month, expired, timeout; field
//	field.reset              field
//	card_data.wiped          field_refused, field_reset, session_restarted, session_ended; field
//	tokenization.requested   masked_pan
//	tokenization.result      unavailable, tokenization_failed on failure
//	authorization.requested  masked_pan
//	authorization.result     approved, declined, one code per ISO 8583 response code
//	                         (do_not_honour, insufficient_funds, ...), psp_timeout,
//	                         psp_connection_lost, psp_bad_response, psp_unavailable,
//	                         invalid_request, psp_error, unavailable, authorization_failed,
//	                         invalid_result; response_code
//	authorization.reversed   psp_timeout, psp_connection_lost, psp_bad_response; stan
//	session.ended            state, and the reason: approved, an authorization result's code,
//	                         attempts_exhausted, not_configured, cancelled, call_ended,
//	                         session_timeout, gateway_restarted, shutdown, tokenization_failed,
//	                         audit_unavailable, transferred, capture_fault, api_fault (a panic
//	                         handling the session: it failed and its card data was wiped)
//
// Any event may carry unlisted: a code from outside ToneVault (a payment
// processor, an acquirer) that the list does not name.
//
// # What verification proves, and what not
//
// Verify detects a changed, removed, inserted or reordered line anywhere,
// and a line cut short. A trail that does not end with a checkpoint still
// verifies: it is live, or its writer stopped without closing it; Summary
// says how far it is checkpointed (Checkpointed) and whether it was
// closed. So on its own Verify cannot see the end cut off, nor the file
// replaced whole with an older copy.
//
// VerifyAnchored can: it also checks the trail against the checkpoints
// its Anchor kept. The last anchored checkpoint must be in the trail
// (else ErrCut), each anchored checkpoint must be the same line there
// (else ErrAnchorMismatch: rewritten, even by someone holding the signing
// key), and a trail the anchor does not know is ErrNotAnchored. Only the
// records after the last anchored checkpoint, at most one
// CheckpointInterval of them, can be cut unseen. Without the key (a nil
// Verifier) and without the anchor, someone able to write the file can
// rewrite it whole.
//
// # Card data
//
// No field holds free text but actor and origin, which name people and
// places. Writer.Append refuses (ErrCardData) a record whose actor or
// origin holds 12 to 19 digits that pass the Luhn check, whole or in
// groups separated by spaces or dashes, or a masked_pan that shows more
// than the first 6 and the last 4 digits. Every other field is checked by
// its syntax (ValidID, ValidField, ValidRoute, ValidVersion, ...), and a
// value out of its syntax is refused: ids, routes and versions never hold
// 12 digits in a row, reasons are codes, the rest are letters or a few
// digits. The exceptions are machine words, whose digits are random and
// not searched: the digest, and a pseudo-version's timestamp (a date) and
// revision (12 hex digits).
package audit
