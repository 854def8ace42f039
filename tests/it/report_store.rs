//! `mtrobust report --db`: the paper's tables from a store of hand-picked numbers (see
//! `common/paper_store.rs`), so every bold cell, transferability and summary is known.
use crate::paper_store;

use crate::common::{fails, ok};
use mtrobust::report::paper::{View, tables};
use mtrobust::study::Store;

fn view(d: &std::path::Path) -> View {
    paper_store::build(&d.join("r.sqlite"));
    View::load(&Store::open(&d.join("r.sqlite")).unwrap(), None, "linf").unwrap()
}

#[test]
fn arp_table_bolds_the_strongest_attack_of_each_row() {
    let tmp = tempfile::tempdir().unwrap();
    let v = view(tmp.path());
    let t = tables::arp_table(&v, 8.0);
    // Clean models only, fewest shared stages first.
    let names: Vec<&str> = t.rows.iter().map(|r| r.labels[0].as_str()).collect();
    assert_eq!(names, ["indep", "mid", "shared"]);
    assert_eq!(t.columns(), ["PGD Segm", "PGD Dept", "PGD Total", "PGD GB-MTA"]);
    assert_eq!(t.rows[2].labels, ["shared", "m0", "#0 AS/5L", "1.23M"]);
    assert_eq!(t.rows[0].labels[2], "#2 IND/0L");
    // shared: (40+10)/2 = 25, (8+32)/2 = 20, (36+20)/2 = 28, GB-MTA 30 → bold.
    assert_eq!(t.rows[2].values, ["25.00", "20.00", "28.00", "30.00"]);
    assert_eq!(t.rows[2].bold, [false, false, false, true]);
    // indep: Total (45+25)/2 = 35 beats GB-MTA 33.
    assert_eq!(t.cell("indep", "PGD Total"), Some(("35.00".into(), true)));
    assert_eq!(t.cell("indep", "PGD GB-MTA"), Some(("33.00".into(), false)));
    assert_eq!(t.summary, "PGD: GB-MTA strongest in 2/3 models (Total 1).");
    // ε = 4 has half of everything.
    assert_eq!(tables::arp_table(&v, 4.0).cell("shared", "PGD GB-MTA"), Some(("15.00".into(), true)));
}

#[test]
fn per_task_transfer_and_fat_tables() {
    let tmp = tempfile::tempdir().unwrap();
    let v = view(tmp.path());
    // Per-task ARP, mean over the three clean models: Single-Segm hits segm (40+42+50)/3 = 44,
    // Single-Dept hits dept (32+36+50)/3 = 39.33, GB-MTA has the best overall ARP (30+31+33)/3.
    let p = tables::per_task_table(&v, 8.0);
    assert_eq!(p.columns(), ["ARP Segm", "ARP Dept", "ARP"]);
    let row = |d: &str| p.rows.iter().find(|r| r.labels[1] == d).unwrap().clone();
    assert_eq!(row("Single-Segm").values, ["44.00", "5.67", "24.83"]);
    assert_eq!(row("Single-Segm").bold, [true, false, false]);
    assert_eq!(row("Single-Dept").bold, [false, true, false]);
    assert_eq!(row("GB-MTA").values, ["31.33", "31.33", "31.33"]);
    assert_eq!(row("GB-MTA").bold, [false, false, true]);
    assert_eq!(p.summary, "Strongest direction per task (and rule): Segm PGD: Single-Segm, Dept PGD: Single-Dept.");

    // Transferability (Eq. 11) = ARP-other / ARP-own: shared 10/40 and 8/32, mid 6/42 and 4/36,
    // indep 1/50 twice; most shared first.
    let t = tables::transfer_table(&v, 8.0);
    let rows: Vec<(String, String, Vec<String>)> =
        t.rows.iter().map(|r| (r.labels[0].clone(), r.labels[1].clone(), r.values.clone())).collect();
    assert_eq!(
        rows,
        [
            ("shared".into(), "AS/5L".into(), vec!["0.25".to_string(), "0.25".into()]),
            ("mid".into(), "2L".into(), vec!["0.14".into(), "0.11".into()]),
            ("indep".into(), "IND/0L".into(), vec!["0.02".into(), "0.02".into()]),
        ]
    );
    assert_eq!(t.summary, "PGD: mean transferability 0.25 at AS/5L vs 0.02 at IND/0L.");

    // Table 3: the all-shared model and its FAT twin (training read from the sidecar).
    let f = tables::fat_arp_table(&v, 8.0).expect("the store has a FAT model");
    let labels: Vec<Vec<String>> = f.rows.iter().map(|r| r.labels.clone()).collect();
    assert_eq!(labels, [vec!["shared".to_string(), "w/o AT".into()], vec!["fat".into(), "FAT PGD GB-MTA".into()]]);
    assert_eq!(f.rows[1].values, ["6.00", "5.00", "7.00", "9.00"]);
    assert_eq!(f.rows[1].bold, [false, false, false, true]);
    assert_eq!(f.summary, "PGD: GB-MTA strongest in 2/2 rows; mean ARP 25.75 without adversarial training vs 6.75 with FAT.");

    // Table 13: clean mIoU 0.5 → 0.4 (ARP-segm 20), abs_err 0.2 → 0.25 (ARP-dept 25), overall 22.5.
    let c = tables::fat_clean_table(&v).unwrap();
    assert_eq!(c.columns(), ["Segm mIoU ↑", "Segm ARP Segm", "Dept abs_err ↓", "Dept ARP Dept", "ARP"]);
    assert_eq!(c.rows[0].values, ["0.5000", "-", "0.2000", "-", "-"]);
    assert_eq!(c.rows[1].values, ["0.4000", "20.00", "0.2500", "25.00", "22.50"]);
    assert_eq!(c.summary, "FAT costs 22.50–22.50 % of clean performance (ARP of the FAT model against its clean twin).");
}

#[test]
fn report_db_prints_and_writes_every_table() {
    let tmp = tempfile::tempdir().unwrap();
    let d = tmp.path();
    paper_store::build(&d.join("r.sqlite"));
    let out = ok(d, &["report", "--db", "r.sqlite", "--out", "paper"]);
    assert!(out.contains("| shared | m0 | #0 AS/5L | 1.23M | 25.00 | 20.00 | 28.00 | **30.00** |"), "{out}");
    assert!(out.contains("*PGD: GB-MTA strongest in 2/3 models (Total 1).*"), "{out}");
    for id in ["table1_arp", "table_per_task", "table12_transfer", "table3_fat_arp", "table13_fat_clean"] {
        for ext in ["md", "csv", "tex"] {
            let f = d.join("paper").join(format!("{id}.{ext}"));
            assert!(std::fs::metadata(&f).is_ok_and(|m| m.len() > 50), "{} missing or empty", f.display());
        }
    }
    let tex = std::fs::read_to_string(d.join("paper/table1_arp.tex")).unwrap();
    assert!(tex.contains("\\toprule") && tex.contains("\\textbf{30.00}") && tex.contains("\\cmidrule(lr){5-8}"), "{tex}");
    let csv = std::fs::read_to_string(d.join("paper/table12_transfer.csv")).unwrap();
    assert_eq!(csv.lines().next(), Some("Model,Sharing,PGD Single-Segm,PGD Single-Dept"));
    assert!(csv.contains("\nmid,2L,0.14,0.11\n"), "{csv}");
    // Figures: each PNG decodes, is large and has many colours (lines, bands, anti-aliased text
    // from the embedded font); each SVG has its title as text.
    for (stem, title) in [
        ("fig2_arp_vs_eps", "ARP vs ε"),
        ("fig1_per_task_arp", "Per-task ARP, PGD at ε = 8/255"),
        ("fig4_transfer_vs_sharing", "Transferability vs sharing"),
    ] {
        let png = d.join("paper").join(format!("{stem}.png"));
        let img = image::open(&png).unwrap_or_else(|e| panic!("{}: {e}", png.display())).to_rgb8();
        assert!(img.width() >= 400 && img.height() >= 400, "{stem}: {}×{}", img.width(), img.height());
        let colours: std::collections::HashSet<[u8; 3]> = img.pixels().map(|p| p.0).collect();
        assert!(colours.len() >= 40, "{stem}: only {} colours", colours.len());
        let dark = img.pixels().filter(|p| p.0.iter().all(|&c| c < 80)).count();
        assert!(dark > 500, "{stem}: {dark} dark pixels (text and axes)");
        let svg = std::fs::read_to_string(d.join("paper").join(format!("{stem}.svg"))).unwrap();
        assert!(svg.contains("<text") && svg.contains(title), "{stem}.svg lacks its title");
    }
    // Bad input: a budget the store lacks, a missing store.
    fails(d, &["report", "--db", "r.sqlite", "--eps", "16"], 2, &["no cell at ε = 16", "the store has ε = 4, 8"]);
    fails(d, &["report", "--db", "nope.sqlite"], 2, &["no such results store"]);
}

/// Adds an ensemble cell at ε = 8 to model `id`: two members (PGD GB-MTA with `pgd_arp`, Square
/// GB-MTA with ARP 10) winning `wins` of the 4 samples, and the ensemble's own ARP.
fn put_ensemble(db: &std::path::Path, id: &str, pgd_arp: f64, wins: [usize; 2], arp: f64) {
    use mtrobust::attack::{AttackConfig, Ensemble, Member, Pgd, Rule, Square};
    use mtrobust::eval::{Arp, EvalOptions, MemberReport};
    let members = vec![
        Member { rule: Rule::Pgd(Pgd::default()), direction: "gbmta".parse().unwrap() },
        Member { rule: Rule::Square(Square::default()), direction: "gbmta".parse().unwrap() },
    ];
    let ensemble = Ensemble { name: "standard".into(), members };
    let config =
        AttackConfig { rule: Rule::Ensemble(ensemble.clone()), direction: "gbmta".parse().unwrap(), eps: 8.0, ..Default::default() };
    let arp_of = |a: f64| Some(Arp { metrics: Default::default(), per_task: Default::default(), arp: a });
    let member_reports = ensemble
        .member_configs(&config)
        .into_iter()
        .zip([pgd_arp, 10.0])
        .zip(wins)
        .map(|((c, a), wins)| MemberReport {
            wins,
            report: paper_store::report(&c.label(), Some(c), arp_of(a), paper_store::metrics(0.3, 0.3)),
        })
        .collect();
    let mut r = paper_store::report(&config.label(), Some(config), arp_of(arp), paper_store::metrics(0.3, 0.3));
    r.ensemble = Some(member_reports);
    let clean = paper_store::report("clean", None, None, paper_store::metrics(0.5, 0.2));
    let cell_id = format!("{id}-ensemble");
    let cell = mtrobust::study::store::NewCell {
        id: &cell_id,
        model_id: id,
        dataset_id: "d0",
        options: &EvalOptions::default(),
        report: &r,
        clean: &clean,
        transfer: None,
        seconds: 0.1,
        device: "cpu",
        samples: &[],
    };
    assert!(Store::open(db).unwrap().put_cell(&cell).unwrap());
}

#[test]
fn ensemble_column_gain_and_members_table() {
    let tmp = tempfile::tempdir().unwrap();
    let db = tmp.path().join("r.sqlite");
    paper_store::build(&db);
    // shared: its strongest single attack is PGD GB-MTA, 30; the ensemble 33 adds +3. indep: the
    // strongest is PGD Total, 35; the ensemble 34 is −1 below it (the score is not ARP). Mean +1.
    put_ensemble(&db, "m0", 30.0, [3, 1], 33.0);
    put_ensemble(&db, "m2", 31.0, [4, 0], 34.0);
    let v = View::load(&Store::open(&db).unwrap(), None, "linf").unwrap();
    let t = tables::arp_table(&v, 8.0);
    assert_eq!(t.columns().last().map(String::as_str), Some("Ensemble GB-MTA"));
    assert_eq!(t.cell("shared", "Ensemble GB-MTA"), Some(("33.00".into(), true)));
    assert_eq!(t.cell("mid", "Ensemble GB-MTA").map(|c| c.0), Some("-".into()));
    assert!(
        t.summary.contains("Ensemble: +1.00 ARP over the strongest single attack of each model, its members included (mean of 2)"),
        "{}",
        t.summary
    );
    let members = tables::ensemble_tables(&v, 8.0);
    assert_eq!(members.len(), 1);
    let m = &members[0];
    assert_eq!(m.id, "table_ensemble_standard_members");
    assert_eq!(
        m.rows.iter().map(|r| r.labels[0].as_str()).collect::<Vec<_>>(),
        ["PGD GB-MTA", "Square GB-MTA", "Ensemble (per-sample worst case)"]
    );
    assert_eq!(m.rows[0].values, ["100.0", "31.00", "75.0", "30.00"], "indep then shared: wins % and ARP");
    assert_eq!(m.rows[1].values, ["0.0", "10.00", "25.0", "10.00"]);
    assert_eq!(m.rows[2].values, ["100.0", "34.00", "100.0", "33.00"]);
    assert_eq!(m.rows[0].bold, [true, false, true, false], "the member winning most samples of each model");
    assert!(m.summary.starts_with("PGD GB-MTA gives the most per-sample worst cases in 2/2 models"), "{}", m.summary);
    // An ensemble alone in a store still compares with its members: shared +3 over PGD GB-MTA 30.
    let db2 = tmp.path().join("alone.sqlite");
    paper_store::build(&db2);
    let conn = rusqlite::Connection::open(&db2).unwrap();
    conn.execute("DELETE FROM cells", []).unwrap();
    drop(conn);
    put_ensemble(&db2, "m0", 30.0, [3, 1], 33.0);
    let v = View::load(&Store::open(&db2).unwrap(), None, "linf").unwrap();
    assert!(tables::arp_table(&v, 8.0).summary.contains("Ensemble: +3.00 ARP"), "{}", tables::arp_table(&v, 8.0).summary);
}
