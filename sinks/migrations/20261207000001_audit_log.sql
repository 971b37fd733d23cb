-- The audit trail (written by the audit sink from audit.events): one row
-- per change of money or access, appended and never changed. The triggers
-- refuse UPDATE, DELETE and TRUNCATE to every role, the table's owner
-- included, so neither the application nor a slip at a psql prompt can
-- rewrite history; only dropping the trigger (a schema change, itself
-- visible) could. A redelivered event is the same row (ON CONFLICT DO
-- NOTHING on its derived id).
CREATE TABLE audit_log (
    event_id        text        PRIMARY KEY,
    at              timestamptz NOT NULL,
    action          text        NOT NULL,
    subject_kind    text        NOT NULL,
    subject_id      text        NOT NULL,
    subject_version bigint      NOT NULL,
    person          text,
    actor           text        NOT NULL,
    reason          text        NOT NULL,
    correlation_id  text        NOT NULL,
    amount_minor    bigint,
    currency        text,
    recorded_at     timestamptz NOT NULL DEFAULT now()
);
CREATE INDEX audit_log_by_subject ON audit_log (subject_kind, subject_id, at);
CREATE INDEX audit_log_by_person ON audit_log (person, at) WHERE person IS NOT NULL;
CREATE INDEX audit_log_by_time ON audit_log (at);

CREATE FUNCTION audit_log_is_append_only() RETURNS trigger
LANGUAGE plpgsql AS $$
BEGIN
    RAISE EXCEPTION 'audit_log is append-only: % refused', TG_OP
        USING ERRCODE = 'insufficient_privilege';
END
$$;
CREATE TRIGGER audit_log_no_update_or_delete
    BEFORE UPDATE OR DELETE ON audit_log
    FOR EACH ROW EXECUTE FUNCTION audit_log_is_append_only();
CREATE TRIGGER audit_log_no_truncate
    BEFORE TRUNCATE ON audit_log
    FOR EACH STATEMENT EXECUTE FUNCTION audit_log_is_append_only();
REVOKE UPDATE, DELETE, TRUNCATE ON audit_log FROM PUBLIC;
