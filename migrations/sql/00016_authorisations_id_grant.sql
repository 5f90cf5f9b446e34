-- dms_app numbers new authorisations (dms.next_id('authorisations', r)),
-- as it numbers every other table's rows (00001 granted the sequences of
-- its time; 00014 created the authorisations' sequences without it).
-- +goose Up
-- +goose StatementBegin
DO $$
DECLARE
    r int;
BEGIN
    FOR r IN 1..20 LOOP
        EXECUTE format('GRANT USAGE ON SEQUENCE dms.authorisations_id_%s TO dms_app', lpad(r::text, 2, '0'));
    END LOOP;
END
$$;
-- +goose StatementEnd

-- +goose Down
-- +goose StatementBegin
DO $$
DECLARE
    r int;
BEGIN
    FOR r IN 1..20 LOOP
        EXECUTE format('REVOKE USAGE ON SEQUENCE dms.authorisations_id_%s FROM dms_app', lpad(r::text, 2, '0'));
    END LOOP;
END
$$;
-- +goose StatementEnd
