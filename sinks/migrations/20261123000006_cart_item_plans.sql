-- The billing period chosen for a line, if any.
ALTER TABLE cart_items
    ADD COLUMN plan_id    text,
    ADD COLUMN plan_value integer,
    ADD COLUMN plan_unit  text CHECK (plan_unit IN ('month', 'year'));
ALTER TABLE internships ADD COLUMN billing_periods jsonb NOT NULL DEFAULT '[]'::jsonb;
