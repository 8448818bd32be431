-- What the gateway needs to show a payment after a restart as it was
-- shown before: the masked snapshot the API returned (the fields' masked
-- progress, which the columns do not hold), and the gateway that held the
-- session, so that a gateway restarting ends the payments it was taking
-- when it stopped and no other gateway's.

-- +goose Up
ALTER TABLE payments ADD COLUMN node TEXT NOT NULL DEFAULT '';
ALTER TABLE payments ADD COLUMN snapshot TEXT NOT NULL DEFAULT '';
CREATE INDEX payments_live ON payments (final, node);

-- +goose Down
DROP INDEX payments_live;
ALTER TABLE payments DROP COLUMN snapshot;
ALTER TABLE payments DROP COLUMN node;
