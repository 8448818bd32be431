// Package cluster makes several gateways one service: a node's name, its
// peers, the mutual TLS between them, and the probes that notice a peer
// has died.
//
// A cluster is N gateways behind Kamailio (configs/kamailio), sharing a
// PostgreSQL store. SIP and media stay on the node that took the call:
// media is relayed without state replication, so a node that dies drops
// its calls, as any such relay does. What the CRM sees works on every
// node: the API forwards a call's commands to the node holding it
// (api.Forwarder), which the call id names (CallNode: c-NODE-...), and a
// payment's to the node the store says holds it; payments, idempotency
// keys, the webhook outbox, revocations and reversals are in the shared
// store, so webhooks go out from whichever node gets to them first, and
// an idempotent retry is answered by any node.
//
// # Node to node: HTTP over mutual TLS, not LISTEN/NOTIFY
//
// A forwarded command is a request that wants its answer (a 201 with the
// payment, a 409, a 503 with Retry-After) and, for an event stream, a
// response that lasts as long as the payment. HTTP carries both as they
// are: the owner runs the very same handler, and the answer goes back
// byte for byte, status, headers and streams included. LISTEN/NOTIFY
// would need a request id, a reply channel, timeouts and payloads cut to
// 8000 bytes built on top of it; every command would cost two round
// trips through the database and a write to its notification queue; the
// notification is lost when the listener's connection drops (a
// PostgreSQL restart, which the cluster must ride out); and the database,
// already the one shared part, would carry the API's traffic too. HTTP
// between nodes keeps working while PostgreSQL restarts. Mutual TLS
// authenticates both ends with a CA of the operator's: a node only takes
// forwarded requests from a certificate naming one of its peers, and
// only forwards to a certificate naming the node it means. The client's
// own credential (API key or widget token) goes with the request, and the
// owner checks it as if the client had come to it: peers are trusted to
// carry requests, not to make them.
//
// # A node that dies
//
// Each node probes each peer's /healthz on the peer listener every
// probe_interval. A peer unanswered for dead_after is taken for dead, and
// the node ends the payments the store shows live under that peer's name
// (failed, gateway_restarted, with their webhooks), as the peer itself
// would at its next start; two survivors doing it at once write it once
// (the store keeps the higher version). An authorization the dead node
// had in flight was written ahead as a leased reversal: once the lease
// runs out (psp.timeout + psp.lease_margin), one surviving node sends it.
// A node cut off from its peers but not from the database is taken for
// dead all the same: keep the peers' network as reliable as the
// database's.
package cluster
