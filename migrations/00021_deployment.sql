-- +goose Up
-- Who this database is, to the Redis it may share with other deployments:
-- every Redis key and the live topic name it (see cmd/arq), so that two
-- deployments whose databases have the same name (the default, arq) on
-- different clusters neither read each other's cached windows nor receive
-- each other's live events. Made once, when the database is first
-- migrated: every process on the database, and every restart, reads the
-- same id; a database `arq import` fills gets one of its own. A restored
-- backup keeps it (it is the same data), as does a copy made with CREATE
-- DATABASE ... TEMPLATE, which its other name keeps apart. One row.
CREATE TABLE deployment (
    one boolean PRIMARY KEY DEFAULT true CHECK (one),
    id  uuid    NOT NULL DEFAULT gen_random_uuid()
);
INSERT INTO deployment DEFAULT VALUES;

-- +goose Down
DROP TABLE deployment;
