package audit

// Event names what happened. The set is closed: a Writer refuses any other
// name, so that every record can be read by a compliance user with this
// list in hand. Names are "area.what"; the outcome says whether it worked.
//
// PCI DSS v4.0 10.2.1 sub-requirements each event serves are given in
// brackets: .1 access to cardholder data, .2 administrative actions, .3
// access to audit logs, .4 invalid access attempts, .5 changes to
// credentials, .6 start, stop and pause of audit logging, .7 creation and
// deletion of system-level objects.
type Event string

// The audit trail itself. Only the Writer writes these.
const (
	// EventAuditStarted: a Writer opened the file, new or continued
	// (reason created, continued or continued_after_unclean_stop).
	// [10.2.1.6]
	EventAuditStarted Event = "audit.started"
	// EventAuditCheckpoint: a signed checkpoint (reason interval,
	// requested or close); the one with reason close marks the stop of
	// logging.
	// [10.2.1.6]
	EventAuditCheckpoint Event = "audit.checkpoint"
	// EventAuditResumed: records reach the trail again after they could
	// not (reason: disk_full, io_error, signer_unavailable,
	// anchor_unavailable, queue_full; lost: records dropped meanwhile,
	// when any). Records held in the Queue during the outage come before
	// it, each with the time it was handed over.
	// [10.2.1.6]
	EventAuditResumed Event = "audit.resumed"
)

// The gateway and its configuration.
const (
	// EventAuditAccessed: someone read or exported the audit trail through
	// the gateway. [10.2.1.3]
	EventAuditAccessed Event = "audit.accessed"
	// EventServiceStarted and EventServiceStopped: the gateway process
	// started (version: the binary's) or stopped (reason: why).
	// [10.2.1.6, 10.2.1.7]
	EventServiceStarted Event = "service.started"
	EventServiceStopped Event = "service.stopped"
	// EventConfigLoaded: a configuration was loaded or reloaded (reason:
	// default or file; digest: the file's SHA-256). [10.2.1.2, 10.2.1.5,
	// 10.2.1.7]
	EventConfigLoaded Event = "config.loaded"
	// EventConfigRejected: a configuration (re)load was refused. [10.2.1.2]
	EventConfigRejected Event = "config.rejected"
)

// Access from outside: the API, the agent widget, SIP peers.
const (
	// EventAPIAuthFailed: a request with a missing, unknown or expired API
	// key or widget token (reason: which; route: the API route).
	// [10.2.1.4]
	EventAPIAuthFailed Event = "api.auth_failed"
	// EventAPITokenIssued: a short-lived widget token was minted for an API
	// key (call_id: its call; expires_at: its expiry). [10.2.1.5]
	EventAPITokenIssued Event = "api.token_issued"
	// EventAPITokenRevoked: an API key revoked a widget token it had
	// minted. [10.2.1.5]
	EventAPITokenRevoked Event = "api.token_revoked"
	// EventSIPPeerRefused: a SIP request from a peer that is not allowed
	// (trunk and method: the request). [10.2.1.4]
	EventSIPPeerRefused Event = "sip.peer_refused"
	// EventSIPCallStarted and EventSIPCallEnded: a call entered or left
	// the gateway (trunk: the one it came in on; reason: the outcome); the
	// call is the resource payments belong to.
	EventSIPCallStarted Event = "sip.call_started"
	EventSIPCallEnded   Event = "sip.call_ended"
	// EventSIPCallTransferred: a REFER moved the call's platform leg to
	// another target, the customer's media still through the gateway
	// (trunk: the side that sent the REFER; reason: transferred, or why
	// the new leg failed; status: its final status).
	EventSIPCallTransferred Event = "sip.call_transferred"
	// EventAgentTokenIssued and EventAgentTokenRevoked: an API key minted
	// (expires_at: its expiry) or revoked a browser agent's sign-in token;
	// actor names the key and the agent. [10.2.1.5]
	EventAgentTokenIssued  Event = "agent.token_issued"
	EventAgentTokenRevoked Event = "agent.token_revoked"
	// EventAgentSignedIn and EventAgentSignedOut: a browser agent opened
	// or closed its event stream (the agent page), and so started or
	// stopped being offered calls. [10.2.1.1]
	EventAgentSignedIn  Event = "agent.signed_in"
	EventAgentSignedOut Event = "agent.signed_out"
	// EventAgentCallAnswered: a browser agent answered a call and its
	// media (WebRTC) connected; the call is the agent's. [10.2.1.1]
	EventAgentCallAnswered Event = "agent.call_answered"
	// EventAgentAnswerFailed: a browser agent's answer did not connect
	// (reason: bad_sdp, ice_failed, dtls_failed); the call rings on.
	EventAgentAnswerFailed Event = "agent.answer_failed"
	// EventAgentCallEnded: a browser agent's call ended (reason:
	// agent_hangup, agent_gone, or the call's own outcome).
	EventAgentCallEnded Event = "agent.call_ended"
	// EventCallFailed: a fault in the gateway (a panic in the call's
	// relaying, its io_uring ring failing, a panic in its signalling)
	// ended the call: BYE on both legs, its sip.call_ended follows with
	// the same reason (media_fault, ring_failed, sip_fault). Other calls
	// went on (DESIGN.md invariant 8).
	EventCallFailed Event = "call.failed"
	// EventRecordingStarted: the call's recording server (SIPREC, RFC
	// 7866) accepted its recording session (trunk: the one it left
	// through; status: its answer). What it gets is masked.
	EventRecordingStarted Event = "recording.started"
	// EventRecordingFailed: a call's recording could not start or
	// stopped (reason: recorder_timeout, recorder_rejected with status,
	// recorder_unreachable, recorder_bad_answer, recorder_bye,
	// recording_fork_failed), or a call was refused because its trunk
	// requires recording and the recorder is down (reason
	// recording_unavailable, status 503, no call_id). The call goes on
	// unless its trunk's recording.required says otherwise.
	EventRecordingFailed Event = "recording.failed"
	// EventRecordingEnded: a call's recording session ended with the call
	// (reason: the call's outcome).
	EventRecordingEnded Event = "recording.ended"
	// EventMaskingFailed: a stream could not be inspected during capture
	// and that direction was muted (fail closed, DESIGN.md invariant 5);
	// reason says what could not be inspected.
	EventMaskingFailed Event = "masking.failed"
)

// A payment session and its card data. [10.2.1.1 for all]
const (
	// EventSessionStarted: a payment session started on a call.
	EventSessionStarted Event = "session.started"
	// EventSessionRestarted: the agent restarted the session; every field
	// is empty again.
	EventSessionRestarted Event = "session.restarted"
	// EventSessionEnded: the session reached a final state (state:
	// approved, declined, failed, cancelled or expired; reason: why).
	EventSessionEnded Event = "session.ended"
	// EventFieldCompleted: a field (field: its name) was entered and is
	// valid; masked_pan may be set for the card number.
	EventFieldCompleted Event = "field.completed"
	// EventFieldReset: a field was cleared, by the customer ('*') or the
	// agent.
	EventFieldReset Event = "field.reset"
	// EventFieldFailed: a field was invalid or timed out (reason: a code
	// saying why, never the digits).
	EventFieldFailed Event = "field.failed"
	// EventCardDataWiped: a field's card data buffer was wiped (field:
	// which; reason: when), one record per field; for the security code
	// this records PCI DSS 3.3.1.
	EventCardDataWiped Event = "card_data.wiped"
	// EventTokenizationRequested and EventTokenizationResult: card data
	// was sent to Vault to be tokenized, and what came back.
	EventTokenizationRequested Event = "tokenization.requested"
	EventTokenizationResult    Event = "tokenization.result"
	// EventAuthorizationRequested, EventAuthorizationResult and
	// EventAuthorizationReversed: the PSP authorization and its reversal.
	EventAuthorizationRequested Event = "authorization.requested"
	EventAuthorizationResult    Event = "authorization.result"
	EventAuthorizationReversed  Event = "authorization.reversed"
)

// events is every Event, in the order of the documentation.
var events = []Event{
	EventAuditStarted, EventAuditCheckpoint, EventAuditResumed, EventAuditAccessed,
	EventServiceStarted, EventServiceStopped,
	EventConfigLoaded, EventConfigRejected,
	EventAPIAuthFailed, EventAPITokenIssued, EventAPITokenRevoked,
	EventSIPPeerRefused, EventSIPCallStarted, EventSIPCallEnded, EventSIPCallTransferred, EventCallFailed,
	EventAgentTokenIssued, EventAgentTokenRevoked, EventAgentSignedIn, EventAgentSignedOut,
	EventAgentCallAnswered, EventAgentAnswerFailed, EventAgentCallEnded,
	EventRecordingStarted, EventRecordingFailed, EventRecordingEnded,
	EventMaskingFailed,
	EventSessionStarted, EventSessionRestarted, EventSessionEnded,
	EventFieldCompleted, EventFieldReset, EventFieldFailed,
	EventCardDataWiped,
	EventTokenizationRequested, EventTokenizationResult,
	EventAuthorizationRequested, EventAuthorizationResult, EventAuthorizationReversed,
}

var eventSet = func() map[Event]bool {
	m := make(map[Event]bool, len(events))
	for _, e := range events {
		m[e] = true
	}
	return m
}()

// Events returns every known event name.
func Events() []Event { return append([]Event(nil), events...) }

// Known reports whether e is one of the events in Events.
func (e Event) Known() bool { return eventSet[e] }

// reserved reports whether only the Writer may write e.
func (e Event) reserved() bool {
	return e == EventAuditStarted || e == EventAuditCheckpoint || e == EventAuditResumed
}

// Outcome says how the event ended.
type Outcome string

const (
	Success Outcome = "success"
	Failure Outcome = "failure"
	// Info is for events that neither succeed nor fail (a field reset, a
	// checkpoint).
	Info Outcome = "info"
)

// Known reports whether o is Success, Failure or Info.
func (o Outcome) Known() bool { return o == Success || o == Failure || o == Info }
