//! The provider over HTTP: `POST /v1/messages` and
//! `GET /v1/messages/{idempotencyKey}` under `/notify` (behind the
//! provider's behaviour), and its admin under `/admin/notify` (not).

use axum::Json;
use axum::body::Bytes;
use axum::extract::{Path, State};
use axum::http::{HeaderMap, HeaderName, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};

use super::book::Sending;
use super::message::{Invalid, Message};
use super::{Notify, NotifyBehaviour};

const IDEMPOTENCY_KEY: HeaderName = HeaderName::from_static("idempotency-key");
const IDEMPOTENT_REPLAYED: HeaderName = HeaderName::from_static("idempotent-replayed");

fn problem(status: StatusCode, message: impl Into<String>) -> Response {
    (status, Json(serde_json::json!({ "error": message.into() }))).into_response()
}

/// The `Idempotency-Key` header, if it is there and says something.
fn idempotency_key(headers: &HeaderMap) -> Result<String, String> {
    let value = headers
        .get(IDEMPOTENCY_KEY)
        .ok_or("the Idempotency-Key header is required")?;
    let key = value
        .to_str()
        .map_err(|_| "the Idempotency-Key header is not visible ASCII")?
        .trim();
    if key.is_empty() {
        return Err("the Idempotency-Key header is empty".to_owned());
    }
    Ok(key.to_owned())
}

async fn send(State(notify): State<Notify>, headers: HeaderMap, body: Bytes) -> Response {
    let read = idempotency_key(&headers)
        .map_err(Invalid::Malformed)
        .and_then(|key| Ok((key, Message::read(&body)?)));
    let (key, message) = match read {
        Ok(read) => read,
        Err(invalid) => {
            notify.refuse();
            tracing::info!(?invalid, "a message refused");
            return match invalid {
                Invalid::Malformed(error) => crate::client_error(error),
                Invalid::UnknownChannel(error) => problem(StatusCode::UNPROCESSABLE_ENTITY, error),
            };
        }
    };
    match notify.send(&key, message) {
        Sending::Conflict => {
            tracing::info!(%key, "a known idempotency key with another message refused");
            problem(
                StatusCode::CONFLICT,
                format!("idempotency key `{key}` was already used for a different message"),
            )
        }
        Sending::Replay(receipt) => {
            tracing::info!(%key, message_id = receipt.message_id, "a repeated message answered from its idempotency record");
            let mut response = (StatusCode::OK, Json(receipt)).into_response();
            response
                .headers_mut()
                .insert(IDEMPOTENT_REPLAYED, HeaderValue::from_static("true"));
            response
        }
        Sending::Failed => {
            tracing::info!(%key, "message not delivered, by the provider's behaviour");
            problem(
                StatusCode::BAD_GATEWAY,
                "the provider failed before delivering the message",
            )
        }
        Sending::Delivered { receipt, plan } => {
            tracing::info!(%key, message_id = receipt.message_id, channel = ?receipt.channel, ?plan, "message delivered");
            if let Some(late_by) = plan.late_by {
                tokio::time::sleep(late_by).await;
            }
            (StatusCode::CREATED, Json(receipt)).into_response()
        }
    }
}

async fn lookup(State(notify): State<Notify>, Path(key): Path<String>) -> Response {
    match notify.lookup(&key) {
        Some(record) => Json(record).into_response(),
        None => problem(
            StatusCode::NOT_FOUND,
            format!("no message was delivered under idempotency key `{key}` within the window"),
        ),
    }
}

/// The provider's own routes, to be nested under `/notify`.
pub fn routes(notify: Notify) -> axum::Router {
    axum::Router::new()
        .route("/v1/messages", post(send))
        .route("/v1/messages/{idempotency_key}", get(lookup))
        .with_state(notify)
}

async fn report(State(notify): State<Notify>) -> Response {
    Json(notify.report()).into_response()
}

async fn read_provider(State(notify): State<Notify>) -> String {
    notify.behaviour().to_string()
}

async fn write_provider(State(notify): State<Notify>, spec: String) -> Response {
    match spec.parse::<NotifyBehaviour>() {
        Ok(behaviour) => {
            notify.set_behaviour(behaviour);
            notify.behaviour().to_string().into_response()
        }
        Err(error) => crate::client_error(error.to_string()),
    }
}

/// The provider's admin: its report and its knobs.
pub fn admin_routes(notify: Notify) -> axum::Router {
    axum::Router::new()
        .route("/admin/notify/report", get(report))
        .route(
            "/admin/notify/provider",
            get(read_provider).put(write_provider),
        )
        .with_state(notify)
}
