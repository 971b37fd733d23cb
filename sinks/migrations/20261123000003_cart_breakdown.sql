-- The full price breakdown of a cart: every number in the total is a row
-- or a column here.
ALTER TABLE carts
    ADD COLUMN discount_total_minor bigint  NOT NULL DEFAULT 0,
    ADD COLUMN tax_total_minor      bigint  NOT NULL DEFAULT 0,
    ADD COLUMN tax_inclusive        boolean NOT NULL DEFAULT false,
    ADD COLUMN buyer_country        char(2),
    ADD COLUMN buyer_state          text,
    ADD COLUMN buyer_gstin          text,
    ADD COLUMN fx_base              char(3),
    ADD COLUMN fx_rate              numeric,
    ADD COLUMN fx_as_of             timestamptz;

ALTER TABLE cart_items
    ADD COLUMN base_unit_price_minor bigint  NOT NULL DEFAULT 0,
    ADD COLUMN line_subtotal_minor   bigint  NOT NULL DEFAULT 0,
    ADD COLUMN line_discount_minor   bigint  NOT NULL DEFAULT 0,
    ADD COLUMN tax_class             text    NOT NULL DEFAULT 'standard',
    ADD COLUMN available             boolean NOT NULL DEFAULT true;

CREATE TABLE cart_tax_lines (
    cart_token   text    NOT NULL REFERENCES carts (cart_token) ON DELETE CASCADE,
    position     integer NOT NULL,
    name         text    NOT NULL,
    rate         numeric NOT NULL,
    currency     char(3) NOT NULL,
    amount_minor bigint  NOT NULL,
    PRIMARY KEY (cart_token, position)
);
