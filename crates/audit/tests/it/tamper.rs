//! The log refuses to be rewritten; rewritten anyway (as its owner or a
//! superuser could), it no longer verifies, and `audit verify` names the
//! entry.

use paystream_audit::verify::Fault;
use paystream_testkit::pipeline::payments;
use sqlx::PgPool;

use crate::stand::Stand;

const EVENTS: i64 = 30;

async fn refused(pool: &PgPool, sql: &'static str) -> String {
    match sqlx::query(sql).execute(pool).await {
        Ok(done) => panic!("{sql} was allowed ({} rows)", done.rows_affected()),
        Err(error) => error.to_string(),
    }
}

/// Runs `sql` with the guards down, as the table's owner can: grants back,
/// triggers disabled; then puts them back.
pub async fn as_tamperer(pool: &PgPool, sql: &[String]) {
    let mut tx = pool.begin().await.unwrap();
    let statements = [
        "GRANT UPDATE, DELETE ON audit_entries TO CURRENT_USER",
        "ALTER TABLE audit_entries DISABLE TRIGGER USER",
    ]
    .map(str::to_owned)
    .into_iter()
    .chain(sql.iter().cloned())
    .chain(
        [
            "ALTER TABLE audit_entries ENABLE TRIGGER USER",
            "REVOKE UPDATE, DELETE ON audit_entries FROM CURRENT_USER",
        ]
        .map(str::to_owned),
    );
    for statement in statements {
        sqlx::query(sqlx::AssertSqlSafe(statement))
            .execute(&mut *tx)
            .await
            .unwrap();
    }
    tx.commit().await.unwrap();
}

#[tokio::test]
async fn a_tampered_entry_fails_verification_and_is_named() {
    let stand = Stand::new("audit-tamper").await;
    let audit = stand.start().await;
    stand
        .pipeline
        .producer
        .send_all(payments(6, EVENTS / 6))
        .await
        .unwrap();
    stand.await_entries(EVENTS).await;
    audit.stop().await.unwrap();
    assert!(
        paystream_audit::verify(&stand.pool)
            .await
            .unwrap()
            .is_clean()
    );

    // Without privileges: refused by the grants.
    for sql in [
        "UPDATE audit_entries SET payment_id = 'forged'",
        "DELETE FROM audit_entries",
        "TRUNCATE audit_entries",
    ] {
        let error = refused(&stand.pool, sql).await;
        assert!(error.contains("permission denied"), "{sql}: {error}");
    }
    // With them granted back: refused by the triggers.
    sqlx::query("GRANT UPDATE, DELETE, TRUNCATE ON audit_entries TO CURRENT_USER")
        .execute(&stand.pool)
        .await
        .unwrap();
    for sql in [
        "UPDATE audit_entries SET payment_id = 'forged'",
        "DELETE FROM audit_entries",
        "TRUNCATE audit_entries",
    ] {
        let error = refused(&stand.pool, sql).await;
        assert!(error.contains("append-only"), "{sql}: {error}");
    }
    sqlx::query("REVOKE UPDATE, DELETE, TRUNCATE ON audit_entries FROM CURRENT_USER")
        .execute(&stand.pool)
        .await
        .unwrap();
    assert_eq!(stand.entries().await, Some(EVENTS));

    // One chain with at least three entries: its second entry's amount is
    // changed in the stored Avro bytes (the last byte of the datum).
    let (topic, partition, offset): (String, i32, i64) = sqlx::query_as(
        "SELECT topic, \"partition\", \"offset\" FROM audit_entries WHERE seq = 2 \
         AND (topic, \"partition\") IN (SELECT topic, \"partition\" FROM audit_chains WHERE seq >= 3) \
         ORDER BY topic, \"partition\" LIMIT 1",
    )
    .fetch_one(&stand.pool)
    .await
    .unwrap();
    as_tamperer(
        &stand.pool,
        &[format!(
            "UPDATE audit_entries SET value = value || '\\x00'::bytea \
             WHERE topic = '{topic}' AND \"partition\" = {partition} AND seq = 2"
        )],
    )
    .await;

    let report = paystream_audit::verify(&stand.pool).await.unwrap();
    let bad: Vec<_> = report.mismatches().collect();
    assert_eq!(bad.len(), 1, "{report:#?}");
    assert_eq!(
        (bad[0].topic.as_str(), bad[0].partition),
        (topic.as_str(), partition)
    );
    let mismatch = bad[0].mismatch.clone().unwrap();
    assert_eq!(
        (mismatch.seq, mismatch.offset, mismatch.fault),
        (2, Some(offset), Fault::Hash)
    );
    let (ok, output) = stand.verify_binary(&[]).await;
    assert!(!ok, "exit code 1 on a mismatch: {output}");
    let named = format!("MISMATCH at seq 2 ({topic}/{partition} offset {offset})");
    assert!(output.contains(&named), "{named} not in {output}");

    // An entry deleted from another chain: the gap is named.
    let (other, other_partition): (String, i32) = sqlx::query_as(
        "SELECT topic, \"partition\" FROM audit_chains WHERE seq >= 2 \
         AND NOT (topic = $1 AND \"partition\" = $2) LIMIT 1",
    )
    .bind(&topic)
    .bind(partition)
    .fetch_one(&stand.pool)
    .await
    .unwrap();
    as_tamperer(
        &stand.pool,
        &[format!("DELETE FROM audit_entries WHERE topic = '{other}' AND \"partition\" = {other_partition} AND seq = 1")],
    )
    .await;
    let report = paystream_audit::verify(&stand.pool).await.unwrap();
    assert_eq!(report.mismatches().count(), 2, "{report:#?}");
    let gap = report
        .chains
        .iter()
        .find(|c| c.topic == other && c.partition == other_partition)
        .and_then(|c| c.mismatch.clone())
        .unwrap();
    assert_eq!((gap.seq, gap.fault), (2, Fault::Gap { expected: 1 }));
}
