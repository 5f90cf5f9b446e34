-- Market-day rules as comuni apply them (issue 13; docs/domain.md says why
-- each rule is the law):
--
--   * market_regolamenti: each market's regolamento, the options the law
--     leaves to it. A market without a row follows the national defaults
--     (dms.regolamento returns them).
--   * Sectors (settore merceologico) on stalls and concessions, and on the
--     vendors' authorisations (authorisations); stalls may be reserved for a
--     category of vendors (reserved_for), vendors belong to categories.
--   * Vendors carry the date of their registration (registro imprese), the
--     ranking's first tie-break.
--   * market_days: each day a market was held or cancelled, and the time
--     of its call (appello). Presences already recorded count as held days
--     (dms.held_days), so existing data needs no backfill.
--   * absence_justifications: the office's justification of a holder's
--     absence on a held day (illness, pregnancy, force majeure).
--   * A spuntista's presence carries the day's outcome: a stall assigned,
--     present without a stall, a refusal, or a check-in after the call;
--     the last two earn no presence.
--   * spunta_events: every offer, choice and refusal of a market day's
--     spunta, in order; spunta_runs records its draw seed and status.
--   * Concessions: DECADUTA; a title (title_id, the first concession of a
--     chain of renewals and subingressi) and the concession each one
--     follows; a legal extension (extended_to); the lifecycle job's
--     proposal of decadenza. A SOSPESA concession holds its stall.
-- +goose Up

-- +goose StatementBegin
DO $$
DECLARE
    r int;
BEGIN
    FOR r IN 1..20 LOOP
        EXECUTE format('CREATE SEQUENCE dms.authorisations_id_%s MAXVALUE 281474976710655', lpad(r::text, 2, '0'));
        -- dms_app numbers new authorisations (dms.next_id), as every other table's rows.
        EXECUTE format('GRANT USAGE ON SEQUENCE dms.authorisations_id_%s TO dms_app', lpad(r::text, 2, '0'));
    END LOOP;
END
$$;
-- +goose StatementEnd

CREATE TABLE market_regolamenti (
    market_id     bigint PRIMARY KEY,
    region_id     smallint NOT NULL CHECK (region_id BETWEEN 1 AND 20),
    comune        text COLLATE "C" NOT NULL,
    -- NEVER: presences accumulate over the years; YEARLY: the ranking
    -- counts the calendar year's presences only.
    ranking_reset text NOT NULL DEFAULT 'NEVER' CHECK (ranking_reset IN ('NEVER', 'YEARLY')),
    -- A reset the regolamento made once: presences before it do not count.
    ranking_from  date CHECK (ranking_from BETWEEN '2000-01-01' AND '2100-12-31'),
    -- Tie-breaks after the presences, in order; a draw always ends them.
    tie_breaks    text[] NOT NULL DEFAULT '{REGISTRATION,DRAW}'
        CHECK (tie_breaks <@ ARRAY['REGISTRATION', 'FIRST_PRESENCE', 'DRAW'] AND tie_breaks[cardinality(tie_breaks)] = 'DRAW'),
    sectors       boolean NOT NULL DEFAULT true,
    call_time     time NOT NULL DEFAULT '08:00',
    -- Unjustified absences per calendar year above which a holder is
    -- proposed for decadenza; NULL: the national rule, four months of the
    -- year's market days (dms.absence_limit).
    absence_limit integer CHECK (absence_limit BETWEEN 0 AND 366),
    updated_at    timestamptz NOT NULL DEFAULT now(),
    CONSTRAINT market_regolamenti_market FOREIGN KEY (market_id, region_id, comune) REFERENCES markets (id, region_id, comune),
    CHECK (market_id >> 48 = region_id)
);

ALTER TABLE stalls
    ADD COLUMN sector text NOT NULL DEFAULT 'NON_ALIMENTARE' CHECK (sector IN ('ALIMENTARE', 'NON_ALIMENTARE')),
    ADD COLUMN reserved_for text CHECK (reserved_for IN ('PRODUTTORE', 'DISABILE'));

ALTER TABLE vendors
    ADD COLUMN registered_on date CHECK (registered_on BETWEEN '1900-01-01' AND '2100-12-31'),
    ADD COLUMN categories text[] NOT NULL DEFAULT '{}' CHECK (categories <@ ARRAY['PRODUTTORE', 'DISABILE']);

-- authorisations are a vendor's licences to trade: type A on a stall
-- (issued by the comune of the market), type B itinerant (valid in all of
-- Italy); each for one sector. A spuntista is ranked in the sectors it is
-- authorised for.
CREATE TABLE authorisations (
    id        bigint PRIMARY KEY,
    region_id smallint NOT NULL CHECK (region_id BETWEEN 1 AND 20),
    vendor_id bigint NOT NULL REFERENCES vendors (id),
    type      text NOT NULL CHECK (type IN ('A', 'B')),
    sector    text NOT NULL CHECK (sector IN ('ALIMENTARE', 'NON_ALIMENTARE')),
    comune    text COLLATE "C" NOT NULL CHECK (comune ~ '^[0-9]{6}$'),
    number    text NOT NULL DEFAULT '',
    issued_on date CHECK (issued_on BETWEEN '1900-01-01' AND '2100-12-31'),
    CONSTRAINT authorisations_region FOREIGN KEY (region_id) REFERENCES dms.shard_regions (region_id),
    CONSTRAINT authorisations_vendor_type_sector UNIQUE (vendor_id, type, sector, comune),
    CHECK (id >> 48 = region_id),
    CHECK (vendor_id >> 48 = region_id)
);

CREATE TABLE market_days (
    market_id  bigint NOT NULL,
    region_id  smallint NOT NULL CHECK (region_id BETWEEN 1 AND 20),
    comune     text COLLATE "C" NOT NULL,
    date       date NOT NULL CHECK (date BETWEEN '2000-01-01' AND '2100-12-31'),
    status     text NOT NULL CHECK (status IN ('HELD', 'CANCELLED')),
    reason     text NOT NULL DEFAULT '',
    call_at    timestamptz,
    updated_by text NOT NULL,
    updated_at timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (market_id, date),
    CONSTRAINT market_days_market FOREIGN KEY (market_id, region_id, comune) REFERENCES markets (id, region_id, comune),
    CHECK (market_id >> 48 = region_id),
    CHECK (status = 'HELD' OR (reason <> '' AND call_at IS NULL))
);
CREATE INDEX market_days_region_date ON market_days (region_id, date);

ALTER TABLE concessions
    DROP CONSTRAINT concessions_status_check,
    ADD CONSTRAINT concessions_status_check CHECK (status IN ('ATTIVA', 'SOSPESA', 'REVOCATA', 'DECADUTA', 'CESSATA', 'SCADUTA')),
    ADD COLUMN sector text CHECK (sector IN ('ALIMENTARE', 'NON_ALIMENTARE')),
    ADD COLUMN title_id bigint,
    ADD COLUMN follows_id bigint REFERENCES concessions (id),
    -- How the concession followed follows_id: a renewal of the title, or a
    -- subingresso (the business sold to this concession's vendor).
    ADD COLUMN follows_by text CHECK (follows_by IN ('RENEWAL', 'SUBINGRESSO')),
    ADD COLUMN extended_to date,
    ADD COLUMN decadenza_proposed_on date,
    ADD COLUMN decadenza_absences integer,
    ADD CONSTRAINT concessions_follows CHECK ((follows_id IS NULL) = (follows_by IS NULL)),
    ADD CONSTRAINT concessions_extended_to_check CHECK (extended_to IS NULL OR (extended_to > valid_to AND extended_to <= '2100-12-31'));

CREATE TABLE absence_justifications (
    concession_id bigint NOT NULL REFERENCES concessions (id),
    date          date NOT NULL CHECK (date BETWEEN '2000-01-01' AND '2100-12-31'),
    region_id     smallint NOT NULL CHECK (region_id BETWEEN 1 AND 20),
    market_id     bigint NOT NULL,
    comune        text COLLATE "C" NOT NULL,
    reason        text NOT NULL CHECK (reason IN ('MALATTIA', 'GRAVIDANZA', 'FORZA_MAGGIORE', 'ALTRO')),
    note          text NOT NULL DEFAULT '',
    recorded_by   text NOT NULL,
    recorded_at   timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (concession_id, date),
    CONSTRAINT absence_justifications_market FOREIGN KEY (market_id, region_id, comune) REFERENCES markets (id, region_id, comune),
    CHECK (concession_id >> 48 = region_id)
);

ALTER TABLE vendor_presences
    ADD COLUMN outcome text CHECK (outcome IN ('ASSIGNED', 'UNASSIGNED', 'REFUSED', 'LATE'));

ALTER TABLE spunta_runs
    ADD COLUMN status text NOT NULL DEFAULT 'CLOSED' CHECK (status IN ('OPEN', 'CLOSED')),
    ADD COLUMN seed text NOT NULL DEFAULT '';

CREATE TABLE spunta_events (
    market_id bigint NOT NULL,
    date      date NOT NULL,
    seq       integer NOT NULL CHECK (seq > 0),
    region_id smallint NOT NULL CHECK (region_id BETWEEN 1 AND 20),
    comune    text COLLATE "C" NOT NULL,
    vendor_id bigint NOT NULL,
    sector    text NOT NULL CHECK (sector IN ('ALIMENTARE', 'NON_ALIMENTARE')),
    rank      integer NOT NULL CHECK (rank > 0),
    -- OFFER: the free stalls were offered to the vendor (stall_id NULL);
    -- CHOSEN: it chose stall_id; REFUSED: it refused them; NO_STALL: none
    -- of its sector was left; ABSENT: not present at the call.
    action    text NOT NULL CHECK (action IN ('OFFER', 'CHOSEN', 'REFUSED', 'NO_STALL', 'ABSENT')),
    stall_id  bigint,
    free      integer[] NOT NULL DEFAULT '{}', -- the numbers of the stalls offered
    at        timestamptz NOT NULL DEFAULT now(),
    by_user   text NOT NULL,
    PRIMARY KEY (market_id, date, seq),
    CONSTRAINT spunta_events_run FOREIGN KEY (market_id, date) REFERENCES spunta_runs (market_id, date),
    CHECK (market_id >> 48 = region_id),
    CHECK ((action = 'CHOSEN') = (stall_id IS NOT NULL))
);

-- Existing concessions take their stall's sector and are their own title;
-- a SOSPESA concession now holds its stall like an ATTIVA one. The tables
-- force row-level security on their owner too, so unless the migrating role
-- bypasses it this lifts FORCE for the transaction (as 00010 does).
-- +goose StatementBegin
DO $$
DECLARE
    bypass boolean := (SELECT rolsuper OR rolbypassrls FROM pg_roles WHERE rolname = current_user);
    t text;
BEGIN
    IF NOT bypass THEN
        FOREACH t IN ARRAY ARRAY['concessions', 'stalls', 'vendors', 'vendor_presences'] LOOP
            EXECUTE format('ALTER TABLE %I NO FORCE ROW LEVEL SECURITY', t);
        END LOOP;
    END IF;
    UPDATE concessions c SET sector = s.sector, title_id = c.id FROM stalls s WHERE s.id = c.stall_id;
    -- Every vendor already here is authorised in the sectors of its
    -- concessions (type A, issued by the market's comune) and, when it has
    -- been a spuntista, in both sectors (type B, by its own comune): the
    -- migration cannot know its real licences; offices correct them.
    INSERT INTO authorisations (id, region_id, vendor_id, type, sector, comune)
    SELECT dms.next_id('authorisations', x.region_id), x.region_id, x.vendor_id, x.type, x.sector, x.comune
    FROM (
        SELECT DISTINCT c.region_id, c.vendor_id, 'A' AS type, c.sector, c.comune FROM concessions c
        UNION
        SELECT v.region_id, v.id, 'B', s.sector, v.comune
        FROM vendors v CROSS JOIN (VALUES ('ALIMENTARE'), ('NON_ALIMENTARE')) s (sector)
        WHERE EXISTS (SELECT FROM vendor_presences p WHERE p.vendor_id = v.id AND p.kind = 'SPUNTA')
    ) x
    ORDER BY x.vendor_id, x.type, x.sector, x.comune;
    IF NOT bypass THEN
        FOREACH t IN ARRAY ARRAY['concessions', 'stalls', 'vendors', 'vendor_presences'] LOOP
            EXECUTE format('ALTER TABLE %I FORCE ROW LEVEL SECURITY', t);
        END LOOP;
    END IF;
END
$$;
-- +goose StatementEnd
ALTER TABLE concessions
    ALTER COLUMN sector SET NOT NULL,
    ALTER COLUMN title_id SET NOT NULL,
    ADD CONSTRAINT concessions_title_region_check CHECK (title_id >> 48 = region_id),
    DROP CONSTRAINT concessions_one_active,
    -- The constraint keeps its name, which the registry maps to its 409:
    -- at most one concession holds a stall at any day of its term (with
    -- its legal extension), ATTIVA or SOSPESA.
    ADD CONSTRAINT concessions_one_active EXCLUDE USING gist (
        stall_id WITH =, daterange(valid_from, coalesce(extended_to, valid_to), '[]') WITH &&
    ) WHERE (status IN ('ATTIVA', 'SOSPESA'));
-- dms.concession_defaults gives a new concession its stall's sector when it
-- names none (a stall its writer cannot see, or of another market, is the
-- foreign key's violation), and makes it its own title when it follows none.
-- +goose StatementBegin
CREATE FUNCTION dms.concession_defaults() RETURNS trigger
LANGUAGE plpgsql AS $$
BEGIN
    IF NEW.sector IS NULL THEN
        NEW.sector := (SELECT s.sector FROM public.stalls s WHERE s.id = NEW.stall_id AND s.market_id = NEW.market_id);
        IF NEW.sector IS NULL THEN
            -- The foreign key would say the same, after this trigger.
            RAISE EXCEPTION 'a concession names a stall that is not of its market'
                USING ERRCODE = 'foreign_key_violation', SCHEMA = 'public', TABLE = 'concessions', CONSTRAINT = 'concessions_stall';
        END IF;
    END IF;
    IF NEW.title_id IS NULL THEN
        NEW.title_id := NEW.id;
    END IF;
    RETURN NEW;
END
$$;
-- +goose StatementEnd
CREATE TRIGGER concession_defaults BEFORE INSERT ON concessions
    FOR EACH ROW EXECUTE FUNCTION dms.concession_defaults();
CREATE INDEX concessions_title ON concessions (title_id, valid_from);
CREATE INDEX concessions_follows ON concessions (follows_id) WHERE follows_id IS NOT NULL;
CREATE INDEX concessions_decadenza ON concessions (region_id, decadenza_proposed_on) WHERE decadenza_proposed_on IS NOT NULL;

-- dms.regolamento returns market m's regolamento: its row, or the national
-- defaults (ranking never reset, ties by registration then a draw, sectors
-- apply, the call at 08:00, the national absence limit).
-- +goose StatementBegin
CREATE FUNCTION dms.regolamento(m bigint) RETURNS TABLE (
    ranking_reset text, ranking_from date, tie_breaks text[], sectors boolean, call_time time, absence_limit integer)
LANGUAGE sql STABLE AS $$
    SELECT coalesce(x.ranking_reset, 'NEVER'), x.ranking_from, coalesce(x.tie_breaks, '{REGISTRATION,DRAW}'),
        coalesce(x.sectors, true), coalesce(x.call_time, '08:00'), x.absence_limit
    FROM (SELECT m) k (market_id) LEFT JOIN public.market_regolamenti x ON x.market_id = k.market_id
$$;
-- +goose StatementEnd

-- dms.held_days returns the days from first to last (inclusive) on which
-- market m was held: recorded HELD, or with a presence recorded (the
-- presence_daily rollup), and not recorded CANCELLED. Presences recorded
-- before market days were (migration 00014) so count as held days.
-- +goose StatementBegin
CREATE FUNCTION dms.held_days(m bigint, first date, last date) RETURNS SETOF date
LANGUAGE sql STABLE AS $$
    SELECT d.date FROM public.market_days d WHERE d.market_id = m AND d.date BETWEEN first AND last AND d.status = 'HELD'
    UNION
    SELECT p.date FROM public.presence_daily p WHERE p.market_id = m AND p.date BETWEEN first AND last AND p.n > 0
    EXCEPT
    SELECT d.date FROM public.market_days d WHERE d.market_id = m AND d.date BETWEEN first AND last AND d.status = 'CANCELLED'
$$;
-- +goose StatementEnd

-- dms.absence_limit returns the national limit of unjustified absences in
-- year y for market m: more than four months of the year's market days (a
-- third of the days of its weekdays in that year) makes a holder decadent
-- (D.Lgs. 114/1998 art. 29 c.4(b)), unless its regolamento sets a number.
-- +goose StatementBegin
CREATE FUNCTION dms.absence_limit(m bigint, y integer) RETURNS integer
LANGUAGE sql STABLE AS $$
    SELECT coalesce((SELECT r.absence_limit FROM dms.regolamento(m) r),
        (SELECT count(*)::integer / 3
         FROM generate_series(make_date(y, 1, 1), make_date(y, 12, 31), interval '1 day') g (d)
         WHERE extract(isodow FROM g.d)::smallint = ANY ((SELECT mk.days FROM public.markets mk WHERE mk.id = m)::smallint[])))
$$;
-- +goose StatementEnd

-- Row-level security: the market's tables narrow by region, province,
-- comune and market for dms_app, by region for dms_region (as 00005);
-- authorisations are the region's registry, like vendors.
-- +goose StatementBegin
DO $$
DECLARE
    t text;
BEGIN
    FOREACH t IN ARRAY ARRAY['market_regolamenti', 'market_days', 'absence_justifications', 'spunta_events'] LOOP
        EXECUTE format('ALTER TABLE %I ENABLE ROW LEVEL SECURITY', t);
        EXECUTE format('ALTER TABLE %I FORCE ROW LEVEL SECURITY', t);
        EXECUTE format($p$CREATE POLICY %I ON %I TO dms_app
            USING (region_id = (SELECT dms.scope_region())
               AND ((SELECT dms.scope_text('dms.province')) IS NULL OR left(comune, 3) = (SELECT dms.scope_text('dms.province')))
               AND ((SELECT dms.scope_text('dms.comune')) IS NULL OR comune = (SELECT dms.scope_text('dms.comune')))
               AND ((SELECT dms.scope_market()) IS NULL OR market_id = (SELECT dms.scope_market())))$p$,
            t || '_scope', t);
        EXECUTE format('CREATE POLICY %I ON %I FOR SELECT TO dms_region USING (region_id = (SELECT dms.scope_region()))',
            t || '_region', t);
        EXECUTE format('GRANT SELECT ON %I TO dms_region', t);
        EXECUTE format('GRANT SELECT, INSERT ON %I TO dms_app', t);
    END LOOP;
END
$$;
-- +goose StatementEnd
ALTER TABLE authorisations ENABLE ROW LEVEL SECURITY;
ALTER TABLE authorisations FORCE ROW LEVEL SECURITY;
CREATE POLICY authorisations_scope ON authorisations USING (region_id = (SELECT dms.scope_region()));
GRANT SELECT ON authorisations TO dms_region;
GRANT SELECT, INSERT, DELETE ON authorisations TO dms_app;
GRANT UPDATE (ranking_reset, ranking_from, tie_breaks, sectors, call_time, absence_limit, updated_at) ON market_regolamenti TO dms_app;
GRANT UPDATE (status, reason, call_at, updated_by, updated_at) ON market_days TO dms_app;
GRANT UPDATE (reason, note, recorded_by, recorded_at) ON absence_justifications TO dms_app;
GRANT DELETE ON absence_justifications TO dms_app;
GRANT UPDATE (sector, reserved_for) ON stalls TO dms_app;
GRANT UPDATE (registered_on, categories) ON vendors TO dms_app;
GRANT UPDATE (extended_to, decadenza_proposed_on, decadenza_absences) ON concessions TO dms_app;
GRANT UPDATE (outcome) ON vendor_presences TO dms_app;
GRANT UPDATE (status, seed) ON spunta_runs TO dms_app;
GRANT EXECUTE ON FUNCTION dms.regolamento(bigint), dms.held_days(bigint, date, date), dms.absence_limit(bigint, integer)
    TO dms_app, dms_region;

-- +goose Down
DROP TRIGGER concession_defaults ON concessions;
DROP FUNCTION dms.concession_defaults();
DROP FUNCTION dms.absence_limit(bigint, integer);
DROP FUNCTION dms.held_days(bigint, date, date);
DROP FUNCTION dms.regolamento(bigint);
DROP TABLE spunta_events, absence_justifications, market_days, authorisations, market_regolamenti;
ALTER TABLE concessions
    DROP CONSTRAINT concessions_one_active,
    ADD CONSTRAINT concessions_one_active EXCLUDE USING gist (
        stall_id WITH =, daterange(valid_from, valid_to, '[]') WITH &&
    ) WHERE (status = 'ATTIVA');
DROP INDEX concessions_title, concessions_follows, concessions_decadenza;
ALTER TABLE concessions
    DROP COLUMN decadenza_absences,
    DROP COLUMN decadenza_proposed_on,
    DROP COLUMN extended_to,
    DROP COLUMN follows_by,
    DROP COLUMN follows_id,
    DROP COLUMN title_id,
    DROP COLUMN sector,
    DROP CONSTRAINT concessions_status_check,
    ADD CONSTRAINT concessions_status_check CHECK (status IN ('ATTIVA', 'SOSPESA', 'REVOCATA', 'CESSATA', 'SCADUTA'));
ALTER TABLE spunta_runs DROP COLUMN seed, DROP COLUMN status;
ALTER TABLE vendor_presences DROP COLUMN outcome;
ALTER TABLE vendors DROP COLUMN categories, DROP COLUMN registered_on;
ALTER TABLE stalls DROP COLUMN reserved_for, DROP COLUMN sector;
-- +goose StatementBegin
DO $$
DECLARE
    r int;
BEGIN
    FOR r IN 1..20 LOOP
        EXECUTE format('DROP SEQUENCE dms.authorisations_id_%s', lpad(r::text, 2, '0'));
    END LOOP;
END
$$;
-- +goose StatementEnd
