//! `mtrobust bench`: how close each attack's iteration is to the cheapest possible one.
//!
//! In one run, on one random batch: (a) the **floor** — the network's forward plus the backward to
//! the input only (no weight gradients), which every gradient attack needs at least once per
//! iteration; (b) one iteration of every requested step rule × direction through the real
//! [`Attack`] code, as the difference between runs of `1 + k` and `1` iterations divided by `k`
//! (so the clean pass, the checks and the set-up cancel), reported as a ratio to (a) with
//! images·iterations/s and the forward/backward passes per iteration; plus the model's forward
//! FLOPs per image (counted from the convolution and matmul shapes), the achieved FLOP rate of
//! the floor, and peak memory. Timings are medians over repeats; ratios are the point: they are
//! measured minutes apart on the same machine under the same load.
//!
//! ```
//! use mtrobust::attack::{DirectionSpec, RuleKind};
//! use mtrobust::bench::{BenchConfig, Clock, random_batch, run};
//! use mtrobust::data::InputSpace;
//! use mtrobust::model::{BackboneKind, HeadConfig, Model, ModelConfig, layout_at};
//! use mtrobust::task::{Task, parse_tasks};
//! use tch::Device;
//!
//! let specs = parse_tasks("segm:4,depth")?;
//! let tasks: Vec<Task> = specs.iter().map(|s| Task::new(*s)).collect();
//! let head = HeadConfig { width: 8, rates: vec![1], dropout: 0.0 };
//! let config = ModelConfig { backbone: BackboneKind::Small, tasks: specs.clone(), layout: layout_at(2, 5, 0)?, head };
//! let model = Model::new(config, InputSpace::reference(), Device::Cpu, 0)?;
//! let batch = random_batch(&specs, &model.input, 2, (32, 32), Device::Cpu, 0);
//! let config = BenchConfig {
//!     rules: vec![RuleKind::Pgd],
//!     directions: vec![DirectionSpec::Total, DirectionSpec::Gbmta],
//!     iterations: 1,
//!     repeats: 1,
//!     seed: 0,
//!     clock: Clock::Wall,
//!     flush_denormals: true,
//! };
//! let report = run(&model, &tasks, &batch, &config)?;
//! assert_eq!(report.rows.len(), 2); // pgd/total, pgd/gbmta
//! // One backward per iteration for both (from the attacks' pass counters; timings are not asserted).
//! assert!(report.rows.iter().all(|r| r.backwards == 1.0 && r.ratio.is_finite()));
//! assert!(report.flops_per_image > 0.0);
//! # Ok::<(), mtrobust::Error>(())
//! ```
pub mod autobatch;
mod batch;
pub mod memory;

pub use batch::{random_batch, random_batch_with};

use crate::attack::{Attack, AttackConfig, DirectionSpec, RuleKind};
use crate::data::Batch;
use crate::error::{Error, Result};
use crate::model::{Model, shim};
use crate::task::Task;
use std::time::Instant;
use tch::{Device, Tensor};

/// What to time.
#[derive(Debug, Clone)]
pub struct BenchConfig {
    /// Step rules to time (each with its default parameters).
    pub rules: Vec<RuleKind>,
    /// Directions to time with every rule.
    pub directions: Vec<DirectionSpec>,
    /// Extra iterations `k` per timed attack (an iteration = (t(1 + k) − t(1)) / k).
    pub iterations: usize,
    /// Timed repeats (the median is kept) after one untimed warm-up.
    pub repeats: usize,
    /// Seed of the random batch.
    pub seed: u64,
    /// What a duration is measured with.
    pub clock: Clock,
    /// On CPU, flush denormal floats to zero while timing (see [`FlushDenormals`]).
    pub flush_denormals: bool,
}

/// The clock timings are read from.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, serde::Serialize)]
#[cfg_attr(feature = "cli", derive(clap::ValueEnum))]
#[serde(rename_all = "lowercase")]
pub enum Clock {
    /// Elapsed time (what a user waits for).
    #[default]
    Wall,
    /// CPU time of the whole process (all its threads): on a CPU shared with other jobs it
    /// does not count the time the scheduler gives them, so ratios stay meaningful; with one
    /// libtorch thread (`--threads 1`) it equals the wall time of an idle machine.
    Cpu,
}

impl Clock {
    /// Seconds on this clock from an arbitrary origin.
    fn now(self, origin: Instant) -> f64 {
        match self {
            Clock::Wall => origin.elapsed().as_secs_f64(),
            Clock::Cpu => {
                let mut t = libc::timespec { tv_sec: 0, tv_nsec: 0 };
                // SAFETY: a valid clock id and a pointer to a live timespec.
                unsafe { libc::clock_gettime(libc::CLOCK_PROCESS_CPUTIME_ID, &mut t) };
                t.tv_sec as f64 + t.tv_nsec as f64 * 1e-9
            }
        }
    }
}

impl Default for BenchConfig {
    fn default() -> Self {
        BenchConfig {
            rules: RuleKind::ALL.to_vec(),
            directions: vec![DirectionSpec::Total, DirectionSpec::SignTotal, DirectionSpec::Gbmta],
            iterations: 4,
            repeats: 3,
            seed: 0,
            clock: Clock::Wall,
            flush_denormals: true,
        }
    }
}

/// The floor: forward + backward to the input.
#[derive(Debug, Clone, serde::Serialize)]
pub struct Floor {
    /// Median seconds of one forward + input-backward of the batch.
    pub seconds: f64,
    /// Batch size / seconds.
    pub images_iterations_per_s: f64,
    /// Forward FLOPs of the batch × 2 (the input backward costs about one forward) / seconds.
    pub flops_per_s: f64,
}

/// One step rule × direction.
#[derive(Debug, Clone, serde::Serialize)]
pub struct Row {
    /// `rule/direction`, e.g. `pgd/gbmta`.
    pub attack: String,
    /// Median seconds of one iteration (FGSM: of the whole one-step attack, clean pass included).
    pub seconds: f64,
    /// `seconds` / the floor's.
    pub ratio: f64,
    /// Batch size / seconds.
    pub images_iterations_per_s: f64,
    /// Forward passes per iteration (from the attack's own pass counters).
    pub forwards: f64,
    /// Backward passes per iteration.
    pub backwards: f64,
}

/// Everything `mtrobust bench` reports.
#[derive(Debug, Clone, serde::Serialize)]
pub struct BenchReport {
    pub device: String,
    /// Backbone, layout and tasks.
    pub model: String,
    pub batch: i64,
    /// Input side in pixels.
    pub size: i64,
    pub precision: String,
    pub channels_last: bool,
    /// libtorch intra-op threads.
    pub threads: i64,
    /// Whether denormal floats were flushed to zero while timing (CPU only).
    pub denormals_flushed: bool,
    /// What the durations were measured with.
    pub clock: Clock,
    /// Forward FLOPs per image (2 × multiply-accumulates of convolutions and matmuls).
    pub flops_per_image: f64,
    pub floor: Floor,
    pub rows: Vec<Row>,
    /// Peak memory in bytes: CUDA allocator peak, or the process's peak resident set on CPU.
    pub peak_memory_bytes: Option<u64>,
}

/// Denormal floats flushed to zero (x86 FTZ/DAZ) on this thread while alive. The benchmark's
/// random weights give losses in the hundreds or thousands, so GB-MTA's 1/L_t weights scale its
/// gradients down by about 10⁻³ and deep in the backward many of them become denormals, which x86
/// float arithmetic processes tens of times slower (measured: PGD GB-MTA at 1.31× the floor with
/// them, 1.08× flushed, on ResNet34 #9 at 65²). A trained model's losses are near 1, so this is an
/// artefact of timing untrained weights, not a cost of the attack. oneDNN's channels-last kernels
/// flush denormals themselves. The flag lives in the CPU's control register of the calling thread:
/// it covers libtorch's work when that runs on this thread (`--threads 1`).
#[derive(Debug)]
pub struct FlushDenormals(pub bool);

impl FlushDenormals {
    /// Turns flushing on; `.0` says whether the CPU supports it.
    pub fn on() -> Self {
        FlushDenormals(shim::set_flush_denormal(true))
    }
}

impl Drop for FlushDenormals {
    fn drop(&mut self) {
        // libtorch's default: denormals kept.
        shim::set_flush_denormal(false);
    }
}

/// Waits for the device's queued work (CUDA kernels run asynchronously).
pub fn sync(device: Device) {
    if let Device::Cuda(i) = device {
        tch::Cuda::synchronize(i as i64);
    }
}

fn median(mut v: Vec<f64>) -> f64 {
    v.sort_by(f64::total_cmp);
    let n = v.len();
    if n == 0 {
        f64::NAN
    } else if n % 2 == 1 {
        v[n / 2]
    } else {
        (v[n / 2 - 1] + v[n / 2]) / 2.0
    }
}

/// Median seconds of `f` on `clock` over `repeats` runs after one warm-up.
fn time(device: Device, clock: Clock, repeats: usize, mut f: impl FnMut() -> Result<()>) -> Result<f64> {
    f()?;
    sync(device);
    let origin = Instant::now();
    let mut times = Vec::with_capacity(repeats);
    for _ in 0..repeats.max(1) {
        let t = clock.now(origin);
        f()?;
        sync(device);
        times.push(clock.now(origin) - t);
    }
    Ok(median(times))
}

/// One forward of every task plus the backward to the input alone (weights frozen or not, no
/// weight gradient is computed: only `x` is asked for).
///
/// # Errors
/// What the model fails with (out of memory).
pub fn floor_pass(model: &Model, x: &Tensor) -> Result<Tensor> {
    let x = x.detach().set_requires_grad(true);
    let out = model.forward_t(&x, false)?;
    let loss = out.values().map(|t| t.sum(t.kind())).reduce(|a, b| a + b).expect("a model has at least one task");
    let mut g = Tensor::f_run_backward(&[loss], &[&x], false, false)?;
    Ok(g.pop().expect("one gradient per input"))
}

/// Forward FLOPs per image of `model` on inputs like `x` (one no-grad forward, counted).
///
/// # Errors
/// What the model fails with (out of memory).
pub fn flops_per_image(model: &Model, x: &Tensor) -> Result<f64> {
    let _g = tch::no_grad_guard();
    let (out, flops) = shim::count_flops(|| model.forward_t(x, false));
    out?;
    Ok(flops / x.size()[0].max(1) as f64)
}

/// Runs the benchmark on `batch` (tasks with their class weights in `tasks`).
///
/// # Errors
/// No rule or direction, a direction the model's tasks do not allow, or an attack that fails.
pub fn run(model: &Model, tasks: &[Task], batch: &Batch, config: &BenchConfig) -> Result<BenchReport> {
    if config.rules.is_empty() || config.directions.is_empty() {
        return Err(Error::parameter("rules/directions", "give at least one step rule and one direction to time"));
    }
    let device = model.device();
    let _flush = (config.flush_denormals && device == Device::Cpu).then(FlushDenormals::on);
    let x = batch.x.to_device(device);
    let b = x.size()[0];
    memory::reset(device);
    let flops_per_image = flops_per_image(model, &x)?;
    let floor_s = time(device, config.clock, config.repeats, || floor_pass(model, &x).map(drop))?;
    let floor =
        Floor { seconds: floor_s, images_iterations_per_s: b as f64 / floor_s, flops_per_s: 2.0 * flops_per_image * b as f64 / floor_s };
    let k = config.iterations.max(1);
    let mut rows = Vec::new();
    for &kind in &config.rules {
        for direction in &config.directions {
            let attack = |n_iter: usize| {
                let rule = kind.default_rule().with_n_iter(n_iter);
                Attack::new(AttackConfig { rule, direction: direction.clone(), seed: config.seed, ..AttackConfig::default() })
            };
            let (short, long) = (attack(1)?, attack(1 + k)?);
            let mut counts = [(0, 0); 2];
            let mut timed = |a: &Attack, slot: usize| {
                time(device, config.clock, config.repeats, || {
                    let out = a.run(model, tasks, batch, crate::attack::BatchContext::at(0))?;
                    counts[slot] = (out.counts.forward, out.counts.backward);
                    Ok(())
                })
            };
            let (seconds, forwards, backwards) = if kind == RuleKind::Fgsm {
                // One step whatever n_iter says: time the whole call.
                let s = timed(&short, 0)?;
                (s, counts[0].0 as f64, counts[0].1 as f64)
            } else {
                let (t1, tk) = (timed(&short, 0)?, timed(&long, 1)?);
                let per = |a: usize, c: usize| (c as f64 - a as f64) / k as f64;
                ((tk - t1) / k as f64, per(counts[0].0, counts[1].0), per(counts[0].1, counts[1].1))
            };
            rows.push(Row {
                attack: format!("{}/{}", kind.id(), direction),
                seconds,
                ratio: seconds / floor_s,
                images_iterations_per_s: b as f64 / seconds,
                forwards,
                backwards,
            });
        }
    }
    Ok(BenchReport {
        device: crate::device::device_name(device),
        model: crate::job::describe(model),
        batch: b,
        size: x.size()[3],
        precision: model.precision().id().to_string(),
        channels_last: model.channels_last(),
        threads: i64::from(tch::get_num_threads()),
        denormals_flushed: _flush.as_ref().is_some_and(|f| f.0),
        clock: config.clock,
        flops_per_image,
        floor,
        rows,
        peak_memory_bytes: memory::peak_bytes(device),
    })
}

#[cfg(test)]
mod tests;
