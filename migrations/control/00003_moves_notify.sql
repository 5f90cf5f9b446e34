-- A move's phase change is notified on the channel dms_moves, with
-- "<id> <phase>" as payload, when its transaction commits: every router
-- wakes and, for a move catching up or switching (or rolling back), warms
-- the pools of the shard that will serve the region, so that the first
-- requests after the switch find warm connections there (package control,
-- warmAhead). Routers that miss the notification see the phase at their
-- next poll.

-- +goose Up
-- +goose StatementBegin
CREATE FUNCTION control.moves_notify() RETURNS trigger
LANGUAGE plpgsql AS $$
BEGIN
    PERFORM pg_notify('dms_moves', NEW.id || ' ' || NEW.phase);
    RETURN NULL;
END
$$;
-- +goose StatementEnd
CREATE TRIGGER moves_notify AFTER INSERT OR UPDATE OF phase ON control.moves
    FOR EACH ROW EXECUTE FUNCTION control.moves_notify();

-- +goose Down
DROP TRIGGER moves_notify ON control.moves;
DROP FUNCTION control.moves_notify();
