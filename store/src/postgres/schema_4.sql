-- Rollouts: a candidate version tried on live traffic beside the active one. One runs at a time
-- (the partial unique index); every replica adds its figures into `record` under a row lock.
CREATE TABLE rollouts (
    id bigint PRIMARY KEY,
    running boolean NOT NULL,
    record jsonb NOT NULL
);
CREATE UNIQUE INDEX rollouts_one_running ON rollouts (running) WHERE running;
