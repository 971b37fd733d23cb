//! The read model's wake-ups: the contract between the sinks, which say
//! "this key reached this version" once their transaction commits, and the
//! ingress, whose long-polls (`Prefer: wait`) sleep until then. Both sides
//! depend on this module, and neither on the other.

/// The Postgres channel the carts and orders sinks notify with
/// `<token>:<version>` (a cart or an order token) after each commit, and
/// the enrollments sink with `enrolled:<order token>:1`, so readers waiting
/// for a version wake at once.
pub const CART_VERSIONS_CHANNEL: &str = "cart_versions";

/// The key readers wait on for `order_token`'s enrollments; its "version"
/// is 1 once the order has any enrollment row.
pub fn enrolled_key(order_token: &str) -> String {
    format!("enrolled:{order_token}")
}

/// Wakes the readers waiting for these `(token, version)`s: the
/// notifications go out when the transaction `tx` commits, never before.
pub async fn notify_versions(
    tx: &mut sqlx::Transaction<'static, sqlx::Postgres>,
    changed: &[(String, i64)],
) -> Result<(), sqlx::Error> {
    let payloads: Vec<String> = changed.iter().map(|(t, v)| format!("{t}:{v}")).collect();
    sqlx::query("SELECT pg_notify($1, p) FROM UNNEST($2::text[]) AS p")
        .bind(CART_VERSIONS_CHANNEL)
        .bind(&payloads)
        .execute(&mut **tx)
        .await?;
    Ok(())
}
