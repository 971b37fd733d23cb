-- A cart reopened after an order placed from it failed for a coupon: how
-- many times (the next order's token derives from it), and the coupons
-- refused at the last placement, each a checkout blocker while applied.
ALTER TABLE carts ADD COLUMN placements int NOT NULL DEFAULT 0;
ALTER TABLE carts ADD COLUMN refused_coupons jsonb NOT NULL DEFAULT '[]'::jsonb;

-- A cart yields one order per placement now (a cart reopened after its
-- order failed for a coupon is placed again as a new order): the orders of
-- a cart are looked up by it, no longer unique.
DROP INDEX orders_by_cart;
CREATE INDEX orders_by_cart ON orders (cart_token);
