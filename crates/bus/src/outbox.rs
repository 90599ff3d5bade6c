//! The transactional outbox: the events a handler stages are written to the
//! service's PostgreSQL in the same transaction as its effects, and a relay
//! publishes them, deleting each row only after the broker acked it. A crash
//! anywhere leaves either the decision and its events, or neither; a crash
//! after the ack and before the delete sends a row again with the same
//! `eventId`, which idempotent consumers drop. This is what Debezium's outbox
//! does through change data capture, without a connector to run: brokers
//! without transactions (nisshi) lose nothing.
//!
//! The relay keeps each key's events in the order they were decided, with
//! any number of replicas: a pass holds a transaction-scoped advisory lock,
//! so one replica publishes at a time, and within a pass one key's rows are
//! sent one after another, stopping at the first that fails. Each row has
//! its own outcome: acked rows are deleted, a row the broker refuses for good
//! (or that cannot be read) is moved to `bus_outbox_parked` with its error,
//! counted and logged, and never blocks the rows behind it; a row that
//! failed transiently waits for the next pass.

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::Duration;

use base64::Engine as _;
use base64::engine::general_purpose::STANDARD as BASE64;
use futures::future::join_all;
use rdkafka::message::{Header, OwnedHeaders};
use sqlx::{Connection as _, PgConnection, PgPool};
use tokio::sync::Notify;
use tokio_util::sync::CancellationToken;

use crate::error::{HandlerError, ProduceError};
use crate::handler::{Emitter, Staged};
use crate::headers::HeaderList;
use crate::metrics::METRICS;
use crate::pool::Warm;
use crate::producer::{Prepared, Producer};

/// Rows one pass publishes at most.
const BATCH: i64 = 500;

/// The advisory lock relays of one database take while publishing
/// ("paystrea" in ASCII: any constant will do, as long as it is one).
const RELAY_LOCK: i64 = 0x7061_7973_7472_6561;

/// Stages events in a transaction and wakes the relay once it commits.
#[derive(Clone)]
pub struct Outbox {
    producer: Producer,
    wake: Arc<Notify>,
}

/// What one pass did.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub struct Pass {
    pub published: usize,
    pub parked: usize,
    /// Rows that failed transiently and stay for the next pass.
    pub failed: usize,
    /// Another relay held the lock: nothing was looked at.
    pub busy: bool,
}

// Header values are bytes; base64 keeps any of them intact in JSONB. The
// rows go to and from the database as JSON text read straight into pairs:
// a `serde_json::Value` tree per row each way was 2% of a relaying
// service's CPU.
fn headers_to_json(headers: &HeaderList) -> Result<String, serde_json::Error> {
    let pairs: Vec<(&str, String)> = headers
        .iter()
        .map(|(name, value)| (name.as_str(), BASE64.encode(value)))
        .collect();
    serde_json::to_string(&pairs)
}

/// One `[name, base64]` pair of a row's headers, borrowed from the row's
/// text where it holds no escapes (header names and base64 never do).
#[derive(serde::Deserialize)]
struct Pair<'a>(
    #[serde(borrow)] std::borrow::Cow<'a, str>,
    #[serde(borrow)] std::borrow::Cow<'a, str>,
);

/// A row's headers straight into librdkafka's list, which copies them
/// anyway: a `String` per name and per value and a [`HeaderList`] in
/// between were three allocations per header of every event relayed.
fn headers_from_json(text: &str) -> Result<OwnedHeaders, String> {
    let pairs: Vec<Pair<'_>> = serde_json::from_str(text)
        .map_err(|error| format!("headers {text} are not [name, base64] pairs: {error}"))?;
    let mut value = Vec::new();
    let mut headers = OwnedHeaders::new_with_capacity(pairs.len());
    for Pair(name, encoded) in &pairs {
        value.clear();
        BASE64
            .decode_vec(encoded.as_bytes(), &mut value)
            .map_err(|error| format!("header {name}: {error}"))?;
        headers = headers.insert(Header {
            key: name,
            value: Some(&value),
        });
    }
    Ok(headers)
}

#[derive(sqlx::FromRow)]
struct Row {
    id: i64,
    topic: String,
    key: Option<Vec<u8>>,
    value: Vec<u8>,
    /// The JSONB column as text.
    headers: String,
    age_seconds: f64,
}

/// What became of one row in a pass.
enum Outcome {
    Acked,
    Parked(String),
    Failed(String),
    /// Not sent: an earlier row of its key failed in this pass.
    Held,
}

impl Outbox {
    pub fn new(producer: Producer) -> Self {
        Self {
            producer,
            wake: Arc::new(Notify::new()),
        }
    }

    pub(crate) fn producer(&self) -> &Producer {
        &self.producer
    }

    /// Writes staged events to the outbox inside `transaction`, in one
    /// statement: their ids follow the order given, which is the order the
    /// relay sends one key's events in.
    pub(crate) async fn stage(
        &self,
        transaction: &mut PgConnection,
        events: impl IntoIterator<Item = Staged>,
    ) -> Result<(), HandlerError> {
        let prepared = self.producer.prepare_all(events).await?;
        let rows =
            RowColumns::new(prepared).map_err(|error| sqlx::Error::Encode(Box::new(error)))?;
        insert(transaction, &rows).await?;
        Ok(())
    }

    /// An [`Emitter`] for the events caused by `input`, an event this
    /// service consumed earlier, named for this service as producer.
    pub fn emitter(
        &self,
        input: paystream_contract::Envelope,
        input_headers: impl Into<crate::headers::SharedHeaders>,
    ) -> Emitter {
        Emitter::new(input, input_headers, self.producer.name())
    }

    /// Writes the events `emitter` built to the outbox inside `transaction`,
    /// for a service emitting outside a consumer's handler (an outcome that
    /// arrives by callback). Call [`Outbox::committed`] after the commit.
    pub async fn write(
        &self,
        transaction: &mut PgConnection,
        emitter: Emitter,
    ) -> Result<(), HandlerError> {
        self.write_all(transaction, [emitter]).await
    }

    /// [`Outbox::write`] for the events of many emitters (a batch of
    /// decisions in one transaction), in one statement, in their order.
    pub async fn write_all(
        &self,
        transaction: &mut PgConnection,
        emitters: impl IntoIterator<Item = Emitter>,
    ) -> Result<(), HandlerError> {
        let staged = emitters.into_iter().flat_map(Emitter::into_staged);
        self.stage(transaction, staged).await
    }

    /// The events of each `(owner, emitter)` as outbox rows in columns, for a
    /// service that writes them within a statement of its own: its effects,
    /// claims and events in one round trip instead of a transaction of
    /// several. `owner` says which of the statement's items a row belongs
    /// to, so the statement keeps only the rows of the items it wrote. Call
    /// [`Outbox::committed`] after the statement.
    pub async fn columns(
        &self,
        emitters: impl IntoIterator<Item = (i32, Emitter)>,
    ) -> Result<OutboxColumns, HandlerError> {
        let mut owners = Vec::new();
        let mut staged = Vec::new();
        for (owner, emitter) in emitters {
            let events = emitter.into_staged();
            owners.extend(std::iter::repeat_n(owner, events.len()));
            staged.extend(events);
        }
        let prepared = self.producer.prepare_all(staged).await?;
        let rows = RowColumns::new(prepared)
            .map_err(|error| HandlerError::permanent(format!("outbox headers: {error}")))?;
        Ok(OutboxColumns { owners, rows })
    }

    /// Tells the relay that a transaction with staged events committed, so
    /// it publishes now rather than at its next poll.
    pub fn committed(&self) {
        self.wake.notify_one();
    }

    /// Publishes staged events until `shutdown`. Database and broker failures
    /// are retried with back-off; rows wait in the table meanwhile.
    pub async fn relay(&self, pool: PgPool, poll: Duration, shutdown: CancellationToken) {
        // One pass at a time, on a connection kept between passes.
        let warm = Warm::new(pool);
        let mut backoff = Duration::from_millis(100);
        loop {
            let wait = match self.publish_warm(&warm).await {
                Ok(pass) if pass.published + pass.parked > 0 && pass.failed == 0 => {
                    backoff = Duration::from_millis(100);
                    continue;
                }
                Ok(pass) if pass.failed == 0 => None,
                Ok(pass) => Some(format!("{} rows not acknowledged", pass.failed)),
                Err(error) => Some(error.to_string()),
            };
            if let Some(reason) = wait {
                tracing::warn!(%reason, retry_in_ms = backoff.as_millis() as u64, "outbox relay could not publish everything; will retry");
                tokio::select! {
                    () = tokio::time::sleep(backoff) => {}
                    () = shutdown.cancelled() => return,
                }
                backoff = (backoff * 2).min(Duration::from_secs(5));
                continue;
            }
            tokio::select! {
                () = self.wake.notified() => {}
                () = tokio::time::sleep(poll) => {}
                () = shutdown.cancelled() => {
                    // One last pass for what committed just before shutdown;
                    // whatever it leaves is sent by the next start.
                    if let Err(error) = self.publish_warm(&warm).await {
                        tracing::warn!(%error, "last outbox pass failed; the rows wait for the next start");
                    }
                    return;
                }
            }
        }
    }

    /// One pass over up to one batch of rows.
    pub async fn publish_batch(&self, pool: &PgPool) -> Result<Pass, PublishError> {
        self.publish_warm(&Warm::new(pool.clone())).await
    }

    /// [`Outbox::publish_batch`] on `warm`'s connection, kept for the next
    /// pass unless this one failed.
    async fn publish_warm(&self, warm: &Warm) -> Result<Pass, PublishError> {
        let pass = match warm.take().await {
            Ok(mut connection) => {
                let pass = self.try_publish_batch(&mut connection).await;
                connection.keep_if_ok(&pass);
                pass
            }
            Err(error) => Err(error.into()),
        };
        if pass.as_ref().map_or(true, |pass| pass.failed > 0) {
            METRICS.outbox_publish_failures.inc();
        }
        pass
    }

    async fn try_publish_batch(&self, connection: &mut PgConnection) -> Result<Pass, PublishError> {
        let mut transaction = connection.begin().await?;
        // The lock, then the read, as two statements. A statement reads from
        // the snapshot taken when it starts, so a lock taken inside the
        // reading statement can be granted after its snapshot: the relay
        // that held the lock has deleted and committed the rows it sent, and
        // this one would still see them and send them again (one row in 600
        // twice, in the two-relay test). Read after the lock is held, the
        // previous holder's commit is in the snapshot.
        let locked: bool = sqlx::query_scalar("SELECT pg_try_advisory_xact_lock($1)")
            .bind(RELAY_LOCK)
            .fetch_one(&mut *transaction)
            .await?;
        if !locked {
            return Ok(Pass {
                busy: true,
                ..Pass::default()
            });
        }
        let rows: Vec<Row> = sqlx::query_as(
            "SELECT id, topic, key, value, headers::text AS headers,
                    EXTRACT(EPOCH FROM clock_timestamp() - created_at)::float8 AS age_seconds
             FROM bus_outbox ORDER BY id LIMIT $1",
        )
        .bind(BATCH)
        .fetch_all(&mut *transaction)
        .await?;
        // The first row is the oldest waiting: ids follow commit order closely
        // enough for an alarm, and one relay publishes at a time.
        METRICS
            .outbox_oldest_pending_seconds
            .set(rows.first().map_or(0.0, |row| row.age_seconds.max(0.0)));
        if rows.is_empty() {
            return Ok(Pass::default());
        }
        let outcomes = self.send_in_key_order(&rows).await;
        let mut pass = Pass::default();
        let mut acked = Vec::new();
        for (row, outcome) in rows.iter().zip(outcomes) {
            match outcome {
                Outcome::Acked => {
                    acked.push(row.id);
                    METRICS
                        .outbox_published
                        .with_label_values(&[row.topic.as_str()])
                        .inc();
                }
                Outcome::Parked(error) => {
                    park(&mut transaction, row.id, &error).await?;
                    METRICS
                        .outbox_parked
                        .with_label_values(&[row.topic.as_str()])
                        .inc();
                    tracing::error!(outbox_id = row.id, topic = %row.topic, %error, "outbox row refused for good; parked in bus_outbox_parked");
                    pass.parked += 1;
                }
                Outcome::Failed(error) => {
                    sqlx::query(
                        "UPDATE bus_outbox SET attempts = attempts + 1, last_error = $2 WHERE id = $1",
                    )
                    .bind(row.id)
                    .bind(&error)
                    .execute(&mut *transaction)
                    .await?;
                    pass.failed += 1;
                }
                Outcome::Held => pass.failed += 1,
            }
        }
        pass.published = acked.len();
        sqlx::query("DELETE FROM bus_outbox WHERE id = ANY($1)")
            .bind(&acked)
            .execute(&mut *transaction)
            .await?;
        transaction.commit().await?;
        Ok(pass)
    }

    /// Sends the rows, each key's one at a time in id order and the keys
    /// side by side; the outcomes come back in the rows' order.
    async fn send_in_key_order(&self, rows: &[Row]) -> Vec<Outcome> {
        let mut by_key: BTreeMap<(&str, Option<&[u8]>), Vec<usize>> = BTreeMap::new();
        for (index, row) in rows.iter().enumerate() {
            by_key
                .entry((row.topic.as_str(), row.key.as_deref()))
                .or_default()
                .push(index);
        }
        let sends = by_key.into_values().map(|indices| async move {
            let mut outcomes = Vec::with_capacity(indices.len());
            let mut blocked = false;
            for index in indices {
                let outcome = if blocked {
                    Outcome::Held
                } else {
                    self.send(&rows[index]).await
                };
                blocked |= matches!(outcome, Outcome::Failed(_));
                outcomes.push((index, outcome));
            }
            outcomes
        });
        let mut outcomes: Vec<(usize, Outcome)> =
            join_all(sends).await.into_iter().flatten().collect();
        outcomes.sort_by_key(|(index, _)| *index);
        outcomes.into_iter().map(|(_, outcome)| outcome).collect()
    }

    async fn send(&self, row: &Row) -> Outcome {
        let headers = match headers_from_json(&row.headers) {
            Ok(headers) => headers,
            Err(error) => return Outcome::Parked(format!("unreadable headers: {error}")),
        };
        match self
            .producer
            .send_with_headers(&row.topic, row.key.as_deref(), &row.value, headers)
            .await
        {
            Ok(_) => Outcome::Acked,
            Err(error) if error.is_transient() => Outcome::Failed(error.to_string()),
            Err(error) => Outcome::Parked(error.to_string()),
        }
    }
}

/// Outbox rows as the columns of one multi-row insert, each with the place
/// of the item it belongs to ([`Outbox::columns`]).
#[derive(Debug, Default)]
pub struct OutboxColumns {
    owners: Vec<i32>,
    rows: RowColumns,
}

/// The columns of outbox rows, as arrays to bind.
#[derive(Debug, Default)]
struct RowColumns {
    topics: Vec<String>,
    keys: Vec<Vec<u8>>,
    values: Vec<Vec<u8>>,
    headers: Vec<String>,
}

impl RowColumns {
    fn new(prepared: Vec<Prepared>) -> Result<Self, serde_json::Error> {
        let mut columns = Self {
            topics: Vec::with_capacity(prepared.len()),
            keys: Vec::with_capacity(prepared.len()),
            values: Vec::with_capacity(prepared.len()),
            headers: Vec::with_capacity(prepared.len()),
        };
        for row in prepared {
            columns.headers.push(headers_to_json(&row.headers)?);
            columns.topics.push(row.topic);
            columns.keys.push(row.key);
            columns.values.push(row.value);
        }
        Ok(columns)
    }
}

impl OutboxColumns {
    /// The body of a data-modifying `WITH` item that inserts the rows whose
    /// owner `kept` (a set, such as `SELECT n FROM written`) holds, in the
    /// order given; the five columns are parameters `$first` to `$first + 4`,
    /// bound by [`OutboxColumns::bind`].
    pub fn insert_sql(first: usize, kept: &str) -> String {
        let [owner, topic, key, value, headers] = std::array::from_fn(|i| first + i);
        format!(
            "INSERT INTO bus_outbox (topic, key, value, headers)
             SELECT topic, key, value, headers::jsonb
             FROM UNNEST(${owner}::int4[], ${topic}::text[], ${key}::bytea[], ${value}::bytea[],
                         ${headers}::text[])
                 WITH ORDINALITY AS t (owner, topic, key, value, headers, n)
             WHERE t.owner IN ({kept})
             ORDER BY n"
        )
    }

    /// About how many bytes [`OutboxColumns::bind`] adds to a statement's
    /// arguments, for a caller that sizes their buffer once.
    pub fn encoded_len(&self) -> usize {
        let rows = &self.rows;
        let bytes = |column: &[Vec<u8>]| column.iter().map(|item| item.len() + 4).sum::<usize>();
        let text = |column: &[String]| column.iter().map(|item| item.len() + 4).sum::<usize>();
        self.owners.len() * 8
            + text(&rows.topics)
            + bytes(&rows.keys)
            + bytes(&rows.values)
            + text(&rows.headers)
    }

    /// Binds the five columns, in [`OutboxColumns::insert_sql`]'s order.
    pub fn bind<'q, O>(
        &'q self,
        query: sqlx::query::QueryAs<'q, sqlx::Postgres, O, sqlx::postgres::PgArguments>,
    ) -> sqlx::query::QueryAs<'q, sqlx::Postgres, O, sqlx::postgres::PgArguments> {
        query
            .bind(&self.owners)
            .bind(&self.rows.topics)
            .bind(&self.rows.keys)
            .bind(&self.rows.values)
            .bind(&self.rows.headers)
    }
}

/// One statement for any number of rows: a round trip per row was most of
/// what a batch of decisions cost its transaction. `ORDER BY ordinality`
/// hands the rows to the id sequence in the order given.
async fn insert(transaction: &mut PgConnection, rows: &RowColumns) -> Result<(), sqlx::Error> {
    if rows.topics.is_empty() {
        return Ok(());
    }
    sqlx::query(
        "INSERT INTO bus_outbox (topic, key, value, headers)
         SELECT topic, key, value, headers::jsonb
         FROM UNNEST($1::text[], $2::bytea[], $3::bytea[], $4::text[])
             WITH ORDINALITY AS t (topic, key, value, headers, n)
         ORDER BY n",
    )
    .bind(&rows.topics)
    .bind(&rows.keys)
    .bind(&rows.values)
    .bind(&rows.headers)
    .execute(transaction)
    .await
    .map(drop)
}

async fn park(transaction: &mut PgConnection, id: i64, error: &str) -> Result<(), sqlx::Error> {
    sqlx::query(
        "WITH moved AS (DELETE FROM bus_outbox WHERE id = $1 RETURNING *)
         INSERT INTO bus_outbox_parked (id, topic, key, value, headers, created_at, attempts, error)
         SELECT id, topic, key, value, headers, created_at, attempts + 1, $2 FROM moved",
    )
    .bind(id)
    .bind(error)
    .execute(transaction)
    .await
    .map(drop)
}

#[derive(Debug, thiserror::Error)]
pub enum PublishError {
    #[error("outbox database: {0}")]
    Database(#[from] sqlx::Error),
    #[error(transparent)]
    Produce(#[from] ProduceError),
}

#[cfg(test)]
mod tests {
    use super::*;
    use rdkafka::message::Headers as _;

    #[test]
    fn headers_round_trip_through_json() {
        let headers: HeaderList = vec![
            ("correlationId".into(), b"c-1".to_vec()),
            ("traceparent".into(), b"00-abc-def-01".to_vec()),
            ("correlationId".into(), b"repeated".to_vec()),
            ("binary".into(), vec![0, 159, 146, 150, 255]),
            // A name JSON must escape is read as an owned copy, not lost.
            ("quoted \"name\" \u{e9}".into(), b"v".to_vec()),
        ];
        let json = headers_to_json(&headers).unwrap();
        let read = headers_from_json(&json).unwrap();
        let read: HeaderList = read
            .iter()
            .map(|header| {
                (
                    header.key.to_owned(),
                    header.value.unwrap_or_default().to_vec(),
                )
            })
            .collect();
        assert_eq!(read, headers);
    }

    #[test]
    fn malformed_header_pairs_are_an_error_not_dropped() {
        for bad in [
            r#"{"a": "b"}"#,
            r#"[["name"]]"#,
            r#"[["name", "not base64!"]]"#,
            r#"[[1, "AA=="]]"#,
            r#"[["a", "AA==", "extra"]]"#,
            r#"[["a", "AA=="]"#,
        ] {
            assert!(headers_from_json(bad).is_err(), "{bad}");
        }
    }
}
