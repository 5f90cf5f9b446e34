-- One spelling for the API's names and values (issue 15): every resource's
-- state is the column status, and every enumerated value is upper case, as
-- the concessions' statuses and the presences' kinds always were. Before,
-- a vendor's state was the column stato, and the markets' statuses and the
-- stalls' types and statuses were lower case:
--   markets.status  active, inactive               -> ACTIVE, INACTIVE
--   stalls.type     fisso, spunta, straordinario   -> FISSO, SPUNTA, STRAORDINARIO
--   stalls.status   libero, occupato, riservato    -> LIBERO, OCCUPATO, RISERVATO
--   vendors.stato                                  -> vendors.status (values unchanged)
-- The router still accepts the old spellings on input for one release and
-- writes only these.
--
-- region_status_counts follows the stalls' UPDATE through its statement
-- triggers (per key, -libero and +LIBERO); the keys of the old spellings,
-- then at zero, are removed. The tables force row-level security on their
-- owner too, so unless the migrating role bypasses it (a superuser does)
-- the updates lift FORCE for the transaction, as 00002's backfill does: no
-- other session sees the change, the ALTER holding an exclusive lock until
-- commit.

-- +goose Up
ALTER TABLE markets DROP CONSTRAINT markets_status_check;
ALTER TABLE stalls DROP CONSTRAINT stalls_type_check, DROP CONSTRAINT stalls_status_check;
ALTER TABLE vendors RENAME COLUMN stato TO status;
ALTER TABLE vendors RENAME CONSTRAINT vendors_stato_check TO vendors_status_check;

-- +goose StatementBegin
DO $$
DECLARE
    bypass boolean := (SELECT rolsuper OR rolbypassrls FROM pg_roles WHERE rolname = current_user);
    t text;
BEGIN
    IF NOT bypass THEN
        FOREACH t IN ARRAY ARRAY['markets', 'stalls'] LOOP
            EXECUTE format('ALTER TABLE %I NO FORCE ROW LEVEL SECURITY', t);
        END LOOP;
    END IF;
    UPDATE markets SET status = upper(status) WHERE status <> upper(status);
    UPDATE stalls SET type = upper(type), status = upper(status) WHERE type <> upper(type) OR status <> upper(status);
    DELETE FROM region_status_counts WHERE entity = 'stalls' AND status IN ('libero', 'occupato', 'riservato') AND n = 0;
    IF NOT bypass THEN
        FOREACH t IN ARRAY ARRAY['markets', 'stalls'] LOOP
            EXECUTE format('ALTER TABLE %I FORCE ROW LEVEL SECURITY', t);
        END LOOP;
    END IF;
END
$$;
-- +goose StatementEnd

ALTER TABLE markets
    ALTER COLUMN status SET DEFAULT 'ACTIVE',
    ADD CONSTRAINT markets_status_check CHECK (status IN ('ACTIVE', 'INACTIVE'));
ALTER TABLE stalls
    ALTER COLUMN status SET DEFAULT 'LIBERO',
    ADD CONSTRAINT stalls_type_check CHECK (type IN ('FISSO', 'SPUNTA', 'STRAORDINARIO')),
    ADD CONSTRAINT stalls_status_check CHECK (status IN ('LIBERO', 'OCCUPATO', 'RISERVATO'));

-- +goose Down
ALTER TABLE markets DROP CONSTRAINT markets_status_check;
ALTER TABLE stalls DROP CONSTRAINT stalls_type_check, DROP CONSTRAINT stalls_status_check;
ALTER TABLE vendors RENAME CONSTRAINT vendors_status_check TO vendors_stato_check;
ALTER TABLE vendors RENAME COLUMN status TO stato;

-- +goose StatementBegin
DO $$
DECLARE
    bypass boolean := (SELECT rolsuper OR rolbypassrls FROM pg_roles WHERE rolname = current_user);
    t text;
BEGIN
    IF NOT bypass THEN
        FOREACH t IN ARRAY ARRAY['markets', 'stalls'] LOOP
            EXECUTE format('ALTER TABLE %I NO FORCE ROW LEVEL SECURITY', t);
        END LOOP;
    END IF;
    UPDATE markets SET status = lower(status) WHERE status <> lower(status);
    UPDATE stalls SET type = lower(type), status = lower(status) WHERE type <> lower(type) OR status <> lower(status);
    DELETE FROM region_status_counts WHERE entity = 'stalls' AND status IN ('LIBERO', 'OCCUPATO', 'RISERVATO') AND n = 0;
    IF NOT bypass THEN
        FOREACH t IN ARRAY ARRAY['markets', 'stalls'] LOOP
            EXECUTE format('ALTER TABLE %I FORCE ROW LEVEL SECURITY', t);
        END LOOP;
    END IF;
END
$$;
-- +goose StatementEnd

ALTER TABLE markets
    ALTER COLUMN status SET DEFAULT 'active',
    ADD CONSTRAINT markets_status_check CHECK (status IN ('active', 'inactive'));
ALTER TABLE stalls
    ALTER COLUMN status SET DEFAULT 'libero',
    ADD CONSTRAINT stalls_type_check CHECK (type IN ('fisso', 'spunta', 'straordinario')),
    ADD CONSTRAINT stalls_status_check CHECK (status IN ('libero', 'occupato', 'riservato'));
