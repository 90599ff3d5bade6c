//! The services' PostgreSQL pools, guarded against a connection that comes
//! back to the pool inside a transaction nobody will end.
//!
//! sqlx 0.9.0 (transact-rs/sqlx#4393, fixed upstream by #4394, not yet
//! released) loses track of a `BEGIN` whose future is dropped while the
//! statement is on the wire — an HTTP client hanging up, a timeout, a
//! cancelled task. The connection returns to the pool with the server-side
//! transaction open, and the next borrower's statements run inside it:
//! they report success and are never committed, vanishing when the
//! connection closes. Found by the chaos run: the gateway's idempotency
//! claims of four payments were lost while their events were published.
//!
//! The guard asks the server on every release whether a transaction is
//! open (`now()`, the transaction's start, equals `statement_timestamp()`
//! only for a statement that began its own transaction) and closes such a
//! connection, which rolls the stale transaction back before anyone else
//! can write into it.

use sqlx::PgPool;
use sqlx::postgres::PgPoolOptions;

/// A pool of at most `connections`, with the guard.
pub fn options(connections: u32) -> PgPoolOptions {
    PgPoolOptions::new()
        .max_connections(connections)
        .after_release(|connection, _| {
            Box::pin(async move {
                let outside_transaction: bool =
                    sqlx::query_scalar("SELECT now() = statement_timestamp()")
                        .fetch_one(&mut *connection)
                        .await?;
                if !outside_transaction {
                    tracing::warn!(
                        "a pooled connection came back inside an abandoned transaction; closing it"
                    );
                }
                Ok(outside_transaction)
            })
        })
}

pub async fn connect(url: &str, connections: u32) -> Result<PgPool, sqlx::Error> {
    options(connections).connect(url).await
}
