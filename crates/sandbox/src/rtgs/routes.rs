//! The rail over HTTP: `POST /pacs.008` and `GET /status/{uetr}` under
//! `/rtgs` (behind the provider's behaviour), and its admin under
//! `/admin/rtgs` (not).

use axum::Json;
use axum::body::Bytes;
use axum::extract::{Path, State};
use axum::http::{StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use chrono::Utc;
use paystream_iso20022::{CreditTransfer, StatusReport, TxStatus};
use quick_xml::events::Event;
use uuid::Uuid;

use super::book::{Submission, count};
use super::{Rail, RailBehaviour, ReasonCode};

/// What a malformed document's report says for ids it could not find.
const UNKNOWN: &str = "UNKNOWN";

fn xml(status: StatusCode, body: String) -> Response {
    (status, [(header::CONTENT_TYPE, "application/xml")], body).into_response()
}

fn problem(status: StatusCode, message: impl Into<String>) -> Response {
    (status, Json(serde_json::json!({ "error": message.into() }))).into_response()
}

/// The ids a document that does not parse may still show: the first
/// `MsgId`, `EndToEndId` and `UETR` elements, if they are there.
#[derive(Debug, Default)]
struct Glimpse {
    message_id: Option<String>,
    end_to_end_id: Option<String>,
    uetr: Option<Uuid>,
}

fn glimpse(document: &str) -> Glimpse {
    let mut seen = Glimpse::default();
    let mut reader = quick_xml::Reader::from_str(document);
    let mut open: Option<Vec<u8>> = None;
    loop {
        match reader.read_event() {
            Ok(Event::Start(start)) => open = Some(start.local_name().as_ref().to_vec()),
            Ok(Event::Text(text)) => {
                let (Some(name), Ok(value)) = (open.take(), text.unescape()) else {
                    continue;
                };
                let value = value.trim().to_owned();
                if value.is_empty() {
                    continue;
                }
                match name.as_slice() {
                    b"MsgId" if seen.message_id.is_none() => seen.message_id = Some(value),
                    b"EndToEndId" if seen.end_to_end_id.is_none() => {
                        seen.end_to_end_id = Some(value);
                    }
                    b"UETR" if seen.uetr.is_none() => seen.uetr = Uuid::parse_str(&value).ok(),
                    _ => {}
                }
            }
            Ok(Event::End(_)) => open = None,
            Ok(Event::Eof) | Err(_) => break,
            Ok(_) => {}
        }
    }
    seen
}

/// A 400 with a pacs.002 RJCT FF01 saying why the document was refused.
fn malformed(rail: &Rail, document: &str, error: String) -> Response {
    let number = count(&rail.inner.counters.malformed);
    let seen = glimpse(document);
    tracing::info!(%error, "malformed pacs.008 refused");
    let reason = ReasonCode::InvalidFileFormat;
    let report = StatusReport {
        message_id: rail.message_id(number, reason.code()),
        created_at: Utc::now(),
        original_message_id: seen.message_id.unwrap_or_else(|| UNKNOWN.to_owned()),
        original_end_to_end_id: seen.end_to_end_id.unwrap_or_else(|| UNKNOWN.to_owned()),
        uetr: seen.uetr.unwrap_or(Uuid::nil()),
        status: TxStatus::Rejected,
        reason: Some(reason.code().to_owned()),
        reason_text: Some(error),
        settlement_date: None,
        clearing_reference: None,
    };
    match report.to_xml() {
        Ok(body) => xml(StatusCode::BAD_REQUEST, body),
        Err(error) => problem(StatusCode::INTERNAL_SERVER_ERROR, error.to_string()),
    }
}

async fn submit(State(rail): State<Rail>, body: Bytes) -> Response {
    let document = match std::str::from_utf8(&body) {
        Ok(document) => document,
        Err(error) => return malformed(&rail, "", format!("the body is not UTF-8: {error}")),
    };
    let transfer = match CreditTransfer::from_xml(document) {
        Ok(transfer) => transfer,
        Err(error) => return malformed(&rail, document, error.to_string()),
    };
    let uetr = transfer.uetr;
    match rail.submit(transfer) {
        Err(error) => problem(StatusCode::INTERNAL_SERVER_ERROR, error.to_string()),
        Ok(Submission::Conflict) => {
            tracing::info!(%uetr, "a known UETR with other content refused");
            problem(
                StatusCode::CONFLICT,
                format!("UETR {uetr} was already submitted with different content"),
            )
        }
        Ok(Submission::Repeat { ack }) => {
            tracing::info!(%uetr, "a repeated pacs.008 answered with its first acknowledgement");
            xml(StatusCode::OK, ack)
        }
        Ok(Submission::New { ack, plan }) => {
            tracing::info!(%uetr, ?plan, "pacs.008 accepted");
            let late_by = plan.late_by;
            tokio::spawn(rail.clone().settle(uetr, plan));
            if let Some(late_by) = late_by {
                tokio::time::sleep(late_by).await;
            }
            xml(StatusCode::OK, ack)
        }
    }
}

async fn status(State(rail): State<Rail>, Path(uetr): Path<String>) -> Response {
    let query = count(&rail.inner.counters.status_queries);
    let Ok(uetr) = Uuid::parse_str(uetr.trim()) else {
        return crate::client_error(format!("`{uetr}` is not a UETR (a UUID)"));
    };
    match rail.status(uetr, query) {
        None => problem(
            StatusCode::NOT_FOUND,
            format!("no transfer with UETR {uetr} was accepted"),
        ),
        Some(Ok(body)) => xml(StatusCode::OK, body),
        Some(Err(error)) => problem(StatusCode::INTERNAL_SERVER_ERROR, error.to_string()),
    }
}

/// The rail's own routes, to be nested under `/rtgs`.
pub fn routes(rail: Rail) -> axum::Router {
    axum::Router::new()
        .route("/pacs.008", post(submit))
        .route("/status/{uetr}", get(status))
        .with_state(rail)
}

async fn report(State(rail): State<Rail>) -> Response {
    Json(rail.report()).into_response()
}

async fn read_rail(State(rail): State<Rail>) -> String {
    rail.behaviour().to_string()
}

async fn write_rail(State(rail): State<Rail>, spec: String) -> Response {
    match spec.parse::<RailBehaviour>() {
        Ok(behaviour) => {
            rail.set_behaviour(behaviour);
            rail.behaviour().to_string().into_response()
        }
        Err(error) => crate::client_error(error.to_string()),
    }
}

async fn read_callback_url(State(rail): State<Rail>) -> String {
    rail.callback_url().unwrap_or_default()
}

async fn write_callback_url(State(rail): State<Rail>, url: String) -> Response {
    let url = url.trim();
    if url.is_empty() {
        rail.set_callback_url(None);
        return String::new().into_response();
    }
    match reqwest::Url::parse(url) {
        Ok(parsed) if matches!(parsed.scheme(), "http" | "https") => {
            rail.set_callback_url(Some(url.to_owned()));
            url.to_owned().into_response()
        }
        Ok(_) => crate::client_error(format!("`{url}`: only http and https callbacks")),
        Err(error) => crate::client_error(format!("`{url}` is not a URL: {error}")),
    }
}

/// The rail's admin: its report, its behaviour and its callback URL.
pub fn admin_routes(rail: Rail) -> axum::Router {
    axum::Router::new()
        .route("/admin/rtgs/report", get(report))
        .route("/admin/rtgs/rail", get(read_rail).put(write_rail))
        .route(
            "/admin/rtgs/callback-url",
            get(read_callback_url).put(write_callback_url),
        )
        .with_state(rail)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_broken_document_still_shows_the_ids_it_has() {
        let seen = glimpse(
            "<Document><GrpHdr><MsgId> M-1 </MsgId></GrpHdr><PmtId><EndToEndId>E2E</EndToEndId>\
             <UETR>8a562c67-ca16-48ba-b074-65581be6f001</UETR></PmtId><Amt>",
        );
        assert_eq!(seen.message_id.as_deref(), Some("M-1"));
        assert_eq!(seen.end_to_end_id.as_deref(), Some("E2E"));
        assert_eq!(
            seen.uetr.map(|uetr| uetr.to_string()).as_deref(),
            Some("8a562c67-ca16-48ba-b074-65581be6f001")
        );
        let nothing = glimpse("not xml at all");
        assert!(nothing.message_id.is_none() && nothing.uetr.is_none());
    }
}
