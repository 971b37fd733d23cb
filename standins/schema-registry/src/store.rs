//! Postgres: connecting (creating the database and the registry's schema when
//! missing, running migrations) and every query the API needs. Registration
//! and deletes are serialised with a transaction-scoped advisory lock, so any
//! number of requests and registry instances can share one store.

use std::collections::HashSet;
use std::str::FromStr;
use std::time::Duration;

use anyhow::Context;
use apache_avro::Schema;
use sqlx::postgres::{PgConnectOptions, PgPoolOptions};
use sqlx::types::Json;
use sqlx::{Connection, Executor, PgConnection, PgPool, Row};

use crate::avro::{self, CompatibilityLevel, ParsedSchema, Reference};
use crate::config::Config;
use crate::error::ApiError;

/// First half of the advisory lock key (ASCII "SR"); the second half is a hash
/// of the registry's Postgres schema, so registries in other schemas of the
/// same database do not wait on each other.
const LOCK_CLASS: i32 = 0x5352;

/// How a request names a version: a number or `latest` (`-1`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum VersionSpec {
    Latest,
    Number(i32),
}

impl VersionSpec {
    pub fn parse(s: &str) -> Result<VersionSpec, ApiError> {
        if s.eq_ignore_ascii_case("latest") {
            return Ok(VersionSpec::Latest);
        }
        match s.parse::<i64>() {
            Ok(-1) => Ok(VersionSpec::Latest),
            Ok(n) if (1..=i32::MAX as i64).contains(&n) => Ok(VersionSpec::Number(n as i32)),
            _ => Err(ApiError::InvalidVersion(s.to_owned())),
        }
    }
}

#[derive(Debug, Clone)]
pub struct StoredSchema {
    pub id: i32,
    pub guid: String,
    pub schema_type: String,
    pub text: String,
    pub references: Vec<Reference>,
}

#[derive(Debug, Clone)]
pub struct SubjectVersion {
    pub subject: String,
    pub version: i32,
    pub schema: StoredSchema,
}

#[derive(Debug, Clone)]
pub struct Registered {
    pub id: i32,
    pub guid: String,
    /// False when the schema was already live under the subject.
    pub created: bool,
}

#[derive(Clone)]
pub struct Store {
    pool: PgPool,
}

const SCHEMA_COLUMNS: &str = "s.id, s.guid::text AS guid, s.schema_type, s.schema_text, s.refs";

impl Store {
    /// Connects, creating what is missing, and migrates.
    pub async fn connect(config: &Config) -> anyhow::Result<Store> {
        let options = PgConnectOptions::from_str(&config.database_url)
            .context("DATABASE_URL is not a valid Postgres URL")?;
        ensure_database(&options).await?;
        ensure_schema(&options, &config.db_schema).await?;

        let set_search_path = format!("SET search_path TO {}", quote_ident(&config.db_schema));
        let pool = PgPoolOptions::new()
            .max_connections(10)
            .acquire_timeout(Duration::from_secs(5))
            .after_connect(move |conn, _meta| {
                let sql = set_search_path.clone();
                Box::pin(async move {
                    conn.execute(sql.as_str()).await?;
                    Ok(())
                })
            })
            .connect_with(options)
            .await
            .context("cannot open the Postgres pool")?;
        sqlx::migrate!()
            .run(&pool)
            .await
            .context("cannot run the registry's migrations")?;
        Ok(Store { pool })
    }

    /// Wraps a pool that is already set up (search_path, migrations).
    pub fn from_pool(pool: PgPool) -> Store {
        Store { pool }
    }

    pub fn pool(&self) -> &PgPool {
        &self.pool
    }

    pub async fn ping(&self) -> Result<(), sqlx::Error> {
        sqlx::query("SELECT 1")
            .execute(&self.pool)
            .await
            .map(|_| ())
    }

    pub async fn schema_by_id(&self, id: i32) -> Result<Option<StoredSchema>, ApiError> {
        let sql = format!("SELECT {SCHEMA_COLUMNS} FROM schemas s WHERE s.id = $1");
        let row = sqlx::query(&sql)
            .bind(id)
            .fetch_optional(&self.pool)
            .await?;
        row.map(|r| stored_schema(&r)).transpose()
    }

    pub async fn schema_by_guid(&self, guid: &str) -> Result<Option<StoredSchema>, ApiError> {
        let sql = format!("SELECT {SCHEMA_COLUMNS} FROM schemas s WHERE s.guid::text = lower($1)");
        let row = sqlx::query(&sql)
            .bind(guid)
            .fetch_optional(&self.pool)
            .await?;
        row.map(|r| stored_schema(&r)).transpose()
    }

    /// The (subject, version) pairs using schema `id`.
    pub async fn usages(&self, id: i32, deleted: bool) -> Result<Vec<(String, i32)>, ApiError> {
        let rows = sqlx::query(
            "SELECT subject, version FROM subject_versions
             WHERE schema_id = $1 AND ($2 OR NOT deleted) ORDER BY subject, version",
        )
        .bind(id)
        .bind(deleted)
        .fetch_all(&self.pool)
        .await?;
        Ok(rows
            .iter()
            .map(|r| (r.get("subject"), r.get("version")))
            .collect())
    }

    pub async fn subjects(
        &self,
        deleted: bool,
        deleted_only: bool,
        prefix: &str,
    ) -> Result<Vec<String>, ApiError> {
        // A subject is live while one of its versions is; deleted once all are.
        let rows = sqlx::query(
            "SELECT subject, bool_and(deleted) AS all_deleted FROM subject_versions
             WHERE starts_with(subject, $1) GROUP BY subject ORDER BY subject",
        )
        .bind(prefix)
        .fetch_all(&self.pool)
        .await?;
        Ok(rows
            .iter()
            .filter(|r| {
                let all_deleted: bool = r.get("all_deleted");
                if deleted_only {
                    all_deleted
                } else {
                    deleted || !all_deleted
                }
            })
            .map(|r| r.get("subject"))
            .collect())
    }

    /// Version numbers of `subject`; 40401 when it has none to show.
    pub async fn versions(
        &self,
        subject: &str,
        deleted: bool,
        deleted_only: bool,
    ) -> Result<Vec<i32>, ApiError> {
        let rows = sqlx::query(
            "SELECT version, deleted FROM subject_versions WHERE subject = $1 ORDER BY version",
        )
        .bind(subject)
        .fetch_all(&self.pool)
        .await?;
        let versions: Vec<i32> = rows
            .iter()
            .filter(|r| {
                let d: bool = r.get("deleted");
                if deleted_only {
                    d
                } else {
                    deleted || !d
                }
            })
            .map(|r| r.get("version"))
            .collect();
        // Confluent answers 40401 for a subject whose versions are all deleted,
        // unless deleted ones were asked for.
        if rows.is_empty() || (versions.is_empty() && !deleted_only) {
            return Err(ApiError::SubjectNotFound(subject.to_owned()));
        }
        Ok(versions)
    }

    pub async fn version(
        &self,
        subject: &str,
        spec: VersionSpec,
        deleted: bool,
    ) -> Result<SubjectVersion, ApiError> {
        let mut conn = self.pool.acquire().await?;
        version(&mut conn, subject, spec, deleted).await
    }

    /// The version of `subject` holding the same schema as `parsed`.
    pub async fn lookup(
        &self,
        subject: &str,
        parsed: &ParsedSchema,
        deleted: bool,
    ) -> Result<SubjectVersion, ApiError> {
        let sql = format!(
            "SELECT v.subject, v.version, {SCHEMA_COLUMNS}
             FROM subject_versions v JOIN schemas s ON s.id = v.schema_id
             WHERE v.subject = $1 AND md5(s.identity) = md5($2) AND s.identity = $2
               AND ($3 OR NOT v.deleted)
             ORDER BY v.deleted, v.version DESC LIMIT 1"
        );
        let row = sqlx::query(&sql)
            .bind(subject)
            .bind(&parsed.identity)
            .bind(deleted)
            .fetch_optional(&self.pool)
            .await?;
        match row {
            Some(r) => subject_version(&r),
            None => {
                if subject_exists(&self.pool, subject, deleted).await? {
                    Err(ApiError::SchemaNotInSubject)
                } else {
                    Err(ApiError::SubjectNotFound(subject.to_owned()))
                }
            }
        }
    }

    /// Texts of the schemas `references` name, transitively, dependencies
    /// first: what `avro::parse` needs to resolve the names.
    pub async fn referenced_texts(
        &self,
        references: &[Reference],
    ) -> Result<Vec<String>, ApiError> {
        let mut conn = self.pool.acquire().await?;
        referenced_texts(&mut conn, references).await
    }

    /// Registers `parsed` under `subject`: returns the existing id when the
    /// subject already holds it, else checks compatibility and adds a version,
    /// reusing the schema's global id when another subject has it.
    pub async fn register(
        &self,
        subject: &str,
        parsed: &ParsedSchema,
    ) -> Result<Registered, ApiError> {
        // Every producer re-registers its schema when it starts: answer that
        // without queueing on the lock.
        let live = sqlx::query(
            "SELECT s.id, s.guid::text AS guid FROM schemas s
             JOIN subject_versions v ON v.schema_id = s.id
             WHERE md5(s.identity) = md5($1) AND s.identity = $1
               AND v.subject = $2 AND NOT v.deleted
             LIMIT 1",
        )
        .bind(&parsed.identity)
        .bind(subject)
        .fetch_optional(&self.pool)
        .await?;
        if let Some(r) = live {
            return Ok(Registered {
                id: r.get("id"),
                guid: r.get("guid"),
                created: false,
            });
        }

        let mut tx = self.pool.begin().await?;
        lock(&mut tx).await?;

        let existing = sqlx::query(
            "SELECT id, guid::text AS guid FROM schemas WHERE md5(identity) = md5($1) AND identity = $1",
        )
        .bind(&parsed.identity)
        .fetch_optional(&mut *tx)
        .await?;
        let existing: Option<(i32, String)> = existing.map(|r| (r.get("id"), r.get("guid")));

        if let Some((id, guid)) = &existing {
            let live = sqlx::query(
                "SELECT 1 FROM subject_versions WHERE subject = $1 AND schema_id = $2 AND NOT deleted",
            )
            .bind(subject)
            .bind(id)
            .fetch_optional(&mut *tx)
            .await?;
            if live.is_some() {
                return Ok(Registered {
                    id: *id,
                    guid: guid.clone(),
                    created: false,
                });
            }
        }

        let level = effective_level(&mut tx, subject).await?;
        let messages = check_against_live(&mut tx, subject, level, &parsed.resolved, false).await?;
        if !messages.is_empty() {
            return Err(ApiError::Incompatible {
                subject: subject.to_owned(),
                messages,
            });
        }

        let (id, guid) = match existing {
            Some(found) => found,
            None => {
                let row = sqlx::query(
                    "INSERT INTO schemas (schema_type, schema_text, identity, refs)
                     VALUES ($1, $2, $3, $4) RETURNING id, guid::text AS guid",
                )
                .bind(&parsed.schema_type)
                .bind(&parsed.text)
                .bind(&parsed.identity)
                .bind(Json(&parsed.references))
                .fetch_one(&mut *tx)
                .await?;
                (row.get("id"), row.get("guid"))
            }
        };
        // Numbers of deleted versions are not reused, as in Confluent.
        sqlx::query(
            "INSERT INTO subject_versions (subject, version, schema_id)
             SELECT $1, coalesce(max(version), 0) + 1, $2 FROM subject_versions WHERE subject = $1",
        )
        .bind(subject)
        .bind(id)
        .execute(&mut *tx)
        .await?;
        tx.commit().await?;
        Ok(Registered {
            id,
            guid,
            created: true,
        })
    }

    /// Messages explaining why `parsed` may not follow the subject's versions;
    /// empty when compatible. `against` picks one version; `None` means the
    /// ones the subject's level checks on registration.
    pub async fn compatibility(
        &self,
        subject: &str,
        against: Option<VersionSpec>,
        parsed: &ParsedSchema,
    ) -> Result<Vec<String>, ApiError> {
        let mut conn = self.pool.acquire().await?;
        let level = effective_level(&mut conn, subject).await?;
        match against {
            None | Some(VersionSpec::Latest) => {
                // No version yet means anything is compatible; a missing
                // subject is only an error when a number was asked for.
                let force_latest = against.is_some();
                check_against_live(&mut conn, subject, level, &parsed.resolved, force_latest).await
            }
            Some(spec) => {
                let old = version(&mut conn, subject, spec, false).await?;
                let old_schema = resolve_stored(&mut conn, &old.schema).await?;
                Ok(avro::check(
                    level,
                    &parsed.resolved,
                    &[(old.version, old_schema)],
                ))
            }
        }
    }

    /// Soft or permanent delete of a subject; returns the versions deleted.
    pub async fn delete_subject(
        &self,
        subject: &str,
        permanent: bool,
    ) -> Result<Vec<i32>, ApiError> {
        let mut tx = self.pool.begin().await?;
        lock(&mut tx).await?;
        let rows = sqlx::query(
            "SELECT version, deleted FROM subject_versions WHERE subject = $1 ORDER BY version",
        )
        .bind(subject)
        .fetch_all(&mut *tx)
        .await?;
        if rows.is_empty() {
            return Err(ApiError::SubjectNotFound(subject.to_owned()));
        }
        let any_live = rows.iter().any(|r| !r.get::<bool, _>("deleted"));
        let versions: Vec<i32> = if permanent {
            if any_live {
                return Err(ApiError::SubjectNotSoftDeleted(subject.to_owned()));
            }
            sqlx::query("DELETE FROM subject_versions WHERE subject = $1 RETURNING version")
                .bind(subject)
                .fetch_all(&mut *tx)
                .await?
                .iter()
                .map(|r| r.get("version"))
                .collect()
        } else {
            if !any_live {
                return Err(ApiError::SubjectSoftDeleted(subject.to_owned()));
            }
            sqlx::query(
                "UPDATE subject_versions SET deleted = true WHERE subject = $1 AND NOT deleted RETURNING version",
            )
            .bind(subject)
            .fetch_all(&mut *tx)
            .await?
            .iter()
            .map(|r| r.get("version"))
            .collect()
        };
        // Confluent drops the subject's compatibility level with the subject.
        sqlx::query("DELETE FROM subject_config WHERE subject = $1")
            .bind(subject)
            .execute(&mut *tx)
            .await?;
        tx.commit().await?;
        let mut versions = versions;
        versions.sort_unstable();
        Ok(versions)
    }

    /// Soft or permanent delete of one version; returns its number.
    pub async fn delete_version(
        &self,
        subject: &str,
        spec: VersionSpec,
        permanent: bool,
    ) -> Result<i32, ApiError> {
        let mut tx = self.pool.begin().await?;
        lock(&mut tx).await?;
        // A numbered version is found even when soft-deleted, to answer 40406
        // (or to delete it permanently); `latest` means the latest live one,
        // or the latest of all for a permanent delete.
        let include_deleted = permanent || matches!(spec, VersionSpec::Number(_));
        let target = version(&mut tx, subject, spec, include_deleted).await?;
        let deleted: bool =
            sqlx::query("SELECT deleted FROM subject_versions WHERE subject = $1 AND version = $2")
                .bind(subject)
                .bind(target.version)
                .fetch_one(&mut *tx)
                .await?
                .get("deleted");
        if permanent {
            if !deleted {
                return Err(ApiError::VersionNotSoftDeleted(
                    subject.to_owned(),
                    target.version,
                ));
            }
            sqlx::query("DELETE FROM subject_versions WHERE subject = $1 AND version = $2")
                .bind(subject)
                .bind(target.version)
                .execute(&mut *tx)
                .await?;
        } else {
            if deleted {
                return Err(ApiError::VersionSoftDeleted(
                    subject.to_owned(),
                    target.version,
                ));
            }
            sqlx::query(
                "UPDATE subject_versions SET deleted = true WHERE subject = $1 AND version = $2",
            )
            .bind(subject)
            .bind(target.version)
            .execute(&mut *tx)
            .await?;
        }
        tx.commit().await?;
        Ok(target.version)
    }

    /// Ids of live schemas that reference `subject` at `version`.
    pub async fn referenced_by(&self, subject: &str, version: i32) -> Result<Vec<i32>, ApiError> {
        let needle = serde_json::json!([{ "subject": subject, "version": version }]);
        let rows = sqlx::query(
            "SELECT DISTINCT s.id FROM schemas s JOIN subject_versions v ON v.schema_id = s.id
             WHERE s.refs @> $1 AND NOT v.deleted ORDER BY s.id",
        )
        .bind(Json(needle))
        .fetch_all(&self.pool)
        .await?;
        Ok(rows.iter().map(|r| r.get("id")).collect())
    }

    pub async fn global_level(&self) -> Result<CompatibilityLevel, ApiError> {
        let mut conn = self.pool.acquire().await?;
        global_level(&mut conn).await
    }

    pub async fn set_global_level(&self, level: CompatibilityLevel) -> Result<(), ApiError> {
        sqlx::query("UPDATE global_config SET compatibility = $1")
            .bind(level.as_str())
            .execute(&self.pool)
            .await?;
        Ok(())
    }

    pub async fn subject_level(
        &self,
        subject: &str,
    ) -> Result<Option<CompatibilityLevel>, ApiError> {
        let mut conn = self.pool.acquire().await?;
        subject_level(&mut conn, subject).await
    }

    pub async fn set_subject_level(
        &self,
        subject: &str,
        level: CompatibilityLevel,
    ) -> Result<(), ApiError> {
        sqlx::query(
            "INSERT INTO subject_config (subject, compatibility) VALUES ($1, $2)
             ON CONFLICT (subject) DO UPDATE SET compatibility = EXCLUDED.compatibility",
        )
        .bind(subject)
        .bind(level.as_str())
        .execute(&self.pool)
        .await?;
        Ok(())
    }

    /// Removes the subject's own level; returns it, if there was one.
    pub async fn delete_subject_level(
        &self,
        subject: &str,
    ) -> Result<Option<CompatibilityLevel>, ApiError> {
        let row =
            sqlx::query("DELETE FROM subject_config WHERE subject = $1 RETURNING compatibility")
                .bind(subject)
                .fetch_optional(&self.pool)
                .await?;
        Ok(row.and_then(|r| CompatibilityLevel::parse(r.get::<&str, _>("compatibility"))))
    }
}

async fn lock(conn: &mut PgConnection) -> Result<(), sqlx::Error> {
    sqlx::query("SELECT pg_advisory_xact_lock($1, hashtext(current_schema()))")
        .bind(LOCK_CLASS)
        .execute(conn)
        .await
        .map(|_| ())
}

async fn global_level(conn: &mut PgConnection) -> Result<CompatibilityLevel, ApiError> {
    let row = sqlx::query("SELECT compatibility FROM global_config")
        .fetch_optional(conn)
        .await?;
    Ok(row
        .and_then(|r| CompatibilityLevel::parse(r.get::<&str, _>("compatibility")))
        .unwrap_or(CompatibilityLevel::DEFAULT))
}

async fn subject_level(
    conn: &mut PgConnection,
    subject: &str,
) -> Result<Option<CompatibilityLevel>, ApiError> {
    let row = sqlx::query("SELECT compatibility FROM subject_config WHERE subject = $1")
        .bind(subject)
        .fetch_optional(conn)
        .await?;
    Ok(row.and_then(|r| CompatibilityLevel::parse(r.get::<&str, _>("compatibility"))))
}

async fn effective_level(
    conn: &mut PgConnection,
    subject: &str,
) -> Result<CompatibilityLevel, ApiError> {
    match subject_level(conn, subject).await? {
        Some(level) => Ok(level),
        None => global_level(conn).await,
    }
}

async fn subject_exists<'e, E>(executor: E, subject: &str, deleted: bool) -> Result<bool, ApiError>
where
    E: Executor<'e, Database = sqlx::Postgres>,
{
    let row = sqlx::query(
        "SELECT 1 FROM subject_versions WHERE subject = $1 AND ($2 OR NOT deleted) LIMIT 1",
    )
    .bind(subject)
    .bind(deleted)
    .fetch_optional(executor)
    .await?;
    Ok(row.is_some())
}

async fn version(
    conn: &mut PgConnection,
    subject: &str,
    spec: VersionSpec,
    deleted: bool,
) -> Result<SubjectVersion, ApiError> {
    let sql = format!(
        "SELECT v.subject, v.version, {SCHEMA_COLUMNS}
         FROM subject_versions v JOIN schemas s ON s.id = v.schema_id
         WHERE v.subject = $1 AND ($2 OR NOT v.deleted) AND ($3::int IS NULL OR v.version = $3)
         ORDER BY v.version DESC LIMIT 1"
    );
    let number = match spec {
        VersionSpec::Latest => None,
        VersionSpec::Number(n) => Some(n),
    };
    let row = sqlx::query(&sql)
        .bind(subject)
        .bind(deleted)
        .bind(number)
        .fetch_optional(&mut *conn)
        .await?;
    match row {
        Some(r) => subject_version(&r),
        None if !subject_exists(&mut *conn, subject, deleted).await? => {
            Err(ApiError::SubjectNotFound(subject.to_owned()))
        }
        None => Err(ApiError::VersionNotFound(match number {
            Some(n) => n.to_string(),
            None => "latest".to_owned(),
        })),
    }
}

/// Compatibility messages of `new` against the subject's live versions:
/// all of them for transitive levels, else the latest. `force_latest` picks
/// the latest whatever the level.
async fn check_against_live(
    conn: &mut PgConnection,
    subject: &str,
    level: CompatibilityLevel,
    new: &Schema,
    force_latest: bool,
) -> Result<Vec<String>, ApiError> {
    if level == CompatibilityLevel::None {
        return Ok(Vec::new());
    }
    let sql = format!(
        "SELECT v.subject, v.version, {SCHEMA_COLUMNS}
         FROM subject_versions v JOIN schemas s ON s.id = v.schema_id
         WHERE v.subject = $1 AND NOT v.deleted ORDER BY v.version"
    );
    let rows = sqlx::query(&sql)
        .bind(subject)
        .fetch_all(&mut *conn)
        .await?;
    let mut live = rows
        .iter()
        .map(subject_version)
        .collect::<Result<Vec<_>, _>>()?;
    if force_latest || !level.is_transitive() {
        live = live.split_off(live.len().saturating_sub(1));
    }
    let mut olds = Vec::with_capacity(live.len());
    for v in &live {
        olds.push((v.version, resolve_stored(conn, &v.schema).await?));
    }
    Ok(avro::check(level, new, &olds))
}

/// Parses a stored schema with its references, for compatibility checks.
async fn resolve_stored(
    conn: &mut PgConnection,
    stored: &StoredSchema,
) -> Result<Schema, ApiError> {
    let texts = referenced_texts(conn, &stored.references).await?;
    let parsed = avro::parse(
        Some(&stored.schema_type),
        &stored.text,
        stored.references.clone(),
        &texts,
    )
    .map_err(|e| {
        // Stored schemas were valid when registered; failing now is a
        // server-side fault, not the client's.
        tracing::error!(id = stored.id, error = %e, "stored schema no longer parses");
        ApiError::Internal(format!("stored schema {} does not parse: {e}", stored.id))
    })?;
    Ok(parsed.resolved)
}

async fn referenced_texts(
    conn: &mut PgConnection,
    references: &[Reference],
) -> Result<Vec<String>, ApiError> {
    let mut out = Vec::new();
    let mut seen = HashSet::new();
    let mut stack: Vec<(Reference, bool)> = references
        .iter()
        .rev()
        .map(|r| (r.clone(), false))
        .collect();
    // Depth-first, emitting a schema after the ones it references.
    while let Some((r, expanded)) = stack.pop() {
        let key = (r.subject.clone(), r.version);
        if expanded {
            let v = version(conn, &r.subject, VersionSpec::Number(r.version), true).await?;
            out.push(v.schema.text);
            continue;
        }
        if !seen.insert(key) {
            continue;
        }
        let v = version(conn, &r.subject, VersionSpec::Number(r.version), true)
            .await
            .map_err(|e| match e {
                ApiError::Store(e) => ApiError::Store(e),
                _ => ApiError::InvalidSchema(format!(
                    "reference '{}' to subject '{}' version {} not found",
                    r.name, r.subject, r.version
                )),
            })?;
        stack.push((r, true));
        for child in v.schema.references.iter().rev() {
            stack.push((child.clone(), false));
        }
    }
    Ok(out)
}

fn stored_schema(r: &sqlx::postgres::PgRow) -> Result<StoredSchema, ApiError> {
    let refs: Json<Vec<Reference>> = r.try_get("refs")?;
    Ok(StoredSchema {
        id: r.try_get("id")?,
        guid: r.try_get("guid")?,
        schema_type: r.try_get("schema_type")?,
        text: r.try_get("schema_text")?,
        references: refs.0,
    })
}

fn subject_version(r: &sqlx::postgres::PgRow) -> Result<SubjectVersion, ApiError> {
    Ok(SubjectVersion {
        subject: r.try_get("subject")?,
        version: r.try_get("version")?,
        schema: stored_schema(r)?,
    })
}

/// Creates the database named in the URL when it does not exist, from the
/// server's `postgres` database.
async fn ensure_database(options: &PgConnectOptions) -> anyhow::Result<()> {
    match PgConnection::connect_with(options).await {
        Ok(conn) => {
            conn.close().await.ok();
            return Ok(());
        }
        Err(e) if db_code(&e).as_deref() == Some("3D000") => {}
        Err(e) => return Err(e).context("cannot connect to Postgres"),
    }
    let name = options
        .get_database()
        .context("DATABASE_URL names no database")?
        .to_owned();
    let mut admin = PgConnection::connect_with(&options.clone().database("postgres"))
        .await
        .context("cannot connect to the `postgres` database to create the registry's database")?;
    let created = admin
        .execute(format!("CREATE DATABASE {}", quote_ident(&name)).as_str())
        .await;
    admin.close().await.ok();
    match created {
        Ok(_) => {
            tracing::info!(database = %name, "created database");
            Ok(())
        }
        // Another instance created it in the meantime.
        Err(e) if matches!(db_code(&e).as_deref(), Some("42P04") | Some("23505")) => Ok(()),
        Err(e) => Err(e).with_context(|| format!("cannot create database {name}")),
    }
}

async fn ensure_schema(options: &PgConnectOptions, schema: &str) -> anyhow::Result<()> {
    let mut conn = PgConnection::connect_with(options)
        .await
        .context("cannot connect to Postgres")?;
    let created = conn
        .execute(format!("CREATE SCHEMA IF NOT EXISTS {}", quote_ident(schema)).as_str())
        .await;
    conn.close().await.ok();
    match created {
        Ok(_) => Ok(()),
        // IF NOT EXISTS still races with a concurrent creator.
        Err(e) if matches!(db_code(&e).as_deref(), Some("42P06") | Some("23505")) => Ok(()),
        Err(e) => Err(e).with_context(|| format!("cannot create schema {schema}")),
    }
}

fn db_code(e: &sqlx::Error) -> Option<String> {
    e.as_database_error()
        .and_then(|d| d.code())
        .map(|c| c.into_owned())
}

/// Quotes a Postgres identifier, so any schema or database name is safe to
/// splice into DDL (which takes no bind parameters).
pub fn quote_ident(name: &str) -> String {
    format!("\"{}\"", name.replace('"', "\"\""))
}
