-- coupon.redemptions carries one order's redemption per record (it replaced
-- coupon.usage, which listed every redemption of a coupon in each record):
-- each row keeps the version (coupon command offset) it was written from,
-- so a record older than the row changes nothing.
ALTER TABLE coupon_redemptions ADD COLUMN version bigint NOT NULL DEFAULT 0;
