//! A paper-style table — leading label columns, then value columns in named groups (one per step
//! rule, say), some cells in bold — and its three renderings: Markdown, CSV and LaTeX (booktabs).

/// One table.
#[derive(Debug, Clone, PartialEq)]
pub struct Table {
    /// File stem (`table1_arp`).
    pub id: String,
    pub title: String,
    /// Names of the label columns.
    pub head: Vec<String>,
    /// Value column groups: (group name, column names); an empty group name spans nothing.
    pub groups: Vec<(String, Vec<String>)>,
    pub rows: Vec<Row>,
    /// One line saying what the table shows.
    pub summary: String,
}

/// One row: its labels, then its formatted values (`-` when missing), which are bold.
#[derive(Debug, Clone, PartialEq)]
pub struct Row {
    pub labels: Vec<String>,
    pub values: Vec<String>,
    pub bold: Vec<bool>,
}

impl Table {
    /// The flat value column names, `group column` when grouped.
    pub fn columns(&self) -> Vec<String> {
        self.groups
            .iter()
            .flat_map(|(g, cols)| cols.iter().map(move |c| if g.is_empty() { c.clone() } else { format!("{g} {c}") }))
            .collect()
    }

    /// The formatted value at (row labelled `row`, column `column` as [`Table::columns`] names
    /// it), and whether it is bold.
    pub fn cell(&self, row: &str, column: &str) -> Option<(String, bool)> {
        let c = self.columns().iter().position(|x| x == column)?;
        let r = self.rows.iter().find(|r| r.labels.first().is_some_and(|l| l == row))?;
        Some((r.values[c].clone(), r.bold[c]))
    }

    /// Markdown: a bold title line, the table, and the summary in italics.
    pub fn markdown(&self) -> String {
        let mut header: Vec<String> = self.head.clone();
        header.extend(self.columns());
        let mut out = format!("**{}**\n\n| {} |\n|", self.title, header.join(" | "));
        out += &self.head.iter().map(|_| " :-- |").collect::<String>();
        out += &self.columns().iter().map(|_| " --: |").collect::<String>();
        out.push('\n');
        for r in &self.rows {
            let values = r.values.iter().zip(&r.bold).map(|(v, b)| if *b { format!("**{v}**") } else { v.clone() });
            let cells: Vec<String> = r.labels.iter().cloned().chain(values).collect();
            out += &format!("| {} |\n", cells.join(" | "));
        }
        out += &format!("\n*{}*\n", self.summary);
        out
    }

    /// CSV: one header line (`group column`), one line per row; no bold.
    pub fn csv(&self) -> String {
        let quote = |s: &str| if s.contains([',', '"', '\n']) { format!("\"{}\"", s.replace('"', "\"\"")) } else { s.to_string() };
        let mut header: Vec<String> = self.head.clone();
        header.extend(self.columns());
        let mut out = header.iter().map(|h| quote(h)).collect::<Vec<_>>().join(",") + "\n";
        for r in &self.rows {
            let cells: Vec<String> = r.labels.iter().chain(&r.values).map(|s| quote(if s == "-" { "" } else { s })).collect();
            out += &(cells.join(",") + "\n");
        }
        out
    }

    /// LaTeX with booktabs: a `table` float, group headers over `\cmidrule`s, bold cells in
    /// `\textbf`, the summary in the caption.
    pub fn latex(&self) -> String {
        let n_head = self.head.len();
        let n_values: usize = self.groups.iter().map(|g| g.1.len()).sum();
        let mut out = String::from("% requires \\usepackage{booktabs}\n\\begin{table}[t]\n\\centering\n\\small\n");
        out += &format!("\\caption{{{} {}}}\n", tex(&self.title), tex(&self.summary));
        out += &format!("\\label{{tab:{}}}\n", self.id);
        out += &format!("\\begin{{tabular}}{{{}{}}}\n\\toprule\n", "l".repeat(n_head), "r".repeat(n_values));
        if self.groups.iter().any(|g| !g.0.is_empty()) {
            let mut line: Vec<String> = vec![String::new(); n_head];
            let mut rules = String::new();
            let mut col = n_head + 1;
            for (g, cols) in &self.groups {
                line.push(format!("\\multicolumn{{{}}}{{c}}{{{}}}", cols.len(), tex(g)));
                if !g.is_empty() {
                    rules += &format!("\\cmidrule(lr){{{}-{}}}", col, col + cols.len() - 1);
                }
                col += cols.len();
            }
            out += &format!("{} \\\\\n{rules}\n", line.join(" & "));
        }
        let names: Vec<String> = self.head.iter().chain(self.groups.iter().flat_map(|g| g.1.iter())).map(|s| tex(s)).collect();
        out += &format!("{} \\\\\n\\midrule\n", names.join(" & "));
        for r in &self.rows {
            let values = r.values.iter().zip(&r.bold).map(|(v, b)| if *b { format!("\\textbf{{{}}}", tex(v)) } else { tex(v) });
            let cells: Vec<String> = r.labels.iter().map(|s| tex(s)).chain(values).collect();
            out += &format!("{} \\\\\n", cells.join(" & "));
        }
        out += "\\bottomrule\n\\end{tabular}\n\\end{table}\n";
        out
    }
}

/// Escapes LaTeX's special characters; ε, ↑, ↓ and ° become math.
pub fn tex(s: &str) -> String {
    let mut out = String::new();
    for ch in s.chars() {
        match ch {
            '\\' => out += "\\textbackslash{}",
            '&' | '%' | '$' | '#' | '_' | '{' | '}' => {
                out.push('\\');
                out.push(ch);
            }
            '~' => out += "\\textasciitilde{}",
            '^' => out += "\\textasciicircum{}",
            'ε' => out += "$\\epsilon$",
            '↑' => out += "$\\uparrow$",
            '↓' => out += "$\\downarrow$",
            '°' => out += "$^\\circ$",
            '×' => out += "$\\times$",
            '–' => out += "--",
            _ => out.push(ch),
        }
    }
    out
}

/// Marks the largest finite values of `values` (ties all bold).
pub fn bold_max(values: &[Option<f64>]) -> Vec<bool> {
    let max = values.iter().flatten().copied().filter(|v| v.is_finite()).fold(f64::NEG_INFINITY, f64::max);
    values.iter().map(|v| v.is_some_and(|v| v.is_finite() && v == max)).collect()
}

/// `12.34`, or `-` when missing.
pub fn fmt2(v: Option<f64>) -> String {
    v.filter(|x| x.is_finite()).map_or("-".into(), |x| format!("{x:.2}"))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn table() -> Table {
        Table {
            id: "t".into(),
            title: "ARP at ε = 8".into(),
            head: vec!["Model".into()],
            groups: vec![("PGD".into(), vec!["Total".into(), "GB-MTA".into()]), (String::new(), vec!["n_x".into()])],
            rows: vec![Row {
                labels: vec!["a_b".into()],
                values: vec!["1.00".into(), "2.00".into(), "-".into()],
                bold: vec![false, true, false],
            }],
            summary: "GB-MTA strongest in 1/1 models (100%)".into(),
        }
    }

    #[test]
    fn three_renderings() {
        let t = table();
        assert_eq!(t.columns(), vec!["PGD Total", "PGD GB-MTA", "n_x"]);
        assert_eq!(t.cell("a_b", "PGD GB-MTA"), Some(("2.00".into(), true)));
        let md = t.markdown();
        assert!(
            md.contains("| Model | PGD Total | PGD GB-MTA | n_x |\n| :-- | --: | --: | --: |\n| a_b | 1.00 | **2.00** | - |\n"),
            "{md}"
        );
        assert!(md.ends_with("*GB-MTA strongest in 1/1 models (100%)*\n"));
        assert_eq!(t.csv(), "Model,PGD Total,PGD GB-MTA,n_x\na_b,1.00,2.00,\n");
        let tex = t.latex();
        assert!(tex.contains("\\begin{tabular}{lrrr}"), "{tex}");
        assert!(tex.contains(" & \\multicolumn{2}{c}{PGD} & \\multicolumn{1}{c}{} \\\\\n\\cmidrule(lr){2-3}\n"), "{tex}");
        assert!(tex.contains("a\\_b & 1.00 & \\textbf{2.00} & - \\\\"), "{tex}");
        assert!(tex.contains("\\caption{ARP at $\\epsilon$ = 8 GB-MTA strongest in 1/1 models (100\\%)}"), "{tex}");
    }

    #[test]
    fn ties_are_all_bold_and_missing_never() {
        assert_eq!(bold_max(&[Some(1.0), None, Some(3.0), Some(3.0), Some(f64::NAN)]), vec![false, false, true, true, false]);
    }
}
