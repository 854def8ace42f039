//! `mtrobust attack`: attack a checkpoint on a dataset split with one step rule over directions ×
//! budgets; print per-task metrics before/after with ARP; write `report.json`, `report.csv`, the
//! adversarial batch as `.npy` and a preview image.
use super::GlobalArgs;
use super::attack_args::AttackArgs;
use super::data_args::DataArgs;
use super::precision_args::PrecisionArgs;
use super::progress::Progress;
use anyhow::Context;
use clap::{Args, ValueEnum};
use mtrobust::attack::Attack;
use mtrobust::job::{DataSpec, Job, OutputDir};
use mtrobust::model::{Model, ModelSource};
use mtrobust::report::RunRecord;
use mtrobust::report::{csv, table};
use mtrobust::task::{Convention, MetricProfile, TaskKind};
use std::path::{Path, PathBuf};
use std::process::ExitCode;

/// What is evaluated and how results are written: the flags `attack` and `eval` share.
#[derive(Debug, Args)]
pub struct Scope {
    /// Checkpoint (`.safetensors` with its `.json` sidecar), or a TorchScript module with --model-spec.
    #[arg(long)]
    model: PathBuf,
    /// Model spec (TOML) of a TorchScript --model: its tasks, which output is which, its input
    /// normalisation. See the README, "Use your own model".
    #[arg(long)]
    model_spec: Option<PathBuf>,
    #[command(flatten)]
    data: DataArgs,
    /// Split to evaluate.
    #[arg(long, default_value = "test")]
    split: String,
    /// Use at most this many samples.
    #[arg(long)]
    limit: Option<usize>,
    /// Images per batch, or `auto`: the largest batch whose attack iteration fits the GPU's memory
    /// (CUDA only; 90 % of what a doubling-and-bisection probe finds).
    #[arg(long, default_value = "16")]
    batch_size: String,
    /// Metrics: `full` (mIoU, angles, δ …) or `taskonomy` (one per task); default from the data.
    #[arg(long, value_enum)]
    metrics: Option<MetricProfile>,
    /// `standard` definitions, or the `reference` code's quirks for comparison with the paper.
    #[arg(long, value_enum, default_value_t = Convention::Standard)]
    convention: Convention,
    /// Output directory (report.json, report.csv; for attacks also adversarial batches and
    /// previews). Default: runs/attack or runs/eval.
    #[arg(long)]
    out: Option<PathBuf>,
    /// What to print on stdout.
    #[arg(long, value_enum, default_value_t = Format::Table)]
    format: Format,
    /// Replace a report of another run found in --out.
    #[arg(long)]
    force: bool,
    #[command(flatten)]
    precision: PrecisionArgs,
}

impl Scope {
    /// The data as the library describes it.
    pub fn data_spec(&self) -> DataSpec {
        DataSpec {
            path: self.data.data.clone(),
            split: self.split.clone(),
            limit: self.limit,
            batch_size: self.fixed_batch_size().unwrap_or(16),
            resize: self.data.resize,
            crop: self.data.crop,
        }
    }

    /// Refuses sizes that leave nothing to do, before the output directory is touched.
    fn check(&self) -> anyhow::Result<()> {
        anyhow::ensure!(
            self.limit != Some(0),
            "--limit: 0 samples leaves nothing to evaluate; give at least 1, or leave it out for the whole split"
        );
        if self.batch_size.trim() != "auto" {
            self.fixed_batch_size()?;
        }
        Ok(())
    }

    /// The batch size given as a number.
    fn fixed_batch_size(&self) -> anyhow::Result<usize> {
        let t = self.batch_size.trim();
        t.parse::<usize>()
            .ok()
            .filter(|&n| n >= 1)
            .ok_or_else(|| anyhow::anyhow!("--batch-size: `{t}` is not a batch size; give a number, at least 1, or `auto` (CUDA)"))
    }

    /// Resolves `--batch-size auto` for `model` under `attacks` (one iteration of each is probed
    /// on random inputs of the data's size); a number is kept as it is.
    fn resolve_batch_size(&mut self, model: &Model, attacks: &[Attack]) -> anyhow::Result<()> {
        if self.batch_size.trim() != "auto" {
            return Ok(());
        }
        let device = model.device();
        let spec = DataSpec { batch_size: 1, limit: Some(1), ..self.data_spec() };
        let opened = mtrobust::job::open_for(model, &spec)?;
        let first = mtrobust::data::BatchSource::batch(&opened.loader, 0, tch::Device::Cpu)?;
        let (h, w) = (first.x.size()[2], first.x.size()[3]);
        let specs = model.tasks().to_vec();
        let n = mtrobust::bench::autobatch::auto_batch_size(device, 4096, |n| {
            let batch = mtrobust::bench::random_batch(&specs, &model.input, n as i64, (h, w), device, 0);
            for a in attacks {
                let one = Attack::new(mtrobust::AttackConfig { rule: a.config.rule.with_n_iter(1), ..a.config.clone() })?;
                one.run(model, &opened.tasks, &batch, mtrobust::attack::BatchContext::at(0))?;
            }
            if attacks.is_empty() {
                drop(mtrobust::bench::floor_pass(model, &batch.x)?);
            }
            Ok(())
        })?;
        eprintln!("--batch-size auto: {n} images per batch on {}", mtrobust::device::device_name(device));
        self.batch_size = n.to_string();
        Ok(())
    }

    fn job<'a>(&self, model: &'a Model, attacks: Vec<Attack>) -> Job<'a> {
        Job { metrics: self.metrics, convention: self.convention, ..Job::new(model, &self.model, self.data_spec(), attacks) }
    }
}

#[derive(Debug, Args)]
#[command(after_help = "Examples:
  mtrobust attack --model runs/clean/model.safetensors --data data/synth --attack apgd --direction gbmta --eps 8
  mtrobust attack --model runs/clean/model.safetensors --data data/synth --attack pgd --direction all --eps 2,4,8 --format csv
  mtrobust attack --model m.safetensors --data /data/nyuv2 --attack apgd --apgd-profile paper --reduction pooled --convention reference --direction gbmta --eps 8
  mtrobust attack --model mine.pt --model-spec mine.toml --data data/synth --direction all --eps 4   # a TorchScript model
  mtrobust attack --model runs/clean/model.safetensors --data data/synth --ensemble standard --n-iter 20 --n-queries 500 --eps 8
  mtrobust attack --model m.safetensors --data data/synth --ensemble mine.toml --score single:segm --eps 4,8")]
pub struct AttackCmdArgs {
    #[command(flatten)]
    scope: Scope,
    #[command(flatten)]
    attack: AttackArgs,
    /// Instead of one rule, the per-sample worst case over an ensemble: `standard` (APGD along
    /// GB-MTA, Total and each Single-x, then Square along GB-MTA; --n-iter [100] and --n-queries
    /// [5000] set their budgets) or a TOML file with `name` and `[[member]]` tables (rule, its
    /// parameters, direction).
    #[arg(long, conflicts_with_all = ["rule", "directions"])]
    ensemble: Option<String>,
    /// With --ensemble: the per-sample objective that picks each sample's worst case: `gbmta`
    /// (the balanced relative loss increase) or one task's loss, `single:<task>` [default: gbmta].
    #[arg(long, requires = "ensemble")]
    score: Option<String>,
    /// Seed of random starts.
    #[arg(long, default_value_t = 0)]
    seed: u64,
    /// Save every adversarial batch, not only the first.
    #[arg(long)]
    save_all: bool,
}

#[derive(Debug, Clone, Copy, ValueEnum)]
pub enum Format {
    Table,
    Json,
    Csv,
}

/// Runs `job` into the output directory `out` (locked; a report of another run there is
/// refused unless `force`) and writes its report.
pub fn run_job(job: &Job, out: &Path, force: bool, save_all: bool, progress: &mut Progress) -> anyhow::Result<RunRecord> {
    job.check()?;
    let dir = OutputDir::prepare(out, &job.identity()?, force, save_all)?;
    let mut sink = dir.sink(job.model, &job.attacks);
    let mut record = mtrobust::job::run(job, progress, Some(&mut sink))?;
    dir.finish(&mut record)?;
    Ok(record)
}

/// Prints a record on stdout in `format`.
pub fn print_record(record: &RunRecord, format: Format) -> anyhow::Result<()> {
    match format {
        Format::Table => {
            out!("{}", table::render(&record.evaluation));
            if !record.evaluation.attacked.is_empty() {
                outln!();
                out!("{}", table::render_arp(&record.evaluation));
            }
            for members in table::render_members(&record.evaluation) {
                outln!();
                out!("{members}");
            }
        }
        Format::Json => outln!("{}", serde_json::to_string_pretty(record)?),
        Format::Csv => out!("{}", csv::render(&record.evaluation)),
    }
    Ok(())
}

/// 1 when an attack produced inputs that failed a sanity check, else 0.
pub fn exit_code(record: &RunRecord) -> ExitCode {
    let failed = record.evaluation.attacked.iter().any(|r| r.checks.as_ref().is_some_and(|c| !c.passed()));
    if failed { ExitCode::from(1) } else { ExitCode::SUCCESS }
}

/// Refuses a run whose checkpoint file no longer holds the bytes digested (`before`) when it was
/// loaded: the run's identity is a digest of the file, and must be that of the weights it ran.
fn check_unchanged(path: &Path, before: Option<&str>) -> anyhow::Result<()> {
    let now = mtrobust::digest::files_digest(&[path])?;
    anyhow::ensure!(
        before == Some(now.as_str()),
        "--model {}: the file changed while it was being loaded (another process writing it?); rerun when it is complete",
        path.display()
    );
    Ok(())
}

/// Loads a checkpoint, or a TorchScript module with its spec, for evaluation (frozen variables).
pub fn load_model(path: &Path, spec: Option<&Path>, global: &GlobalArgs) -> anyhow::Result<Model> {
    let device = mtrobust::device::parse_device(&global.device)?;
    let source = ModelSource::new(path, spec.map(Path::to_path_buf));
    let (mut model, _) = source.load(device).with_context(|| format!("loading --model {}", path.display()))?;
    model.vs.freeze();
    Ok(model)
}

pub fn run(a: AttackCmdArgs, global: &GlobalArgs) -> anyhow::Result<ExitCode> {
    a.scope.check()?;
    let mut progress = Progress::new(global.quiet);
    // A missing file is load_model's to explain.
    let digest = mtrobust::digest::files_digest(&[&a.scope.model]).ok();
    let mut model = load_model(&a.scope.model, a.scope.model_spec.as_deref(), global)?;
    a.scope.precision.apply(&mut model)?;
    let kinds: Vec<TaskKind> = model.tasks().iter().map(|s| s.kind).collect();
    let configs = match &a.ensemble {
        Some(name) => a.attack.ensemble_configs(name, a.score.as_deref().unwrap_or("gbmta"), &kinds, a.seed)?,
        None => a.attack.configs(&kinds, a.seed)?,
    };
    // A member or score naming a task the model lacks is refused before any work.
    let tasks: Vec<mtrobust::task::Task> = model.tasks().iter().map(|s| mtrobust::task::Task::new(*s)).collect();
    for c in &configs {
        if let mtrobust::attack::Rule::Ensemble(e) = &c.rule {
            e.check_tasks(&c.direction, &tasks).map_err(|e| anyhow::anyhow!("--ensemble: {}", e.chain()))?;
        }
    }
    let attacks = configs.into_iter().map(Attack::new).collect::<Result<Vec<_>, _>>()?;
    let mut a = a;
    a.scope.resolve_batch_size(&model, &attacks)?;
    let out = a.scope.out.clone().unwrap_or_else(|| PathBuf::from("runs/attack"));
    check_unchanged(&a.scope.model, digest.as_deref())?;
    let record = run_job(&a.scope.job(&model, attacks), &out, a.scope.force, a.save_all, &mut progress)?;
    print_record(&record, a.scope.format)?;
    progress.info(&format!("{:.1} s; report, adversarial batches and previews in {}", record.seconds, out.display()));
    Ok(exit_code(&record))
}

/// `mtrobust eval`: clean metrics of a checkpoint.
#[derive(Debug, Args)]
#[command(
    after_help = "Examples:\n  mtrobust eval --model runs/clean/model.safetensors --data data/synth\n  mtrobust eval --model m.safetensors --data /data/nyuv2 --convention reference --format json"
)]
pub struct EvalArgs {
    #[command(flatten)]
    scope: Scope,
}

pub fn run_eval(a: EvalArgs, global: &GlobalArgs) -> anyhow::Result<ExitCode> {
    a.scope.check()?;
    let mut progress = Progress::new(global.quiet);
    // A missing file is load_model's to explain.
    let digest = mtrobust::digest::files_digest(&[&a.scope.model]).ok();
    let mut model = load_model(&a.scope.model, a.scope.model_spec.as_deref(), global)?;
    a.scope.precision.apply(&mut model)?;
    let mut a = a;
    a.scope.resolve_batch_size(&model, &[])?;
    let out = a.scope.out.clone().unwrap_or_else(|| PathBuf::from("runs/eval"));
    check_unchanged(&a.scope.model, digest.as_deref())?;
    let record = run_job(&a.scope.job(&model, Vec::new()), &out, a.scope.force, false, &mut progress)?;
    print_record(&record, a.scope.format)?;
    Ok(ExitCode::SUCCESS)
}
