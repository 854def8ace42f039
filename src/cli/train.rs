//! `mtrobust train`: clean or adversarial (FAT) multi-task training with progress, periodic
//! validation, checkpoints and resume (rerun the same command after an interruption).
use super::GlobalArgs;
use super::arch::ArchArgs;
use super::attack_args::AttackArgs;
use super::data_args::DataArgs;
use super::progress::Progress;
use anyhow::Context;
use clap::Args;
use mtrobust::attack::{EarlyStop, Rule};
use mtrobust::data::{Loader, Mode};
use mtrobust::eval::EvalOptions;
use mtrobust::model::Model;
use mtrobust::task::{Convention, MetricProfile, TaskKind, TaskSpec, taskonomy_tasks};
use mtrobust::train::{AdversarialTraining, OptimizerConfig, OptimizerKind, RunDir, Schedule, TrainConfig, TrainData, train};
use std::path::PathBuf;
use std::process::ExitCode;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};

#[derive(Debug, Args)]
#[command(after_help = "Examples:
  mtrobust train --data data/synth --backbone small --index 9 --steps 1500 --out runs/clean
  mtrobust train --data data/synth --index 9 --steps 1500 --out runs/fat --adversarial --attack pgd --direction gbmta --eps 8 --fat-tau 3
  mtrobust train --data /data/nyuv2 --backbone resnet34 --tasks nyuv2 --index 9 --optimizer adam --lr 1e-3 --schedule step:4000:0.5 --steps 20000 --out runs/nyu9

Ctrl-C or SIGTERM finish the current step and checkpoint it (exit 130); an interrupted or killed run resumes from its
last checkpoint when the same command is run again, and its log.jsonl then reads as if it had never stopped.
--out must be a new directory or a run directory of `train`; --restart discards what is there.")]
pub struct TrainArgs {
    #[command(flatten)]
    data: DataArgs,
    #[command(flatten)]
    arch: ArchArgs,
    /// Start from this checkpoint's weights and architecture instead of a random init (the
    /// architecture flags are then ignored).
    #[arg(long)]
    init: Option<PathBuf>,
    /// Training split.
    #[arg(long, default_value = "train")]
    split: String,
    /// Validation split ("none" to skip validation).
    #[arg(long, default_value = "test")]
    val_split: String,
    /// Validate on at most this many samples.
    #[arg(long)]
    val_limit: Option<usize>,
    /// Run directory (model, checkpoints, log).
    #[arg(long, default_value = "runs/train")]
    out: PathBuf,
    /// Discard a checkpoint of another configuration, or a model that is not from a run, found in --out.
    #[arg(long)]
    restart: bool,
    /// Optimiser steps.
    #[arg(long, default_value_t = 1500)]
    steps: usize,
    #[arg(long, default_value_t = 16)]
    batch_size: usize,
    #[arg(long, value_enum, default_value_t = OptimizerKind::Sgd)]
    optimizer: OptimizerKind,
    /// Base learning rate (default 0.05 for SGD, 1e-3 for Adam).
    #[arg(long, allow_negative_numbers = true)]
    lr: Option<f64>,
    /// SGD momentum.
    #[arg(long, default_value_t = 0.9, allow_negative_numbers = true)]
    momentum: f64,
    /// Adam β₁ (the reference uses 0.5).
    #[arg(long, default_value_t = 0.9, allow_negative_numbers = true)]
    beta1: f64,
    #[arg(long, default_value_t = 1e-4, allow_negative_numbers = true)]
    weight_decay: f64,
    /// constant, poly[:POWER], or step:EVERY:GAMMA.
    #[arg(long, default_value = "poly")]
    schedule: String,
    /// Loss weight per task in model order, e.g. 1,1,0.5 (default all 1).
    #[arg(long, value_delimiter = ',', allow_negative_numbers = true)]
    task_weights: Option<Vec<f64>>,
    #[arg(long, default_value_t = 25)]
    log_every: usize,
    /// Validate every N steps (0 = at the end only).
    #[arg(long, default_value_t = 500)]
    val_every: usize,
    /// Checkpoint every N steps (0 = at the end only).
    #[arg(long, default_value_t = 250)]
    checkpoint_every: usize,
    #[arg(long, default_value_t = 0)]
    seed: u64,
    /// Train on adversarial examples made by the attack flags below (FAT with --fat-tau).
    #[arg(long)]
    adversarial: bool,
    #[command(flatten)]
    attack: AttackArgs,
    /// FAT: stop each sample τ PGD steps after it first becomes adversarial (paper: K = τ = 20).
    #[arg(long)]
    fat_tau: Option<usize>,
    /// FAT: mean relative loss increase over the tasks that makes a sample adversarial.
    #[arg(long, default_value_t = 0.5, allow_negative_numbers = true)]
    fat_threshold: f64,
    /// FAT: grow τ linearly from this value to --fat-tau over training.
    #[arg(long)]
    fat_tau_start: Option<usize>,
    /// Weight λ of the clean loss in λ·L(x) + (1−λ)·L(x_adv).
    #[arg(long, default_value_t = 0.0, allow_negative_numbers = true)]
    clean_weight: f64,
    /// fp32, tf32 (CUDA: TF32 matmuls too) or bf16 (autocast over forward and
    /// backward with fp32 master weights; losses stay fp32).
    #[arg(long, value_enum, default_value_t = mtrobust::model::Precision::Fp32)]
    precision: mtrobust::model::Precision,
}

/// The task list of a model trained on data that has `kinds` with `classes` segmentation classes.
fn tasks_from_data(kinds: &[TaskKind], classes: usize) -> Vec<TaskSpec> {
    if kinds.len() == 5 {
        return taskonomy_tasks(classes as i64);
    }
    kinds.iter().map(|&k| TaskSpec::new(k, Some(classes as i64)).expect("class count given")).collect()
}

pub fn run(a: TrainArgs, global: &GlobalArgs) -> anyhow::Result<ExitCode> {
    let device = mtrobust::device::parse_device(&global.device)?;
    anyhow::ensure!(
        a.val_limit != Some(0),
        "--val-limit: 0 samples validates nothing; give at least 1, or --val-split none to skip validation"
    );
    let mut progress = Progress::new(global.quiet);
    let train_set = a.data.open(&a.split, Mode::Train)?;
    let (mut model, _index) = match &a.init {
        Some(path) => {
            let (m, _) = Model::load(path, device).with_context(|| format!("loading --init {}", path.display()))?;
            let i = m.layout_index;
            (m, i)
        }
        None => {
            let specs = match &a.arch.tasks {
                Some(_) => a.arch.task_specs()?,
                None => tasks_from_data(train_set.reader.tasks(), train_set.reader.seg_classes()),
            };
            let (config, index) = a.arch.config(specs)?;
            let mut m = Model::new(config, mtrobust::data::InputSpace::reference(), device, a.seed)?;
            m.layout_index = index;
            (m, index)
        }
    };
    model.set_precision(a.precision)?;
    let specs = model.tasks().to_vec();
    let tasks = train_set.tasks_for(&specs)?;
    let kinds: Vec<TaskKind> = specs.iter().map(|s| s.kind).collect();
    let profile = train_set.default_profile();
    let data = Loader::new(train_set, kinds.clone(), a.batch_size, None)?;
    let validation = if a.val_split == "none" {
        None
    } else {
        Some(Loader::new(a.data.open(&a.val_split, Mode::Test)?, kinds.clone(), a.batch_size, a.val_limit)?)
    };
    let mut config = TrainConfig::new(specs.len(), a.steps, a.batch_size);
    config.optimizer =
        OptimizerConfig { kind: a.optimizer, momentum: a.momentum, beta1: a.beta1, beta2: 0.999, weight_decay: a.weight_decay };
    config.lr = a.lr.unwrap_or(match a.optimizer {
        OptimizerKind::Sgd => 0.05,
        OptimizerKind::Adam => 1e-3,
    });
    config.schedule = a.schedule.parse::<Schedule>()?;
    if let Some(w) = &a.task_weights {
        config.task_weights = w.clone();
    }
    config.log_every = a.log_every;
    config.val_every = a.val_every;
    config.checkpoint_every = a.checkpoint_every;
    config.seed = a.seed;
    if a.adversarial {
        let mut attacks = a.attack.configs(&kinds, a.seed)?;
        anyhow::ensure!(attacks.len() == 1, "adversarial training takes one --direction and one --eps");
        let mut attack = attacks.remove(0);
        match (&mut attack.rule, a.fat_tau) {
            (Rule::Pgd(pgd), tau) => pgd.early_stop = tau.map(|tau| EarlyStop { tau, threshold: a.fat_threshold }),
            (_, None) => {}
            (_, Some(_)) => anyhow::bail!("--fat-tau: friendly early stopping applies to `--attack pgd` only"),
        }
        attack.check()?;
        config.adversarial = Some(AdversarialTraining { attack, clean_weight: a.clean_weight, tau_start: a.fat_tau_start });
    } else {
        anyhow::ensure!(a.fat_tau.is_none() && a.fat_tau_start.is_none(), "--fat-tau needs --adversarial");
    }
    // Ctrl-C, and SIGTERM (what batch schedulers send before killing a job; the `termination`
    // feature of ctrlc): finish the current step, checkpoint, exit 130.
    let cancel = Arc::new(AtomicBool::new(false));
    {
        let c = cancel.clone();
        let _ = ctrlc::set_handler(move || c.store(true, Ordering::SeqCst));
    }
    let architecture = mtrobust::job::describe(&model);
    progress.info(&format!(
        "training {architecture} on {} ({} samples) → {}",
        a.data.data.display(),
        mtrobust::data::SampleSource::num_samples(&data),
        a.out.display()
    ));
    let options = EvalOptions { profile, convention: Convention::Standard };
    let on = TrainData {
        tasks: &tasks,
        samples: &data,
        validation: validation.as_ref().map(|v| v as &dyn mtrobust::data::BatchSource),
        eval_options: options,
    };
    let s = train(&mut model, on, &config, RunDir { path: &a.out, restart: a.restart }, Some(&cancel), &mut progress)?;
    if s.interrupted {
        eprintln!("interrupted after step {}; checkpoint saved — run the same command again to resume", s.steps);
        return Ok(ExitCode::from(130));
    }
    outln!(
        "trained {} steps in {:.1} s (resumed from step {}) → {}",
        s.steps,
        s.seconds,
        s.resumed_from,
        a.out.join("model.safetensors").display()
    );
    if let Some(l) = &s.last_loss {
        outln!("last training losses: {}", l.iter().map(|(k, v)| format!("{} {v:.4}", k.short())).collect::<Vec<_>>().join(", "));
    }
    if let Some(v) = &s.validation {
        outln!("validation ({}):", if profile == MetricProfile::Full { "full metrics" } else { "taskonomy metrics" });
        for (task, metrics) in v.iter() {
            outln!("  {:<5} {}", task.short(), metrics.iter().map(|m| format!("{} {:.4}", m.name, m.value)).collect::<Vec<_>>().join(", "));
        }
    }
    Ok(ExitCode::SUCCESS)
}
