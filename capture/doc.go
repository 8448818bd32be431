// Package capture is the payment session: the customer types the card on
// the phone keypad, digit by digit, and a Session collects, validates and
// submits it, while the agent watches a View that never holds card data.
//
// # Fields
//
// card_number (12-19 digits), expiry (MMYY), security_code (3 digits, 4
// for Amex), then the configured extra fields (Config.ExtraFields). '#'
// ends a field; '*' clears the current one; A-D are ignored and counted
// (View.IgnoredDigits). A field ends by itself at the largest length it can
// have: the brand's maximum for the card number (16 for Mastercard, 15 for
// Amex, 19 for Visa, Maestro and the rest), 4 for the expiry, the brand's
// code length for the security code, MaxDigits for an extra. Shorter valid
// lengths (a 16-digit Visa) end with '#' or with the inter-digit timeout:
// when the customer stops typing, the field is validated as it stands, and
// refused with reason "timeout" if it is not valid. A '#' on an empty field
// is ignored (customers press it out of habit after a field that ended by
// itself), as is '*' on an empty field.
//
// # Validation
//
// As digits arrive: the brand from the BIN ranges in brand.go, refused at
// once when no brand can match ("unknown_brand") or the brand is not
// accepted for the request's merchant ("brand_not_accepted"); the expiry
// month after two digits ("month"). At the end of a field: the length for
// the brand ("length"), Luhn ("luhn"), expiry not past ("expired"), the
// security code length for the brand ("length"). BIN ranges that overlap
// resolve to the more specific (longer) range: only Discover's
// 622126-622925 lies inside another (UnionPay 62). Card expiry has no time
// zone: a card is valid through the last day of its month in UTC.
//
// A refused field is wiped, counts one attempt and is current again; when
// a field's attempts reach Config.MaxAttempts, the session fails with
// reason "attempts_exhausted". Timeouts refuse a field the same way. An
// entry refused before it is complete (month 13, an unknown brand) drops
// the rest of what the customer types for it, up to the field's largest
// length, until '#', '*' or a pause of the inter-digit timeout: one
// mistake costs one attempt, not two.
//
// # States and events
//
// created → collecting → complete → tokenized → submitting → approved |
// declined | failed; cancelled and expired from any live state (see legal
// in state.go). Every change is a new View (Version + 1) for subscribers,
// and audit records (session.started, field.completed, field.reset,
// field.failed, session.restarted, session.ended, card_data.wiped,
// tokenization.requested/result, authorization.requested/result) go to
// the AuditSink with the card number masked to at most first 6 + last 4.
//
// # No trail, no capture
//
// The AuditSink (the gateway's audit.Queue) is required. Its Append never
// blocks, so a key press handled on the relay's thread never waits for a
// disk or for Vault. A payment goes no further than its trail: Start is
// refused (ErrAuditUnavailable) while the trail cannot be written; when
// it stops being writable (Watch) every live session ends failed with
// reason audit_unavailable and its card data is wiped, as does a session
// one of whose records the queue could not take; and Submit lends the
// card data to the processor (tokenize, then authorize) only once the
// records before it are durable (Sync), else the session ends the same
// way. A payment whose authorization was already sent keeps its outcome:
// its records wait in the queue until the trail can take them.
//
// # Card data
//
// Digits live only in each field's buffer, allocated once at the
// field's largest size and wiped (the whole backing array) when the field
// is refused or reset, on restart, cancel, expiry, call end, shutdown and
// after authorization, whatever its outcome (PCI DSS 3.3.1); a valid card
// number's mask (first 6 and last 4 at most) stays in the View after the
// session ends, for the agent to read back. Submit lends
// the buffers to the Processor as secret.Secrets (secret.Wrap: no copy); while it runs, nothing else touches them:
// digits are ignored, agent actions get ErrInFlight, and a call end or
// expiry is applied when the processor returns.
//
// # Faults
//
// The Manager's callbacks run on other packages' goroutines: Digit on the
// relay's thread, Tick on the Manager's timer, CallEnded and
// CallTransferred on SIP's, the trail's state on the audit queue's. A
// panic in one of them ends the session it was handling and no other:
// failed, reason capture_fault, card data wiped (once the processor
// returns, when it holds it), a session.ended record; the caller goes on
// (DESIGN.md invariant 8). An API handler that panics on a session calls
// Session.Faulted: the same, with reason api_fault. The log says where,
// with the stack, never the panic's value; Manager.Faults counts them.
//
// # Persistence
//
// With Options.Journal, sessions are kept in the store (see Journal):
// written at the start, at each field completed, refused for good or
// reset, at each step of a submit (the submitting state is on disk before
// the authorization is sent) and at the final state, with the webhook
// event of an outcome in the same transaction. Digits are never written,
// only the masked View. A gateway that starts again after a crash ends
// the sessions it left live (Journal.EndInterrupted): failed, reason
// gateway_restarted, with a session.ended record in the trail
// (JournalOptions.Audit).
//
// # Time
//
// Timers run off Options.Now: Manager.Tick(now) checks every session, and
// the Manager's goroutine calls it every Options.TickInterval (1s). Tests
// set a negative interval and call Tick with their own clock.
package capture
