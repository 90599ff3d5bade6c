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
    /// Debtor accounts the load spreads over (`payer_account(0..payers)`),
    /// each funded in the ledger: one account's payments are handled in
    /// order, so a load from one account would measure one queue.
    #[arg(long, default_value_t = 32)]
    pub payers: usize,
    /// Print the payers as a ledger accounts file (for `cbs-debit accounts
    /// load`) and exit.
    #[arg(long)]
    pub accounts_csv: bool,
    /// The payer of the sanctioned-name payments.
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
        _ => (
            &payer_account(n % args.payers.max(1)),
            "Camille Moreau",
            "FR1420041010050500013M02606",
        ),
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

/// The `n`-th load payer: a British IBAN with valid check digits (sort
/// code 200000, account 10000000 + n), so validation accepts it.
pub fn payer_account(n: usize) -> String {
    let bban = format!("WEST200000{:08}", 10_000_000 + n);
    // ISO 13616: BBAN + "GB00", letters as numbers (A = 10), mod 97.
    let digits: String = format!("{bban}GB00")
        .chars()
        .map(|c| c.to_digit(36).map_or_else(String::new, |d| d.to_string()))
        .collect();
    let remainder = digits
        .bytes()
        .fold(0u32, |acc, b| (acc * 10 + u32::from(b - b'0')) % 97);
    format!("GB{:02}{bban}", 98 - remainder)
}

/// The payers as a ledger accounts file: 1,000,000.00 EUR each.
pub fn accounts_csv(payers: usize) -> String {
    let mut csv = String::from("id,currency,opening_balance_minor,flags\n");
    for n in 0..payers {
        csv.push_str(&format!(
            "{},EUR,100000000,debits_must_not_exceed_credits\n",
            payer_account(n)
        ));
    }
    csv
}

/// The notification contacts of the first `payers` load payers (a text
/// message each), as `notifications contacts load` reads them.
pub fn contacts_csv(payers: usize) -> String {
    (0..payers)
        .map(|n| format!("{},SMS,+4477009{n:05}\n", payer_account(n)))
        .collect()
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
    if args.accounts_csv {
        print!("{}", accounts_csv(args.payers.max(1)));
        return Ok(());
    }
    let letters_before = dead_letters_now(&args.kafka).await?;
    let http = reqwest::Client::new();
    let run_id = uuid::Uuid::new_v4().simple().to_string();
    let started = Instant::now();
    eprintln!(
        "Sending {} payments ({} at once):",
        args.count, args.concurrency
    );
    // The answers are read on this task: the book needs no lock.
    let mut sent = Vec::with_capacity(args.count);
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
                    sent.push(Sent {
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
    let finals = follow(args, &http, &sent).await?;
    let drained_in = started.elapsed();
    eprintln!();
    print!(
        "{}",
        summary(&sent, &finals, refused, accepted_in, drained_in)
    );
    let letters_after = dead_letters_now(&args.kafka).await?;
    let rows: Vec<Vec<String>> = letters_after
        .iter()
        .map(|(group, after)| {
            let during = after - letters_before.get(group).copied().unwrap_or(0);
            vec![group.clone(), during.to_string()]
        })
        .collect();
    println!();
    if rows.is_empty() {
        println!("Dead letters during the load: none (no dead-letter topic exists).");
    } else {
        print!(
            "{}",
            table::render(&["GROUP", "DEAD LETTERS DURING THE LOAD"], &rows)
        );
    }
    Ok(())
}

async fn dead_letters_now(kafka: &KafkaConfig) -> anyhow::Result<BTreeMap<String, i64>> {
    let kafka = kafka.clone();
    tokio::task::spawn_blocking(move || dead_letters(&kafka))
        .await
        .context("counting dead letters was interrupted")?
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
pub fn dead_letters(kafka: &KafkaConfig) -> anyhow::Result<BTreeMap<String, i64>> {
    const TIMEOUT: Duration = Duration::from_secs(10);
    let client: BaseConsumer = kafka.consumer("paystream-load").create()?;
    let metadata = client.fetch_metadata(None, TIMEOUT)?;
    let mut groups = BTreeMap::new();
    for topic in metadata.topics() {
        let Some(name) = topic.name().strip_prefix(&kafka.topic_prefix) else {
            continue;
        };
        // `{contract topic}.{group}.dlq`, nothing else (another prefix's
        // topics share the cluster).
        let Some(group) = paystream_contract::Topic::ALL.iter().find_map(|contract| {
            name.strip_prefix(contract.name())?
                .strip_prefix('.')?
                .strip_suffix(".dlq")
                .map(str::to_owned)
        }) else {
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

#[cfg(test)]
mod tests {
    #[test]
    fn payers_have_valid_iban_check_digits() {
        for n in [0, 1, 31, 999] {
            let iban = super::payer_account(n);
            assert!(iban_is_valid(&iban), "{iban}");
        }
        assert_eq!(super::payer_account(0).len(), 22);
        assert_ne!(super::payer_account(0), super::payer_account(1));
        assert!(super::accounts_csv(2).lines().count() == 3);
    }

    /// ISO 13616 mod-97 check, independently of how the payers are made.
    fn iban_is_valid(iban: &str) -> bool {
        let rearranged = format!("{}{}", &iban[4..], &iban[..4]);
        let mut remainder = 0u64;
        for c in rearranged.chars() {
            let Some(value) = c.to_digit(36) else {
                return false;
            };
            for digit in value.to_string().chars() {
                remainder = (remainder * 10 + u64::from(digit.to_digit(10).unwrap_or(0))) % 97;
            }
        }
        remainder == 1
    }
}
