//! PostgreSQL persistence for subjects, versions, schemas and compatibility
//! configuration.

use sqlx::{PgPool, Postgres, Row, Transaction};

use crate::compatibility::CompatibilityLevel;
use crate::error::ApiError;

/// The `compatibility_config` key that holds the global level.
const GLOBAL: &str = "";

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum VersionSelector {
    Latest,
    Number(i32),
}

#[derive(Debug, Clone)]
pub struct SubjectVersion {
    pub subject: String,
    pub version: i32,
    pub id: i32,
    pub schema_type: String,
    pub schema: String,
}

/// A schema ready to store: its type, the text as submitted, and the normalized
/// form that decides whether two submissions are the same schema.
#[derive(Debug, Clone)]
pub struct NewSchema {
    pub schema_type: String,
    pub text: String,
    pub normalized: String,
}

#[derive(Clone)]
pub struct Store {
    pool: PgPool,
}

impl Store {
    pub fn new(pool: PgPool) -> Self {
        Self { pool }
    }

    pub async fn migrate(&self) -> Result<(), sqlx::migrate::MigrateError> {
        sqlx::migrate!("./migrations").run(&self.pool).await
    }

    pub async fn ping(&self) -> Result<(), sqlx::Error> {
        sqlx::query("SELECT 1").execute(&self.pool).await.map(drop)
    }

    pub async fn configured_level(
        &self,
        subject: Option<&str>,
    ) -> Result<Option<CompatibilityLevel>, ApiError> {
        let stored: Option<String> =
            sqlx::query_scalar("SELECT compatibility FROM compatibility_config WHERE subject = $1")
                .bind(subject.unwrap_or(GLOBAL))
                .fetch_optional(&self.pool)
                .await?;
        // Only valid levels are ever written, so an unreadable one is a corrupted row.
        stored
            .map(|level| {
                level.parse().map_err(|_| {
                    ApiError::Store(sqlx::Error::Protocol(format!(
                        "stored compatibility level '{level}' is not valid"
                    )))
                })
            })
            .transpose()
    }

    pub async fn set_level(
        &self,
        subject: Option<&str>,
        level: CompatibilityLevel,
    ) -> Result<(), ApiError> {
        sqlx::query(
            "INSERT INTO compatibility_config (subject, compatibility) VALUES ($1, $2)
             ON CONFLICT (subject) DO UPDATE SET compatibility = EXCLUDED.compatibility, updated_at = now()",
        )
        .bind(subject.unwrap_or(GLOBAL))
        .bind(level.as_str())
        .execute(&self.pool)
        .await?;
        Ok(())
    }

    pub async fn delete_level(
        &self,
        subject: &str,
    ) -> Result<Option<CompatibilityLevel>, ApiError> {
        let previous = self.configured_level(Some(subject)).await?;
        sqlx::query("DELETE FROM compatibility_config WHERE subject = $1")
            .bind(subject)
            .execute(&self.pool)
            .await?;
        Ok(previous)
    }

    pub async fn subjects(&self, include_deleted: bool) -> Result<Vec<String>, ApiError> {
        Ok(sqlx::query_scalar(
            "SELECT DISTINCT subject FROM subject_versions WHERE $1 OR NOT deleted ORDER BY subject",
        )
        .bind(include_deleted)
        .fetch_all(&self.pool)
        .await?)
    }

    pub async fn versions(
        &self,
        subject: &str,
        include_deleted: bool,
    ) -> Result<Vec<i32>, ApiError> {
        let versions: Vec<i32> = sqlx::query_scalar(
            "SELECT version FROM subject_versions WHERE subject = $1 AND ($2 OR NOT deleted) ORDER BY version",
        )
        .bind(subject)
        .bind(include_deleted)
        .fetch_all(&self.pool)
        .await?;
        if versions.is_empty() {
            return Err(ApiError::SubjectNotFound(subject.to_owned()));
        }
        Ok(versions)
    }

    pub async fn version(
        &self,
        subject: &str,
        selector: VersionSelector,
        include_deleted: bool,
    ) -> Result<SubjectVersion, ApiError> {
        let known: bool = sqlx::query_scalar(
            "SELECT EXISTS (SELECT 1 FROM subject_versions WHERE subject = $1 AND ($2 OR NOT deleted))",
        )
        .bind(subject)
        .bind(include_deleted)
        .fetch_one(&self.pool)
        .await?;
        if !known {
            return Err(ApiError::SubjectNotFound(subject.to_owned()));
        }
        let row = match selector {
            VersionSelector::Latest => {
                sqlx::query(
                    "SELECT sv.subject, sv.version, s.id, s.schema_type, s.schema_text
                     FROM subject_versions sv JOIN schemas s ON s.id = sv.schema_id
                     WHERE sv.subject = $1 AND ($2 OR NOT sv.deleted)
                     ORDER BY sv.version DESC LIMIT 1",
                )
                .bind(subject)
                .bind(include_deleted)
                .fetch_optional(&self.pool)
                .await?
            }
            VersionSelector::Number(version) => {
                sqlx::query(
                    "SELECT sv.subject, sv.version, s.id, s.schema_type, s.schema_text
                     FROM subject_versions sv JOIN schemas s ON s.id = sv.schema_id
                     WHERE sv.subject = $1 AND sv.version = $2 AND ($3 OR NOT sv.deleted)",
                )
                .bind(subject)
                .bind(version)
                .bind(include_deleted)
                .fetch_optional(&self.pool)
                .await?
            }
        };
        match row {
            Some(row) => Ok(subject_version(&row)?),
            None => Err(ApiError::VersionNotFound {
                subject: subject.to_owned(),
                version: match selector {
                    VersionSelector::Latest => -1,
                    VersionSelector::Number(n) => n,
                },
            }),
        }
    }

    /// The live versions of a subject with their schema texts, oldest first.
    pub async fn live_schemas(&self, subject: &str) -> Result<Vec<(i32, String)>, ApiError> {
        live_schemas(&self.pool, subject).await
    }

    /// The live version of `subject` that holds this exact schema, if any.
    pub async fn find(
        &self,
        subject: &str,
        schema: &NewSchema,
    ) -> Result<Option<SubjectVersion>, ApiError> {
        find(&self.pool, subject, schema).await
    }

    /// Registers `schema` under `subject` and returns its global id. `check` sees
    /// the subject's live versions and may refuse the schema; it runs under a
    /// per-subject lock so two concurrent registrations cannot both pass it
    /// against the same history.
    pub async fn register(
        &self,
        subject: &str,
        schema: &NewSchema,
        check: impl FnOnce(&[(i32, String)]) -> Result<(), ApiError>,
    ) -> Result<i32, ApiError> {
        let mut tx = self.pool.begin().await?;
        sqlx::query("SELECT pg_advisory_xact_lock(hashtextextended($1, 0))")
            .bind(subject)
            .execute(&mut *tx)
            .await?;
        if let Some(existing) = find(&mut *tx, subject, schema).await? {
            return Ok(existing.id);
        }
        check(&live_schemas(&mut *tx, subject).await?)?;
        let id = upsert_schema(&mut tx, schema).await?;
        sqlx::query(
            "INSERT INTO subject_versions (subject, version, schema_id)
             SELECT $1, COALESCE(MAX(version), 0) + 1, $2 FROM subject_versions WHERE subject = $1",
        )
        .bind(subject)
        .bind(id)
        .execute(&mut *tx)
        .await?;
        tx.commit().await?;
        Ok(id)
    }

    /// A schema by global id. Soft-deleted versions still resolve, because records
    /// written with them are still on the topics and must stay readable.
    pub async fn schema_by_id(&self, id: i32) -> Result<(String, String), ApiError> {
        let row = sqlx::query(
            "SELECT s.schema_type, s.schema_text FROM schemas s
             WHERE s.id = $1 AND EXISTS (SELECT 1 FROM subject_versions sv WHERE sv.schema_id = s.id)",
        )
        .bind(id)
        .fetch_optional(&self.pool)
        .await?
        .ok_or_else(|| ApiError::SchemaNotFound(id.to_string()))?;
        Ok((row.try_get("schema_type")?, row.try_get("schema_text")?))
    }

    pub async fn usages(
        &self,
        id: i32,
        include_deleted: bool,
    ) -> Result<Vec<(String, i32)>, ApiError> {
        let rows = sqlx::query(
            "SELECT subject, version FROM subject_versions WHERE schema_id = $1 AND ($2 OR NOT deleted)
             ORDER BY subject, version",
        )
        .bind(id)
        .bind(include_deleted)
        .fetch_all(&self.pool)
        .await?;
        rows.iter()
            .map(|row| Ok((row.try_get("subject")?, row.try_get("version")?)))
            .collect()
    }

    /// Soft-deletes (or, when `permanent`, removes already soft-deleted) versions
    /// of a subject and returns the versions affected.
    pub async fn delete_subject(
        &self,
        subject: &str,
        permanent: bool,
    ) -> Result<Vec<i32>, ApiError> {
        let mut tx = self.pool.begin().await?;
        let states: Vec<(i32, bool)> = sqlx::query_as(
            "SELECT version, deleted FROM subject_versions WHERE subject = $1 ORDER BY version FOR UPDATE",
        )
        .bind(subject)
        .fetch_all(&mut *tx)
        .await?;
        if states.is_empty() || (!permanent && states.iter().all(|(_, deleted)| *deleted)) {
            return Err(ApiError::SubjectNotFound(subject.to_owned()));
        }
        if permanent && states.iter().any(|(_, deleted)| !deleted) {
            return Err(ApiError::SubjectNotSoftDeleted(subject.to_owned()));
        }
        let affected: Vec<i32> = if permanent {
            sqlx::query_scalar("DELETE FROM subject_versions WHERE subject = $1 RETURNING version")
        } else {
            sqlx::query_scalar(
                "UPDATE subject_versions SET deleted = true WHERE subject = $1 AND NOT deleted RETURNING version",
            )
        }
        .bind(subject)
        .fetch_all(&mut *tx)
        .await?;
        if permanent {
            sqlx::query("DELETE FROM compatibility_config WHERE subject = $1")
                .bind(subject)
                .execute(&mut *tx)
                .await?;
        }
        tx.commit().await?;
        let mut affected = affected;
        affected.sort_unstable();
        Ok(affected)
    }

    pub async fn delete_version(
        &self,
        subject: &str,
        selector: VersionSelector,
        permanent: bool,
    ) -> Result<i32, ApiError> {
        // A permanent delete addresses a version that is already soft-deleted.
        let target = self.version(subject, selector, permanent).await?;
        let mut tx = self.pool.begin().await?;
        let deleted: Option<bool> = sqlx::query_scalar(
            "SELECT deleted FROM subject_versions WHERE subject = $1 AND version = $2 FOR UPDATE",
        )
        .bind(subject)
        .bind(target.version)
        .fetch_optional(&mut *tx)
        .await?;
        let not_found = || ApiError::VersionNotFound {
            subject: subject.to_owned(),
            version: target.version,
        };
        match (deleted, permanent) {
            (None, _) | (Some(true), false) => return Err(not_found()),
            (Some(false), true) => {
                return Err(ApiError::VersionNotSoftDeleted {
                    subject: subject.to_owned(),
                    version: target.version,
                });
            }
            (Some(false), false) => {
                sqlx::query("UPDATE subject_versions SET deleted = true WHERE subject = $1 AND version = $2")
                    .bind(subject)
                    .bind(target.version)
                    .execute(&mut *tx)
                    .await?;
            }
            (Some(true), true) => {
                sqlx::query("DELETE FROM subject_versions WHERE subject = $1 AND version = $2")
                    .bind(subject)
                    .bind(target.version)
                    .execute(&mut *tx)
                    .await?;
            }
        }
        tx.commit().await?;
        Ok(target.version)
    }
}

fn subject_version(row: &sqlx::postgres::PgRow) -> Result<SubjectVersion, sqlx::Error> {
    Ok(SubjectVersion {
        subject: row.try_get("subject")?,
        version: row.try_get("version")?,
        id: row.try_get("id")?,
        schema_type: row.try_get("schema_type")?,
        schema: row.try_get("schema_text")?,
    })
}

async fn live_schemas<'e, E>(executor: E, subject: &str) -> Result<Vec<(i32, String)>, ApiError>
where
    E: sqlx::Executor<'e, Database = Postgres>,
{
    Ok(sqlx::query_as(
        "SELECT sv.version, s.schema_text FROM subject_versions sv JOIN schemas s ON s.id = sv.schema_id
         WHERE sv.subject = $1 AND NOT sv.deleted ORDER BY sv.version",
    )
    .bind(subject)
    .fetch_all(executor)
    .await?)
}

async fn find<'e, E>(
    executor: E,
    subject: &str,
    schema: &NewSchema,
) -> Result<Option<SubjectVersion>, ApiError>
where
    E: sqlx::Executor<'e, Database = Postgres>,
{
    let row = sqlx::query(
        "SELECT sv.subject, sv.version, s.id, s.schema_type, s.schema_text
         FROM subject_versions sv JOIN schemas s ON s.id = sv.schema_id
         WHERE sv.subject = $1 AND NOT sv.deleted AND s.schema_type = $2
           AND s.fingerprint = sha256(convert_to($3, 'UTF8'))
         ORDER BY sv.version LIMIT 1",
    )
    .bind(subject)
    .bind(&schema.schema_type)
    .bind(&schema.normalized)
    .fetch_optional(executor)
    .await?;
    Ok(row.as_ref().map(subject_version).transpose()?)
}

/// The id of this schema, creating it if no subject has registered it before.
async fn upsert_schema(
    tx: &mut Transaction<'_, Postgres>,
    schema: &NewSchema,
) -> Result<i32, ApiError> {
    let inserted: Option<i32> = sqlx::query_scalar(
        "INSERT INTO schemas (schema_type, schema_text, normalized, fingerprint)
         VALUES ($1, $2, $3, sha256(convert_to($3, 'UTF8')))
         ON CONFLICT (schema_type, fingerprint) DO NOTHING RETURNING id",
    )
    .bind(&schema.schema_type)
    .bind(&schema.text)
    .bind(&schema.normalized)
    .fetch_optional(&mut **tx)
    .await?;
    if let Some(id) = inserted {
        return Ok(id);
    }
    Ok(sqlx::query_scalar(
        "SELECT id FROM schemas WHERE schema_type = $1 AND fingerprint = sha256(convert_to($2, 'UTF8'))",
    )
    .bind(&schema.schema_type)
    .bind(&schema.normalized)
    .fetch_one(&mut **tx)
    .await?)
}
