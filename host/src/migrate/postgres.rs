//! Rewrapping envelopes stored in a Postgres table.
//!
//! Each worker walks the table in id order, one batch per transaction:
//! `SELECT ... FOR UPDATE SKIP LOCKED` takes rows no other worker holds, the
//! rewraps run concurrently, and each row is written with `WHERE id = $id AND
//! envelope = $old`, so a row another writer changed is left alone. A batch
//! commits whole or not at all, so a crash loses only that batch's work and
//! a rerun does only what is left.

use std::sync::Arc;

use base64::Engine as _;
use tokio_postgres::{Client, NoTls};

use super::{MigrateError, Outcome, Progress, Rewrapper, ScanReport, Summary, rewrap_all};

const BASE64: base64::engine::GeneralPurpose = base64::engine::general_purpose::STANDARD;

/// Where the envelopes are.
#[derive(Debug, Clone)]
pub struct TableSpec {
    pub database_url: String,
    /// `table` or `schema.table`.
    pub table: String,
    pub id_column: String,
    pub envelope_column: String,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Encoding {
    Bytea,
    Base64Text,
}

/// A validated table: it exists and has both columns, of usable types.
pub struct Table {
    client: Client,
    select_first: String,
    select_after: String,
    update: String,
    count: String,
    scan: String,
    encoding: Encoding,
}

fn quote(identifier: &str) -> String {
    format!("\"{}\"", identifier.replace('"', "\"\""))
}

impl Table {
    /// Connects and checks the table and columns before anything is read or
    /// written; every mistake is named with what does exist.
    pub async fn open(spec: &TableSpec) -> Result<Self, MigrateError> {
        let (client, connection) = tokio_postgres::connect(&spec.database_url, NoTls)
            .await
            .map_err(|e| MigrateError::Database {
                message: format!(
                    "cannot connect to {}: {}",
                    redact(&spec.database_url),
                    MigrateError::from(e)
                ),
            })?;
        tokio::spawn(async move {
            let _ = connection.await;
        });

        let (schema, table) = match spec.table.split_once('.') {
            Some((schema, table)) => (Some(schema.to_owned()), table.to_owned()),
            None => (None, spec.table.clone()),
        };
        let rows = client
            .query(
                "SELECT column_name::text, data_type::text FROM information_schema.columns \
                 WHERE table_schema = coalesce($1, current_schema()) AND table_name = $2 ORDER BY ordinal_position",
                &[&schema, &table],
            )
            .await?;
        if rows.is_empty() {
            return Err(MigrateError::Input(format!(
                "table {} does not exist (or this user cannot see it); pass --table [schema.]name",
                spec.table
            )));
        }
        let columns: Vec<(String, String)> = rows.iter().map(|r| (r.get(0), r.get(1))).collect();
        let find = |name: &str, flag: &str| {
            columns
                .iter()
                .find(|(c, _)| c == name)
                .map(|(_, t)| t.clone())
                .ok_or_else(|| {
                    MigrateError::Input(format!(
                        "table {} has no column {name:?} ({flag}); its columns are: {}",
                        spec.table,
                        columns
                            .iter()
                            .map(|(c, _)| c.as_str())
                            .collect::<Vec<_>>()
                            .join(", ")
                    ))
                })
        };
        let id_type = find(&spec.id_column, "--id-column")?;
        let envelope_type = find(&spec.envelope_column, "--envelope-column")?;
        let encoding = match envelope_type.as_str() {
            "bytea" => Encoding::Bytea,
            "text" | "character varying" => Encoding::Base64Text,
            other => {
                return Err(MigrateError::Input(format!(
                    "column {} is of type {other}; envelopes are stored as bytea or as base64 text",
                    spec.envelope_column
                )));
            }
        };

        let t = match &schema {
            Some(s) => format!("{}.{}", quote(s), quote(&table)),
            None => quote(&table),
        };
        let (id, env) = (quote(&spec.id_column), quote(&spec.envelope_column));
        // Ids travel as text and are cast back, so any orderable id type works.
        // The text is aliased so that ORDER BY sorts by the column's own type.
        let cast = format!("$1::text::{}", sql_type(&id_type));
        Ok(Self {
            select_first: format!(
                "SELECT {id}::text AS keyhost_id, {env} FROM {t} ORDER BY {id} LIMIT $1 FOR UPDATE SKIP LOCKED"
            ),
            select_after: format!(
                "SELECT {id}::text AS keyhost_id, {env} FROM {t} WHERE {id} > {cast} ORDER BY {id} LIMIT $2 FOR UPDATE SKIP LOCKED"
            ),
            update: format!("UPDATE {t} SET {env} = $3 WHERE {id} = {cast} AND {env} = $2"),
            count: format!("SELECT count(*) FROM {t}"),
            scan: format!("SELECT {id}::text, {env} FROM {t}"),
            client,
            encoding,
        })
    }

    pub async fn count(&self) -> Result<u64, MigrateError> {
        let row = self.client.query_one(&self.count, &[]).await?;
        Ok(row.get::<_, i64>(0) as u64)
    }

    /// The row's id, its envelope bytes (or why there are none), and the
    /// stored text of a base64 column, which the optimistic check compares.
    fn decode(
        encoding: Encoding,
        row: &tokio_postgres::Row,
    ) -> (String, Result<Vec<u8>, String>, Option<String>) {
        let id: String = row.get(0);
        let null = || "the envelope is NULL".to_owned();
        match encoding {
            Encoding::Bytea => (
                id,
                row.try_get::<_, Option<Vec<u8>>>(1)
                    .ok()
                    .flatten()
                    .ok_or_else(null),
                None,
            ),
            Encoding::Base64Text => {
                let text = row.try_get::<_, Option<String>>(1).ok().flatten();
                let bytes = text.as_deref().ok_or_else(null).and_then(|t| {
                    BASE64
                        .decode(t.trim())
                        .map_err(|e| format!("the envelope is not base64: {e}"))
                });
                (id, bytes, text)
            }
        }
    }

    /// Rewraps every row, batch by batch, and returns the tally.
    pub async fn rewrap(
        &mut self,
        rewrapper: Arc<Rewrapper>,
        progress: &Progress,
    ) -> Result<Summary, MigrateError> {
        let started = std::time::Instant::now();
        let mut summary = Summary::default();
        let batch = rewrapper.options().batch.max(1) as i64;
        let mut after: Option<String> = None;
        loop {
            let tx = self.client.transaction().await?;
            let rows = match &after {
                None => tx.query(&self.select_first, &[&batch]).await?,
                Some(last) => tx.query(&self.select_after, &[last, &batch]).await?,
            };
            let Some(last) = rows.last() else {
                tx.commit().await?;
                break;
            };
            after = Some(last.get(0));

            // Rewrap the batch concurrently, at most `concurrency` at a time.
            let mut pending = Vec::with_capacity(rows.len());
            let mut stored_text = Vec::with_capacity(rows.len());
            for row in &rows {
                let (id, bytes, text) = Self::decode(self.encoding, row);
                pending.push((id, bytes));
                stored_text.push(text);
            }
            let outcomes = rewrap_all(&rewrapper, &pending).await;

            let mut batch_summary = Summary::default();
            for (((id, stored), text), outcome) in pending.iter().zip(&stored_text).zip(outcomes) {
                if let Outcome::Rewrapped(new) = &outcome {
                    let written = match (self.encoding, stored, text) {
                        (Encoding::Bytea, Ok(old), _) => {
                            tx.execute(&self.update, &[id, old, new]).await?
                        }
                        (Encoding::Base64Text, _, Some(old)) => {
                            tx.execute(&self.update, &[id, old, &BASE64.encode(new)])
                                .await?
                        }
                        _ => unreachable!("only stored envelopes are rewrapped"),
                    };
                    if written == 0 {
                        batch_summary.conflicts += 1;
                        continue;
                    }
                }
                batch_summary.record(id, &outcome);
            }
            if rewrapper.options().dry_run {
                tx.rollback().await?;
            } else {
                tx.commit().await?;
            }
            progress.advance(rows.len() as u64, &batch_summary);
            summary.absorb(batch_summary);
        }
        summary.seconds = started.elapsed().as_secs_f64();
        Ok(summary)
    }

    /// Counts envelopes by provider and key id.
    pub async fn scan(&self, current: Option<(&str, &str)>) -> Result<ScanReport, MigrateError> {
        let mut report = ScanReport::new(current);
        let rows = self.client.query(&self.scan, &[]).await?;
        for row in &rows {
            let (id, bytes, _) = Self::decode(self.encoding, row);
            report.add(&id, bytes.as_deref().map_err(|e| e.clone()));
        }
        Ok(report.finish())
    }
}

/// The type to cast text ids back to, from information_schema's data_type.
fn sql_type(data_type: &str) -> &str {
    match data_type {
        "integer" => "integer",
        "bigint" => "bigint",
        "smallint" => "smallint",
        "uuid" => "uuid",
        "numeric" => "numeric",
        "character varying" => "varchar",
        _ => "text",
    }
}

/// A connection string without its password, for messages.
fn redact(url: &str) -> String {
    match (url.find("://"), url.rfind('@')) {
        (Some(scheme), Some(at)) if at > scheme => {
            let userinfo = &url[scheme + 3..at];
            let user = userinfo.split(':').next().unwrap_or("");
            format!("{}{user}:***{}", &url[..scheme + 3], &url[at..])
        }
        _ => url.to_owned(),
    }
}
