-- A concession expires at its effective end, coalesce(extended_to,
-- valid_to): a title extended by law (migration 00014, the lifecycle job)
-- runs past its printed date. The lists of expiring concessions (the
-- national list, GET /v1/concessions?expiring_before=) order and filter on
-- it; this index serves them as concessions_active_valid_to served the
-- printed date.
-- +goose Up
CREATE INDEX concessions_active_effective_to ON concessions (region_id, (coalesce(extended_to, valid_to)), id) WHERE status = 'ATTIVA';
DROP INDEX concessions_active_valid_to;

-- +goose Down
CREATE INDEX concessions_active_valid_to ON concessions (region_id, valid_to, id) WHERE status = 'ATTIVA';
DROP INDEX concessions_active_effective_to;
