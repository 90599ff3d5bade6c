//! `paystream load`: sends a realistic load of payments through the
//! gateway, shows a progress bar while they travel, and prints where they
//! ended: count per final state, submit → final latency, payments per
//! second, and the dead letters of every group.
//!
//! The mix is what a bank's day looks like in miniature: most payments
//! settle, some go to a creditor whose account is closed (the rail
//! rejects them and the debit is reversed), some come from an account
//! that cannot cover them (AM04), a few name a sanctioned party.

use std::collections::BTreeMap;
use std::io::Write as _;
use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::Context as _;
use chrono::{DateTime, Utc};
use futures::StreamExt as _;
use paystream_bus::KafkaConfig;
use rdkafka::consumer::{BaseConsumer, Consumer};
use serde_json::Value;

use crate::table;

#[derive(Debug, clap::Args)]
pub struct Args {
    /// Payments to send.
    #[arg(long, default_value_t = 2_000)]
    pub count: usize,
    /// Requests in flight at once.
    #[arg(long, default_value_t = 32)]
    pub concurrency: usize,
    /// The gateway.
    #[arg(
        long,
        env = "PAYSTREAM_GATEWAY_URL",
        default_value = "http://127.0.0.1:8080"
    )]
    pub gateway_url: String,
    /// An API key the gateway accepts.
    #[arg(long, env = "PAYSTREAM_API_KEY", default_value = "paystream-dev-key")]
    pub api_key: String,
    /// How long to wait for every payment to reach a final state.
    #[arg(long, default_value_t = 600)]
    pub timeout_s: u64,
    /// A well-funded debtor account.
    #[arg(long, default_value = "GB82WEST12345698765432")]
    pub payer: String,
    /// A debtor account that cannot cover the payments (AM04).
    #[arg(long, default_value = "GB29NWBK60161331926819")]
    pub short_payer: String,
    /// A creditor account the rail rejects as closed (AC04).
    #[arg(long, default_value = "DE89370400440532013000")]
    pub closed_creditor: String,
    #[command(flatten)]
    pub kafka: KafkaConfig,
}

/// One payment of the load: what it is, and what became of it.
struct Sent {
    payment_id: String,
    submitted_at: DateTime<Utc>,
}

/// The `n`-th payment's request body: one in fifty to the closed creditor,
/// one in fifty from the short account, one in a hundred to a sanctioned
/// name; the rest settle.
fn body(args: &Args, n: usize) -> Value {
    let (debtor, creditor_name, creditor) = match n % 100 {
        0 | 50 => (&args.payer, "Lena Fischer", args.closed_creditor.as_str()),
        1 | 51 => (
            &args.short_payer,
            "Camille Moreau",
            "FR1420041010050500013M02606",
        ),
        2 => (
            &args.payer,
            "Saddam Hussein Al-Tikriti",
            "FR1420041010050500013M02606",
        ),
        _ => (&args.payer, "Camille Moreau", "FR1420041010050500013M02606"),
    };
    // 1.00 to 9.99 EUR: the payer's balance covers thousands of them.
    let amount = format!("{}.{:02}", 1 + n % 9, n % 100);
    serde_json::json!({
        "amount": amount, "currency": "EUR",
        "debtor": { "name": "Emily Clarke", "account": debtor, "agentBic": "NWBKGB2L", "country": "GB" },
        "creditor": { "name": creditor_name, "account": creditor, "agentBic": "BNPAFRPP", "country": "FR" },
        "remittanceInformation": format!("load {n}"),
        "clientIp": "81.2.69.142"
    })
}

fn bar(done: usize, total: usize, what: &str) {
    const WIDTH: usize = 40;
    let filled = done * WIDTH / total.max(1);
    eprint!(
        "\r  [{}{}] {done:>6}/{total} {what}",
        "#".repeat(filled),
        "-".repeat(WIDTH - filled)
    );
    if let Err(error) = std::io::stderr().flush() {
        tracing::debug!(%error, "progress not shown");
    }
}

pub async fn run(args: &Args) -> anyhow::Result<()> {
    let http = reqwest::Client::new();
    let run_id = uuid::Uuid::new_v4().simple().to_string();
    let started = Instant::now();
    eprintln!(
        "Sending {} payments ({} at once):",
        args.count, args.concurrency
    );
    let sent = Arc::new(std::sync::Mutex::new(Vec::with_capacity(args.count)));
    let mut refused = 0usize;
    let mut requests = futures::stream::iter(0..args.count)
        .map(|n| {
            let http = http.clone();
            let url = format!("{}/v1/payments", args.gateway_url.trim_end_matches('/'));
            let key = format!("load-{run_id}-{n}");
            let body = body(args, n);
            let api_key = args.api_key.clone();
            async move {
                let submitted_at = Utc::now();
                let answer = http
                    .post(url)
                    .bearer_auth(api_key)
                    .header("Idempotency-Key", key)
                    .json(&body)
                    .send()
                    .await?;
                let status = answer.status();
                let value: Value = answer.json().await.unwrap_or(Value::Null);
                Ok::<_, reqwest::Error>((status, value, submitted_at))
            }
        })
        .buffer_unordered(args.concurrency.max(1));
    let mut done = 0;
    while let Some(result) = requests.next().await {
        done += 1;
        match result {
            Ok((status, value, submitted_at)) if status.as_u16() == 202 => {
                if let Some(payment_id) = value["paymentId"].as_str() {
                    sent.lock()
                        .map_err(|_| anyhow::anyhow!("the load's book is poisoned"))?
                        .push(Sent {
                            payment_id: payment_id.to_owned(),
                            submitted_at,
                        });
                }
            }
            Ok(_) | Err(_) => refused += 1,
        }
        if done % 20 == 0 || done == args.count {
            bar(done, args.count, "accepted");
        }
    }
    eprintln!();
    let accepted_in = started.elapsed();
    let sent = std::mem::take(
        &mut *sent
            .lock()
            .map_err(|_| anyhow::anyhow!("the load's book is poisoned"))?,
    );
    let finals = follow(args, &http, &sent).await?;
    let drained_in = started.elapsed();
    eprintln!();
    print!(
        "{}",
        summary(&sent, &finals, refused, accepted_in, drained_in)
    );
    let letters = tokio::task::spawn_blocking({
        let kafka = args.kafka.clone();
        move || dead_letters(&kafka)
    })
    .await
    .context("counting dead letters was interrupted")??;
    let rows: Vec<Vec<String>> = if letters.is_empty() {
        vec![vec!["(none)".to_owned(), "0".to_owned()]]
    } else {
        letters
            .iter()
            .map(|(group, count)| vec![group.clone(), count.to_string()])
            .collect()
    };
    println!();
    print!(
        "{}",
        table::render(&["DEAD LETTERS BY GROUP", "RECORDS"], &rows)
    );
    Ok(())
}

/// Polls the gateway until every payment is final; returns, per payment
/// id, its final state and when the read model recorded it.
async fn follow(
    args: &Args,
    http: &reqwest::Client,
    sent: &[Sent],
) -> anyhow::Result<BTreeMap<String, (String, DateTime<Utc>)>> {
    let deadline = Instant::now() + Duration::from_secs(args.timeout_s);
    let mut finals = BTreeMap::new();
    loop {
        let open: Vec<&Sent> = sent
            .iter()
            .filter(|s| !finals.contains_key(&s.payment_id))
            .collect();
        if open.is_empty() {
            return Ok(finals);
        }
        anyhow::ensure!(
            Instant::now() < deadline,
            "{} payments not final after {} s",
            open.len(),
            args.timeout_s
        );
        let views: Vec<Option<Value>> = futures::stream::iter(open.iter())
            .map(|s| async move {
                let url = format!(
                    "{}/v1/payments/{}",
                    args.gateway_url.trim_end_matches('/'),
                    s.payment_id
                );
                http.get(url)
                    .bearer_auth(&args.api_key)
                    .send()
                    .await
                    .ok()?
                    .json::<Value>()
                    .await
                    .ok()
            })
            .buffered(args.concurrency.max(1))
            .collect()
            .await;
        for (s, view) in open.iter().zip(views) {
            let Some(view) = view else { continue };
            let status = view["status"].as_str().unwrap_or_default();
            if matches!(status, "SETTLED" | "REJECTED" | "REVERSED") {
                let at = view["updatedAt"]
                    .as_str()
                    .and_then(|at| DateTime::parse_from_rfc3339(at).ok())
                    .map_or_else(Utc::now, |at| at.with_timezone(&Utc));
                let label = match view["reasonCode"].as_str() {
                    Some(reason) => format!("{status} {reason}"),
                    None => status.to_owned(),
                };
                finals.insert(s.payment_id.clone(), (label, at));
            }
        }
        bar(finals.len(), sent.len(), "final");
        tokio::time::sleep(Duration::from_millis(250)).await;
    }
}

fn percentile(sorted: &[i64], p: usize) -> i64 {
    if sorted.is_empty() {
        return 0;
    }
    sorted[(sorted.len() * p / 100).min(sorted.len() - 1)]
}

fn summary(
    sent: &[Sent],
    finals: &BTreeMap<String, (String, DateTime<Utc>)>,
    refused: usize,
    accepted_in: Duration,
    drained_in: Duration,
) -> String {
    let mut states: BTreeMap<&str, usize> = BTreeMap::new();
    let mut latencies: Vec<i64> = Vec::with_capacity(sent.len());
    for s in sent {
        if let Some((state, at)) = finals.get(&s.payment_id) {
            *states.entry(state.as_str()).or_default() += 1;
            latencies.push((*at - s.submitted_at).num_milliseconds().max(0));
        }
    }
    latencies.sort_unstable();
    let mut rows: Vec<Vec<String>> = states
        .iter()
        .map(|(state, count)| vec![(*state).to_owned(), count.to_string()])
        .collect();
    if refused > 0 {
        rows.push(vec![
            "refused by the gateway".to_owned(),
            refused.to_string(),
        ]);
    }
    let mut out = table::render(&["FINAL STATE", "PAYMENTS"], &rows);
    let rate = |n: usize, over: Duration| n as f64 / over.as_secs_f64().max(0.001);
    out.push('\n');
    out.push_str(&table::render(
        &["FIGURE", "VALUE"],
        &[
            vec![
                "accepted".into(),
                format!(
                    "{} in {:.1} s ({:.0}/s)",
                    sent.len(),
                    accepted_in.as_secs_f64(),
                    rate(sent.len(), accepted_in)
                ),
            ],
            vec![
                "final".into(),
                format!(
                    "{} in {:.1} s ({:.0}/s)",
                    finals.len(),
                    drained_in.as_secs_f64(),
                    rate(finals.len(), drained_in)
                ),
            ],
            vec![
                "submit → final p50".into(),
                format!("{} ms", percentile(&latencies, 50)),
            ],
            vec![
                "submit → final p95".into(),
                format!("{} ms", percentile(&latencies, 95)),
            ],
            vec![
                "submit → final p99".into(),
                format!("{} ms", percentile(&latencies, 99)),
            ],
        ],
    ));
    out
}

/// Records on every dead-letter topic under the prefix, per consumer group
/// (`{topic}.{group}.dlq`). Blocking.
fn dead_letters(kafka: &KafkaConfig) -> anyhow::Result<BTreeMap<String, i64>> {
    const TIMEOUT: Duration = Duration::from_secs(10);
    let client: BaseConsumer = kafka.consumer("paystream-load").create()?;
    let metadata = client.fetch_metadata(None, TIMEOUT)?;
    let mut groups = BTreeMap::new();
    for topic in metadata.topics() {
        let Some(name) = topic.name().strip_prefix(&kafka.topic_prefix) else {
            continue;
        };
        let Some(group) = name
            .strip_suffix(".dlq")
            .and_then(|rest| rest.rsplit_once('.'))
            .map(|(_, group)| group.to_owned())
        else {
            continue;
        };
        let mut records = 0;
        for partition in topic.partitions() {
            let (low, high) = client.fetch_watermarks(topic.name(), partition.id(), TIMEOUT)?;
            records += high - low;
        }
        *groups.entry(group).or_insert(0) += records;
    }
    Ok(groups)
}
