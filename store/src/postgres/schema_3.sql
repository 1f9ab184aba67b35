-- The review queue: predictions kept for a person to label. Items stay after review (their
-- label measures the live model); the bytes of a pending item are kept, one pending item per
-- image content (one label answers every prediction of the same image).
CREATE TABLE review_items (
    prediction_id bigint PRIMARY KEY,
    state text NOT NULL,
    uncertainty real NOT NULL,
    sha256 text NOT NULL,
    record jsonb NOT NULL
);
-- The queue's order: most uncertain first, then newest first.
CREATE INDEX review_items_rank ON review_items (uncertainty DESC, prediction_id DESC)
    WHERE state = 'pending';
CREATE UNIQUE INDEX review_items_pending_sha ON review_items (sha256) WHERE state = 'pending';
CREATE TABLE review_blobs (
    sha256 text PRIMARY KEY,
    size bigint NOT NULL,
    bytes bytea NOT NULL
);
CREATE TABLE review_counters (
    singleton boolean PRIMARY KEY DEFAULT true CHECK (singleton),
    evicted bigint NOT NULL DEFAULT 0
);
INSERT INTO review_counters (evicted) VALUES (0);
