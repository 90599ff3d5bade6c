//! `paystream trace <paymentId|correlationId>`: a payment's whole life from
//! the audit log — every event from every service in causal order, and its
//! dead letters — as a table, or as the audit's JSON with `--json`.

use std::process::ExitCode;

use anyhow::Context as _;
use paystream_audit::timeline::{Step, Timeline};

use crate::table;

#[derive(Debug, clap::Args)]
pub struct Args {
    /// A payment id, or the correlation id a client got with its 202.
    pub id: String,
    /// The audit service.
    #[arg(
        long,
        env = "PAYSTREAM_AUDIT_URL",
        default_value = "http://127.0.0.1:8085"
    )]
    pub audit_url: String,
    /// The audit's timeline as JSON, for machines.
    #[arg(long)]
    pub json: bool,
}

/// Fetches the timeline; `None` if the audit log knows nothing of `id`.
pub async fn fetch(audit_url: &str, id: &str) -> anyhow::Result<Option<String>> {
    let url = format!(
        "{}/v1/payments/{id}/timeline",
        audit_url.trim_end_matches('/')
    );
    let response = reqwest::get(&url)
        .await
        .with_context(|| format!("asking the audit service at {url}"))?;
    if response.status() == reqwest::StatusCode::NOT_FOUND {
        return Ok(None);
    }
    let status = response.status();
    let body = response.text().await.context("reading the timeline")?;
    anyhow::ensure!(
        status.is_success(),
        "the audit service answered {status}: {body}"
    );
    Ok(Some(body))
}

pub async fn run(args: &Args) -> anyhow::Result<ExitCode> {
    let Some(body) = fetch(&args.audit_url, &args.id).await? else {
        eprintln!(
            "the audit log knows no payment or correlation id {}",
            args.id
        );
        return Ok(ExitCode::FAILURE);
    };
    if args.json {
        println!("{body}");
        return Ok(ExitCode::SUCCESS);
    }
    let timeline: Timeline =
        serde_json::from_str(&body).context("the audit's timeline does not read")?;
    print!("{}", render(&timeline));
    Ok(ExitCode::SUCCESS)
}

/// The timeline as a table of events, then one of dead letters if any.
pub fn render(timeline: &Timeline) -> String {
    let text = |value: &Option<String>| value.clone().unwrap_or_else(|| "-".to_owned());
    let rows: Vec<Vec<String>> = timeline
        .events
        .iter()
        .map(|step| {
            vec![
                step.occurred_at
                    .map(|at| at.format("%Y-%m-%dT%H:%M:%S%.3f").to_string())
                    .unwrap_or_else(|| "-".to_owned()),
                step.since_first_ms
                    .map(|ms| format!("+{ms}"))
                    .unwrap_or_else(|| "-".to_owned()),
                text(&step.producer),
                step.topic.clone(),
                text(&step.event_type),
                facts(step),
                text(&step.trace_id),
            ]
        })
        .collect();
    let mut out = table::render(
        &["TIME", "+MS", "SERVICE", "TOPIC", "EVENT", "FACTS", "TRACE"],
        &rows,
    );
    if !timeline.dead_letters.is_empty() {
        let letters: Vec<Vec<String>> = timeline
            .dead_letters
            .iter()
            .map(|letter| {
                vec![
                    letter.topic.clone(),
                    text(&letter.group),
                    text(&letter.error_class),
                    text(&letter.error_reason),
                    text(&letter.failed_at),
                ]
            })
            .collect();
        out.push_str("\nDead letters:\n");
        out.push_str(&table::render(
            &["TOPIC", "GROUP", "CLASS", "REASON", "FAILED AT"],
            &letters,
        ));
    }
    out
}

fn facts(step: &Step) -> String {
    let mut facts = Vec::new();
    if let Some(status) = &step.status {
        facts.push(status.clone());
    }
    if let Some(reason) = &step.reason_code {
        facts.push(format!("reason={reason}"));
    }
    if let (Some(amount), Some(currency)) = (step.amount_minor, &step.currency) {
        facts.push(format!("{amount} {currency} (minor)"));
    }
    if let Some(uetr) = &step.uetr {
        facts.push(format!("uetr={uetr}"));
    }
    if facts.is_empty() {
        "-".to_owned()
    } else {
        facts.join(" ")
    }
}
