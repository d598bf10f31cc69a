-- Keep accounts.updated_at honest. The body holds semicolons inside dollar quotes:
-- the statement splitter must keep it whole.
CREATE FUNCTION touch_updated_at() RETURNS trigger
LANGUAGE plpgsql AS $body$
BEGIN
    NEW.updated_at := now();
    RETURN NEW;
END;
$body$;

CREATE TRIGGER accounts_touch_updated_at
    BEFORE UPDATE ON accounts
    FOR EACH ROW EXECUTE FUNCTION touch_updated_at();
