-- The first schema: payments, idempotency keys, the webhook outbox, the
-- reversal queue and token revocations. One text for SQLite and
-- PostgreSQL: TEXT, BIGINT and INTEGER only; times are BIGINT Unix
-- nanoseconds (UTC), 0 for none; flags are INTEGER 0 or 1. No column holds
-- card data: see the package documentation.

-- +goose Up
CREATE TABLE payments (
    id            TEXT PRIMARY KEY,
    call_id       TEXT NOT NULL,
    state         TEXT NOT NULL,
    final         INTEGER NOT NULL,
    reason        TEXT NOT NULL,
    amount        BIGINT NOT NULL,
    currency      TEXT NOT NULL,
    merchant_ref  TEXT NOT NULL,
    description   TEXT NOT NULL,
    merchant      TEXT NOT NULL,
    brand         TEXT NOT NULL,
    masked_pan    TEXT NOT NULL,
    token         TEXT NOT NULL,
    outcome       TEXT NOT NULL,
    auth_code     TEXT NOT NULL,
    response_code TEXT NOT NULL,
    version       BIGINT NOT NULL,
    created_at    BIGINT NOT NULL,
    updated_at    BIGINT NOT NULL,
    expires_at    BIGINT NOT NULL
);
CREATE INDEX payments_by_call ON payments (call_id, created_at, id);
CREATE INDEX payments_by_created ON payments (created_at, id);

CREATE TABLE payment_correlations (
    payment_id TEXT NOT NULL REFERENCES payments (id),
    name       TEXT NOT NULL,
    name_fold  TEXT NOT NULL,
    value      TEXT NOT NULL,
    PRIMARY KEY (payment_id, name_fold)
);
CREATE INDEX payment_correlations_by_value ON payment_correlations (value, name_fold);

CREATE TABLE idempotency_keys (
    key_hash    TEXT PRIMARY KEY,
    fingerprint TEXT NOT NULL,
    claim       TEXT NOT NULL,
    done        INTEGER NOT NULL,
    status      INTEGER NOT NULL,
    body        TEXT NOT NULL,
    location    TEXT NOT NULL,
    created_at  BIGINT NOT NULL,
    held_until  BIGINT NOT NULL,
    expires_at  BIGINT NOT NULL
);
CREATE INDEX idempotency_keys_by_expiry ON idempotency_keys (expires_at);

CREATE TABLE outbox (
    id              TEXT PRIMARY KEY,
    kind            TEXT NOT NULL,
    payment_id      TEXT NOT NULL,
    body            TEXT NOT NULL,
    state           TEXT NOT NULL,
    attempts        INTEGER NOT NULL,
    max_attempts    INTEGER NOT NULL,
    next_attempt_at BIGINT NOT NULL,
    lease_owner     TEXT NOT NULL,
    lease_until     BIGINT NOT NULL,
    last_status     INTEGER NOT NULL,
    last_error      TEXT NOT NULL,
    created_at      BIGINT NOT NULL,
    updated_at      BIGINT NOT NULL
);
CREATE INDEX outbox_by_due ON outbox (state, next_attempt_at, created_at, id);
CREATE INDEX outbox_by_created ON outbox (state, created_at, id);

CREATE TABLE reversals (
    id              TEXT PRIMARY KEY,
    orig_mti        TEXT NOT NULL,
    stan            TEXT NOT NULL,
    rrn             TEXT NOT NULL,
    transmission    TEXT NOT NULL,
    local_time      TEXT NOT NULL,
    local_date      TEXT NOT NULL,
    proc_code       TEXT NOT NULL,
    amount          BIGINT NOT NULL,
    currency        TEXT NOT NULL,
    terminal        TEXT NOT NULL,
    merchant        TEXT NOT NULL,
    reference       TEXT NOT NULL,
    reason          TEXT NOT NULL,
    rev_stan        TEXT NOT NULL,
    attempts        INTEGER NOT NULL,
    next_attempt_at BIGINT NOT NULL,
    lease_owner     TEXT NOT NULL,
    lease_until     BIGINT NOT NULL,
    created_at      BIGINT NOT NULL
);
CREATE INDEX reversals_by_due ON reversals (created_at, id);

CREATE TABLE token_revocations (
    token_hash TEXT PRIMARY KEY,
    revoked_at BIGINT NOT NULL,
    expires_at BIGINT NOT NULL
);
CREATE INDEX token_revocations_by_expiry ON token_revocations (expires_at);

-- +goose Down
DROP TABLE token_revocations;
DROP TABLE reversals;
DROP TABLE outbox;
DROP TABLE idempotency_keys;
DROP TABLE payment_correlations;
DROP TABLE payments;
