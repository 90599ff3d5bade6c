//! Signed checkpoints catch what the chains alone cannot: a chain rewritten
//! from an entry on, every later hash and the head recomputed to match.

use std::path::PathBuf;

use paystream_audit::checkpoint::{FILE, Finding};
use paystream_audit::hash::{EntryFields, GENESIS};
use paystream_testkit::pipeline::payments;
use paystream_testkit::wait_until;
use serde_json::Value;
use tokio::process::Command;

use crate::stand::{Stand, WAIT};
use crate::tamper::as_tamperer;

const EVENTS: i64 = 12;

#[tokio::test]
async fn a_consistently_rewritten_chain_verifies_but_contradicts_a_signed_checkpoint() {
    let stand = Stand::new("audit-checkpoints").await;
    let dir = tempfile::tempdir().unwrap();
    let key = dir.path().join("checkpoint.key");
    let keygen = Command::new(env!("CARGO_BIN_EXE_audit"))
        .args(["keygen", "--out"])
        .arg(&key)
        .output()
        .await
        .unwrap();
    assert!(keygen.status.success());
    let public_key = String::from_utf8(keygen.stdout).unwrap().trim().to_owned();
    assert_eq!(public_key.len(), 64);

    let mut config = stand.config();
    config.checkpoint_key = Some(key);
    config.checkpoint_dir = Some(dir.path().to_owned());
    config.checkpoint_interval_ms = 100;
    let audit = stand.start_with(config).await;
    stand
        .pipeline
        .producer
        .send_all(payments(4, EVENTS / 4))
        .await
        .unwrap();
    stand.await_entries(EVENTS).await;
    let latest: Value = wait_until(WAIT, "a checkpoint of every entry", || async {
        let latest: Value = reqwest::get(format!("{}/v1/checkpoints/latest", audit.url()))
            .await
            .ok()?
            .json()
            .await
            .ok()?;
        let body: Value = serde_json::from_str(latest["body"].as_str()?).ok()?;
        let signed: i64 = body["heads"]
            .as_array()?
            .iter()
            .filter_map(|h| h["seq"].as_i64())
            .sum();
        (signed == EVENTS).then_some(latest)
    })
    .await;
    assert_eq!(latest["publicKey"], public_key);
    audit.stop().await.unwrap();
    let file: PathBuf = dir.path().join(FILE);
    let (count, findings) = paystream_audit::checkpoint::check(&stand.pool, &file, &public_key)
        .await
        .unwrap();
    assert!(count >= 1 && findings.is_empty(), "{count} {findings:?}");

    // Rewrite one chain from its first entry: a changed key, every hash after
    // it recomputed, the head moved along. The chain alone cannot tell.
    let (topic, partition): (String, i32) =
        sqlx::query_as("SELECT topic, \"partition\" FROM audit_chains WHERE seq > 0 LIMIT 1")
            .fetch_one(&stand.pool)
            .await
            .unwrap();
    let mut entries: Vec<EntryFields> = sqlx::query_as(
        "SELECT topic, \"partition\", seq, \"offset\", timestamp_ms, key, headers::text AS headers, \
         value, schema_id, event_type, event::text AS event, decode_error, event_id, payment_id, \
         correlation_id, causation_id, producer, occurred_at, trace_id, error_class, error_reason, \
         received_at FROM audit_entries WHERE topic = $1 AND \"partition\" = $2 ORDER BY seq",
    )
    .bind(&topic)
    .bind(partition)
    .fetch_all(&stand.pool)
    .await
    .unwrap();
    entries[0].key = Some(b"FORGED".to_vec());
    let mut prev = GENESIS;
    let mut rewrite = vec![format!(
        "UPDATE audit_entries SET key = '\\x{}' WHERE topic = '{topic}' AND \"partition\" = {partition} AND seq = 1",
        hex::encode(b"FORGED")
    )];
    for entry in &entries {
        let hash = entry.hash(&prev);
        rewrite.push(format!(
            "UPDATE audit_entries SET prev_hash = '\\x{}', hash = '\\x{}' \
             WHERE topic = '{topic}' AND \"partition\" = {partition} AND seq = {}",
            hex::encode(prev),
            hex::encode(hash),
            entry.seq
        ));
        prev = hash;
    }
    rewrite.push(format!(
        "UPDATE audit_chains SET head = '\\x{}' WHERE topic = '{topic}' AND \"partition\" = {partition}",
        hex::encode(prev)
    ));
    as_tamperer(&stand.pool, &rewrite).await;

    assert!(
        paystream_audit::verify(&stand.pool)
            .await
            .unwrap()
            .is_clean()
    );
    let (_, findings) = paystream_audit::checkpoint::check(&stand.pool, &file, &public_key)
        .await
        .unwrap();
    assert!(!findings.is_empty());
    assert!(
        findings.iter().all(|f| matches!(f, Finding::Rewritten { chain, .. } if *chain == format!("{topic}/{partition}"))),
        "{findings:?}"
    );
    let file_arg = file.to_string_lossy().into_owned();
    let (ok, output) = stand
        .verify_binary(&["--checkpoints", &file_arg, "--public-key", &public_key])
        .await;
    assert!(!ok, "{output}");
    assert!(output.contains("was signed as"), "{output}");

    // A checkpoint signed by another key is not trusted.
    let other = dir.path().join("other.key");
    let other_key = paystream_audit::checkpoint::generate_key(&other).unwrap();
    let (_, findings) = paystream_audit::checkpoint::check(&stand.pool, &file, &other_key)
        .await
        .unwrap();
    assert!(
        findings
            .iter()
            .all(|f| matches!(f, Finding::BadSignature { .. })),
        "{findings:?}"
    );
}
