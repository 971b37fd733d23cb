-- The read model of carts, written only by the carts sink.
-- Money is stored as integer minor units with the currency beside it.

CREATE TABLE carts (
    cart_token            text        PRIMARY KEY,
    -- The offset of the last command applied; rows only move forward.
    version               bigint      NOT NULL,
    event_id              uuid        NOT NULL,
    status                text        NOT NULL CHECK (status IN ('active', 'converted', 'expired', 'merged')),
    currency              char(3)     NOT NULL,
    subtotal_minor        bigint      NOT NULL,
    total_minor           bigint      NOT NULL,
    created_at            timestamptz NOT NULL,
    updated_at            timestamptz NOT NULL,
    last_command_id       text        NOT NULL,
    rejection_command_id  text,
    rejection_code        integer,
    rejection_message     text,
    materialized_at       timestamptz NOT NULL DEFAULT now()
);

CREATE TABLE cart_items (
    cart_token        text    NOT NULL REFERENCES carts (cart_token) ON DELETE CASCADE,
    position          integer NOT NULL,
    internship_id     text    NOT NULL,
    title             text    NOT NULL,
    quantity          integer NOT NULL CHECK (quantity > 0),
    currency          char(3) NOT NULL,
    unit_price_minor  bigint  NOT NULL,
    line_total_minor  bigint  NOT NULL,
    PRIMARY KEY (cart_token, internship_id)
);
