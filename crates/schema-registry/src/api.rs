//! The Confluent Schema Registry REST API (the subset Kafka clients, serdes and
//! tooling use). Request bodies are read as JSON whatever their content type,
//! because clients send `application/vnd.schemaregistry.v1+json`,
//! `application/json` or nothing at all.

use apache_avro::Schema;
use axum::Router;
use axum::body::Bytes;
use axum::extract::{Path, State};
use axum::http::{StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use serde::Deserialize;
use serde_json::{Value, json};

use crate::compatibility::{self, CompatibilityLevel};
use crate::error::ApiError;
use crate::flags::Flags;
use crate::store::{NewSchema, Store, SubjectVersion, VersionSelector};

pub const CONTENT_TYPE: &str = "application/vnd.schemaregistry.v1+json";

/// Only Avro is served; JSON Schema and Protobuf subjects are refused with 42201
/// rather than stored unchecked.
const AVRO: &str = "AVRO";

#[derive(Clone)]
pub struct AppState {
    pub store: Store,
    /// The global level used until one is set with `PUT /config`.
    pub default_level: CompatibilityLevel,
}

pub fn router(state: AppState) -> Router {
    Router::new()
        .route("/", get(root))
        .route("/healthz", get(healthz))
        .route("/schemas/types", get(schema_types))
        .route("/schemas/ids/{id}", get(schema_by_id))
        .route("/schemas/ids/{id}/schema", get(raw_schema_by_id))
        .route("/schemas/ids/{id}/versions", get(schema_usages))
        .route("/subjects", get(list_subjects))
        .route("/subjects/{subject}", post(lookup).delete(delete_subject))
        .route(
            "/subjects/{subject}/versions",
            get(list_versions).post(register),
        )
        .route(
            "/subjects/{subject}/versions/{version}",
            get(get_version).delete(delete_version),
        )
        .route(
            "/subjects/{subject}/versions/{version}/schema",
            get(get_raw_version),
        )
        .route(
            "/compatibility/subjects/{subject}/versions",
            post(check_against_all),
        )
        .route(
            "/compatibility/subjects/{subject}/versions/{version}",
            post(check_against_version),
        )
        .route("/config", get(get_global_config).put(put_global_config))
        .route(
            "/config/{subject}",
            get(get_subject_config)
                .put(put_subject_config)
                .delete(delete_subject_config),
        )
        .with_state(state)
}

pub fn json_response(status: StatusCode, body: &Value) -> Response {
    (
        status,
        [(header::CONTENT_TYPE, CONTENT_TYPE)],
        body.to_string(),
    )
        .into_response()
}

fn ok(body: Value) -> Response {
    json_response(StatusCode::OK, &body)
}

#[derive(Debug, Deserialize)]
#[serde(rename_all = "camelCase")]
struct SchemaRequest {
    schema: String,
    #[serde(default)]
    schema_type: Option<String>,
    #[serde(default)]
    references: Vec<Value>,
}

#[derive(Debug, Deserialize)]
struct ConfigRequest {
    compatibility: String,
}

fn parse_body<T: for<'de> Deserialize<'de>>(body: &Bytes) -> Result<T, ApiError> {
    serde_json::from_slice(body).map_err(|error| ApiError::BadRequest(error.to_string()))
}

fn parse_version(raw: &str) -> Result<VersionSelector, ApiError> {
    if raw == "latest" {
        return Ok(VersionSelector::Latest);
    }
    match raw.parse::<i32>() {
        Ok(-1) => Ok(VersionSelector::Latest),
        Ok(n) if n >= 1 => Ok(VersionSelector::Number(n)),
        _ => Err(ApiError::InvalidVersion(raw.to_owned())),
    }
}

fn parse_id(raw: &str) -> Result<i32, ApiError> {
    raw.parse::<i32>()
        .ok()
        .filter(|id| *id > 0)
        .ok_or_else(|| ApiError::SchemaNotFound(raw.to_owned()))
}

/// A submitted schema, parsed and normalized, or the 42201 that explains why not.
struct Candidate {
    parsed: Schema,
    new: NewSchema,
}

fn candidate(request: SchemaRequest) -> Result<Candidate, ApiError> {
    let schema_type = request
        .schema_type
        .unwrap_or_else(|| AVRO.to_owned())
        .to_uppercase();
    if schema_type != AVRO {
        return Err(ApiError::InvalidSchema(format!(
            "schema type {schema_type} is not supported by this registry; only AVRO is"
        )));
    }
    if !request.references.is_empty() {
        return Err(ApiError::InvalidSchema(
            "schema references are not supported by this registry; inline the named types"
                .to_owned(),
        ));
    }
    let parsed = Schema::parse_str(&request.schema)
        .map_err(|error| ApiError::InvalidSchema(error.to_string()))?;
    // serde_json's map is ordered by key, so this form ignores whitespace and key
    // order but keeps everything that matters to readers (field order, defaults, docs).
    let normalized = serde_json::from_str::<Value>(&request.schema)
        .map_err(|error| ApiError::InvalidSchema(error.to_string()))?
        .to_string();
    Ok(Candidate {
        parsed,
        new: NewSchema {
            schema_type,
            text: request.schema,
            normalized,
        },
    })
}

fn parse_stored(version: i32, text: &str) -> Result<(i32, Schema), ApiError> {
    Schema::parse_str(text)
        .map(|schema| (version, schema))
        .map_err(|error| {
            ApiError::Store(sqlx::Error::Protocol(format!(
                "stored schema of version {version} no longer parses: {error}"
            )))
        })
}

fn parse_history(live: &[(i32, String)]) -> Result<Vec<(i32, Schema)>, ApiError> {
    live.iter()
        .map(|(version, text)| parse_stored(*version, text))
        .collect()
}

fn version_body(found: &SubjectVersion) -> Value {
    let mut body = json!({
        "subject": found.subject,
        "version": found.version,
        "id": found.id,
        "schema": found.schema,
    });
    // Confluent omits schemaType for Avro, the default.
    if found.schema_type != AVRO {
        body["schemaType"] = json!(found.schema_type);
    }
    body
}

async fn effective_level(state: &AppState, subject: &str) -> Result<CompatibilityLevel, ApiError> {
    if let Some(level) = state.store.configured_level(Some(subject)).await? {
        return Ok(level);
    }
    Ok(state
        .store
        .configured_level(None)
        .await?
        .unwrap_or(state.default_level))
}

async fn root() -> Response {
    ok(json!({}))
}

async fn healthz(State(state): State<AppState>) -> Result<Response, ApiError> {
    state.store.ping().await?;
    Ok(ok(json!({ "status": "ok" })))
}

async fn schema_types() -> Response {
    ok(json!([AVRO]))
}

async fn schema_by_id(
    State(state): State<AppState>,
    Path(id): Path<String>,
) -> Result<Response, ApiError> {
    let (schema_type, schema) = state.store.schema_by_id(parse_id(&id)?).await?;
    let mut body = json!({ "schema": schema });
    if schema_type != AVRO {
        body["schemaType"] = json!(schema_type);
    }
    Ok(ok(body))
}

async fn raw_schema_by_id(
    State(state): State<AppState>,
    Path(id): Path<String>,
) -> Result<Response, ApiError> {
    let (_, schema) = state.store.schema_by_id(parse_id(&id)?).await?;
    Ok(raw_schema(schema))
}

fn raw_schema(schema: String) -> Response {
    (
        StatusCode::OK,
        [(header::CONTENT_TYPE, CONTENT_TYPE)],
        schema,
    )
        .into_response()
}

async fn schema_usages(
    State(state): State<AppState>,
    Path(id): Path<String>,
    flags: Flags,
) -> Result<Response, ApiError> {
    let id = parse_id(&id)?;
    state.store.schema_by_id(id).await?;
    let usages = state.store.usages(id, flags.deleted).await?;
    Ok(ok(Value::Array(
        usages
            .into_iter()
            .map(|(subject, version)| json!({ "subject": subject, "version": version }))
            .collect(),
    )))
}

async fn list_subjects(State(state): State<AppState>, flags: Flags) -> Result<Response, ApiError> {
    Ok(ok(json!(state.store.subjects(flags.deleted).await?)))
}

async fn list_versions(
    State(state): State<AppState>,
    Path(subject): Path<String>,
    flags: Flags,
) -> Result<Response, ApiError> {
    Ok(ok(json!(
        state.store.versions(&subject, flags.deleted).await?
    )))
}

async fn get_version(
    State(state): State<AppState>,
    Path((subject, version)): Path<(String, String)>,
    flags: Flags,
) -> Result<Response, ApiError> {
    let found = state
        .store
        .version(&subject, parse_version(&version)?, flags.deleted)
        .await?;
    Ok(ok(version_body(&found)))
}

async fn get_raw_version(
    State(state): State<AppState>,
    Path((subject, version)): Path<(String, String)>,
    flags: Flags,
) -> Result<Response, ApiError> {
    let found = state
        .store
        .version(&subject, parse_version(&version)?, flags.deleted)
        .await?;
    Ok(raw_schema(found.schema))
}

async fn register(
    State(state): State<AppState>,
    Path(subject): Path<String>,
    // Only `normalize` applies, and it changes nothing; refusing a non-boolean
    // one is the same answer as everywhere else.
    _flags: Flags,
    body: Bytes,
) -> Result<Response, ApiError> {
    let candidate = candidate(parse_body(&body)?)?;
    let level = effective_level(&state, &subject).await?;
    let id = state
        .store
        .register(&subject, &candidate.new, |live| {
            let history = parse_history(live)?;
            let problems = compatibility::check(level, &candidate.parsed, &history);
            if problems.is_empty() {
                return Ok(());
            }
            Err(ApiError::Incompatible {
                subject: subject.clone(),
                details: problems
                    .iter()
                    .map(ToString::to_string)
                    .collect::<Vec<_>>()
                    .join("; "),
            })
        })
        .await?;
    tracing::info!(subject, id, "schema registered");
    Ok(ok(json!({ "id": id })))
}

async fn lookup(
    State(state): State<AppState>,
    Path(subject): Path<String>,
    flags: Flags,
    body: Bytes,
) -> Result<Response, ApiError> {
    let candidate = candidate(parse_body(&body)?)?;
    // Distinguish "no such subject" (40401) from "not in this subject" (40403).
    state.store.versions(&subject, flags.deleted).await?;
    match state.store.find(&subject, &candidate.new).await? {
        Some(found) => Ok(ok(version_body(&found))),
        None => Err(ApiError::SchemaNotFound(format!(
            "under subject '{subject}'"
        ))),
    }
}

async fn delete_subject(
    State(state): State<AppState>,
    Path(subject): Path<String>,
    flags: Flags,
) -> Result<Response, ApiError> {
    Ok(ok(json!(
        state
            .store
            .delete_subject(&subject, flags.permanent)
            .await?
    )))
}

async fn delete_version(
    State(state): State<AppState>,
    Path((subject, version)): Path<(String, String)>,
    flags: Flags,
) -> Result<Response, ApiError> {
    let version = parse_version(&version)?;
    Ok(ok(json!(
        state
            .store
            .delete_version(&subject, version, flags.permanent)
            .await?
    )))
}

async fn check_against_all(
    State(state): State<AppState>,
    Path(subject): Path<String>,
    flags: Flags,
    body: Bytes,
) -> Result<Response, ApiError> {
    let candidate = candidate(parse_body(&body)?)?;
    let level = effective_level(&state, &subject).await?;
    let history = parse_history(&state.store.live_schemas(&subject).await?)?;
    Ok(compatibility_response(
        compatibility::check(level, &candidate.parsed, &history),
        flags.verbose,
    ))
}

async fn check_against_version(
    State(state): State<AppState>,
    Path((subject, version)): Path<(String, String)>,
    flags: Flags,
    body: Bytes,
) -> Result<Response, ApiError> {
    let selector = parse_version(&version)?;
    let candidate = candidate(parse_body(&body)?)?;
    let level = effective_level(&state, &subject).await?;
    let history = if selector == VersionSelector::Latest && level.is_transitive() {
        // Against "latest", a transitive level means what registering would check.
        parse_history(&state.store.live_schemas(&subject).await?)?
    } else {
        let target = state.store.version(&subject, selector, false).await?;
        vec![parse_stored(target.version, &target.schema)?]
    };
    Ok(compatibility_response(
        compatibility::check(level, &candidate.parsed, &history),
        flags.verbose,
    ))
}

fn compatibility_response(
    problems: Vec<compatibility::Incompatibility>,
    verbose: bool,
) -> Response {
    let mut body = json!({ "is_compatible": problems.is_empty() });
    if verbose {
        body["messages"] = json!(problems.iter().map(ToString::to_string).collect::<Vec<_>>());
    }
    ok(body)
}

fn parse_level(request: ConfigRequest) -> Result<CompatibilityLevel, ApiError> {
    request
        .compatibility
        .parse()
        .map_err(|_| ApiError::InvalidCompatibilityLevel(request.compatibility))
}

async fn get_global_config(State(state): State<AppState>) -> Result<Response, ApiError> {
    let level = state
        .store
        .configured_level(None)
        .await?
        .unwrap_or(state.default_level);
    Ok(ok(json!({ "compatibilityLevel": level.as_str() })))
}

async fn put_global_config(
    State(state): State<AppState>,
    body: Bytes,
) -> Result<Response, ApiError> {
    let level = parse_level(parse_body(&body)?)?;
    state.store.set_level(None, level).await?;
    tracing::info!(%level, "global compatibility level set");
    Ok(ok(json!({ "compatibility": level.as_str() })))
}

async fn get_subject_config(
    State(state): State<AppState>,
    Path(subject): Path<String>,
    flags: Flags,
) -> Result<Response, ApiError> {
    let level = match state.store.configured_level(Some(&subject)).await? {
        Some(level) => level,
        None if flags.default_to_global => state
            .store
            .configured_level(None)
            .await?
            .unwrap_or(state.default_level),
        None => return Err(ApiError::SubjectConfigNotFound(subject)),
    };
    Ok(ok(json!({ "compatibilityLevel": level.as_str() })))
}

async fn put_subject_config(
    State(state): State<AppState>,
    Path(subject): Path<String>,
    body: Bytes,
) -> Result<Response, ApiError> {
    let level = parse_level(parse_body(&body)?)?;
    state.store.set_level(Some(&subject), level).await?;
    tracing::info!(subject, %level, "subject compatibility level set");
    Ok(ok(json!({ "compatibility": level.as_str() })))
}

async fn delete_subject_config(
    State(state): State<AppState>,
    Path(subject): Path<String>,
) -> Result<Response, ApiError> {
    match state.store.delete_level(&subject).await? {
        Some(previous) => Ok(ok(json!({ "compatibilityLevel": previous.as_str() }))),
        None => Err(ApiError::SubjectConfigNotFound(subject)),
    }
}
