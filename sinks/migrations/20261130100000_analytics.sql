-- Analytics (written by the analytics sinks, sinks/src/analytics/): facts,
-- one row per entity, upserted from the topics and keyed by the entity, so
-- a redelivered or replayed record rewrites its row and never adds one.
-- Every aggregate is a view over the facts: nothing is ever incremented,
-- so nothing can be counted twice. Each fact carries the version of the
-- record it was last written from and never moves backwards.

-- A cart, from its first snapshot on cart.snapshots.
CREATE TABLE analytics_carts (
    cart_token    text        PRIMARY KEY,
    created_at    timestamptz NOT NULL,
    currency      text        NOT NULL,
    owner_user_id text,
    status        text        NOT NULL,
    order_token   text,
    version       bigint      NOT NULL,
    updated_at    timestamptz NOT NULL
);
CREATE INDEX analytics_carts_by_day ON analytics_carts (created_at);

-- An order, from order.snapshots: placed when first seen, paid at its
-- first accepted transition to PAID. Money is the order's total in minor
-- units and, exactly, in major units (NUMERIC, from the currency's ISO
-- 4217 exponent): NOT NULL, so a currency this system cannot price is
-- refused (and dead-lettered) rather than summed with a guessed exponent.
CREATE TABLE analytics_orders (
    order_token    text        PRIMARY KEY,
    cart_token     text        NOT NULL,
    buyer_user_id  text,
    status         text        NOT NULL,
    currency       char(3)     NOT NULL,
    minor_exponent smallint    NOT NULL,
    subtotal_minor bigint      NOT NULL,
    discount_minor bigint      NOT NULL,
    tax_minor      bigint      NOT NULL,
    total_minor    bigint      NOT NULL,
    total          numeric     NOT NULL,
    placed_at      timestamptz NOT NULL,
    paid_at        timestamptz,
    version        bigint      NOT NULL,
    updated_at     timestamptz NOT NULL
);
CREATE INDEX analytics_orders_paid ON analytics_orders (paid_at) WHERE paid_at IS NOT NULL;

-- A payment attempt of an order (from the same snapshots). `method` is
-- NULL until the order snapshot carries the payment method (it does not
-- yet); the views call that 'unknown'.
CREATE TABLE analytics_payment_attempts (
    order_token text        NOT NULL,
    attempt     integer     NOT NULL,
    gateway     text,
    method      text,
    outcome     text        NOT NULL,
    opened_at   timestamptz NOT NULL,
    version     bigint      NOT NULL,
    PRIMARY KEY (order_token, attempt)
);

-- An enrollment (or block of seats), from enrollment.snapshots.
CREATE TABLE analytics_enrollments (
    enrollment_id text        PRIMARY KEY,
    order_token   text        NOT NULL,
    buyer_key     text        NOT NULL,
    internship_id text        NOT NULL,
    seats         integer     NOT NULL,
    status        text        NOT NULL,
    enrolled_at   timestamptz NOT NULL,
    version       bigint      NOT NULL
);
CREATE INDEX analytics_enrollments_by_order ON analytics_enrollments (order_token);

-- A use of a coupon by an order (the use's identity: code and order), as
-- the coupon processor counts it on coupon.usage: reserved (held by an
-- order awaiting payment) or committed (a paid order). A reservation that
-- is released leaves the coupon's record, and so this table.
CREATE TABLE analytics_coupon_uses (
    code        text        NOT NULL,
    order_token text        NOT NULL,
    user_id     text,
    status      text        NOT NULL,
    at          timestamptz NOT NULL,
    version     bigint      NOT NULL,
    PRIMARY KEY (code, order_token)
);

-- The funnel: carts created → orders placed → paid → enrolled, with the
-- conversion of each step (NULL while its denominator is 0).
CREATE VIEW analytics_funnel AS
WITH n AS (
    SELECT (SELECT count(*) FROM analytics_carts) AS carts_created,
           (SELECT count(*) FROM analytics_orders) AS orders_placed,
           (SELECT count(*) FROM analytics_orders WHERE paid_at IS NOT NULL) AS orders_paid,
           (SELECT count(DISTINCT order_token) FROM analytics_enrollments) AS orders_enrolled
)
SELECT carts_created, orders_placed, orders_paid, orders_enrolled,
       round(orders_placed::numeric / NULLIF(carts_created, 0), 4) AS cart_to_order,
       round(orders_paid::numeric / NULLIF(orders_placed, 0), 4) AS order_to_paid,
       round(orders_enrolled::numeric / NULLIF(orders_paid, 0), 4) AS paid_to_enrolled,
       round(orders_paid::numeric / NULLIF(carts_created, 0), 4) AS cart_to_paid
FROM n;

-- Revenue by currency and UTC day of payment: paid orders' totals, gross
-- (a later refund stays in gross) and net of refunds, in minor units and
-- exactly in major units. Never summed across currencies.
CREATE VIEW analytics_revenue_daily AS
SELECT currency,
       (paid_at AT TIME ZONE 'UTC')::date AS day,
       count(*) AS paid_orders,
       sum(total_minor)::numeric AS gross_minor,
       sum(total) AS gross,
       count(*) FILTER (WHERE status = 'refunded') AS refunded_orders,
       coalesce(sum(total) FILTER (WHERE status <> 'refunded'), 0) AS net
FROM analytics_orders
WHERE paid_at IS NOT NULL
GROUP BY currency, (paid_at AT TIME ZONE 'UTC')::date;

-- Payment attempts by gateway and method: how each ended, and the success
-- rate among the decided ones (open attempts are not decided yet). An
-- attempt no gateway opened a session for is gateway 'none'.
CREATE VIEW analytics_payment_success AS
SELECT coalesce(gateway, 'none') AS gateway,
       coalesce(method, 'unknown') AS method,
       count(*) AS attempts,
       count(*) FILTER (WHERE outcome = 'paid') AS paid,
       count(*) FILTER (WHERE outcome = 'failed') AS failed,
       count(*) FILTER (WHERE outcome = 'expired') AS expired,
       count(*) FILTER (WHERE outcome = 'open') AS open,
       round(count(*) FILTER (WHERE outcome = 'paid')::numeric
             / NULLIF(count(*) FILTER (WHERE outcome <> 'open'), 0), 4) AS success_rate
FROM analytics_payment_attempts
GROUP BY 1, 2;

-- Coupon usage by code: committed uses (paid orders), reservations held,
-- distinct buyers, the last use.
CREATE VIEW analytics_coupon_usage AS
SELECT code,
       count(*) FILTER (WHERE status = 'committed') AS uses,
       count(*) FILTER (WHERE status = 'reserved') AS held,
       count(DISTINCT user_id) AS buyers,
       max(at) AS last_at
FROM analytics_coupon_uses
GROUP BY code;
