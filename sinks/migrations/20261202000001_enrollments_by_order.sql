-- Readers waiting for an order's enrollments (GET /api/v1/me/enrollments
-- ?order=…, and the ingress's fallback poll of waited-on versions) look
-- enrollments up by order.
CREATE INDEX enrollments_by_order ON enrollments (order_token);
