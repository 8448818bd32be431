package audit

// Reason is a record's reason code: why the event happened or how it
// ended, from a closed set. A Writer refuses any other code, so no reason
// can carry text (and so no digits) that the code set does not name.
// Verification does not look at it: trails written before the set existed
// hold free text there and still verify.
//
// The codes below are grouped by the events that use them; a code used by
// several events is listed with the first.
type Reason string

// audit.started (written by the Writer only).
const (
	// ReasonCreated: the Writer created a new file.
	ReasonCreated Reason = "created"
	// ReasonContinued: the Writer continued a file that its last writer closed.
	ReasonContinued Reason = "continued"
	// ReasonContinuedUnclean: the Writer continued a file whose last writer stopped without closing it (crash, kill).
	ReasonContinuedUnclean Reason = "continued_after_unclean_stop"
)

// audit.checkpoint (written by the Writer only).
const (
	// ReasonInterval: Options.CheckpointEvery records were written since the last checkpoint.
	ReasonInterval Reason = "interval"
	// ReasonRequested: Writer.Checkpoint was called (a timer on a quiet gateway).
	ReasonRequested Reason = "requested"
	// ReasonClose: Writer.Close; the stop of logging.
	ReasonClose Reason = "close"
)

// audit.resumed (written by the Writer's Queue only): what kept records
// from the trail until then. The same codes label the metric
// tonevault_audit_errors_total.
const (
	// ReasonDiskFull: the file system holding the trail was full (ENOSPC, EDQUOT).
	ReasonDiskFull Reason = "disk_full"
	// ReasonIOError: a write or fsync of the trail failed otherwise.
	ReasonIOError Reason = "io_error"
	// ReasonSignerUnavailable: a checkpoint could not be signed (Vault down, sealed or refusing).
	ReasonSignerUnavailable Reason = "signer_unavailable"
	// ReasonAnchorUnavailable: a checkpoint could not be anchored outside the trail (Vault KV, the anchor file).
	ReasonAnchorUnavailable Reason = "anchor_unavailable"
	// ReasonQueueFull: the queue in front of the Writer was full and records were dropped (lost says how many).
	ReasonQueueFull Reason = "queue_full"
)

// service.stopped.
const (
	// ReasonStopRequested: the process was asked to stop (SIGTERM, SIGINT).
	ReasonStopRequested Reason = "stop_requested"
	// ReasonHTTPFailed: the HTTP server failed, and the gateway stopped with it.
	ReasonHTTPFailed Reason = "http_failed"
)

// config.loaded.
const (
	// ReasonConfigDefault: the embedded default configuration, no file.
	ReasonConfigDefault Reason = "default"
	// ReasonConfigFile: a file on top of the embedded default; digest is the file's SHA-256 (absent when it could not be read again).
	ReasonConfigFile Reason = "file"
)

// api.auth_failed (route names the API route).
const (
	// ReasonMissingCredentials: no Bearer credential (and no access_token where one is taken).
	ReasonMissingCredentials Reason = "missing_credentials"
	// ReasonUnknownKey: a Bearer credential that is no configured API key.
	ReasonUnknownKey Reason = "unknown_key"
	// ReasonKeyInQuery: an API key sent in the URL's query string, where access logs and histories keep it.
	ReasonKeyInQuery Reason = "key_in_query"
	// ReasonInvalidToken: a widget token that is malformed or whose signature does not verify.
	ReasonInvalidToken Reason = "invalid_token"
	// ReasonExpiredToken: a widget token past its expiry, or whose lifetime is longer than the configured widget_token_ttl.
	ReasonExpiredToken Reason = "expired_token"
	// ReasonTokenNotAllowed: a widget token on a route that takes API keys only.
	ReasonTokenNotAllowed Reason = "token_not_allowed"
	// ReasonRevokedToken: a widget token that was revoked (DELETE /v1/widget-tokens/{id}).
	ReasonRevokedToken Reason = "revoked_token"
	// ReasonTokenKeyRemoved: a widget token whose API key is no longer configured, or was replaced.
	ReasonTokenKeyRemoved Reason = "token_key_removed"
)

// sip.peer_refused (method and trunk name the request).
const (
	// ReasonPeerNotAllowed: the request's source address is not in the trunk's allow list.
	ReasonPeerNotAllowed Reason = "peer_not_allowed"
)

// sip.call_ended: the call's outcome, as in the metric
// tonevault_sip_calls_total; status is the callee's SIP status when one
// decided it, trunk the side that ended or failed it when known.
const (
	// ReasonCompleted: the call was answered and ended by a BYE (trunk: the side that sent it).
	ReasonCompleted Reason = "completed"
	// ReasonBusy: the callee answered 486 or 600.
	ReasonBusy Reason = "busy"
	// ReasonDeclined: sip.call_ended: the callee answered 603; authorization.result, session.ended: the issuer declined with a response code not named in this list.
	ReasonDeclined Reason = "declined"
	// ReasonCancelled: sip.call_ended: the caller cancelled before the answer, or was gone when it came; session.ended: the agent cancelled.
	ReasonCancelled Reason = "cancelled"
	// ReasonNotFound: the callee answered 404, 484 or 604.
	ReasonNotFound Reason = "not_found"
	// ReasonNoAnswer: the callee answered 408 or 480, or did not answer in time.
	ReasonNoAnswer Reason = "no_answer"
	// ReasonNotAcceptable: the callee answered 488 or 606, or answered with SDP the gateway cannot inspect.
	ReasonNotAcceptable Reason = "not_acceptable"
	// ReasonRejected: the callee answered with another 4xx.
	ReasonRejected Reason = "rejected"
	// ReasonFailed: sip.call_ended: a 5xx, no final response, an INVITE that could not be sent, an answer without SDP, or the other leg's dialog gone; session.ended: the processor failed without a reason.
	ReasonFailed Reason = "failed"
	// ReasonMediaTimeout: no media for the configured time; the gateway hung up.
	ReasonMediaTimeout Reason = "media_timeout"
	// ReasonMaxDuration: the call reached its maximum duration; the gateway hung up.
	ReasonMaxDuration Reason = "max_duration"
	// ReasonNoACK: the caller never acknowledged the answer (no ACK for the 2xx); the gateway hung up.
	ReasonNoACK Reason = "no_ack"
	// ReasonShutdown: sip.call_ended, session.ended: the gateway shut down.
	ReasonShutdown Reason = "shutdown"
	// ReasonBye: a BYE ended the call before it was answered.
	ReasonBye Reason = "bye"
	// ReasonSessionExpired: a leg's session timer (RFC 4028) ran out without a refresh, or the gateway's refresh found the session gone; the gateway hung up both legs (trunk: the leg).
	ReasonSessionExpired Reason = "session_expired"
	// ReasonTransferred: sip.call_transferred: the call went to the REFER's target; session.ended: a transfer ended the payment session (sip.transfer.capture: cancel).
	ReasonTransferred Reason = "transferred"
)

// Browser agents (WebRTC): agent.answer_failed, agent.call_ended, and
// sip.call_ended of a call a browser agent had.
const (
	// ReasonBadSDP: the agent page's SDP offer could not be answered (unparseable, no audio, no DTLS fingerprint, not the call's codec).
	ReasonBadSDP Reason = "bad_sdp"
	// ReasonICEFailed: ICE did not connect the agent's browser within webrtc.connect_timeout.
	ReasonICEFailed Reason = "ice_failed"
	// ReasonDTLSFailed: ICE connected but the DTLS handshake with the agent's browser failed or did not finish in time.
	ReasonDTLSFailed Reason = "dtls_failed"
	// ReasonAgentHangup: the browser agent hung up (trunk platform in sip.call_ended says the same with completed).
	ReasonAgentHangup Reason = "agent_hangup"
	// ReasonAgentGone: a connected browser agent's media stopped: the tab closed, the connection was closed or lost.
	ReasonAgentGone Reason = "agent_gone"
)

// Recording (SIPREC): recording.failed, and sip.call_ended of a call
// ended because its recording failed (recording.required).
const (
	// ReasonRecorderTimeout: the recording server did not answer the recording session's INVITE in time.
	ReasonRecorderTimeout Reason = "recorder_timeout"
	// ReasonRecorderRejected: the recording server refused the recording session (status: its answer).
	ReasonRecorderRejected Reason = "recorder_rejected"
	// ReasonRecorderUnreachable: the recording server could not be reached (no route, connection refused, ICMP unreachable, a name that does not resolve).
	ReasonRecorderUnreachable Reason = "recorder_unreachable"
	// ReasonRecorderBadAnswer: the recording server's answer had no usable SDP for the two streams.
	ReasonRecorderBadAnswer Reason = "recorder_bad_answer"
	// ReasonRecorderBye: the recording server ended the recording session while the call went on.
	ReasonRecorderBye Reason = "recorder_bye"
	// ReasonRecordingForkFailed: the relay could not open the call's recording fork (no ports left, or a relay without one).
	ReasonRecordingForkFailed Reason = "recording_fork_failed"
	// ReasonRecordingUnavailable: a new call was refused with 503: its trunk requires recording and the recording server is down.
	ReasonRecordingUnavailable Reason = "recording_unavailable"
	// ReasonRecordingFailed: sip.call_ended: the call's trunk requires recording and its recording failed; the gateway hung up both legs.
	ReasonRecordingFailed Reason = "recording_failed"
)

// call.failed, and the sip.call_ended that follows it: the fault that
// ended the call. Its audio was dropped, never forwarded unmasked.
const (
	// ReasonMediaFault: the relay panicked on one of the call's packets (the masker, a key press handed on); that packet and every later one were dropped.
	ReasonMediaFault Reason = "media_fault"
	// ReasonRingFailed: the io_uring ring that relayed the call failed (io_uring_enter refused, or a panic on its thread); every call on that ring ended, new calls go to the others.
	ReasonRingFailed Reason = "ring_failed"
	// ReasonSIPFault: a SIP handler or one of the call's own goroutines panicked.
	ReasonSIPFault Reason = "sip_fault"
)

// masking.failed: what made carrier audio impossible to inspect (the
// reason label of tonevault_rtp_packets_total); that audio was replaced or
// dropped, never forwarded.
const (
	// ReasonUnknownPayloadType: an RTP payload type the gateway cannot decode.
	ReasonUnknownPayloadType Reason = "unknown_payload_type"
	// ReasonOversize: a datagram larger than the relay takes.
	ReasonOversize Reason = "oversize"
	// ReasonShortHeader: a datagram shorter than an RTP header.
	ReasonShortHeader Reason = "short_header"
	// ReasonBadVersion: an RTP version other than 2.
	ReasonBadVersion Reason = "bad_version"
	// ReasonBadCSRCCount: a CSRC count beyond the datagram.
	ReasonBadCSRCCount Reason = "bad_csrc_count"
	// ReasonBadExtension: a header extension beyond the datagram.
	ReasonBadExtension Reason = "bad_extension"
	// ReasonBadPadding: an RTP padding count of 0 or beyond the payload.
	ReasonBadPadding Reason = "bad_padding"
)

// field.failed (field names the field).
const (
	// ReasonLuhn: the card number fails the Luhn check.
	ReasonLuhn Reason = "luhn"
	// ReasonLength: too few or too many digits for the field (or the card's brand).
	ReasonLength Reason = "length"
	// ReasonBrandNotAccepted: the card's brand is not accepted for this merchant.
	ReasonBrandNotAccepted Reason = "brand_not_accepted"
	// ReasonUnknownBrand: the card number belongs to no known brand.
	ReasonUnknownBrand Reason = "unknown_brand"
	// ReasonMonth: the expiry's month is not 01 to 12.
	ReasonMonth Reason = "month"
	// ReasonExpired: the expiry date is in the past.
	ReasonExpired Reason = "expired"
	// ReasonTimeout: the customer stopped typing, or did not finish the field in time.
	ReasonTimeout Reason = "timeout"
)

// card_data.wiped (field names the field whose buffer was wiped).
const (
	// ReasonFieldRefused: the entry was refused (a field.failed record goes with it).
	ReasonFieldRefused Reason = "field_refused"
	// ReasonFieldReset: the entry was cleared, by the customer ('*') or the agent.
	ReasonFieldReset Reason = "field_reset"
	// ReasonSessionRestarted: the agent restarted the session.
	ReasonSessionRestarted Reason = "session_restarted"
	// ReasonSessionEnded: the session reached a final state (a session.ended record follows).
	ReasonSessionEnded Reason = "session_ended"
)

// session.ended (state is the final state), besides the authorization
// results below.
const (
	// ReasonApproved: session.ended, authorization.result: the payment was approved.
	ReasonApproved Reason = "approved"
	// ReasonAttemptsExhausted: a field was refused as many times as allowed.
	ReasonAttemptsExhausted Reason = "attempts_exhausted"
	// ReasonNotConfigured: submitted on a gateway with no payment processor.
	ReasonNotConfigured Reason = "not_configured"
	// ReasonCallEnded: the call ended while the session was live.
	ReasonCallEnded Reason = "call_ended"
	// ReasonSessionTimeout: the session outlived its timeout.
	ReasonSessionTimeout Reason = "session_timeout"
	// ReasonGatewayRestarted: the session was live when its gateway stopped without ending it (a crash, kill -9); the next start ended it, its call and card data having gone with the process.
	ReasonGatewayRestarted Reason = "gateway_restarted"
	// ReasonAuditUnavailable: the audit trail could not be written, so the payment stopped and its card data was wiped (no trail, no capture).
	ReasonAuditUnavailable Reason = "audit_unavailable"
	// ReasonTokenizationFailed: session.ended, tokenization.result: Vault refused to tokenize the card.
	ReasonTokenizationFailed Reason = "tokenization_failed"
	// ReasonAuthorizationFailed: session.ended, authorization.result: the processor failed with an error that is not temporary.
	ReasonAuthorizationFailed Reason = "authorization_failed"
	// ReasonInvalidResult: session.ended, authorization.result: the processor returned an outcome that is none of approved, declined, failed.
	ReasonInvalidResult Reason = "invalid_result"
	// ReasonCaptureFault: the session's own handling panicked (a key press, a timer, the call's end); it failed and its card data was wiped.
	ReasonCaptureFault Reason = "capture_fault"
	// ReasonAPIFault: an API request on the session panicked; the session failed (its state could not be trusted) and its card data was wiped. The call goes on.
	ReasonAPIFault Reason = "api_fault"
)

// tokenization.result and authorization.result.
const (
	// ReasonUnavailable: Vault or the acquirer could not be reached; the card data is kept for another submit.
	ReasonUnavailable Reason = "unavailable"
)

// authorization.result and session.ended: the acquirer's answer, one code
// per ISO 8583 response code (response_code holds the code itself), and
// the connector's failures.
const (
	ReasonReferToIssuer            Reason = "refer_to_issuer"             // response code 01
	ReasonInvalidMerchant          Reason = "invalid_merchant"            // response code 03
	ReasonPickUpCard               Reason = "pick_up_card"                // response code 04
	ReasonDoNotHonour              Reason = "do_not_honour"               // response code 05
	ReasonInvalidTransaction       Reason = "invalid_transaction"         // response code 12
	ReasonInvalidAmount            Reason = "invalid_amount"              // response code 13
	ReasonInvalidCard              Reason = "invalid_card"                // response code 14
	ReasonFormatError              Reason = "format_error"                // response code 30
	ReasonLostCard                 Reason = "lost_card"                   // response code 41
	ReasonStolenCard               Reason = "stolen_card"                 // response code 43
	ReasonInsufficientFunds        Reason = "insufficient_funds"          // response code 51
	ReasonExpiredCard              Reason = "expired_card"                // response code 54
	ReasonIncorrectPIN             Reason = "incorrect_pin"               // response code 55
	ReasonNotPermittedToCardholder Reason = "not_permitted_to_cardholder" // response code 57
	ReasonNotPermittedToTerminal   Reason = "not_permitted_to_terminal"   // response code 58
	ReasonSuspectedFraud           Reason = "suspected_fraud"             // response code 59
	ReasonExceedsWithdrawalLimit   Reason = "exceeds_withdrawal_limit"    // response code 61
	ReasonRestrictedCard           Reason = "restricted_card"             // response code 62
	ReasonExceedsFrequencyLimit    Reason = "exceeds_frequency_limit"     // response code 65
	ReasonIssuerUnavailable        Reason = "issuer_unavailable"          // response code 91
	ReasonSystemMalfunction        Reason = "system_malfunction"          // response code 96
	ReasonCVVMismatch              Reason = "cvv_mismatch"                // response code N7

	// ReasonPSPTimeout: authorization.result, authorization.reversed: no answer from the acquirer in time; the authorization is reversed.
	ReasonPSPTimeout Reason = "psp_timeout"
	// ReasonPSPConnectionLost: authorization.result, authorization.reversed: the connection dropped after the request left; the authorization is reversed.
	ReasonPSPConnectionLost Reason = "psp_connection_lost"
	// ReasonPSPBadResponse: authorization.result, authorization.reversed: an answer that could not be read; the authorization is reversed.
	ReasonPSPBadResponse Reason = "psp_bad_response"
	// ReasonPSPUnavailable: the acquirer connection was closed or not up.
	ReasonPSPUnavailable Reason = "psp_unavailable"
	// ReasonInvalidRequest: the connector could not build the request.
	ReasonInvalidRequest Reason = "invalid_request"
	// ReasonPSPError: the acquirer failed without saying why.
	ReasonPSPError Reason = "psp_error"
)

// Any event.
const (
	// ReasonUnlisted: a code from outside ToneVault (a payment processor, an acquirer, a reversal queued by an older version) that this list does not name.
	ReasonUnlisted Reason = "unlisted"
)

// reasons is every Reason, in the order of the documentation.
var reasons = []Reason{
	ReasonCreated, ReasonContinued, ReasonContinuedUnclean,
	ReasonInterval, ReasonRequested, ReasonClose,
	ReasonDiskFull, ReasonIOError, ReasonSignerUnavailable, ReasonAnchorUnavailable, ReasonQueueFull,
	ReasonStopRequested, ReasonHTTPFailed,
	ReasonConfigDefault, ReasonConfigFile,
	ReasonMissingCredentials, ReasonUnknownKey, ReasonKeyInQuery, ReasonInvalidToken, ReasonExpiredToken, ReasonTokenNotAllowed,
	ReasonRevokedToken, ReasonTokenKeyRemoved,
	ReasonPeerNotAllowed,
	ReasonCompleted, ReasonBusy, ReasonDeclined, ReasonCancelled, ReasonNotFound, ReasonNoAnswer, ReasonNotAcceptable,
	ReasonRejected, ReasonFailed, ReasonMediaTimeout, ReasonMaxDuration, ReasonNoACK, ReasonShutdown, ReasonBye,
	ReasonSessionExpired, ReasonTransferred,
	ReasonBadSDP, ReasonICEFailed, ReasonDTLSFailed, ReasonAgentHangup, ReasonAgentGone,
	ReasonRecorderTimeout, ReasonRecorderRejected, ReasonRecorderUnreachable, ReasonRecorderBadAnswer, ReasonRecorderBye,
	ReasonRecordingForkFailed, ReasonRecordingUnavailable, ReasonRecordingFailed,
	ReasonMediaFault, ReasonRingFailed, ReasonSIPFault,
	ReasonUnknownPayloadType, ReasonOversize, ReasonShortHeader, ReasonBadVersion, ReasonBadCSRCCount, ReasonBadExtension, ReasonBadPadding,
	ReasonLuhn, ReasonLength, ReasonBrandNotAccepted, ReasonUnknownBrand, ReasonMonth, ReasonExpired, ReasonTimeout,
	ReasonFieldRefused, ReasonFieldReset, ReasonSessionRestarted, ReasonSessionEnded,
	ReasonApproved, ReasonAttemptsExhausted, ReasonNotConfigured, ReasonCallEnded, ReasonSessionTimeout, ReasonGatewayRestarted, ReasonAuditUnavailable,
	ReasonTokenizationFailed, ReasonAuthorizationFailed, ReasonInvalidResult, ReasonCaptureFault, ReasonAPIFault,
	ReasonUnavailable,
	ReasonReferToIssuer, ReasonInvalidMerchant, ReasonPickUpCard, ReasonDoNotHonour, ReasonInvalidTransaction,
	ReasonInvalidAmount, ReasonInvalidCard, ReasonFormatError, ReasonLostCard, ReasonStolenCard, ReasonInsufficientFunds,
	ReasonExpiredCard, ReasonIncorrectPIN, ReasonNotPermittedToCardholder, ReasonNotPermittedToTerminal,
	ReasonSuspectedFraud, ReasonExceedsWithdrawalLimit, ReasonRestrictedCard, ReasonExceedsFrequencyLimit,
	ReasonIssuerUnavailable, ReasonSystemMalfunction, ReasonCVVMismatch,
	ReasonPSPTimeout, ReasonPSPConnectionLost, ReasonPSPBadResponse, ReasonPSPUnavailable, ReasonInvalidRequest, ReasonPSPError,
	ReasonUnlisted,
}

var reasonSet = func() map[Reason]bool {
	m := make(map[Reason]bool, len(reasons))
	for _, r := range reasons {
		m[r] = true
	}
	return m
}()

// Reasons returns every known reason code.
func Reasons() []Reason { return append([]Reason(nil), reasons...) }

// Known reports whether r is one of the codes in Reasons.
func (r Reason) Known() bool { return reasonSet[r] }
