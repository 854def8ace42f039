//! The paper's tables from a results store (`mtrobust report --db`): [`View`] reads the store,
//! [`tables`] builds Tables 1/2, the per-task ARP of Figure 1, Tables 12, 3 and 13, and each
//! [`grid::Table`] renders as Markdown, CSV and LaTeX (booktabs); [`figures`] draws Figures 2, 1
//! and 4 as PNG and SVG.
pub mod figures;
pub mod grid;
pub mod plot;
pub mod quality;
pub mod tables;
pub mod view;

pub use grid::Table;
pub use view::{Training, View};

use crate::error::{Error, Result};
use std::path::{Path, PathBuf};

/// Writes every table as `<id>.md`, `<id>.csv` and `<id>.tex` into `out`, and all of them in one
/// `tables.md`; returns the files written.
///
/// # Errors
/// I/O errors.
pub fn write_tables(tables: &[Table], out: &Path) -> Result<Vec<PathBuf>> {
    std::fs::create_dir_all(out).map_err(|e| Error::io(out, e))?;
    let mut written = Vec::new();
    let mut write = |name: String, text: &str| -> Result<()> {
        let path = out.join(name);
        crate::files::write_bytes_atomic(&path, text)?;
        written.push(path);
        Ok(())
    };
    for t in tables {
        write(format!("{}.md", t.id), &t.markdown())?;
        write(format!("{}.csv", t.id), &t.csv())?;
        write(format!("{}.tex", t.id), &t.latex())?;
    }
    write("tables.md".into(), &markdown(tables))?;
    Ok(written)
}

/// All tables as one Markdown document.
pub fn markdown(tables: &[Table]) -> String {
    tables.iter().map(Table::markdown).collect::<Vec<_>>().join("\n")
}
