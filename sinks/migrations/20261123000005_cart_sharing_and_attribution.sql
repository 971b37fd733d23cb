-- Sharing, attribution and merging.
ALTER TABLE carts
    ADD COLUMN share_token text,
    ADD COLUMN device_id   text,
    ADD COLUMN analytics   jsonb NOT NULL DEFAULT '{}'::jsonb,
    ADD COLUMN merged_into text;
CREATE UNIQUE INDEX carts_share_token ON carts (share_token) WHERE share_token IS NOT NULL;
CREATE INDEX carts_active_by_owner ON carts (owner_user_id, updated_at DESC) WHERE status = 'active' AND owner_user_id IS NOT NULL;
