-- The user a cart belongs to (null for a guest cart, authorized by its token).
ALTER TABLE carts ADD COLUMN owner_user_id text;
CREATE INDEX carts_owner_user_id ON carts (owner_user_id) WHERE owner_user_id IS NOT NULL;
