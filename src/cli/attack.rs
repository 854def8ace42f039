//! `mtrobust attack`: attack a checkpoint on a dataset split with one step rule over directions ×
//! budgets; print per-task metrics before/after with ARP; write `report.json`, `report.csv`, the
//! adversarial batch as `.npy` and a preview image.
use super::GlobalArgs;
use super::attack_args::AttackArgs;
use super::data_args::DataArgs;
use super::progress::Progress;
use super::train::describe;
use anyhow::Context;
use clap::{Args, ValueEnum};
use mtrobust::data::{Batch, BatchSource, Loader, Mode, write_npy};
use mtrobust::eval::{EvalOptions, evaluate};
use mtrobust::model::Model;
use mtrobust::report::RunRecord;
use mtrobust::report::{csv, table};
use mtrobust::task::{Convention, MetricProfile, TaskKind};
use std::path::{Path, PathBuf};
use std::process::ExitCode;
use tch::{Kind, Tensor};

/// What is evaluated and how results are written: the flags `attack` and `eval` share.
#[derive(Debug, Args)]
pub struct Scope {
    /// Checkpoint (`.safetensors` with its `.json` sidecar).
    #[arg(long)]
    model: PathBuf,
    #[command(flatten)]
    data: DataArgs,
    /// Split to evaluate.
    #[arg(long, default_value = "test")]
    split: String,
    /// Use at most this many samples.
    #[arg(long)]
    limit: Option<usize>,
    #[arg(long, default_value_t = 16)]
    batch_size: usize,
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
}

impl Scope {
    fn job<'a>(&'a self, model: &'a Model, out: &'a Path, attacks: Vec<mtrobust::attack::Attack>, save_all: bool) -> Job<'a> {
        Job {
            model,
            model_path: &self.model,
            data: &self.data,
            split: &self.split,
            limit: self.limit,
            batch_size: self.batch_size,
            attacks,
            metrics: self.metrics,
            convention: self.convention,
            out,
            save_all,
            force: self.force,
        }
    }
}

#[derive(Debug, Args)]
#[command(after_help = "Examples:
  mtrobust attack --model runs/clean/model.safetensors --data data/synth --attack apgd --direction gbmta --eps 8
  mtrobust attack --model runs/clean/model.safetensors --data data/synth --attack pgd --direction all --eps 2,4,8 --format csv
  mtrobust attack --model m.safetensors --data /data/nyuv2 --attack apgd --apgd-profile paper --reduction pooled --convention reference --direction gbmta --eps 8")]
pub struct AttackCmdArgs {
    #[command(flatten)]
    scope: Scope,
    #[command(flatten)]
    attack: AttackArgs,
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

/// A file-name-safe version of an attack label.
fn slug(label: &str) -> String {
    label.chars().map(|c| if c.is_ascii_alphanumeric() || c == '-' || c == '.' { c } else { '_' }).collect()
}

/// Clean | adversarial | perturbation (scaled to the full range), for the first sample.
fn write_preview(path: &Path, model: &Model, x: &Tensor, x_adv: &Tensor, eps: f64) -> anyhow::Result<()> {
    let _guard = tch::no_grad_guard();
    let rgb = |t: &Tensor| model.input.to_rgb_pixels(&t.get(0).unsqueeze(0)).squeeze_dim(0);
    let clean = rgb(x);
    let adv = rgb(x_adv);
    let delta = ((&adv - &clean) * (127.5 / eps.max(1e-6)) + 127.5).clamp(0.0, 255.0);
    let row = Tensor::cat(&[clean, adv, delta], 2).clamp(0.0, 255.0).round().to_kind(Kind::Uint8); // [3, H, 3W]
    let (h, w) = (row.size()[1] as u32, row.size()[2] as u32);
    let hwc = Vec::<u8>::try_from(row.permute([1, 2, 0]).contiguous().flatten(0, -1).to_device(tch::Device::Cpu))?;
    let img = image::RgbImage::from_raw(w, h, hwc).context("preview buffer size")?;
    img.save(path).with_context(|| format!("writing {}", path.display()))?;
    Ok(())
}

/// What to evaluate and where to write it.
pub struct Job<'a> {
    pub model: &'a Model,
    pub model_path: &'a Path,
    pub data: &'a DataArgs,
    pub split: &'a str,
    pub limit: Option<usize>,
    pub batch_size: usize,
    pub attacks: Vec<mtrobust::attack::Attack>,
    pub metrics: Option<MetricProfile>,
    pub convention: Convention,
    pub out: &'a Path,
    pub save_all: bool,
    /// Replace a report of another run in `out`.
    pub force: bool,
}

/// Refuses to overwrite the report of a different run (other model, data or attacks) in `out`.
fn check_out_dir(job: &Job) -> anyhow::Result<()> {
    let path = job.out.join("report.json");
    if job.force || !path.exists() {
        return Ok(());
    }
    let labels: Vec<String> = job.attacks.iter().map(|a| a.config.label()).collect();
    let same = std::fs::read_to_string(&path).ok().and_then(|t| serde_json::from_str::<RunRecord>(&t).ok()).is_some_and(|r| {
        r.model == job.model_path.display().to_string()
            && r.data == format!("{}:{}", job.data.data.display(), job.split)
            && r.evaluation.attacked.iter().map(|a| a.label.clone()).collect::<Vec<_>>() == labels
    });
    anyhow::ensure!(same, "{} already holds the report of another run; use another --out, or --force to replace it", job.out.display());
    Ok(())
}

/// Runs the clean evaluation and every attack of `job`; writes report.json, report.csv,
/// adversarial batches and previews into `job.out`.
pub fn run_job(job: Job, progress: &mut Progress) -> anyhow::Result<RunRecord> {
    check_out_dir(&job)?;
    let model = job.model;
    let dataset = job.data.open(job.split, Mode::Test)?;
    let specs = model.config().tasks.clone();
    let tasks = dataset.tasks_for(&specs)?;
    let kinds: Vec<TaskKind> = specs.iter().map(|s| s.kind).collect();
    let profile = job.metrics.unwrap_or(dataset.default_profile());
    let loader = Loader::new(dataset, kinds, job.batch_size, job.limit)?;
    std::fs::create_dir_all(job.out).with_context(|| format!("creating {}", job.out.display()))?;
    let architecture = describe(model, model.layout_index);
    for attack in &job.attacks {
        let c = &attack.config;
        let eps = mtrobust::attack::fmt_eps(c.eps);
        progress.info(&format!(
            "{}: ε = {eps} grey levels = {eps}/255 of the pixel range ({})",
            c.label(),
            mtrobust::attack::norm_id(c.norm)
        ));
    }
    progress.info(&format!("evaluating {architecture} on {} samples of {}:{}", loader.num_samples(), job.data.data.display(), job.split));
    let started = std::time::Instant::now();
    let out = job.out;
    let save_all = job.save_all;
    let labels: Vec<String> = job.attacks.iter().map(|x| slug(&x.config.label())).collect();
    let eps: Vec<f64> = job.attacks.iter().map(|x| x.config.eps).collect();
    let mut sink = |i: usize, b: usize, batch: &Batch, x_adv: &Tensor| -> mtrobust::Result<()> {
        if b > 0 && !save_all {
            return Ok(());
        }
        if i == 0 {
            write_npy(&out.join(format!("clean_batch{b:04}.npy")), &batch.x)?;
            let names = out.join(format!("clean_batch{b:04}.names.txt"));
            std::fs::write(&names, batch.names.join("\n")).map_err(|e| mtrobust::Error::io(&names, e))?;
        }
        let dir = out.join(&labels[i]);
        std::fs::create_dir_all(&dir).map_err(|e| mtrobust::Error::io(&dir, e))?;
        write_npy(&dir.join(format!("adv_batch{b:04}.npy")), x_adv)?;
        if b == 0 {
            write_preview(&dir.join("preview.png"), model, &batch.x, x_adv, eps[i])
                .map_err(|e| mtrobust::Error::data(&dir, e.to_string()))?;
        }
        Ok(())
    };
    let options = EvalOptions { profile, convention: job.convention };
    let evaluation = evaluate(model, &tasks, &loader, &job.attacks, options, progress, Some(&mut sink))?;
    let record = RunRecord::new(
        mtrobust::device::device_name(model.device()),
        job.model_path.display().to_string(),
        architecture,
        format!("{}:{}", job.data.data.display(), job.split),
        started.elapsed().as_secs_f64(),
        evaluation,
    );
    let json_path = job.out.join("report.json");
    std::fs::write(&json_path, serde_json::to_string_pretty(&record)?).with_context(|| format!("writing {}", json_path.display()))?;
    let csv_path = job.out.join("report.csv");
    std::fs::write(&csv_path, csv::render(&record.evaluation)).with_context(|| format!("writing {}", csv_path.display()))?;
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

/// Loads a checkpoint for evaluation (frozen variables).
pub fn load_model(path: &Path, global: &GlobalArgs) -> anyhow::Result<Model> {
    let device = mtrobust::device::parse_device(&global.device)?;
    let (mut model, _) = Model::load(path, device).with_context(|| format!("loading --model {}", path.display()))?;
    model.vs.freeze();
    Ok(model)
}

pub fn run(a: AttackCmdArgs, global: &GlobalArgs) -> anyhow::Result<ExitCode> {
    let mut progress = Progress::new(global.quiet);
    let model = load_model(&a.scope.model, global)?;
    let kinds: Vec<TaskKind> = model.config().tasks.iter().map(|s| s.kind).collect();
    let attacks = a.attack.configs(&kinds, a.seed)?.into_iter().map(mtrobust::attack::Attack::new).collect::<Result<Vec<_>, _>>()?;
    let out = a.scope.out.clone().unwrap_or_else(|| PathBuf::from("runs/attack"));
    let record = run_job(a.scope.job(&model, &out, attacks, a.save_all), &mut progress)?;
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
    let mut progress = Progress::new(global.quiet);
    let model = load_model(&a.scope.model, global)?;
    let out = a.scope.out.clone().unwrap_or_else(|| PathBuf::from("runs/eval"));
    let record = run_job(a.scope.job(&model, &out, Vec::new(), false), &mut progress)?;
    print_record(&record, a.scope.format)?;
    Ok(ExitCode::SUCCESS)
}
