//! Signed checkpoints of the chain heads, published outside the table.
//!
//! The hash chains show that an entry was changed, but someone able to
//! rewrite the table could rewrite a chain's every later hash and its head
//! as well. As Certificate Transparency's signed tree heads and immudb's
//! client-held state do, the audit therefore signs the heads (Ed25519) at
//! intervals and appends each checkpoint to a file, a place the database's
//! users cannot rewrite (another volume, shipped to a witness). A rewritten
//! chain no longer contains the hash a checkpoint signed at that `seq`,
//! which `audit verify --checkpoints` reports.

use std::path::{Path, PathBuf};
use std::time::Duration;

use aws_lc_rs::signature::{ED25519, Ed25519KeyPair, KeyPair, UnparsedPublicKey};
use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use sqlx::PgPool;
use tokio::io::AsyncWriteExt;
use tokio::sync::RwLock;
use tokio_util::sync::CancellationToken;

use crate::hash::chain_id;

/// Prepended to the body before signing, so the signature means only this.
const CONTEXT: &[u8] = b"paystream-audit/checkpoint/v1\n";
/// The file in the checkpoint directory, one signed checkpoint per line.
pub const FILE: &str = "checkpoints.jsonl";

#[derive(Debug, thiserror::Error)]
pub enum CheckpointError {
    #[error("checkpoint key {path}: {reason}")]
    Key { path: PathBuf, reason: String },
    #[error("checkpoint file {path}: {source}")]
    File {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("database: {0}")]
    Database(#[from] sqlx::Error),
    #[error("checkpoint not encodable: {0}")]
    Encode(#[from] serde_json::Error),
    #[error("public key: {0}")]
    PublicKey(String),
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Head {
    pub chain: String,
    pub topic: String,
    pub partition: i32,
    pub seq: i64,
    /// Hex of the entry hash at `seq`.
    pub hash: String,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Body {
    pub version: u32,
    pub at: DateTime<Utc>,
    pub heads: Vec<Head>,
}

/// What is published: the exact body text that was signed, the signature
/// and the signer's public key (hex).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Signed {
    pub body: String,
    pub public_key: String,
    pub signature: String,
}

/// A new key, written as PKCS#8 (DER) to `path`; returns the public key in hex.
pub fn generate_key(path: &Path) -> Result<String, CheckpointError> {
    let key_error = |reason: String| CheckpointError::Key {
        path: path.to_owned(),
        reason,
    };
    let pair = Ed25519KeyPair::generate().map_err(|e| key_error(e.to_string()))?;
    let pkcs8 = pair.to_pkcs8().map_err(|e| key_error(e.to_string()))?;
    let mut options = std::fs::OpenOptions::new();
    options.write(true).create_new(true);
    #[cfg(unix)]
    std::os::unix::fs::OpenOptionsExt::mode(&mut options, 0o600);
    let mut file = options.open(path).map_err(|e| key_error(e.to_string()))?;
    std::io::Write::write_all(&mut file, pkcs8.as_ref()).map_err(|e| key_error(e.to_string()))?;
    Ok(hex::encode(pair.public_key().as_ref()))
}

pub fn load_key(path: &Path) -> Result<Ed25519KeyPair, CheckpointError> {
    let key_error = |reason: String| CheckpointError::Key {
        path: path.to_owned(),
        reason,
    };
    let bytes = std::fs::read(path).map_err(|e| key_error(e.to_string()))?;
    Ed25519KeyPair::from_pkcs8(&bytes).map_err(|e| key_error(e.to_string()))
}

/// Signs and publishes checkpoints of one audit database.
pub struct Checkpoints {
    key: Ed25519KeyPair,
    file: PathBuf,
    pool: PgPool,
    latest: RwLock<Option<Signed>>,
}

impl Checkpoints {
    pub fn new(key: Ed25519KeyPair, dir: &Path, pool: PgPool) -> Self {
        Self {
            key,
            file: dir.join(FILE),
            pool,
            latest: RwLock::new(None),
        }
    }

    pub async fn latest(&self) -> Option<Signed> {
        self.latest.read().await.clone()
    }

    /// Signs the current heads and appends the checkpoint to the file,
    /// unless they are the ones last published.
    pub async fn publish(&self) -> Result<Option<Signed>, CheckpointError> {
        let heads = heads(&self.pool).await?;
        let previous = self.latest.read().await.clone();
        if let Some(previous) = previous
            && serde_json::from_str::<Body>(&previous.body).is_ok_and(|body| body.heads == heads)
        {
            return Ok(None);
        }
        let body = Body {
            version: 1,
            at: Utc::now(),
            heads,
        };
        let text = serde_json::to_string(&body)?;
        let signature = self.key.sign(&[CONTEXT, text.as_bytes()].concat());
        let signed = Signed {
            body: text,
            public_key: hex::encode(self.key.public_key().as_ref()),
            signature: hex::encode(signature.as_ref()),
        };
        let line = serde_json::to_string(&signed)? + "\n";
        let file_error = |source| CheckpointError::File {
            path: self.file.clone(),
            source,
        };
        let mut file = tokio::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(&self.file)
            .await
            .map_err(file_error)?;
        file.write_all(line.as_bytes()).await.map_err(file_error)?;
        file.sync_data().await.map_err(file_error)?;
        *self.latest.write().await = Some(signed.clone());
        Ok(Some(signed))
    }

    /// Publishes every `interval` while the heads move, and once more on
    /// shutdown. A failure is logged and tried again at the next interval:
    /// the log itself does not depend on its checkpoints.
    pub async fn run(&self, interval: Duration, shutdown: CancellationToken) {
        loop {
            let stop = tokio::select! {
                () = tokio::time::sleep(interval) => false,
                () = shutdown.cancelled() => true,
            };
            match self.publish().await {
                Ok(Some(signed)) => {
                    tracing::info!(signature = %signed.signature, "checkpoint published")
                }
                Ok(None) => {}
                Err(error) => tracing::warn!(%error, "checkpoint not published"),
            }
            if stop {
                return;
            }
        }
    }
}

async fn heads(pool: &PgPool) -> Result<Vec<Head>, sqlx::Error> {
    let rows: Vec<(String, i32, i64, Vec<u8>)> = sqlx::query_as(
        "SELECT topic, \"partition\", seq, head FROM audit_chains WHERE seq > 0 ORDER BY topic, \"partition\"",
    )
    .fetch_all(pool)
    .await?;
    Ok(rows
        .into_iter()
        .map(|(topic, partition, seq, head)| Head {
            chain: chain_id(&topic, partition),
            topic,
            partition,
            seq,
            hash: hex::encode(head),
        })
        .collect())
}

/// What checking the published checkpoints against the table found.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Finding {
    /// Line `line` (1-based) is not a checkpoint signed by the trusted key.
    BadSignature { line: usize },
    /// The entry a checkpoint signed is gone, or has another hash now.
    Rewritten {
        line: usize,
        chain: String,
        seq: i64,
        signed: String,
        found: Option<String>,
    },
}

impl std::fmt::Display for Finding {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Finding::BadSignature { line } => {
                write!(f, "checkpoint line {line}: not signed by the trusted key")
            }
            Finding::Rewritten {
                line,
                chain,
                seq,
                signed,
                found,
            } => write!(
                f,
                "checkpoint line {line}: chain {chain} seq {seq} was signed as {signed}, the table has {}",
                found.as_deref().unwrap_or("no such entry")
            ),
        }
    }
}

/// Checks every checkpoint in `file` against `public_key` (hex, the key
/// the operator trusts, not the one the file names) and every signed head
/// against the entry at its `seq`. Returns the checkpoints read and the findings.
pub async fn check(
    pool: &PgPool,
    file: &Path,
    public_key: &str,
) -> Result<(usize, Vec<Finding>), CheckpointError> {
    let key =
        hex::decode(public_key.trim()).map_err(|e| CheckpointError::PublicKey(e.to_string()))?;
    let trusted = UnparsedPublicKey::new(&ED25519, key);
    let text = tokio::fs::read_to_string(file)
        .await
        .map_err(|source| CheckpointError::File {
            path: file.to_owned(),
            source,
        })?;
    let mut findings = Vec::new();
    let mut count = 0;
    for (n, line) in text
        .lines()
        .enumerate()
        .filter(|(_, l)| !l.trim().is_empty())
    {
        count += 1;
        let line_no = n + 1;
        let signed: Option<(Signed, Body)> = serde_json::from_str::<Signed>(line)
            .ok()
            .filter(|s| {
                hex::decode(&s.signature).is_ok_and(|sig| {
                    trusted
                        .verify(&[CONTEXT, s.body.as_bytes()].concat(), &sig)
                        .is_ok()
                })
            })
            .and_then(|s| serde_json::from_str::<Body>(&s.body).ok().map(|b| (s, b)));
        let Some((_, body)) = signed else {
            findings.push(Finding::BadSignature { line: line_no });
            continue;
        };
        for head in body.heads {
            let found: Option<Vec<u8>> = sqlx::query_scalar(
                "SELECT hash FROM audit_entries WHERE topic = $1 AND \"partition\" = $2 AND seq = $3",
            )
            .bind(&head.topic)
            .bind(head.partition)
            .bind(head.seq)
            .fetch_optional(pool)
            .await?;
            let found = found.map(hex::encode);
            if found.as_deref() != Some(head.hash.as_str()) {
                findings.push(Finding::Rewritten {
                    line: line_no,
                    chain: head.chain,
                    seq: head.seq,
                    signed: head.hash,
                    found,
                });
            }
        }
    }
    Ok((count, findings))
}
