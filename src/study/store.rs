//! The results store: one SQLite file (rusqlite, SQLite bundled) holding models, datasets, clean
//! baselines and cells. A cell's primary key is its identity, so it is stored exactly once; it
//! is written in one transaction when complete, so a killed run leaves only whole cells. WAL mode
//! and a busy timeout let several runners share one store. The schema is versioned: a store of
//! another version is refused rather than misread.
use crate::error::{Error, Result};
use crate::eval::{ConditionReport, EvalOptions};
use rusqlite::{Connection, OptionalExtension, params};
use std::path::{Path, PathBuf};

/// Version of the table layout.
pub const SCHEMA_VERSION: i64 = 1;

const SCHEMA: &str = "
CREATE TABLE IF NOT EXISTS meta (key TEXT PRIMARY KEY, value TEXT NOT NULL);
CREATE TABLE IF NOT EXISTS models (
    id TEXT PRIMARY KEY, name TEXT NOT NULL, path TEXT NOT NULL, backbone TEXT NOT NULL, layout TEXT NOT NULL,
    layout_index INTEGER, shared_stages INTEGER NOT NULL, parameters INTEGER NOT NULL, tasks TEXT NOT NULL,
    sidecar TEXT NOT NULL);
CREATE TABLE IF NOT EXISTS datasets (
    id TEXT PRIMARY KEY, path TEXT NOT NULL, split TEXT NOT NULL, samples INTEGER NOT NULL, options TEXT NOT NULL);
CREATE TABLE IF NOT EXISTS clean (
    model_id TEXT NOT NULL, dataset_id TEXT NOT NULL, options TEXT NOT NULL, report TEXT NOT NULL,
    seconds REAL NOT NULL, created INTEGER NOT NULL, PRIMARY KEY (model_id, dataset_id, options));
CREATE TABLE IF NOT EXISTS cells (
    id TEXT PRIMARY KEY, model_id TEXT NOT NULL, dataset_id TEXT NOT NULL, options TEXT NOT NULL,
    rule TEXT NOT NULL, direction TEXT NOT NULL, norm TEXT NOT NULL, eps REAL NOT NULL, seed INTEGER NOT NULL,
    label TEXT NOT NULL, config TEXT NOT NULL, samples INTEGER NOT NULL, arp REAL, transfer REAL,
    objective_clean REAL, objective_adv REAL, forward INTEGER NOT NULL, backward INTEGER NOT NULL,
    checks_passed INTEGER NOT NULL, checks TEXT NOT NULL, report TEXT NOT NULL,
    seconds REAL NOT NULL, device TEXT NOT NULL, mtrobust TEXT NOT NULL, created INTEGER NOT NULL);
CREATE TABLE IF NOT EXISTS cell_tasks (
    cell_id TEXT NOT NULL, task TEXT NOT NULL, arp REAL, loss_clean REAL, loss_adv REAL,
    PRIMARY KEY (cell_id, task));
CREATE TABLE IF NOT EXISTS cell_metrics (
    cell_id TEXT NOT NULL, task TEXT NOT NULL, metric TEXT NOT NULL, higher_is_better INTEGER NOT NULL,
    clean REAL, adversarial REAL, relative REAL, PRIMARY KEY (cell_id, task, metric));
CREATE TABLE IF NOT EXISTS samples (
    cell_id TEXT NOT NULL, sample INTEGER NOT NULL, name TEXT NOT NULL, task TEXT NOT NULL,
    loss_clean REAL, loss_adv REAL, PRIMARY KEY (cell_id, sample, task));
CREATE INDEX IF NOT EXISTS cells_by_model ON cells (model_id, dataset_id);
";

/// What the store records about a model.
#[derive(Debug, Clone, PartialEq, serde::Serialize)]
pub struct ModelRow {
    /// Content digest of weights + sidecar.
    pub id: String,
    pub name: String,
    pub path: String,
    pub backbone: String,
    pub layout: String,
    pub layout_index: Option<usize>,
    /// How many of the five backbone stages all tasks share.
    pub shared_stages: usize,
    pub parameters: i64,
    /// Task ids in model order.
    pub tasks: Vec<String>,
    /// The checkpoint's sidecar (architecture, input space, provenance such as training settings).
    pub sidecar: serde_json::Value,
}

/// What the store records about a dataset split.
#[derive(Debug, Clone, PartialEq, serde::Serialize)]
pub struct DatasetRow {
    /// Digest of the sample names and reading options.
    pub id: String,
    pub path: String,
    pub split: String,
    pub samples: usize,
    pub options: serde_json::Value,
}

/// One stored cell, as read back.
#[derive(Debug, Clone, PartialEq, serde::Serialize)]
pub struct CellRow {
    pub id: String,
    pub model_id: String,
    pub model: String,
    pub dataset_id: String,
    pub rule: String,
    pub direction: String,
    pub norm: String,
    pub eps: f64,
    pub seed: u64,
    pub label: String,
    pub samples: usize,
    pub arp: Option<f64>,
    pub transfer: Option<f64>,
    pub checks_passed: bool,
    pub seconds: f64,
    pub device: String,
    /// The full condition report (metrics, losses, objective, counts, checks, per-task ARP).
    pub report: ConditionReport,
}

/// Per-sample losses of one cell (`--per-sample`).
#[derive(Debug, Clone, PartialEq)]
pub struct SampleRow {
    pub sample: usize,
    pub name: String,
    pub task: String,
    pub loss_clean: f64,
    pub loss_adv: f64,
}

/// A cell ready to be written.
#[derive(Debug, Clone)]
pub struct NewCell<'a> {
    pub id: &'a str,
    pub model_id: &'a str,
    pub dataset_id: &'a str,
    pub options: &'a EvalOptions,
    pub report: &'a ConditionReport,
    /// The clean baseline it is measured against (its losses are stored beside the attacked ones).
    pub clean: &'a ConditionReport,
    pub transfer: Option<f64>,
    pub seconds: f64,
    pub device: &'a str,
    pub samples: &'a [SampleRow],
}

/// An open store.
#[derive(Debug)]
pub struct Store {
    conn: Connection,
    path: PathBuf,
}

fn sql(path: &Path) -> impl Fn(rusqlite::Error) -> Error + '_ {
    move |e| Error::context(format!("{}: results store", path.display()), e)
}

fn now() -> i64 {
    std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).map_or(0, |d| d.as_secs() as i64)
}

impl Store {
    /// Opens (creating when absent) the store at `path`.
    ///
    /// # Errors
    /// A file that is not a SQLite database, or a store of another schema version.
    pub fn open(path: &Path) -> Result<Store> {
        let e = sql(path);
        let conn = Connection::open(path).map_err(&e)?;
        conn.busy_timeout(std::time::Duration::from_secs(60)).map_err(&e)?;
        let _: String = conn
            .query_row("PRAGMA journal_mode=WAL", [], |r| r.get(0))
            .map_err(|err| Error::context(format!("{}: is not an mtrobust results store (a SQLite file)", path.display()), err))?;
        conn.execute_batch("PRAGMA synchronous=NORMAL; PRAGMA foreign_keys=ON;").map_err(&e)?;
        let has_meta: bool = conn
            .query_row("SELECT count(*) FROM sqlite_master WHERE type='table' AND name='meta'", [], |r| r.get::<_, i64>(0))
            .map_err(&e)?
            > 0;
        if has_meta {
            let version: Option<String> =
                conn.query_row("SELECT value FROM meta WHERE key='schema_version'", [], |r| r.get(0)).optional().map_err(&e)?;
            let version: i64 = version.and_then(|v| v.parse().ok()).unwrap_or(-1);
            if version != SCHEMA_VERSION {
                let which = if version > SCHEMA_VERSION { "a newer" } else { "an older" };
                return Err(Error::data(
                    path,
                    format!(
                        "was written by {which} mtrobust (store schema {version}; this one reads {SCHEMA_VERSION}); \
                         use a matching mtrobust version or a new --db"
                    ),
                ));
            }
        } else {
            let tables: i64 = conn.query_row("SELECT count(*) FROM sqlite_master WHERE type='table'", [], |r| r.get(0)).map_err(&e)?;
            if tables > 0 {
                return Err(Error::data(path, "is a SQLite database but not an mtrobust results store; use a new --db"));
            }
        }
        conn.execute_batch(SCHEMA).map_err(&e)?;
        conn.execute("INSERT OR IGNORE INTO meta (key, value) VALUES ('schema_version', ?1)", params![SCHEMA_VERSION.to_string()])
            .map_err(&e)?;
        Ok(Store { conn, path: path.to_path_buf() })
    }

    /// The file.
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// Records a model (kept as first written when already present).
    ///
    /// # Errors
    /// SQLite errors.
    pub fn put_model(&self, m: &ModelRow) -> Result<()> {
        self.conn
            .execute(
                "INSERT OR IGNORE INTO models VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10)",
                params![
                    m.id,
                    m.name,
                    m.path,
                    m.backbone,
                    m.layout,
                    m.layout_index.map(|i| i as i64),
                    m.shared_stages as i64,
                    m.parameters,
                    serde_json::to_string(&m.tasks).expect("serialisable"),
                    m.sidecar.to_string()
                ],
            )
            .map_err(sql(&self.path))?;
        Ok(())
    }

    /// Records a dataset.
    ///
    /// # Errors
    /// SQLite errors.
    pub fn put_dataset(&self, d: &DatasetRow) -> Result<()> {
        self.conn
            .execute(
                "INSERT OR IGNORE INTO datasets VALUES (?1, ?2, ?3, ?4, ?5)",
                params![d.id, d.path, d.split, d.samples as i64, d.options.to_string()],
            )
            .map_err(sql(&self.path))?;
        Ok(())
    }

    /// The stored clean baseline of a model on a dataset under `options`.
    ///
    /// # Errors
    /// SQLite errors or a malformed row.
    pub fn clean(&self, model_id: &str, dataset_id: &str, options: &EvalOptions) -> Result<Option<ConditionReport>> {
        let text: Option<String> = self
            .conn
            .query_row(
                "SELECT report FROM clean WHERE model_id=?1 AND dataset_id=?2 AND options=?3",
                params![model_id, dataset_id, options_key(options)],
                |r| r.get(0),
            )
            .optional()
            .map_err(sql(&self.path))?;
        text.map(|t| serde_json::from_str(&t).map_err(|e| Error::context(format!("{}: malformed clean baseline", self.path.display()), e)))
            .transpose()
    }

    /// Stores a clean baseline (the first one stored is kept).
    ///
    /// # Errors
    /// SQLite errors.
    pub fn put_clean(&self, model_id: &str, dataset_id: &str, options: &EvalOptions, report: &ConditionReport, seconds: f64) -> Result<()> {
        self.conn
            .execute(
                "INSERT OR IGNORE INTO clean VALUES (?1, ?2, ?3, ?4, ?5, ?6)",
                params![model_id, dataset_id, options_key(options), serde_json::to_string(report).expect("serialisable"), seconds, now()],
            )
            .map_err(sql(&self.path))?;
        Ok(())
    }

    /// Whether cell `id` is stored.
    ///
    /// # Errors
    /// SQLite errors.
    pub fn has_cell(&self, id: &str) -> Result<bool> {
        let n: i64 = self.conn.query_row("SELECT count(*) FROM cells WHERE id=?1", params![id], |r| r.get(0)).map_err(sql(&self.path))?;
        Ok(n > 0)
    }

    /// Every stored cell id.
    ///
    /// # Errors
    /// SQLite errors.
    pub fn cell_ids(&self) -> Result<std::collections::HashSet<String>> {
        let mut st = self.conn.prepare("SELECT id FROM cells").map_err(sql(&self.path))?;
        let ids = st.query_map([], |r| r.get(0)).map_err(sql(&self.path))?.collect::<rusqlite::Result<_>>().map_err(sql(&self.path))?;
        Ok(ids)
    }

    /// Writes a complete cell — its row, per-task ARP and losses, every metric, and any per-sample
    /// rows — in one transaction. Returns false, writing nothing, when the cell is already stored
    /// (another runner on the same store got there first).
    ///
    /// # Errors
    /// SQLite errors (the cell is then not stored at all).
    pub fn put_cell(&mut self, c: &NewCell) -> Result<bool> {
        let e = sql(&self.path);
        let r = c.report;
        let config = r.attack.as_ref().ok_or_else(|| Error::config("cell", "a cell needs an attack configuration"))?;
        let arp = r.arp.as_ref();
        let checks = r.checks.as_ref();
        let counts = r.counts.unwrap_or_default();
        let tx = self.conn.transaction().map_err(&e)?;
        let inserted = tx.execute(
            "INSERT OR IGNORE INTO cells VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11, ?12, ?13, ?14, ?15, ?16, ?17, ?18, ?19, ?20, ?21, ?22, ?23, ?24, ?25)",
            params![
                c.id,
                c.model_id,
                c.dataset_id,
                options_key(c.options),
                config.step.id(),
                config.direction.to_string(),
                crate::attack::norm_id(config.norm),
                config.eps,
                config.seed as i64,
                r.label,
                serde_json::to_string(config).expect("serialisable"),
                r.samples as i64,
                arp.map(|a| a.arp).filter(|v| v.is_finite()),
                c.transfer.filter(|v| v.is_finite()),
                r.objective.map(|o| o.0),
                r.objective.map(|o| o.1),
                counts.forward as i64,
                counts.backward as i64,
                checks.is_none_or(|k| k.passed()),
                serde_json::to_string(&checks).expect("serialisable"),
                serde_json::to_string(r).expect("serialisable"),
                c.seconds,
                c.device,
                concat!(env!("CARGO_PKG_VERSION"), " (", env!("MTROBUST_GIT_COMMIT"), ")"),
                now()
            ],
        )
        .map_err(&e)?;
        if inserted == 0 {
            return Ok(false);
        }
        if let Some(a) = arp {
            for (task, metrics) in a.metrics.iter() {
                tx.execute(
                    "INSERT INTO cell_tasks VALUES (?1, ?2, ?3, ?4, ?5)",
                    params![
                        c.id,
                        task.name(),
                        a.per_task.get(task).copied(),
                        c.clean.losses.get(task).copied(),
                        r.losses.get(task).copied()
                    ],
                )
                .map_err(&e)?;
                for m in metrics {
                    let hib = r.metrics.get(task).and_then(|v| v.iter().find(|x| x.name == m.name)).is_some_and(|x| x.higher_is_better);
                    tx.execute(
                        "INSERT INTO cell_metrics VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7)",
                        params![c.id, task.name(), m.name, hib, m.clean, m.attacked, m.relative],
                    )
                    .map_err(&e)?;
                }
            }
        }
        for s in c.samples {
            tx.execute(
                "INSERT INTO samples VALUES (?1, ?2, ?3, ?4, ?5, ?6)",
                params![c.id, s.sample as i64, s.name, s.task, s.loss_clean, s.loss_adv],
            )
            .map_err(&e)?;
        }
        tx.commit().map_err(&e)?;
        Ok(true)
    }

    fn cell_from_row(row: &rusqlite::Row) -> rusqlite::Result<CellRow> {
        let text: String = row.get("report")?;
        let report = serde_json::from_str(&text)
            .map_err(|e| rusqlite::Error::FromSqlConversionFailure(0, rusqlite::types::Type::Text, Box::new(e)))?;
        Ok(CellRow {
            id: row.get("id")?,
            model_id: row.get("model_id")?,
            model: row.get("model")?,
            dataset_id: row.get("dataset_id")?,
            rule: row.get("rule")?,
            direction: row.get("direction")?,
            norm: row.get("norm")?,
            eps: row.get("eps")?,
            seed: row.get::<_, i64>("seed")? as u64,
            label: row.get("label")?,
            samples: row.get::<_, i64>("samples")? as usize,
            arp: row.get("arp")?,
            transfer: row.get("transfer")?,
            checks_passed: row.get("checks_passed")?,
            seconds: row.get("seconds")?,
            device: row.get("device")?,
            report,
        })
    }

    /// Every stored cell with its model's name, ordered by model, rule, direction, ε, seed.
    ///
    /// # Errors
    /// SQLite errors or a malformed row.
    pub fn cells(&self) -> Result<Vec<CellRow>> {
        let e = sql(&self.path);
        let mut st = self
            .conn
            .prepare(
                "SELECT c.*, m.name AS model FROM cells c JOIN models m ON m.id = c.model_id \
                 ORDER BY m.name, c.rule, c.direction, c.norm, c.eps, c.seed, c.id",
            )
            .map_err(&e)?;
        let rows = st.query_map([], Self::cell_from_row).map_err(&e)?.collect::<rusqlite::Result<Vec<_>>>().map_err(&e)?;
        Ok(rows)
    }

    /// Every stored model.
    ///
    /// # Errors
    /// SQLite errors or a malformed row.
    pub fn models(&self) -> Result<Vec<ModelRow>> {
        let e = sql(&self.path);
        let mut st = self.conn.prepare("SELECT * FROM models ORDER BY name").map_err(&e)?;
        let rows = st
            .query_map([], |r| {
                Ok(ModelRow {
                    id: r.get("id")?,
                    name: r.get("name")?,
                    path: r.get("path")?,
                    backbone: r.get("backbone")?,
                    layout: r.get("layout")?,
                    layout_index: r.get::<_, Option<i64>>("layout_index")?.map(|i| i as usize),
                    shared_stages: r.get::<_, i64>("shared_stages")? as usize,
                    parameters: r.get("parameters")?,
                    tasks: serde_json::from_str(&r.get::<_, String>("tasks")?).unwrap_or_default(),
                    sidecar: serde_json::from_str(&r.get::<_, String>("sidecar")?).unwrap_or_default(),
                })
            })
            .map_err(&e)?
            .collect::<rusqlite::Result<Vec<_>>>()
            .map_err(&e)?;
        Ok(rows)
    }

    /// Every stored clean baseline as (model id, dataset id, report), ordered by model and dataset.
    ///
    /// # Errors
    /// SQLite errors or a malformed row.
    pub fn cleans(&self) -> Result<Vec<(String, String, ConditionReport)>> {
        let e = sql(&self.path);
        let mut st =
            self.conn.prepare("SELECT model_id, dataset_id, report FROM clean ORDER BY model_id, dataset_id, options").map_err(&e)?;
        let rows = st
            .query_map([], |r| Ok((r.get::<_, String>(0)?, r.get::<_, String>(1)?, r.get::<_, String>(2)?)))
            .map_err(&e)?
            .collect::<rusqlite::Result<Vec<_>>>()
            .map_err(&e)?;
        rows.into_iter()
            .map(|(m, d, text)| {
                let report = serde_json::from_str(&text)
                    .map_err(|err| Error::context(format!("{}: malformed clean baseline", self.path.display()), err))?;
                Ok((m, d, report))
            })
            .collect()
    }

    /// Every stored dataset, ordered by path and split.
    ///
    /// # Errors
    /// SQLite errors.
    pub fn datasets(&self) -> Result<Vec<DatasetRow>> {
        let e = sql(&self.path);
        let mut st = self.conn.prepare("SELECT id, path, split, samples, options FROM datasets ORDER BY path, split, id").map_err(&e)?;
        let rows = st
            .query_map([], |r| {
                Ok(DatasetRow {
                    id: r.get(0)?,
                    path: r.get(1)?,
                    split: r.get(2)?,
                    samples: r.get::<_, i64>(3)? as usize,
                    options: serde_json::from_str(&r.get::<_, String>(4)?).unwrap_or_default(),
                })
            })
            .map_err(&e)?
            .collect::<rusqlite::Result<Vec<_>>>()
            .map_err(&e)?;
        Ok(rows)
    }

    /// Per-sample rows of a cell.
    ///
    /// # Errors
    /// SQLite errors.
    pub fn samples(&self, cell_id: &str) -> Result<Vec<SampleRow>> {
        let e = sql(&self.path);
        let mut st = self
            .conn
            .prepare("SELECT sample, name, task, loss_clean, loss_adv FROM samples WHERE cell_id=?1 ORDER BY sample, task")
            .map_err(&e)?;
        let rows = st
            .query_map(params![cell_id], |r| {
                Ok(SampleRow {
                    sample: r.get::<_, i64>(0)? as usize,
                    name: r.get(1)?,
                    task: r.get(2)?,
                    loss_clean: r.get::<_, Option<f64>>(3)?.unwrap_or(f64::NAN),
                    loss_adv: r.get::<_, Option<f64>>(4)?.unwrap_or(f64::NAN),
                })
            })
            .map_err(&e)?
            .collect::<rusqlite::Result<Vec<_>>>()
            .map_err(&e)?;
        Ok(rows)
    }

    /// Merges the stores `inputs` into this one, each cell exactly once. A cell present in two
    /// places with different numbers is an error naming it, and nothing is merged.
    ///
    /// # Errors
    /// Unreadable inputs, stores of another schema, or conflicting cells.
    pub fn merge(&mut self, inputs: &[&Path]) -> Result<MergeSummary> {
        let path = self.path.clone();
        let e = sql(&path);
        let mut summary = MergeSummary::default();
        for input in inputs {
            // Opening checks that it is a store of this schema.
            drop(Store::open(input)?);
            self.conn.execute("ATTACH DATABASE ?1 AS src", params![input.to_string_lossy()]).map_err(&e)?;
            let merged = self.merge_attached(input);
            self.conn.execute("DETACH DATABASE src", []).map_err(&e)?;
            let (added, duplicates) = merged?;
            summary.added += added;
            summary.duplicates += duplicates;
        }
        Ok(summary)
    }

    /// Merges the store attached as `src` in one transaction.
    fn merge_attached(&mut self, input: &Path) -> Result<(usize, usize)> {
        let path = self.path.clone();
        let e = sql(&path);
        let tx = self.conn.transaction().map_err(&e)?;
        let conflict: Option<(String, String, String)> = tx
            .query_row(
                "SELECT s.id, s.label, m.name FROM src.cells s JOIN main.cells c ON c.id = s.id JOIN src.models m ON m.id = s.model_id                  WHERE c.report != s.report OR c.arp IS NOT s.arp OR c.transfer IS NOT s.transfer LIMIT 1",
                [],
                |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?)),
            )
            .optional()
            .map_err(&e)?;
        if let Some((id, label, model)) = conflict {
            return Err(Error::data(
                input,
                format!("cell {label} of model `{model}` (id {id}) is stored elsewhere with different numbers; the stores disagree"),
            ));
        }
        let count = |tx: &rusqlite::Transaction, table: &str| -> Result<i64> {
            tx.query_row(&format!("SELECT count(*) FROM {table}"), [], |r| r.get(0)).map_err(sql(&path))
        };
        let before = count(&tx, "main.cells")?;
        tx.execute_batch(
            "INSERT OR IGNORE INTO main.models SELECT * FROM src.models;
             INSERT OR IGNORE INTO main.datasets SELECT * FROM src.datasets;
             INSERT OR IGNORE INTO main.clean SELECT * FROM src.clean;
             INSERT OR IGNORE INTO main.cell_tasks SELECT * FROM src.cell_tasks WHERE cell_id NOT IN (SELECT id FROM main.cells);
             INSERT OR IGNORE INTO main.cell_metrics SELECT * FROM src.cell_metrics WHERE cell_id NOT IN (SELECT id FROM main.cells);
             INSERT OR IGNORE INTO main.samples SELECT * FROM src.samples WHERE cell_id NOT IN (SELECT id FROM main.cells);
             INSERT OR IGNORE INTO main.cells SELECT * FROM src.cells;",
        )
        .map_err(&e)?;
        let added = (count(&tx, "main.cells")? - before) as usize;
        let total = count(&tx, "src.cells")? as usize;
        tx.commit().map_err(&e)?;
        Ok((added, total - added))
    }
}

/// What a merge did.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct MergeSummary {
    /// Cells new to the output.
    pub added: usize,
    /// Cells the output already had (with the same numbers).
    pub duplicates: usize,
}

/// The stored form of evaluation options.
pub fn options_key(o: &EvalOptions) -> String {
    serde_json::to_string(o).expect("serialisable")
}

/// The ids of the cells stored at `path`, read without writing to the file: a shard that is still
/// running may be writing it, and a finished one may sit on a read-only volume. A database with no
/// tables yet (a store that is being created) holds none.
///
/// # Errors
/// A file that is not a SQLite database or not a results store, or a store of another schema version.
pub fn read_cell_ids(path: &Path) -> Result<std::collections::HashSet<String>> {
    let e = sql(path);
    let conn = Connection::open_with_flags(path, rusqlite::OpenFlags::SQLITE_OPEN_READ_ONLY).map_err(&e)?;
    conn.busy_timeout(std::time::Duration::from_secs(60)).map_err(&e)?;
    let tables: Vec<String> = conn
        .prepare("SELECT name FROM sqlite_master WHERE type='table'")
        .and_then(|mut st| st.query_map([], |r| r.get(0))?.collect())
        .map_err(|err| Error::context(format!("{}: is not an mtrobust results store (a SQLite file)", path.display()), err))?;
    if tables.is_empty() {
        return Ok(Default::default());
    }
    if !["meta", "cells"].iter().all(|t| tables.iter().any(|n| n == t)) {
        return Err(Error::data(path, "is a SQLite database but not an mtrobust results store"));
    }
    let version: Option<String> =
        conn.query_row("SELECT value FROM meta WHERE key='schema_version'", [], |r| r.get(0)).optional().map_err(&e)?;
    if version.as_deref() != Some(SCHEMA_VERSION.to_string().as_str()) {
        return Err(Error::data(
            path,
            format!(
                "is a store of schema {} (this mtrobust reads {SCHEMA_VERSION}); use a matching mtrobust version",
                version.as_deref().unwrap_or("unknown")
            ),
        ));
    }
    let mut st = conn.prepare("SELECT id FROM cells").map_err(&e)?;
    let ids = st.query_map([], |r| r.get(0)).map_err(&e)?.collect::<rusqlite::Result<_>>().map_err(&e)?;
    Ok(ids)
}
