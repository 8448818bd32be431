// Package store is the gateway's database: payments (state, masked card,
// token, authorization code, outcome, the telephone-order indicators sent,
// timestamps) with their calls' correlation headers, idempotency keys with
// their first answer, the webhook outbox, the ISO 8583 reversal queue,
// named counters (the STANs of each terminal), and revoked widget and
// agent tokens.
//
// SQLite (modernc.org/sqlite: pure Go, no cgo, nothing to set up) is the
// default, in one file for one gateway; PostgreSQL (jackc/pgx through
// database/sql) serves several gateways sharing one database. Both run the
// same code and the same schema: the queries use only what both speak
// ($N placeholders, which modernc.org/sqlite binds by number as pgx does;
// INSERT ... ON CONFLICT; UPDATE ... RETURNING), and the columns only TEXT,
// BIGINT and INTEGER: times are Unix nanoseconds, flags 0 or 1, so neither
// driver's timestamp or boolean conversions are involved.
//
// # Migrations
//
// The schema comes from versioned SQL migrations embedded in the binary
// (migrations/NNNNN_name.sql), applied by Open with pressly/goose's
// Provider. goose rather than golang-migrate: the Provider takes the
// *sql.DB the store already opened with its own settings (SQLite's
// pragmas, one writer) instead of opening a connection of its own through
// a driver of its own; it runs each migration in a transaction, which both
// databases allow for DDL, so a failed migration leaves the previous
// version rather than a "dirty" one to force by hand; on PostgreSQL it
// holds an advisory lock, so that gateways starting together migrate once;
// and it brings fewer modules into go.sum (it does raise golang.org/x/net,
// sys, crypto, text and sync by a minor version). A database at a version newer
// than the newest migration here (a newer binary ran on it) is refused by
// Open with a *SchemaError naming both versions, before anything is
// written.
//
// # Concurrency
//
// SQLite runs in WAL mode with synchronous=FULL (a commit is on disk when
// it returns: a queued reversal must survive a crash or a power cut), a
// busy timeout (store.sqlite.busy_timeout), one writing connection whose
// transactions start IMMEDIATE, and a small pool of read-only connections.
// One writer means writes queue in Go and never fail with SQLITE_BUSY;
// WAL lets reads run beside it. One gateway process per file.
//
// PostgreSQL uses a connection pool (store.postgres.max_conns) at READ
// COMMITTED. What must happen once across nodes is a single conditional
// statement: a lease is taken by an UPDATE whose WHERE repeats the
// conditions its subquery selected by (due, not leased), and PostgreSQL
// evaluates them again on a row a concurrent transaction changed, so of
// two nodes that picked the same row one gets it; an idempotency key is
// claimed by an INSERT ... ON CONFLICT DO UPDATE ... WHERE that only takes
// an expired key.
//
// Leases compare times from the nodes' clocks (Config.Now): keep them
// synchronised, far closer than the shortest lease.
//
// # Delivery guarantees
//
// The webhook outbox delivers at least once: an event keeps its id on
// every attempt (receivers drop repeats by it), a worker claims due events
// under a lease, and an event whose worker died is due again when the
// lease runs out. Failures back off (store.outbox: doubling, capped, with
// jitter) up to the event's MaxAttempts, then the event is dead: listed by
// ListOutbox(OutboxDead) for the API, and requeued by RequeueOutbox.
//
// The reversal queue leases each reversal to one node at a time, so
// exactly one node sends it; only that node can acknowledge or reschedule
// it. A node that crashed holding one loses it when the lease runs out,
// and another node sends it. A reversal can be queued already leased
// (EnqueueReversal with a LeaseOwner): the write-ahead intent of a request
// still in flight, which its owner clears (AckReversal) on a definite
// answer or releases (ReleaseReversal, no attempt counted) when none
// comes, and which any node sends once the lease runs out if the owner
// died. A counter (AdvanceCounter) moves by one statement, so nodes
// reserving blocks of it at once each get their own.
//
// # No card data
//
// Nothing the store writes holds a card number, an expiry or a security
// code: only tokens, masked numbers (at most the first 6 and last 4
// digits) and outcomes. The store does not take the callers' word for it:
// every value is searched for a card number (internal/pan) before it is
// written, and values with a syntax (ids, state and reason codes, the
// masked number, ISO 8583 fields) are held to it; either failure refuses
// the write with ErrCardData or ErrInvalid naming the column, never the
// value. Free text the API passes on (merchant reference, description,
// correlation values) is refused rather than changed, so a caller's
// mistake is loud. Two kinds of value are not kept at all but as their
// SHA-256: idempotency keys and revoked tokens, which are only ever
// matched, so that whatever a client sends as a key never reaches the
// disk. An outbox failure's text, for operators, is kept with card numbers
// masked. The tests search the SQLite files (-wal and -shm included) and
// a pg_dump for the test cards after offering one to every column.
//
// # Who writes what
//
// serve opens the store and hands it to psp, which keeps its reversal
// queue and STAN counter here; to capture's Journal, which writes each
// payment (its columns, and its masked View as the API shows it in
// Payment.Snapshot, so that it reads back unchanged after a restart) and
// queues the payment's webhook event in the same transaction
// (UpsertPayment's events); and to api, which keeps idempotency keys,
// revoked widget tokens and the outbox's deliveries here. Payment.Node
// names the gateway that held a payment, so that a gateway restarting
// ends its own interrupted payments (PaymentQuery Live and Node) and no
// other's.
package store
