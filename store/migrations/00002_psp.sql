-- What the ISO 8583 connector needs beyond the first schema: the
-- indicators a payment was sent with (fields 22, 25, 60 and 61, which say
-- "telephone order" in each brand's terms), and named counters (the STAN
-- of each terminal, shared by every gateway on the database).

-- +goose Up
ALTER TABLE payments ADD COLUMN entry_mode TEXT NOT NULL DEFAULT '';
ALTER TABLE payments ADD COLUMN condition_code TEXT NOT NULL DEFAULT '';
ALTER TABLE payments ADD COLUMN field_60 TEXT NOT NULL DEFAULT '';
ALTER TABLE payments ADD COLUMN field_61 TEXT NOT NULL DEFAULT '';

CREATE TABLE counters (
    name  TEXT PRIMARY KEY,
    value BIGINT NOT NULL
);

-- +goose Down
DROP TABLE counters;
ALTER TABLE payments DROP COLUMN field_61;
ALTER TABLE payments DROP COLUMN field_60;
ALTER TABLE payments DROP COLUMN condition_code;
ALTER TABLE payments DROP COLUMN entry_mode;
