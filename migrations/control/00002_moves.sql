-- The online region moves (issue 11, package move): one row per move, its
-- phase and what it measured, and a log of the steps it took. Every
-- command of a move records its phase here before it acts, so that the
-- same command run again after a crash continues from that phase, or
-- undoes what the interrupted one left.

-- +goose Up
CREATE TABLE control.moves (
    id           bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    region_id    text NOT NULL CHECK (region_id ~ '^(0[1-9]|1[0-9]|20)$'),
    source       text NOT NULL CHECK (source <> ''),
    target       text NOT NULL CHECK (target <> '' AND target <> source),
    -- copying, catching_up, switching, switched (the rollback window);
    -- then rolling_back, cleaning_target, rolled_back; or completing,
    -- completed; or aborting, aborted. The last of each is terminal.
    phase        text NOT NULL CHECK (phase IN ('copying', 'catching_up', 'switching', 'switched',
                     'rolling_back', 'cleaning_target', 'rolled_back', 'completing', 'completed', 'aborting', 'aborted')),
    max_freeze   interval NOT NULL,
    started_at   timestamptz NOT NULL DEFAULT now(),
    updated_at   timestamptz NOT NULL DEFAULT now(),
    finished_at  timestamptz,
    epoch_before bigint,
    epoch_after  bigint,
    -- The measured freeze of the last switch: from the region frozen to
    -- every live router on the new epoch.
    freeze_ms    bigint,
    verification jsonb,
    error        text NOT NULL DEFAULT ''
);

-- One move of a region at a time: a move is active until it is completed,
-- rolled back or aborted.
CREATE UNIQUE INDEX moves_one_active ON control.moves (region_id)
    WHERE phase NOT IN ('completed', 'rolled_back', 'aborted');

CREATE TABLE control.move_steps (
    id      bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    move_id bigint NOT NULL REFERENCES control.moves ON DELETE CASCADE,
    at      timestamptz NOT NULL DEFAULT now(),
    phase   text NOT NULL,
    step    text NOT NULL,
    detail  text NOT NULL DEFAULT ''
);
CREATE INDEX move_steps_move ON control.move_steps (move_id, id);

-- +goose Down
DROP TABLE control.move_steps;
DROP TABLE control.moves;
