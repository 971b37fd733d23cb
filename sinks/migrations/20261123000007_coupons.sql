-- Coupons: the definitions (written by the coupons sink) and what each
-- cart has applied (written by the carts sink).
CREATE TABLE coupons (
    code           text        PRIMARY KEY,
    name           text        NOT NULL,
    kind           text        NOT NULL,
    definition     jsonb       NOT NULL,
    active         boolean     NOT NULL,
    valid_from     timestamptz,
    valid_until    timestamptz,
    updated_at     timestamptz NOT NULL,
    source_offset  bigint      NOT NULL
);

ALTER TABLE carts ADD COLUMN coupons jsonb NOT NULL DEFAULT '[]'::jsonb;
ALTER TABLE cart_items ADD COLUMN category text NOT NULL DEFAULT '';

CREATE TABLE cart_discounts (
    cart_token   text    NOT NULL REFERENCES carts (cart_token) ON DELETE CASCADE,
    position     integer NOT NULL,
    code         text    NOT NULL,
    name         text    NOT NULL,
    currency     char(3) NOT NULL,
    amount_minor bigint  NOT NULL,
    PRIMARY KEY (cart_token, position)
);
