-- Support cases (written by the support-cases sink from support.cases):
-- one row per case, never changed (a case is a fact; its handling is not
-- modelled yet), so a redelivered record changes nothing.
CREATE TABLE support_cases (
    case_id        uuid        PRIMARY KEY,
    order_token    text        NOT NULL,
    buyer_key      text        NOT NULL,
    buyer_user_id  text,
    buyer_email    text,
    kind           text        NOT NULL,
    code           text        NOT NULL,
    reason         text        NOT NULL,
    internship_id  text,
    opened_at      timestamptz NOT NULL,
    cause_event_id text        NOT NULL
);
CREATE INDEX support_cases_by_time ON support_cases (opened_at DESC);
CREATE INDEX support_cases_by_order ON support_cases (order_token);
