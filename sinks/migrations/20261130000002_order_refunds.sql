-- Orders show where the buyer's emails go, a payment that landed after
-- the order expired (late_payment: enrolled | refund_due) and the order's
-- refund (status requested | pending | processed | failed, reason, who,
-- gateway, refund id, failure).
ALTER TABLE orders
    ADD COLUMN buyer_email  text,
    ADD COLUMN late_payment text,
    ADD COLUMN refund       jsonb;
