// Package api is ToneVault's HTTP face for CRMs and agents: the REST API
// under /v1 (calls, payment sessions, their actions), Server-Sent Events
// for live progress, signed webhooks for final outcomes, API keys and
// short-lived widget tokens, the OpenAPI document, and the agent widget
// served from /widget/.
//
// Nothing this package writes ever holds card data: it only handles
// capture.View, the masked snapshot of a payment session (DESIGN.md
// invariant 4), and passes it through a guard before it leaves; tests
// prove it by grepping every response, event and webhook body of a real
// capture session for the card number, expiry and security code.
//
// Errors are RFC 9457 problem documents (application/problem+json).
// Request bodies are strict JSON: one object, no unknown fields, at most
// Config.MaxBodyBytes, Content-Type application/json.
//
// The handler returned by New is a *Server; the gateway mounts it next to
// /metrics and calls Close at shutdown to stop webhook deliveries.
package api
