//! The results store: one SQLite file (rusqlite, SQLite bundled) holding models, datasets, clean
//! baselines and cells. A cell's primary key is its identity, so it is stored exactly once; it
//! is written in one transaction when complete, so a killed run leaves only whole cells. WAL mode
//! and a busy timeout let several runners share one store. The schema is versioned: a store of
//! another version is refused rather than misread, and a new store gets its tables and its
//! version in one transaction, so a failure half-way (a full disk) leaves no half-made store.
//!
//! Readers ([`Store::open_read_only`]: `results list`, `export`, `report`, merge inputs) change
//! nothing and work on a read-only mount. A merge inserts into the live store under its write
//! lock, so it can run while a study writes to the same store.
use crate::error::{Error, Result};
use crate::eval::{ConditionReport, EvalOptions};
use rusqlite::{Connection, OpenFlags, OptionalExtension, TransactionBehavior, params, params_from_iter};
use std::path::{Path, PathBuf};

/// Version of the table layout and of the cell identities. 2: the attack configuration is
/// stored (and digested into cell identities) in the step-rule form `{"rule": "pgd", "n_iter": …}`.
pub const SCHEMA_VERSION: i64 = 2;

/// What changed at each version, for the message that refuses an older store.
const OLDER_SCHEMAS: &str = "schema 2 stores attack configurations by step rule, so cell identities changed";

/// Every table's columns, in the order of [`SCHEMA`]; inserts and merges name them.
const MODEL_COLUMNS: [&str; 10] =
    ["id", "name", "path", "backbone", "layout", "layout_index", "shared_stages", "parameters", "tasks", "sidecar"];
const DATASET_COLUMNS: [&str; 5] = ["id", "path", "split", "samples", "options"];
const CLEAN_COLUMNS: [&str; 6] = ["model_id", "dataset_id", "options", "report", "seconds", "created"];
const CELL_COLUMNS: [&str; 25] = [
    "id",
    "model_id",
    "dataset_id",
    "options",
    "rule",
    "direction",
    "norm",
    "eps",
    "seed",
    "label",
    "config",
    "samples",
    "arp",
    "transfer",
    "objective_clean",
    "objective_adv",
    "forward",
    "backward",
    "checks_passed",
    "checks",
    "report",
    "seconds",
    "device",
    "mtrobust",
    "created",
];
const CELL_TASK_COLUMNS: [&str; 5] = ["cell_id", "task", "arp", "loss_clean", "loss_adv"];
const CELL_METRIC_COLUMNS: [&str; 7] = ["cell_id", "task", "metric", "higher_is_better", "clean", "adversarial", "relative"];
const SAMPLE_COLUMNS: [&str; 6] = ["cell_id", "sample", "name", "task", "loss_clean", "loss_adv"];

/// `INSERT OR IGNORE INTO table (a, b, …) VALUES (?1, ?2, …)`.
fn insert_sql(table: &str, columns: &[&str]) -> String {
    let slots: Vec<String> = (1..=columns.len()).map(|i| format!("?{i}")).collect();
    format!("INSERT OR IGNORE INTO {table} ({}) VALUES ({})", columns.join(", "), slots.join(", "))
}

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
    /// The dataset as `path:split`.
    pub dataset: String,
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

/// Whether `conn` holds a results store of this schema (true) or nothing yet (false).
///
/// # Errors
/// Not a SQLite database, a SQLite database of something else, or another schema version.
/// Puts the store in WAL mode. SQLite does not wait for the lock this needs: while another
/// process reads or creates the same new store, the pragma answers with the old mode and changes
/// nothing, and two processes in rollback mode can then fail each other with "database is
/// locked". So the switch is retried until it holds (for as long as the busy timeout).
fn switch_to_wal(conn: &Connection, path: &Path) -> Result<()> {
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(60);
    loop {
        let mode: rusqlite::Result<String> = conn.query_row("PRAGMA journal_mode=WAL", [], |r| r.get(0));
        match mode {
            Ok(m) if m.eq_ignore_ascii_case("wal") => return Ok(()),
            // Only a lock held by another process passes; a full disk or a damaged file does not.
            Err(err)
                if !matches!(err.sqlite_error_code(), Some(rusqlite::ErrorCode::DatabaseBusy | rusqlite::ErrorCode::DatabaseLocked)) =>
            {
                return Err(sql(path)(err));
            }
            Ok(_) | Err(_) if std::time::Instant::now() < deadline => std::thread::sleep(std::time::Duration::from_millis(20)),
            Ok(m) => {
                return Err(Error::data(
                    path,
                    format!("could not be switched to WAL mode (it stays in `{m}` mode); is another program holding it?"),
                ));
            }
            Err(err) => return Err(sql(path)(err)),
        }
    }
}

fn check_kind(conn: &Connection, path: &Path) -> Result<bool> {
    let tables: Vec<String> = conn
        .prepare("SELECT name FROM sqlite_master WHERE type='table'")
        .and_then(|mut st| st.query_map([], |r| r.get(0))?.collect())
        .map_err(|err| Error::context(format!("{}: is not an mtrobust results store (a SQLite file)", path.display()), err))?;
    if tables.is_empty() {
        return Ok(false);
    }
    if !tables.iter().any(|t| t == "meta") {
        return Err(Error::data(path, "is a SQLite database but not an mtrobust results store; use a new store file"));
    }
    let version: Option<String> =
        conn.query_row("SELECT value FROM meta WHERE key='schema_version'", [], |r| r.get(0)).optional().map_err(sql(path))?;
    let Some(version) = version.and_then(|v| v.parse::<i64>().ok()) else {
        return Err(Error::data(path, "is a results store without a schema version (damaged); use a new store file"));
    };
    if version > SCHEMA_VERSION {
        return Err(Error::data(
            path,
            format!("was written by a newer mtrobust (store schema {version}; this one reads {SCHEMA_VERSION}); upgrade mtrobust"),
        ));
    }
    if version < SCHEMA_VERSION {
        return Err(Error::data(
            path,
            format!(
                "was written by an older mtrobust (store schema {version}; this one reads {SCHEMA_VERSION}: {OLDER_SCHEMAS}); \
                 rerun the study into a new store, or read this one with the mtrobust that wrote it"
            ),
        ));
    }
    Ok(true)
}

/// `path` for a `file:` URI: absolute, with `%`, `?` and `#` escaped.
fn uri_path(path: &Path) -> String {
    let abs = std::path::absolute(path).unwrap_or_else(|_| path.to_path_buf());
    abs.to_string_lossy().replace('%', "%25").replace('?', "%3f").replace('#', "%23")
}

fn now() -> i64 {
    std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).map_or(0, |d| d.as_secs() as i64)
}

impl Store {
    /// Opens (creating when absent) the store at `path` for writing.
    ///
    /// # Errors
    /// A file that is not a SQLite database or not a results store (refused before anything in
    /// it is changed), or a store of another schema version.
    pub fn open(path: &Path) -> Result<Store> {
        let e = sql(path);
        // Never write through a link (the README's guarantee): the store would be another file.
        if std::fs::symlink_metadata(path).is_ok_and(|m| m.file_type().is_symlink()) {
            return Err(Error::data(path, "is a symlink; give the results store's own path (mtrobust never writes through a link)"));
        }
        let flags = OpenFlags::default() | OpenFlags::SQLITE_OPEN_NOFOLLOW;
        let conn = Connection::open_with_flags(path, flags).map_err(&e)?;
        conn.busy_timeout(std::time::Duration::from_secs(60)).map_err(&e)?;
        // What the file is, before anything in it changes (the journal mode is written to the file).
        let is_store = check_kind(&conn, path)?;
        switch_to_wal(&conn, path)?;
        conn.execute_batch("PRAGMA synchronous=NORMAL; PRAGMA foreign_keys=ON;").map_err(&e)?;
        if !is_store {
            // Tables and version in one transaction: all of them, or (a full disk) none.
            let mut conn = conn;
            let tx = conn.transaction_with_behavior(TransactionBehavior::Immediate).map_err(&e)?;
            tx.execute_batch(SCHEMA).map_err(&e)?;
            tx.execute("INSERT OR IGNORE INTO meta (key, value) VALUES ('schema_version', ?1)", params![SCHEMA_VERSION.to_string()])
                .map_err(&e)?;
            tx.commit().map_err(&e)?;
            return Ok(Store { conn, path: path.to_path_buf() });
        }
        Ok(Store { conn, path: path.to_path_buf() })
    }

    /// Opens an existing store for reading only: nothing in the file or beside it is changed,
    /// and a store on a read-only mount can be read.
    ///
    /// # Errors
    /// A missing file, a file that is not a results store, or a store of another schema version.
    pub fn open_read_only(path: &Path) -> Result<Store> {
        Store::reader(path)?.ok_or_else(|| Error::data(path, "is an empty SQLite database, not a results store"))
    }

    /// [`Store::open_read_only`], or `None` for a database without tables.
    fn reader(path: &Path) -> Result<Option<Store>> {
        let e = sql(path);
        if !path.is_file() {
            return Err(Error::data(path, "no such results store (`mtrobust study run` creates one)"));
        }
        let flags = OpenFlags::SQLITE_OPEN_READ_ONLY | OpenFlags::SQLITE_OPEN_URI | OpenFlags::SQLITE_OPEN_NO_MUTEX;
        let open = |uri: String| -> rusqlite::Result<Connection> {
            let conn = Connection::open_with_flags(uri, flags)?;
            conn.busy_timeout(std::time::Duration::from_secs(60))?;
            // Touch the schema: a WAL store on a read-only mount fails here, not at the first query.
            conn.query_row("SELECT count(*) FROM sqlite_master", [], |r| r.get::<_, i64>(0))?;
            Ok(conn)
        };
        let uri = |extra: &str| format!("file:{}?mode=ro{extra}", uri_path(path));
        // A WAL store needs its shared-memory file, which a read-only mount cannot create: read it
        // as immutable there (nobody can be writing to a read-only mount).
        let conn = open(uri("")).or_else(|_| open(uri("&immutable=1"))).map_err(|err| match err.sqlite_error_code() {
            Some(rusqlite::ErrorCode::NotADatabase) => {
                Error::context(format!("{}: is not an mtrobust results store (not a SQLite file)", path.display()), err)
            }
            _ => e(err),
        })?;
        Ok(check_kind(&conn, path)?.then(|| Store { conn, path: path.to_path_buf() }))
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
                &insert_sql("models", &MODEL_COLUMNS),
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
            .execute(&insert_sql("datasets", &DATASET_COLUMNS), params![d.id, d.path, d.split, d.samples as i64, d.options.to_string()])
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
                &insert_sql("clean", &CLEAN_COLUMNS),
                params![model_id, dataset_id, options_key(options), serde_json::to_string(report).expect("serialisable"), seconds, now()],
            )
            .map_err(sql(&self.path))?;
        Ok(())
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
        // Immediate: the write lock first, so a concurrent runner waits instead of deadlocking.
        let tx = self.conn.transaction_with_behavior(TransactionBehavior::Immediate).map_err(&e)?;
        let inserted = tx
            .execute(
                &insert_sql("cells", &CELL_COLUMNS),
                params![
                    c.id,
                    c.model_id,
                    c.dataset_id,
                    options_key(c.options),
                    config.rule.key(),
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
                    &insert_sql("cell_tasks", &CELL_TASK_COLUMNS),
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
                        &insert_sql("cell_metrics", &CELL_METRIC_COLUMNS),
                        params![c.id, task.name(), m.name, hib, m.clean, m.attacked, m.relative],
                    )
                    .map_err(&e)?;
                }
            }
        }
        for s in c.samples {
            tx.execute(&insert_sql("samples", &SAMPLE_COLUMNS), params![c.id, s.sample as i64, s.name, s.task, s.loss_clean, s.loss_adv])
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
            dataset: row.get("dataset")?,
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
                "SELECT c.*, m.name AS model, d.path || ':' || d.split AS dataset FROM cells c JOIN models m ON m.id = c.model_id \
                 JOIN datasets d ON d.id = c.dataset_id ORDER BY m.name, c.rule, c.direction, c.norm, c.eps, c.seed, c.id",
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

    /// Merges the stores `inputs` into this one, each cell exactly once, in one transaction under
    /// this store's write lock: a study writing to this store meanwhile waits for it (and the
    /// merge for the study's cell in progress); nothing is copied over the live file. A cell
    /// present in two places with different numbers is an error naming it, and nothing is merged.
    ///
    /// # Errors
    /// Unreadable inputs, stores of another schema, or conflicting cells.
    pub fn merge(&mut self, inputs: &[&Path]) -> Result<MergeSummary> {
        let sources = inputs.iter().map(|p| Store::open_read_only(p)).collect::<Result<Vec<_>>>()?;
        let path = self.path.clone();
        let e = sql(&path);
        let tx = self.conn.transaction_with_behavior(TransactionBehavior::Immediate).map_err(&e)?;
        let mut summary = MergeSummary::default();
        for src in &sources {
            let (added, duplicates) = merge_one(&tx, src)?;
            summary.added += added;
            summary.duplicates += duplicates;
        }
        tx.commit().map_err(&e)?;
        Ok(summary)
    }
}

/// Copies every row of `src` that `tx`'s store lacks; a cell stored in both must hold the same
/// numbers. Returns (cells added, cells already present).
fn merge_one(tx: &rusqlite::Transaction, src: &Store) -> Result<(usize, usize)> {
    let (e_dst, e_src) = (sql(Path::new("merge output")), sql(&src.path));
    let select = |table: &str, columns: &[&str]| format!("SELECT {} FROM {table}", columns.join(", "));
    // Cells first: their identity decides whether the rows that belong to them are copied.
    let mut added = std::collections::HashSet::new();
    let mut duplicates = 0;
    {
        let mut st = src.conn.prepare(&select("cells", &CELL_COLUMNS)).map_err(&e_src)?;
        let mut rows = st.query([]).map_err(&e_src)?;
        let mut insert = tx.prepare(&insert_sql("cells", &CELL_COLUMNS)).map_err(&e_dst)?;
        let position = |c: &str| CELL_COLUMNS.iter().position(|x| *x == c).expect("a cells column");
        while let Some(row) = rows.next().map_err(&e_src)? {
            let values: Vec<rusqlite::types::Value> =
                (0..CELL_COLUMNS.len()).map(|i| row.get(i)).collect::<rusqlite::Result<_>>().map_err(&e_src)?;
            let id: String = row.get(position("id")).map_err(&e_src)?;
            let stored: Option<(String, Option<f64>, Option<f64>)> = tx
                .query_row("SELECT report, arp, transfer FROM cells WHERE id=?1", params![id], |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?)))
                .optional()
                .map_err(&e_dst)?;
            match stored {
                Some((report, arp, transfer)) => {
                    let same = values[position("report")] == rusqlite::types::Value::Text(report)
                        && row.get::<_, Option<f64>>(position("arp")).map_err(&e_src)? == arp
                        && row.get::<_, Option<f64>>(position("transfer")).map_err(&e_src)? == transfer;
                    if !same {
                        let label: String = row.get(position("label")).map_err(&e_src)?;
                        return Err(Error::data(
                            &src.path,
                            format!(
                                "cell {label} (id {id}) is stored elsewhere with different numbers; the stores disagree, nothing was merged"
                            ),
                        ));
                    }
                    duplicates += 1;
                }
                None => {
                    insert.execute(params_from_iter(values.iter())).map_err(&e_dst)?;
                    added.insert(id);
                }
            }
        }
    }
    let copy = |table: &str, columns: &[&str], only_new_cells: bool| -> Result<()> {
        let mut st = src.conn.prepare(&select(table, columns)).map_err(&e_src)?;
        let mut rows = st.query([]).map_err(&e_src)?;
        let mut insert = tx.prepare(&insert_sql(table, columns)).map_err(&e_dst)?;
        while let Some(row) = rows.next().map_err(&e_src)? {
            let values: Vec<rusqlite::types::Value> =
                (0..columns.len()).map(|i| row.get(i)).collect::<rusqlite::Result<_>>().map_err(&e_src)?;
            if only_new_cells && !matches!(&values[0], rusqlite::types::Value::Text(id) if added.contains(id)) {
                continue;
            }
            insert.execute(params_from_iter(values.iter())).map_err(&e_dst)?;
        }
        Ok(())
    };
    copy("models", &MODEL_COLUMNS, false)?;
    copy("datasets", &DATASET_COLUMNS, false)?;
    copy("clean", &CLEAN_COLUMNS, false)?;
    copy("cell_tasks", &CELL_TASK_COLUMNS, true)?;
    copy("cell_metrics", &CELL_METRIC_COLUMNS, true)?;
    copy("samples", &SAMPLE_COLUMNS, true)?;
    Ok((added.len(), duplicates))
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
    match Store::reader(path)? {
        Some(store) => store.cell_ids(),
        None => Ok(Default::default()),
    }
}
