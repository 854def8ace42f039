//! `mtrobust bench`: the floor (forward + backward to the input) and one iteration of every step
//! rule × direction as a ratio to it, with throughput, FLOPs and peak memory. See BENCHMARKS.md.
use super::GlobalArgs;
use super::arch::ArchArgs;
use super::precision_args::PrecisionArgs;
use clap::{Args, ValueEnum};
use mtrobust::attack::{DirectionSpec, RuleKind};
use mtrobust::bench::{BenchConfig, BenchReport, Clock};
use mtrobust::model::Model;
use mtrobust::task::Task;
use std::path::PathBuf;
use std::process::ExitCode;

#[derive(Debug, Args)]
#[command(after_help = "Examples:
  mtrobust bench --backbone small --size 32 --batch-size 4
  mtrobust bench --device cuda --backbone resnet34 --tasks nyuv2 --index 9 --size 321 --batch-size 16 --precision bf16
  mtrobust bench --device cuda --backbone resnet34 --index 9 --size 321 --batch-size auto --attack pgd --direction gbmta --format json
  mtrobust bench --model mine.pt --model-spec mine.toml --size 64 --batch-size 8 --attack pgd --direction gbmta")]
pub struct BenchArgs {
    #[command(flatten)]
    arch: ArchArgs,
    /// Time a saved model instead of a freshly built one: a checkpoint, or a TorchScript module
    /// with --model-spec (its tasks come from the file; --backbone, --tasks, --index, --layout
    /// and --head-width do not apply).
    #[arg(long, conflicts_with_all = ["backbone", "tasks", "index", "layout", "head_width"])]
    model: Option<PathBuf>,
    /// Model spec (TOML) of a TorchScript --model. See the README, "Use your own model".
    #[arg(long, requires = "model")]
    model_spec: Option<PathBuf>,
    /// Input side in pixels (square inputs).
    #[arg(long, default_value_t = 32)]
    size: i64,
    /// Images per batch, or `auto`: the largest that fits the GPU (CUDA only).
    #[arg(long, default_value = "4")]
    batch_size: String,
    #[command(flatten)]
    precision: PrecisionArgs,
    /// Step rules to time (repeat or comma-separate).
    #[arg(long = "attack", value_enum, value_delimiter = ',', default_values_t = RuleKind::ALL)]
    rules: Vec<RuleKind>,
    /// Directions to time with every rule (repeat or comma-separate): total, sign-total, gbmta, single:<task>, weighted:….
    #[arg(long = "direction", value_delimiter = ',', default_values_t = ["total".to_string(), "sign-total".to_string(), "gbmta".to_string()])]
    directions: Vec<String>,
    /// Extra iterations k per timed attack: an iteration is (t(1 + k) − t(1)) / k.
    #[arg(long, default_value_t = 4)]
    iterations: usize,
    /// Timed repeats (median kept) after one warm-up.
    #[arg(long, default_value_t = 3)]
    repeats: usize,
    /// Durations from the `wall` clock, or the process's `cpu` clock (a CPU shared with other
    /// jobs: use it with --threads 1).
    #[arg(long, value_enum, default_value_t = Clock::Wall)]
    clock: Clock,
    /// On CPU, keep denormal floats while timing (libtorch's default). By default they are flushed
    /// to zero: the random weights' large losses push GB-MTA's 1/L-scaled gradients into the slow
    /// denormal range, which a trained model's do not reach (see BENCHMARKS.md).
    #[arg(long)]
    keep_denormals: bool,
    /// What to print on stdout.
    #[arg(long, value_enum, default_value_t = Format::Table)]
    format: Format,
}

#[derive(Debug, Clone, Copy, ValueEnum)]
enum Format {
    Table,
    Json,
}

pub fn run(a: BenchArgs, global: &GlobalArgs) -> anyhow::Result<ExitCode> {
    anyhow::ensure!(a.size >= 8, "--size: {} pixels is too small for the backbones' strides; give at least 8", a.size);
    anyhow::ensure!(a.repeats >= 1 && a.iterations >= 1, "--repeats and --iterations must be at least 1");
    let device = mtrobust::device::parse_device(&global.device)?;
    let mut model = match &a.model {
        Some(path) => super::attack::load_model(path, a.model_spec.as_deref(), global)?,
        None => {
            let (config, index) = a.arch.config(a.arch.task_specs()?)?;
            let mut model = Model::new(config, mtrobust::data::InputSpace::reference(), device, 0)?;
            model.layout_index = index;
            model.vs.freeze();
            model
        }
    };
    a.precision.apply(&mut model)?;
    let specs = model.tasks().to_vec();
    let tasks: Vec<Task> = specs.iter().map(|s| Task::new(*s)).collect();
    let directions = a.directions.iter().map(|d| d.parse::<DirectionSpec>()).collect::<Result<Vec<_>, _>>()?;
    let bench = BenchConfig {
        rules: a.rules.clone(),
        directions,
        iterations: a.iterations,
        repeats: a.repeats,
        seed: 0,
        clock: a.clock,
        flush_denormals: !a.keep_denormals,
    };
    let batch_size = match a.batch_size.trim() {
        "auto" => {
            let size = a.size;
            mtrobust::bench::autobatch::auto_batch_size(device, 4096, |n| {
                let batch = mtrobust::bench::random_batch(&specs, &model.input, n as i64, (size, size), device, 0);
                let _ = mtrobust::bench::floor_pass(&model, &batch.x);
                Ok(())
            })?
        }
        n => n
            .parse::<usize>()
            .ok()
            .filter(|&n| n >= 1)
            .ok_or_else(|| anyhow::anyhow!("--batch-size: `{n}` is not a batch size; give a number, at least 1, or `auto` (CUDA)"))?,
    };
    let batch = mtrobust::bench::random_batch(&specs, &model.input, batch_size as i64, (a.size, a.size), device, 0);
    let report = mtrobust::bench::run(&model, &tasks, &batch, &bench)?;
    match a.format {
        Format::Json => outln!("{}", serde_json::to_string_pretty(&report)?),
        Format::Table => out!("{}", render(&report)),
    }
    Ok(ExitCode::SUCCESS)
}

fn render(r: &BenchReport) -> String {
    use std::fmt::Write;
    let mut s = String::new();
    let mem = r.peak_memory_bytes.map_or("n/a".into(), |b| format!("{:.2} GiB", b as f64 / (1u64 << 30) as f64));
    let _ = writeln!(
        s,
        "{} on {} ({} threads, {:?} clock), batch {} at {}², {}{}{}",
        r.model,
        r.device,
        r.threads,
        r.clock,
        r.batch,
        r.size,
        r.precision,
        if r.channels_last { ", channels-last" } else { "" },
        if r.denormals_flushed { ", denormals flushed" } else { "" }
    );
    let _ = writeln!(s, "forward: {:.3} GFLOP/image; peak memory {mem}", r.flops_per_image / 1e9);
    let _ = writeln!(
        s,
        "floor (forward + backward to the input): {:.2} ms, {:.1} images·iterations/s, {:.1} GFLOP/s",
        r.floor.seconds * 1e3,
        r.floor.images_iterations_per_s,
        r.floor.flops_per_s / 1e9
    );
    let _ = writeln!(s, "{:<22} {:>10} {:>8} {:>12} {:>6} {:>6}", "attack (1 iteration)", "ms", "× floor", "img·it/s", "fwd", "bwd");
    for row in &r.rows {
        let _ = writeln!(
            s,
            "{:<22} {:>10.2} {:>8.3} {:>12.1} {:>6.2} {:>6.2}",
            row.attack,
            row.seconds * 1e3,
            row.ratio,
            row.images_iterations_per_s,
            row.forwards,
            row.backwards
        );
    }
    if r.rows.iter().any(|row| row.seconds <= 0.0) {
        // (t(1 + k) − t(1)) / k is below zero only when the machine's noise exceeds k iterations.
        let _ = writeln!(s, "note: a time ≤ 0 is noise larger than the iterations timed; raise --iterations or --repeats");
    }
    s
}
