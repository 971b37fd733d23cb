-- The order a converted cart was placed as (written by the carts sink).
ALTER TABLE carts ADD COLUMN order_token text;

-- Orders (written by the orders sink from order.snapshots): the order with
-- its frozen cart, its payment attempts and its audit trail.
CREATE TABLE orders (
    order_token          text        PRIMARY KEY,
    version              bigint      NOT NULL,
    event_id             uuid        NOT NULL,
    status               text        NOT NULL,
    cart_token           text        NOT NULL,
    buyer_user_id        text,
    currency             char(3)     NOT NULL,
    subtotal_minor       bigint      NOT NULL,
    discount_total_minor bigint      NOT NULL,
    tax_total_minor      bigint      NOT NULL,
    total_minor          bigint      NOT NULL,
    -- The cart as priced when the order was placed (the wire record as JSON).
    placed               jsonb       NOT NULL,
    -- The order's coupons and where their reservations stand:
    -- [{"code", "status": requested|reserved|refused|committed|released}].
    coupons              jsonb       NOT NULL DEFAULT '[]'::jsonb,
    success_url          text,
    cancel_url           text,
    rejection_command_id text,
    rejection_code       integer,
    rejection_message    text,
    created_at           timestamptz NOT NULL,
    updated_at           timestamptz NOT NULL
);
CREATE INDEX orders_by_buyer ON orders (buyer_user_id, created_at DESC) WHERE buyer_user_id IS NOT NULL;
CREATE UNIQUE INDEX orders_by_cart ON orders (cart_token);

CREATE TABLE order_attempts (
    order_token   text        NOT NULL REFERENCES orders (order_token) ON DELETE CASCADE,
    number        integer     NOT NULL,
    payment_token text        NOT NULL UNIQUE,
    status        text        NOT NULL,
    opened_at     timestamptz NOT NULL,
    expires_at    timestamptz NOT NULL,
    gateway       text,
    payment_ref   text,
    -- The payment session the gateway worker opened for the attempt.
    session_id      text,
    checkout_url    text,
    razorpay_key_id text,
    -- Every gateway call made for it: [{gateway, outcome, latency_ms, error}].
    calls         jsonb       NOT NULL DEFAULT '[]'::jsonb,
    PRIMARY KEY (order_token, number)
);

CREATE TABLE order_status_history (
    order_token    text        NOT NULL REFERENCES orders (order_token) ON DELETE CASCADE,
    seq            integer     NOT NULL,
    from_status    text,
    to_status      text        NOT NULL,
    reason         text        NOT NULL,
    actor          text        NOT NULL,
    correlation_id text        NOT NULL,
    at             timestamptz NOT NULL,
    refused_code   integer,
    PRIMARY KEY (order_token, seq)
);

-- Coupon uses (written by the coupon-usage sink from coupon.usage): every
-- order holding (reserved) or having used (committed) a coupon.
CREATE TABLE coupon_usage (
    code        text        PRIMARY KEY,
    version     bigint      NOT NULL,
    reserved    integer     NOT NULL,
    committed   integer     NOT NULL,
    updated_at  timestamptz NOT NULL
);

CREATE TABLE coupon_redemptions (
    code        text        NOT NULL REFERENCES coupon_usage (code) ON DELETE CASCADE,
    order_token text        NOT NULL,
    user_id     text,
    status      text        NOT NULL,
    at          timestamptz NOT NULL,
    PRIMARY KEY (code, order_token)
);
CREATE INDEX coupon_redemptions_by_user ON coupon_redemptions (code, user_id);
