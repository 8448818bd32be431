// Package api is ToneVault's HTTP face for CRMs and agents: the REST API
// under /v1 (calls, payment sessions, their actions), Server-Sent Events
// for live progress, signed webhooks for final outcomes, API keys and
// short-lived widget tokens, the OpenAPI document, and the agent widget
// served from /widget/.
//
// Browser agents (agent.go, agenttokens.go, package agents): the CRM
// mints an agent token (POST /v1/agent-tokens: agent id, pools), bound to
// its API key and revocable like a widget token, and opens the agent page
// (/agent/?token=, embedded static files, plain JavaScript) with it. The
// page signs in by opening its event stream (GET /v1/agent/events), which
// rings it for its pools' calls; it answers with its SDP offer (POST
// /v1/agent/calls/{id}/answer, application/sdp in and out, 201 with a
// Location that DELETE hangs up: a WHEP-like exchange), and mints a
// widget token for the call it has, so that the payment widget opens
// beside the softphone. Agent tokens are accepted on /v1/agent/ routes
// alone, and nothing else is accepted there.
//
// Nothing this package writes ever holds card data: it only handles
// capture.View, the masked snapshot of a payment session (DESIGN.md
// invariant 4), and passes it through a guard before it leaves; tests
// prove it by grepping every response, event and webhook body of a real
// capture session for the card number, expiry and security code.
//
// State lives in the store (Deps.Store), not in memory: idempotency keys
// (their SHA-256, with the first answer, replayed after a restart and by
// any gateway on the database), revoked widget tokens, and the webhook
// outbox, which a worker delivers at least once (stable event ids, leases,
// backoff, dead letters the API lists and requeues). Payments come from
// capture while in memory and from the store (Deps.History, capture's
// Journal) after: GET /v1/payments/{id} answers after a restart, and
// GET /v1/payments lists a call's payments, by call id or correlation
// header, a page at a time.
//
// In a cluster (package cluster) the gateway serves the API through a
// Forwarder: a call's commands go to the node its id names, a payment's
// to the node the store says holds it, over HTTP with mutual TLS to the
// peer's listener (PeerHandler), where the client's own credential is
// checked as on any request; GET /v1/calls merges every node's calls.
//
// Errors are RFC 9457 problem documents (application/problem+json).
// Request bodies are strict JSON: one object, no unknown fields, at most
// Config.MaxBodyBytes, Content-Type application/json.
//
// The handler returned by New is a *Server; the gateway mounts it next to
// /metrics and calls Close at shutdown to stop webhook deliveries (those
// cut short are due again at once, for the next start).
package api
