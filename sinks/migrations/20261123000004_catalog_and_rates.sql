-- The catalog and FX rates as the API reads them (the estimate endpoint,
-- catalog listings). Written by the catalog and rates sinks; `source_offset`
-- is the record's offset in its compacted topic, so an older record never
-- overwrites a newer one.
CREATE TABLE internships (
    internship_id  text        PRIMARY KEY,
    title          text        NOT NULL,
    category       text        NOT NULL,
    currency       char(3)     NOT NULL,
    price_minor    bigint      NOT NULL CHECK (price_minor >= 0),
    tax_class      text        NOT NULL,
    active         boolean     NOT NULL,
    updated_at     timestamptz NOT NULL,
    source_offset  bigint      NOT NULL
);

CREATE TABLE fx_rates (
    quote          char(3)     PRIMARY KEY,
    base           char(3)     NOT NULL,
    rate           numeric     NOT NULL CHECK (rate > 0),
    as_of          timestamptz NOT NULL,
    source_offset  bigint      NOT NULL
);
