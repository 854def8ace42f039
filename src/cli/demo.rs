//! `mtrobust demo`: the whole pipeline on the built-in data — render the synthetic scenes, train a
//! small five-task model, attack it with every direction (Single-x for each task, Total, SignTotal,
//! GB-MTA) and print per-task metrics, ARP and transferability. Each stage reuses what an earlier
//! run left in `--out` (an interrupted demo resumes).
use super::GlobalArgs;
use super::attack::{Format, exit_code, print_record, run_job};
use super::data_args::DataArgs;
use super::progress::Progress;
use anyhow::Context;
use clap::Args;
use mtrobust::attack::{Attack, AttackConfig, DirectionSpec, StepKind, parse_eps};
use mtrobust::data::synth::export::{SynthOptions, read_manifest, write_dataset};
use mtrobust::data::{InputSpace, Loader, Mode};
use mtrobust::eval::EvalOptions;
use mtrobust::job::{DataSpec, Job};
use mtrobust::model::{BackboneKind, Model, ModelConfig, layout_at};
use mtrobust::task::{Convention, TaskKind, taskonomy_tasks};
use mtrobust::train::{TrainConfig, train};
use std::path::PathBuf;
use std::process::ExitCode;

#[derive(Debug, Args)]
#[command(
    after_help = "Examples:\n  mtrobust demo\n  mtrobust demo --out runs/demo-big --n 2000 --size 128 --steps 1500 --eps 4\n  mtrobust demo --index 4 --attack apgd"
)]
pub struct DemoArgs {
    /// Run directory: data/, model/, attack/ go inside.
    #[arg(long, default_value = "runs/demo")]
    out: PathBuf,
    /// Scenes to render (80 % train, 20 % test).
    #[arg(long, default_value_t = 1200)]
    n: usize,
    /// Image side in pixels.
    #[arg(long, default_value_t = 96)]
    size: usize,
    /// Training steps (batch 16).
    #[arg(long, default_value_t = 800)]
    steps: usize,
    /// Layout by TreeMTL index for the five Taskonomy tasks (0 = all-shared, 4 = independent).
    #[arg(long, default_value_t = 0)]
    index: usize,
    /// Step rule of the attacks.
    #[arg(long = "attack", value_enum, default_value_t = StepKind::Pgd)]
    step: StepKind,
    /// Attack budget in grey levels.
    #[arg(long, default_value = "8")]
    eps: String,
    /// Test samples to attack.
    #[arg(long, default_value_t = 96)]
    limit: usize,
    #[arg(long, default_value_t = 0)]
    seed: u64,
}

pub fn run(a: DemoArgs, global: &GlobalArgs) -> anyhow::Result<ExitCode> {
    let device = mtrobust::device::parse_device(&global.device)?;
    let mut progress = Progress::new(global.quiet);
    let eps = parse_eps(&a.eps)?;
    // 1. Data.
    let data_dir = a.out.join("data");
    let wanted = SynthOptions { n: a.n, size: a.size, seed: 7, test_fraction: 0.2 };
    match read_manifest(&data_dir)? {
        Some(m) if m.options == wanted => progress.info(&format!("reusing the synthetic data in {}", data_dir.display())),
        Some(m) => anyhow::bail!(
            "{} holds synthetic data made with other options ({:?}); use another --out or delete it",
            data_dir.display(),
            m.options
        ),
        None => {
            progress.info(&format!("1/3 rendering {} scenes of {}² px into {}", a.n, a.size, data_dir.display()));
            write_dataset(&data_dir, &wanted, &mut progress)?;
        }
    }
    let data_args = DataArgs { data: data_dir.clone(), resize: None, crop: None };
    // 2. Model.
    let train_set = data_args.open("train", Mode::Train)?;
    let specs = taskonomy_tasks(train_set.reader.seg_classes() as i64);
    let layout = layout_at(specs.len(), 5, a.index)?;
    let config = ModelConfig { backbone: BackboneKind::Small, tasks: specs.clone(), layout, head: BackboneKind::Small.default_head() };
    let mut model = Model::new(config, InputSpace::reference(), device, a.seed)?;
    model.layout_index = Some(a.index);
    let tasks = train_set.tasks_for(&specs)?;
    let kinds: Vec<TaskKind> = specs.iter().map(|s| s.kind).collect();
    let profile = train_set.default_profile();
    let loader = Loader::new(train_set, kinds.clone(), 16, None)?;
    let mut tc = TrainConfig::new(specs.len(), a.steps, 16);
    tc.lr = 0.05;
    tc.seed = a.seed;
    tc.log_every = 25;
    tc.checkpoint_every = 200;
    let model_dir = a.out.join("model");
    progress.info(&format!(
        "2/3 training the small backbone, layout #{} {}, {} steps → {}",
        a.index,
        model.config()?.layout,
        a.steps,
        model_dir.display()
    ));
    let options = EvalOptions { profile, convention: Convention::Standard };
    let summary = train(&mut model, &tasks, &loader, None, options, &tc, &model_dir, false, None, &mut progress)
        .context("training the demo model (an existing --out with other settings? use another --out)")?;
    progress.info(&format!("trained {} steps in {:.0} s", summary.steps, summary.seconds));
    // 3. Attacks.
    model.vs.freeze();
    let mut directions: Vec<DirectionSpec> = kinds.iter().map(|&k| DirectionSpec::Single(k)).collect();
    directions.extend([DirectionSpec::Total, DirectionSpec::SignTotal, DirectionSpec::Gbmta]);
    let attacks = directions
        .into_iter()
        .map(|d| Attack::new(AttackConfig { step: a.step, direction: d, eps, seed: a.seed, ..Default::default() }))
        .collect::<Result<Vec<_>, _>>()?;
    progress.info(&format!(
        "3/3 attacking {} test samples with {} × {} directions at ε = {}/255",
        a.limit,
        a.step.id(),
        attacks.len(),
        a.eps
    ));
    let attack_dir = a.out.join("attack");
    let model_path = model_dir.join("model.safetensors");
    let data = DataSpec { limit: Some(a.limit), ..DataSpec::new(&data_dir) };
    let job = Job::new(&model, &model_path, data, attacks);
    // The demo owns its directory: a run with other attack settings replaces the old report.
    let record = run_job(&job, &attack_dir, true, false, &mut progress)?;
    print_record(&record, Format::Table)?;
    progress.info(&format!(
        "\nARP = average relative performance drop over the tasks (percent, higher = stronger attack); transfer = mean ARP \
         of the other tasks relative to the attacked one. Reports: {}/report.json, report.csv; previews in {}/*/preview.png",
        attack_dir.display(),
        attack_dir.display()
    ));
    Ok(exit_code(&record))
}
