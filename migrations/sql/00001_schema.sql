-- The regional schema. Every shard holds the same tables; a shard may hold
-- several regions, so every regional row carries region_id and every policy
-- filters on it.
--
-- Ids carry their region: id = region_id << 48 | a per-region sequence
-- (dms_next_id). A region keeps its own sequences, so it can move to another
-- shard without id collisions.
--
-- Indexes of the scaling plan and where they live here:
--   stalls(market_id)                 -> stalls_market_number (unique, leading market_id)
--   stalls(status)                    -> stalls_market_status (market_id, status): every
--                                        status filter is inside a market or a region
--   concessions(vendor_id)            -> concessions_vendor
--   concessions(market_id)            -> concessions_market
--   vendor_presences(market_id, date) -> vendor_presences_market_date_vendor (unique,
--                                        leading market_id, date)
--   vendor_presences(vendor_id)       -> vendor_presences_vendor (vendor_id, date)
-- A second index with the same leading columns would cost every write and
-- serve no query the unique one does not.

-- +goose Up
-- +goose StatementBegin
DO $$
BEGIN
    CREATE ROLE dms_app LOGIN NOSUPERUSER NOCREATEDB NOCREATEROLE NOBYPASSRLS;
EXCEPTION
    -- Roles are cluster-wide: the role may exist already, or another shard
    -- database of the same cluster may be creating it right now.
    WHEN duplicate_object OR unique_violation THEN NULL;
END
$$;
-- +goose StatementEnd

CREATE EXTENSION IF NOT EXISTS btree_gist;

CREATE SCHEMA dms;

-- dms.next_id returns the next id of table tbl in region r.
-- +goose StatementBegin
CREATE FUNCTION dms.next_id(tbl text, r smallint) RETURNS bigint
LANGUAGE sql VOLATILE PARALLEL UNSAFE AS $$
    SELECT (r::bigint << 48) | nextval(format('dms.%s_id_%s', tbl, lpad(r::text, 2, '0'))::regclass)
$$;
-- +goose StatementEnd

-- +goose StatementBegin
DO $$
DECLARE
    t text;
    r int;
BEGIN
    FOREACH t IN ARRAY ARRAY['markets', 'stalls', 'vendors', 'concessions', 'vendor_presences', 'audit_log'] LOOP
        FOR r IN 1..20 LOOP
            EXECUTE format('CREATE SEQUENCE dms.%s_id_%s MAXVALUE 281474976710655', t, lpad(r::text, 2, '0'));
        END LOOP;
    END LOOP;
END
$$;
-- +goose StatementEnd

-- The settings the router sets in every transaction (set_config(name, value,
-- true)) and the policies read. An unset or empty dms.region matches no row;
-- an unset or empty province, comune or market does not narrow.
-- +goose StatementBegin
CREATE FUNCTION dms.scope_region() RETURNS smallint
LANGUAGE sql STABLE PARALLEL SAFE AS $$
    SELECT nullif(current_setting('dms.region', true), '')::smallint
$$;
CREATE FUNCTION dms.scope_text(name text) RETURNS text
LANGUAGE sql STABLE PARALLEL SAFE AS $$
    SELECT nullif(current_setting(name, true), '')
$$;
CREATE FUNCTION dms.scope_market() RETURNS bigint
LANGUAGE sql STABLE PARALLEL SAFE AS $$
    SELECT nullif(current_setting('dms.market', true), '')::bigint
$$;
-- +goose StatementEnd

CREATE TABLE markets (
    id           bigint PRIMARY KEY,
    region_id    smallint NOT NULL CHECK (region_id BETWEEN 1 AND 20),
    code         text NOT NULL UNIQUE CHECK (code ~ '^[A-Z]{2}[0-9]{3,5}$'),
    name         text NOT NULL CHECK (name <> ''),
    province     text NOT NULL CHECK (province ~ '^[0-9]{3}$'),
    comune       text NOT NULL CHECK (comune ~ '^[0-9]{6}$' AND left(comune, 3) = province),
    comune_name  text NOT NULL DEFAULT '',
    days         smallint[] NOT NULL DEFAULT '{}' CHECK (days <@ ARRAY[1, 2, 3, 4, 5, 6, 7]::smallint[]),
    status       text NOT NULL DEFAULT 'active' CHECK (status IN ('active', 'inactive')),
    cost_per_sqm numeric(8, 2) NOT NULL DEFAULT 0 CHECK (cost_per_sqm >= 0),
    created_at   timestamptz NOT NULL DEFAULT now(),
    updated_at   timestamptz NOT NULL DEFAULT now(),
    CHECK (id >> 48 = region_id)
);
CREATE INDEX markets_region_name ON markets (region_id, name, id);
CREATE INDEX markets_comune_name ON markets (comune, name, id);

CREATE TABLE stalls (
    id        bigint PRIMARY KEY,
    region_id smallint NOT NULL CHECK (region_id BETWEEN 1 AND 20),
    market_id bigint NOT NULL REFERENCES markets (id),
    comune    text NOT NULL CHECK (comune ~ '^[0-9]{6}$'),
    number    integer NOT NULL CHECK (number > 0),
    type      text NOT NULL CHECK (type IN ('fisso', 'spunta', 'straordinario')),
    status    text NOT NULL DEFAULT 'libero' CHECK (status IN ('libero', 'occupato', 'riservato')),
    area_mq   numeric(6, 2) NOT NULL CHECK (area_mq > 0),
    width_m   numeric(5, 2) CHECK (width_m > 0),
    depth_m   numeric(5, 2) CHECK (depth_m > 0),
    CONSTRAINT stalls_market_number UNIQUE (market_id, number),
    CHECK (id >> 48 = region_id)
);
CREATE INDEX stalls_market_status ON stalls (market_id, status);

CREATE TABLE vendors (
    id             bigint PRIMARY KEY,
    region_id      smallint NOT NULL CHECK (region_id BETWEEN 1 AND 20),
    partita_iva    text NOT NULL CHECK (partita_iva ~ '^[0-9]{11}$'),
    codice_fiscale text NOT NULL CHECK (codice_fiscale ~ '^([A-Z0-9]{16}|[0-9]{11})$'),
    denominazione  text NOT NULL CHECK (denominazione <> ''),
    comune         text NOT NULL CHECK (comune ~ '^[0-9]{6}$'),
    stato          text NOT NULL DEFAULT 'ATTIVA' CHECK (stato IN ('ATTIVA', 'SOSPESA', 'CESSATA')),
    -- Unique per region rather than per database: a vendor who works in two
    -- regions appears once in each, and two regions may share a database.
    CONSTRAINT vendors_partita_iva UNIQUE (region_id, partita_iva),
    CONSTRAINT vendors_codice_fiscale UNIQUE (region_id, codice_fiscale),
    CHECK (id >> 48 = region_id)
);
CREATE INDEX vendors_region_name ON vendors (region_id, denominazione, id);

CREATE TABLE concessions (
    id         bigint PRIMARY KEY,
    region_id  smallint NOT NULL CHECK (region_id BETWEEN 1 AND 20),
    market_id  bigint NOT NULL REFERENCES markets (id),
    comune     text NOT NULL CHECK (comune ~ '^[0-9]{6}$'),
    stall_id   bigint NOT NULL REFERENCES stalls (id),
    vendor_id  bigint NOT NULL REFERENCES vendors (id),
    valid_from date NOT NULL,
    valid_to   date NOT NULL,
    status     text NOT NULL DEFAULT 'ATTIVA' CHECK (status IN ('ATTIVA', 'SOSPESA', 'REVOCATA', 'CESSATA', 'SCADUTA')),
    CHECK (valid_to > valid_from),
    CHECK (id >> 48 = region_id),
    -- At most one ATTIVA concession per stall at any time.
    CONSTRAINT concessions_one_active EXCLUDE USING gist (
        stall_id WITH =, daterange(valid_from, valid_to, '[]') WITH &&
    ) WHERE (status = 'ATTIVA')
);
CREATE INDEX concessions_vendor ON concessions (vendor_id, id);
CREATE INDEX concessions_market ON concessions (market_id, id);
CREATE INDEX concessions_region_id ON concessions (region_id, id);
CREATE INDEX concessions_active_valid_to ON concessions (region_id, valid_to, id) WHERE status = 'ATTIVA';

-- Presences are RANGE-partitioned by month on their date; dms.ensure_presence_partitions
-- makes the partitions and is called again by the monthly job. There are no
-- foreign keys here: every write path validates market, stall and vendor in the
-- same transaction, and three lookups per row would halve bulk ingest.
CREATE TABLE vendor_presences (
    id          bigint NOT NULL,
    region_id   smallint NOT NULL CHECK (region_id BETWEEN 1 AND 20),
    market_id   bigint NOT NULL,
    comune      text NOT NULL CHECK (comune ~ '^[0-9]{6}$'),
    vendor_id   bigint NOT NULL,
    stall_id    bigint,
    date        date NOT NULL,
    kind        text NOT NULL CHECK (kind IN ('CONCESSION', 'SPUNTA')),
    checkin_at  timestamptz NOT NULL,
    checkout_at timestamptz,
    PRIMARY KEY (id, date),
    CONSTRAINT vendor_presences_market_date_vendor UNIQUE (market_id, date, vendor_id),
    CONSTRAINT vendor_presences_market_date_stall UNIQUE (market_id, date, stall_id),
    CHECK (id >> 48 = region_id),
    CHECK (checkout_at IS NULL OR checkout_at >= checkin_at)
) PARTITION BY RANGE (date);
CREATE INDEX vendor_presences_vendor ON vendor_presences (vendor_id, date);

-- dms.ensure_presence_partitions creates the monthly partitions of
-- vendor_presences from the month of first to the month of last, inclusive,
-- and returns how many it created. Existing partitions are left alone.
-- +goose StatementBegin
CREATE FUNCTION dms.ensure_presence_partitions(first date, last date) RETURNS integer
LANGUAGE plpgsql AS $$
DECLARE
    m date := date_trunc('month', first)::date;
    made integer := 0;
    part text;
BEGIN
    WHILE m <= last LOOP
        part := format('vendor_presences_%s', to_char(m, 'YYYY_MM'));
        IF to_regclass('public.' || part) IS NULL THEN
            EXECUTE format('CREATE TABLE public.%I PARTITION OF public.vendor_presences FOR VALUES FROM (%L) TO (%L)',
                           part, m, (m + interval '1 month')::date);
            made := made + 1;
        END IF;
        m := (m + interval '1 month')::date;
    END LOOP;
    RETURN made;
END
$$;
-- +goose StatementEnd

-- The past 13 months and the next 3, in Europe/Rome's calendar.
SELECT dms.ensure_presence_partitions(
    ((now() AT TIME ZONE 'Europe/Rome')::date - interval '13 months')::date,
    ((now() AT TIME ZONE 'Europe/Rome')::date + interval '3 months')::date);

CREATE TABLE audit_log (
    id        bigint PRIMARY KEY,
    region_id smallint NOT NULL CHECK (region_id BETWEEN 1 AND 20),
    at        timestamptz NOT NULL DEFAULT now(),
    user_sub  text NOT NULL,
    role      text NOT NULL,
    action    text NOT NULL,
    entity    text NOT NULL,
    entity_id bigint,
    before    jsonb,
    after     jsonb,
    CHECK (id >> 48 = region_id)
);
CREATE INDEX audit_log_entity ON audit_log (entity, entity_id, at);
CREATE INDEX audit_log_region_at ON audit_log (region_id, at);

-- Row-level security: enabled and forced on every regional table. Every
-- policy requires the row's region to be the transaction's dms.region; the
-- narrower settings (province, comune, market) narrow further when set. The
-- settings are read in scalar subqueries, which the planner evaluates once
-- per query (an InitPlan) instead of once per row.
ALTER TABLE markets ENABLE ROW LEVEL SECURITY;
ALTER TABLE markets FORCE ROW LEVEL SECURITY;
CREATE POLICY markets_scope ON markets
    USING (region_id = (SELECT dms.scope_region())
       AND ((SELECT dms.scope_text('dms.province')) IS NULL OR province = (SELECT dms.scope_text('dms.province')))
       AND ((SELECT dms.scope_text('dms.comune')) IS NULL OR comune = (SELECT dms.scope_text('dms.comune')))
       AND ((SELECT dms.scope_market()) IS NULL OR id = (SELECT dms.scope_market())));

-- +goose StatementBegin
DO $$
DECLARE
    t text;
BEGIN
    -- Tables whose rows belong to a market: scoped by region, the market's
    -- comune (and so its province) and the market itself.
    FOREACH t IN ARRAY ARRAY['stalls', 'concessions', 'vendor_presences'] LOOP
        EXECUTE format('ALTER TABLE %I ENABLE ROW LEVEL SECURITY', t);
        EXECUTE format('ALTER TABLE %I FORCE ROW LEVEL SECURITY', t);
        EXECUTE format($p$CREATE POLICY %I ON %I
            USING (region_id = (SELECT dms.scope_region())
               AND ((SELECT dms.scope_text('dms.province')) IS NULL OR left(comune, 3) = (SELECT dms.scope_text('dms.province')))
               AND ((SELECT dms.scope_text('dms.comune')) IS NULL OR comune = (SELECT dms.scope_text('dms.comune')))
               AND ((SELECT dms.scope_market()) IS NULL OR market_id = (SELECT dms.scope_market())))$p$,
            t || '_scope', t);
    END LOOP;
    -- Vendors are the region's registry: a comune office must find a
    -- spuntista registered anywhere in the region to check them in, so
    -- vendors are scoped by region only. The audit log likewise.
    FOREACH t IN ARRAY ARRAY['vendors', 'audit_log'] LOOP
        EXECUTE format('ALTER TABLE %I ENABLE ROW LEVEL SECURITY', t);
        EXECUTE format('ALTER TABLE %I FORCE ROW LEVEL SECURITY', t);
        EXECUTE format('CREATE POLICY %I ON %I USING (region_id = (SELECT dms.scope_region()))', t || '_scope', t);
    END LOOP;
END
$$;
-- +goose StatementEnd

GRANT USAGE ON SCHEMA dms TO dms_app;
GRANT USAGE ON ALL SEQUENCES IN SCHEMA dms TO dms_app;
GRANT SELECT, INSERT, UPDATE ON markets, stalls, vendors, concessions, vendor_presences TO dms_app;
GRANT DELETE ON vendor_presences TO dms_app;
GRANT SELECT, INSERT ON audit_log TO dms_app;
REVOKE EXECUTE ON FUNCTION dms.ensure_presence_partitions(date, date) FROM PUBLIC;

-- +goose Down
DROP TABLE audit_log, vendor_presences, concessions, vendors, stalls, markets;
DROP SCHEMA dms CASCADE;
