//! `mtrobust demo`: a small study on the built-in data — render the synthetic scenes, train three
//! small five-task models from all-shared to independent, attack each with FGSM, PGD and APGD ×
//! Single-x, Total, SignTotal, GB-MTA × four budgets and with the standard ensemble (its per-sample
//! worst case, Square included) at the tables' budget into a results store, then write the paper's
//! tables (Table 1 style, Table 12 style), Figures 2, 1 and 4 and one Figure-6 picture. Every stage
//! reuses what an earlier run left in `--out`: rendered data, trained models (training resumes) and
//! stored cells, so a rerun prints the same numbers without recomputing them.
use super::GlobalArgs;
use super::progress::Progress;
use anyhow::Context;
use clap::Args;
use mtrobust::attack::{AttackConfig, DirectionSpec, Pgd, Rule};
use mtrobust::data::synth::export::{SynthOptions, read_manifest, write_dataset};
use mtrobust::data::{InputSpace, Loader, Mode, SampleSource, Sizes};
use mtrobust::eval::{EvalOptions, clean_run};
use mtrobust::model::{BackboneKind, Layout, Model, ModelConfig, index_of};
use mtrobust::report::paper::{self, View, quality, tables};
use mtrobust::study::{RunOptions, Store, StudyFile};
use mtrobust::task::{Convention, TaskKind, taskonomy_tasks};
use mtrobust::train::{RunDir, TrainConfig, TrainData, train};
use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::time::Instant;

#[derive(Debug, Args)]
#[command(after_help = "Examples:
  mtrobust --threads 2 demo
  mtrobust demo --full --out runs/demo-full
  mtrobust demo --out runs/demo-big --n 2000 --size 96 --steps 1500 --limit 100 --n-iter 10 --eps 1,2,4,8,12,16")]
pub struct DemoArgs {
    /// Run directory: data/, models/, results.sqlite and report/ go inside.
    #[arg(long, default_value = "runs/demo")]
    out: PathBuf,
    /// The bigger run: 1200 scenes of 64² px (8×8 outputs instead of 4×4), 1000 training steps,
    /// 10 attack iterations (see the README for its measured time; explicit flags still win).
    #[arg(long)]
    full: bool,
    /// Scenes to render (80 % train, 20 % test) [default: 480; --full 1200].
    #[arg(long)]
    n: Option<usize>,
    /// Image side in pixels [default: 32; --full 64].
    #[arg(long)]
    size: Option<usize>,
    /// Training steps per model (batch 16) [default: 600; --full 1000].
    #[arg(long)]
    steps: Option<usize>,
    /// Test images attacked [default: 32].
    #[arg(long)]
    limit: Option<usize>,
    /// Iterations of PGD and APGD [default: 5; --full 10].
    #[arg(long)]
    n_iter: Option<usize>,
    /// Budgets in grey levels [default: 2,4,8,16].
    #[arg(long, value_delimiter = ',')]
    eps: Option<Vec<f64>>,
    /// Budget of the tables and Figures 1 and 4 [default: 8, or the largest budget without 8].
    #[arg(long)]
    table_eps: Option<f64>,
    #[arg(long, default_value_t = 0)]
    seed: u64,
}

/// The sizes a run uses after defaults.
struct Sizes3 {
    n: usize,
    size: usize,
    steps: usize,
    limit: usize,
    n_iter: usize,
    eps: Vec<f64>,
}

impl DemoArgs {
    fn sizes(&self) -> Sizes3 {
        let full = self.full;
        Sizes3 {
            n: self.n.unwrap_or(if full { 1200 } else { 480 }),
            size: self.size.unwrap_or(if full { 64 } else { 32 }),
            steps: self.steps.unwrap_or(if full { 1000 } else { 600 }),
            limit: self.limit.unwrap_or(32),
            n_iter: self.n_iter.unwrap_or(if full { 10 } else { 5 }),
            eps: self.eps.clone().unwrap_or_else(|| vec![2.0, 4.0, 8.0, 16.0]),
        }
    }
}

/// The three demo models: (name, layout). All five tasks share the first k of the five stages.
fn demo_layouts() -> Vec<(&'static str, Layout)> {
    let layout = |shared: usize| -> Layout {
        let block = |s: usize| if s < shared { "[{0, 1, 2, 3, 4}]".to_string() } else { "[{0}, {1}, {2}, {3}, {4}]".to_string() };
        let text = format!("[{}]", (0..5).map(block).collect::<Vec<_>>().join(", "));
        text.parse().expect("a valid five-task layout")
    };
    vec![("shared-5L", layout(5)), ("shared-2L", layout(2)), ("independent", layout(0))]
}

/// The demo's Square budget: 20 queries (forwards) per APGD iteration.
const DEMO_QUERIES_PER_ITER: usize = 20;

fn study_toml(data: &Path, models: &[(String, PathBuf)], s: &Sizes3, seed: u64, table_eps: f64) -> String {
    let eps = s.eps.iter().map(|e| format!("{e}")).collect::<Vec<_>>().join(", ");
    let mut t = format!("[data]\npath = {:?}\nlimit = {}\nbatch_size = 16\n\n", data.display().to_string(), s.limit);
    for (name, path) in models {
        t += &format!("[[model]]\npath = {:?}\nname = {name:?}\n\n", path.display().to_string());
    }
    for (rule, iters) in [("fgsm", None), ("pgd", Some(s.n_iter)), ("apgd", Some(s.n_iter))] {
        let iters = iters.map_or(String::new(), |n| format!("n_iter = {n}\n"));
        t += &format!("[[attack]]\nrule = \"{rule}\"\ndirections = [\"all\"]\neps = [{eps}]\nseeds = [{seed}]\n{iters}\n");
    }
    // The standard ensemble at the tables' budget, with the demo's small budgets.
    t += &format!(
        "[[ensemble]]\nn_iter = {}\nn_queries = {}\neps = [{table_eps}]\nseeds = [{seed}]\n",
        s.n_iter,
        s.n_iter * DEMO_QUERIES_PER_ITER
    );
    t
}

pub fn run(a: DemoArgs, global: &GlobalArgs) -> anyhow::Result<ExitCode> {
    let started = Instant::now();
    // One thread unless --threads says otherwise: the numbers then do not depend on the machine's
    // core count, and a busy machine does not stall libtorch's thread pool.
    if global.threads.is_none() {
        tch::set_num_threads(1);
    }
    let device = mtrobust::device::parse_device(&global.device)?;
    let mut progress = Progress::new(global.quiet);
    let s = a.sizes();
    if s.eps.iter().any(|e| !(e.is_finite() && *e > 0.0)) {
        anyhow::bail!("--eps: every budget must be a positive number of grey levels, got {:?}", s.eps);
    }
    // The demo rewrites only what it wrote (its data, models, store and report); a folder holding
    // anything else, or a link where one of its files goes, is refused before any work.
    let entry_name = |p: &Path| p.file_name().map(|n| n.to_string_lossy().into_owned()).unwrap_or_default();
    mtrobust::files::refuse_foreign_entries(&a.out, |p| {
        let name = entry_name(p);
        !p.is_symlink()
            && ((matches!(name.as_str(), "data" | "models" | "report") && p.is_dir())
                || (name.starts_with("results.sqlite") && p.is_file()))
    })
    .context("--out")?;
    mtrobust::files::refuse_foreign_entries(&a.out.join("report"), |p| {
        !p.is_symlink() && p.is_file() && p.extension().is_some_and(|e| ["md", "csv", "tex", "png", "svg"].iter().any(|x| e == *x))
    })
    .context("--out")?;
    // 1. Data.
    let t = Instant::now();
    let data_dir = a.out.join("data");
    let wanted = SynthOptions { n: s.n, size: s.size, seed: 7, test_fraction: 0.2 };
    match read_manifest(&data_dir)? {
        Some(m) if m.options == wanted => progress.info(&format!("1/5 reusing the synthetic data in {}", data_dir.display())),
        Some(m) => anyhow::bail!(
            "{} holds synthetic data made with other options ({:?}); use another --out or delete it",
            data_dir.display(),
            m.options
        ),
        None => {
            progress.info(&format!("1/5 rendering {} scenes of {}² px into {}", s.n, s.size, data_dir.display()));
            write_dataset(&data_dir, &wanted, &mut progress)?;
        }
    }
    let data_seconds = t.elapsed().as_secs_f64();
    // 2. Models.
    let t = Instant::now();
    let open = |mode| mtrobust::data::open(&data_dir, if mode == Mode::Train { "train" } else { "test" }, mode, Sizes::default());
    let train_set = open(Mode::Train)?;
    let specs = taskonomy_tasks(train_set.reader.seg_classes() as i64);
    let tasks = train_set.tasks_for(&specs)?;
    let kinds: Vec<TaskKind> = specs.iter().map(|sp| sp.kind).collect();
    let profile = train_set.default_profile();
    let options = EvalOptions { profile, convention: Convention::Standard };
    let loader = Loader::new(train_set, kinds.clone(), 16, None)?;
    let mut checkpoints = Vec::new();
    let layouts = demo_layouts();
    for (i, (name, layout)) in layouts.iter().enumerate() {
        let config = ModelConfig {
            backbone: BackboneKind::Small,
            tasks: specs.clone(),
            layout: layout.clone(),
            head: BackboneKind::Small.default_head(),
        };
        let mut model = Model::new(config, InputSpace::reference(), device, a.seed)?;
        model.layout_index = index_of(layout);
        let mut tc = TrainConfig::new(specs.len(), s.steps, 16);
        tc.lr = 0.05;
        tc.seed = a.seed;
        tc.log_every = 25;
        tc.checkpoint_every = 100;
        let dir = a.out.join("models").join(name);
        progress.info(&format!(
            "2/5 training model {}/3 `{name}` ({} shared stages), {} steps → {}",
            i + 1,
            layout.shared_prefix(),
            s.steps,
            dir.display()
        ));
        let on = TrainData { tasks: &tasks, samples: &loader, validation: None, eval_options: options };
        let summary = train(&mut model, on, &tc, RunDir { path: &dir, restart: false }, None, &mut progress)
            .context("training a demo model (an existing --out with other settings? use another --out)")?;
        if summary.resumed_from < summary.steps {
            progress.info(&format!("   trained steps {}..{} in {:.0} s", summary.resumed_from, summary.steps, summary.seconds));
        }
        checkpoints.push((name.to_string(), dir.join("model.safetensors")));
    }
    let train_seconds = t.elapsed().as_secs_f64();
    // 3. The study.
    let t = Instant::now();
    let table_eps = a.table_eps.unwrap_or(if s.eps.contains(&8.0) { 8.0 } else { s.eps.iter().copied().fold(0.0, f64::max) });
    let study = StudyFile::parse(&study_toml(&data_dir, &checkpoints, &s, a.seed, table_eps))?;
    let plan = mtrobust::study::plan(&study)?;
    let db = a.out.join("results.sqlite");
    let mut store = Store::open(&db)?;
    progress.info(&format!(
        "3/5 study: {} models × (FGSM, PGD-{n}, APGD-{n} × {} directions × ε ∈ {{{}}}, and the standard ensemble at ε = {table_eps} \
         with APGD-{n} and Square-{q}) on {} test images = {} cells → {}",
        checkpoints.len(),
        kinds.len() + 3,
        s.eps.iter().map(|e| format!("{e}")).collect::<Vec<_>>().join(", "),
        s.limit,
        plan.cells.len(),
        db.display(),
        n = s.n_iter,
        q = s.n_iter * DEMO_QUERIES_PER_ITER,
    ));
    let summary = mtrobust::study::run(&plan, &mut store, RunOptions { device, shard: None, per_sample: false }, &mut progress)?;
    progress.info(&format!("   {} cells computed now, {} stored before", summary.computed, summary.already_done));
    let study_seconds = t.elapsed().as_secs_f64();
    // 4. Tables and figures.
    let t = Instant::now();
    let report_dir = a.out.join("report");
    let view = View::load(&store, None, "linf")?;
    view.check_eps(table_eps)?;
    let all = tables::all(&view, table_eps);
    paper::write_tables(&all, &report_dir)?;
    let figures = paper::figures::write_figures(&view, table_eps, &report_dir)?;
    // 5. Figure 6, and clean quality against an untrained twin and the best constant prediction.
    let test_set = open(Mode::Test)?;
    let test_tasks = test_set.tasks_for(&specs)?;
    let test = Loader::new(test_set, kinds.clone(), 16, Some(s.limit))?;
    let (shared, _) = Model::load(&checkpoints[0].1, device)?;
    let picture_attacks: Vec<AttackConfig> = [4.0, 8.0, 16.0]
        .into_iter()
        .flat_map(|eps| {
            [DirectionSpec::Single(TaskKind::SegmentSemantic), DirectionSpec::Total, DirectionSpec::Gbmta].map(|direction| {
                let rule = Rule::Pgd(Pgd { n_iter: s.n_iter, ..Pgd::default() });
                AttackConfig { rule, direction, eps, seed: a.seed, ..Default::default() }
            })
        })
        .collect();
    let sample = test.samples(&[(0, 0)], device)?;
    let fig6 = report_dir.join("fig6_adversarial_examples.png");
    mtrobust::files::write_png(&fig6, &mtrobust::report::picture::render(&shared, &test_tasks, &sample, &picture_attacks)?)?;
    let untrained = Model::new(shared.config()?.clone(), InputSpace::reference(), device, a.seed)?;
    let untrained = clean_run(&untrained, &test_tasks, &test, options, &mut mtrobust::observe::Silent)?.report;
    let constants = quality::best_constants(&test_tasks, &test, profile)?;
    let constant = quality::constant_metrics(&test_tasks, &test, &constants, profile, options.convention)?;
    let report_seconds = t.elapsed().as_secs_f64();

    let table1 = all.iter().find(|t| t.id == "table1_arp").expect("always built");
    let table12 = all.iter().find(|t| t.id == "table12_transfer").expect("always built");
    outln!("{}", table1.markdown());
    outln!("{}", table12.markdown());
    for members in all.iter().filter(|t| t.id.starts_with("table_ensemble_")) {
        outln!("{}", members.markdown());
    }
    let trained: Vec<_> =
        view.models.iter().enumerate().filter_map(|(m, info)| view.clean.get(&m).map(|r| (info.row.name.clone(), &r.metrics))).collect();
    outln!("{}", quality::quality_table(&untrained, &constant, &trained));
    progress.info(&format!(
        "ARP = average relative performance drop over the five tasks (percent, higher = stronger attack); transferability = \
         mean ARP of the other tasks relative to the attacked one.\n\
         Times: data {data_seconds:.0} s, training {train_seconds:.0} s, study {study_seconds:.0} s, report {report_seconds:.0} s; \
         total {:.0} s.",
        started.elapsed().as_secs_f64()
    ));
    outln!("results store: {}", db.display());
    outln!("tables (Markdown, CSV, LaTeX): {}/", report_dir.display());
    for f in figures.iter().filter(|f| f.extension().is_some_and(|e| e == "png")) {
        outln!("figure: {}", f.display());
    }
    outln!("figure: {}", fig6.display());
    Ok(ExitCode::SUCCESS)
}
