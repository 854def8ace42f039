//! Evaluation: one pass over the data computing, per batch, the clean metrics once and, for every
//! attack, the metrics on its adversarial batch, the per-task losses and the attack's own
//! objective clean → adversarial; then ARP (Eq. 10) against the clean run of the same model.
//! Batches are visited in order (the reference shuffles its test set without a seed, docs/REFERENCE.md §7
//! item 14). When an attack needs the dataset-level clean losses (paper APGD profile with GB-MTA,
//! the reference's `criterionBase`), a clean pass runs first.
//!
//! ARP from two sets of metrics (the arithmetic of [`arp()`]; [`evaluate`] produces the metrics):
//!
//! ```
//! use mtrobust::eval::{arp, transferability};
//! use mtrobust::task::{MetricValue, TaskKind, TaskMap};
//!
//! let one = |name: &str, v: f64, higher: bool| vec![MetricValue::new(name, v, higher)];
//! let mut clean = TaskMap::new();
//! clean.insert(TaskKind::SegmentSemantic, one("mIoU", 0.40, true));
//! clean.insert(TaskKind::DepthZbuffer, one("abs_err", 0.50, false));
//! let mut attacked = TaskMap::new();
//! attacked.insert(TaskKind::SegmentSemantic, one("mIoU", 0.30, true)); // r = −25 %
//! attacked.insert(TaskKind::DepthZbuffer, one("abs_err", 0.60, false)); // r = −20 %
//! let (result, skipped) = arp(&clean, &attacked);
//! assert!(skipped.is_empty());
//! assert!((result.arp - 22.5).abs() < 1e-9); // −100 × mean(−0.25, −0.20)
//! // Had this been a Single-Segm attack: ARP-depth / ARP-segm = 20 / 25.
//! assert!((transferability(&result, TaskKind::SegmentSemantic).unwrap() - 0.8).abs() < 1e-9);
//! ```
pub mod arp;
pub mod csv;

pub use crate::warning::Warning;
pub use arp::{Arp, MetricChange, arp, arp_with, relative_change, transferability};

use crate::attack::{Attack, AttackConfig, BatchContext, Checks, DirectionContext, PassCounts};
use crate::data::{Batch, BatchSource, Target};
use crate::error::{Error, Result};
use crate::model::Model;
use crate::observe::{Event, Observer};
use crate::task::{Convention, LossParts, MetricProfile, MetricValue, Task, TaskMap, TaskMetric};
use tch::{Kind, Tensor};

/// How metrics are computed.
#[derive(Debug, Clone, Copy, Default, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct EvalOptions {
    pub profile: MetricProfile,
    pub convention: Convention,
}

/// Metrics and losses of the model under one condition (clean, or one attack).
#[derive(Debug, Clone, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct ConditionReport {
    /// `clean` or the attack's label.
    pub label: String,
    pub attack: Option<AttackConfig>,
    pub samples: usize,
    pub metrics: TaskMap<Vec<MetricValue>>,
    /// Per task, the dataset-level loss (pooled; the mean of batch means under `reference`).
    pub losses: TaskMap<f64>,
    /// The attack's per-sample objective, averaged over samples: on clean inputs and on its own
    /// adversarial inputs.
    pub objective: Option<(f64, f64)>,
    /// Model passes of the attack, summed over batches.
    pub counts: Option<PassCounts>,
    /// Worst-case checks over all batches.
    pub checks: Option<Checks>,
    /// ARP against the clean run.
    pub arp: Option<Arp>,
    /// An ensemble's members, in order: each one's own report and how many samples' worst case
    /// it gave.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub ensemble: Option<Vec<MemberReport>>,
}

/// One ensemble member's part in the ensemble's run.
#[derive(Debug, Clone, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct MemberReport {
    /// Samples whose worst case (the example kept) was this member's.
    pub wins: usize,
    /// The member's metrics, ARP, passes and checks, as if it had run alone.
    pub report: ConditionReport,
}

/// The clean run and every attacked run of one model.
#[derive(Debug, Clone, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct Evaluation {
    pub options: EvalOptions,
    pub clean: ConditionReport,
    pub attacked: Vec<ConditionReport>,
    pub warnings: Vec<Warning>,
}

/// Running sums of one condition.
struct Accumulator {
    metrics: Vec<TaskMetric>,
    loss_sum: Vec<f64>,
    loss_weight: Vec<f64>,
    batch_losses: Vec<Vec<f64>>,
    objective: (f64, f64),
    counts: PassCounts,
    checks: Option<Checks>,
    samples: usize,
}

impl Accumulator {
    fn new(tasks: &[Task], o: EvalOptions) -> Self {
        let n = tasks.len();
        Accumulator {
            metrics: tasks.iter().map(|t| t.metric(o.profile, o.convention)).collect(),
            loss_sum: vec![0.0; n],
            loss_weight: vec![0.0; n],
            batch_losses: vec![Vec::new(); n],
            objective: (0.0, 0.0),
            counts: PassCounts::default(),
            checks: None,
            samples: 0,
        }
    }

    /// Scores outputs; returns the `[B]` per-sample losses per task.
    ///
    /// # Errors
    /// Outputs or a loss that are NaN or infinite (naming the task and `condition`): metrics of
    /// such outputs would be meaningless numbers, and some metric kernels cannot take them.
    fn update(&mut self, tasks: &[Task], outputs: &TaskMap<Tensor>, targets: &TaskMap<Target>, condition: &str) -> Result<TaskMap<Tensor>> {
        let mut per_sample = TaskMap::new();
        for (i, task) in tasks.iter().enumerate() {
            let y = outputs.get(task.kind()).expect("full forward returns every task");
            let target = targets.get(task.kind()).expect("checked by the oracle / evaluate");
            let non_finite = i64::try_from(y.isfinite().logical_not().sum(Kind::Int64)).unwrap_or(i64::MAX);
            if non_finite > 0 {
                return Err(Error::non_finite(
                    format!("the output of task `{}`", task.kind().name()),
                    format!(
                        "{non_finite} value(s) are NaN or infinite on the {condition} inputs; the model is broken (diverged training or corrupt weights)"
                    ),
                ));
            }
            let parts: LossParts = task.loss_at_output(y, target)?;
            let sum = f64::try_from(parts.sum.sum(Kind::Double)).unwrap_or(f64::NAN);
            let weight = f64::try_from(parts.weight.sum(Kind::Double)).unwrap_or(0.0);
            if !sum.is_finite() {
                return Err(Error::non_finite(
                    format!("the loss of task `{}`", task.kind().name()),
                    format!("is {sum} on the {condition} inputs (the outputs are finite but extreme, or the labels are corrupt)"),
                ));
            }
            self.metrics[i].update(y, target)?;
            self.loss_sum[i] += sum;
            self.loss_weight[i] += weight;
            if weight > 0.0 {
                self.batch_losses[i].push(sum / weight);
            }
            per_sample.insert(task.kind(), parts.per_sample());
        }
        Ok(per_sample)
    }

    fn report(&self, tasks: &[Task], o: EvalOptions, label: String, attack: Option<AttackConfig>) -> ConditionReport {
        let metrics = tasks.iter().zip(&self.metrics).map(|(t, m)| (t.kind(), m.finish(o.convention))).collect();
        let losses = tasks
            .iter()
            .enumerate()
            .map(|(i, t)| {
                let v = match o.convention {
                    Convention::Standard => self.loss_sum[i] / self.loss_weight[i],
                    Convention::Reference => self.batch_losses[i].iter().sum::<f64>() / self.batch_losses[i].len() as f64,
                };
                (t.kind(), v)
            })
            .collect();
        let n = self.samples.max(1) as f64;
        let is_attack = attack.is_some();
        ConditionReport {
            label,
            attack,
            samples: self.samples,
            metrics,
            losses,
            objective: is_attack.then(|| (self.objective.0 / n, self.objective.1 / n)),
            counts: is_attack.then_some(self.counts),
            checks: self.checks.clone(),
            arp: None,
            ensemble: None,
        }
    }
}

fn merge_checks(acc: Option<Checks>, c: &Checks) -> Checks {
    match acc {
        None => c.clone(),
        Some(a) => Checks {
            max_perturbation: a.max_perturbation.max(c.max_perturbation),
            within_budget: a.within_budget && c.within_budget,
            out_of_range: a.out_of_range + c.out_of_range,
            non_finite: a.non_finite + c.non_finite,
            zero_gradient_samples: a.zero_gradient_samples + c.zero_gradient_samples,
            samples: a.samples + c.samples,
            unmoved_samples: a.unmoved_samples + c.unmoved_samples,
        },
    }
}

/// Per-task dataset-level clean `mean` losses: pooled over all pixels of all batches under
/// `standard`; under `reference` the mean over batches of the per-batch pooled means, which is the
/// reference's `criterionBase` (docs/REFERENCE.md §3.3, §4.4) and so depends on the batch size.
///
/// # Errors
/// Data errors.
pub fn clean_losses(
    model: &Model,
    tasks: &[Task],
    data: &dyn BatchSource,
    convention: Convention,
    observer: &mut dyn Observer,
) -> Result<TaskMap<f64>> {
    let mut acc = Accumulator::new(tasks, EvalOptions::default());
    observer.event(Event::Start { what: "clean losses".into(), total: data.num_batches() as u64 });
    for b in 0..data.num_batches() {
        let batch = data.batch(b, model.device())?;
        let _guard = tch::no_grad_guard();
        let out = model.forward_t(&batch.x, false).map_err(|e| at_batch(b, &batch, e))?;
        acc.update(tasks, &out, &batch.targets, "clean")?;
        observer.event(Event::Progress { done: b as u64 + 1, message: String::new() });
    }
    observer.event(Event::Finish);
    let loss = |i: usize| match convention {
        Convention::Standard => acc.loss_sum[i] / acc.loss_weight[i],
        Convention::Reference => acc.batch_losses[i].iter().sum::<f64>() / acc.batch_losses[i].len() as f64,
    };
    Ok(tasks.iter().enumerate().map(|(i, t)| (t.kind(), loss(i))).collect())
}

/// Callback receiving (attack index, batch index, clean batch, adversarial inputs).
pub type AdversarialSink<'a> = dyn FnMut(usize, usize, &Batch, &Tensor) -> Result<()> + 'a;

/// The clean pass of one model over one data source: its report, and per batch the `[B]`
/// per-sample clean losses per task that every attack's objective is measured against. Computed
/// once and reused by any number of attacks (a study attacks the same model many times).
pub struct CleanRun {
    pub report: ConditionReport,
    /// Per batch, the clean per-sample losses (on the CPU).
    losses: Vec<TaskMap<Tensor>>,
}

impl CleanRun {
    /// The `[B]` per-sample clean losses per task of batch `b` (on the CPU).
    pub fn batch_losses(&self, b: usize) -> &TaskMap<Tensor> {
        &self.losses[b]
    }
}

impl std::fmt::Debug for CleanRun {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("CleanRun").field("report", &self.report).field("batches", &self.losses.len()).finish()
    }
}

/// Clean metrics and losses of `model` on `data`.
///
/// # Errors
/// Data errors.
pub fn clean_run(
    model: &Model,
    tasks: &[Task],
    data: &dyn BatchSource,
    options: EvalOptions,
    observer: &mut dyn Observer,
) -> Result<CleanRun> {
    let mut clean = Accumulator::new(tasks, options);
    let mut losses = Vec::with_capacity(data.num_batches());
    observer.event(Event::Start { what: "clean".into(), total: data.num_batches() as u64 });
    for b in 0..data.num_batches() {
        let batch = data.batch(b, model.device())?;
        let _guard = tch::no_grad_guard();
        let out = model.forward_t(&batch.x.to_kind(model.kind()), false).map_err(|e| at_batch(b, &batch, e))?;
        let per_sample = clean.update(tasks, &out, &batch.targets, "clean")?;
        losses.push(per_sample.map(|_, t| t.to_device(tch::Device::Cpu)));
        clean.samples += batch.len();
        observer.event(Event::Progress { done: b as u64 + 1, message: format!("{} samples", clean.samples) });
    }
    observer.event(Event::Finish);
    Ok(CleanRun { report: clean.report(tasks, options, "clean".into(), None), losses })
}

/// The attacked runs of `attacks` against a clean run of the same model on the same data, with
/// ARP against it, and the warnings they raised.
///
/// # Errors
/// Data errors, tasks that do not match the model, an attack that cannot run, or a clean run
/// made on other data.
#[allow(clippy::too_many_arguments)]
pub fn attack_runs(
    model: &Model,
    tasks: &[Task],
    data: &dyn BatchSource,
    clean: &CleanRun,
    attacks: &[Attack],
    options: EvalOptions,
    observer: &mut dyn Observer,
    mut sink: Option<&mut AdversarialSink>,
) -> Result<(Vec<ConditionReport>, Vec<Warning>)> {
    if clean.losses.len() != data.num_batches() || clean.report.samples != data.num_samples() {
        return Err(crate::error::Error::config("evaluation", "the clean run was made on other data than the attacks"));
    }
    let needs_base = attacks.iter().any(|a| {
        matches!(a.config.rule, crate::attack::Rule::Apgd(crate::attack::Apgd { profile: crate::attack::ApgdProfile::Paper { .. }, .. }))
    });
    let base = if needs_base { Some(clean_losses(model, tasks, data, options.convention, observer)?) } else { None };
    let directions = attacks.iter().map(|a| a.config.direction.build(tasks)).collect::<Result<Vec<_>>>()?;
    let mut attacked: Vec<Accumulator> = attacks.iter().map(|_| Accumulator::new(tasks, options)).collect();
    // Per ensemble attack (by index), each member's accumulator and wins.
    let mut members: std::collections::BTreeMap<usize, Vec<(Accumulator, usize)>> = Default::default();
    let total = data.num_batches();
    observer.event(Event::Start { what: "attack".into(), total: total as u64 });
    let mut samples = 0;
    for b in 0..total {
        let batch = data.batch(b, model.device())?;
        samples += batch.len();
        let clean_losses = clean.losses[b].map(|_, t| t.to_device(model.device()));
        for (i, attack) in attacks.iter().enumerate() {
            let at = BatchContext { index: b as u64, clean_losses: base.as_ref(), start: None };
            let outcome = attack
                .run(model, tasks, &batch, at)
                .map_err(|e| Error::context(format!("attack {}", attack.config.label()), at_batch(b, &batch, e)))?;
            if let Some(sink) = sink.as_deref_mut() {
                sink(i, b, &batch, &outcome.x_adv)?;
            }
            let scored = Scored { model, tasks, batch: &batch, b, clean_losses: &clean_losses };
            scored.add(
                &mut attacked[i],
                directions[i].as_ref(),
                &attack.config.label(),
                &outcome.x_adv,
                outcome.counts,
                &outcome.checks,
            )?;
            if let Some(ensemble) = &outcome.ensemble {
                // Each member's own examples, scored as if it had run alone; and its wins.
                let members =
                    members.entry(i).or_insert_with(|| ensemble.members.iter().map(|_| (Accumulator::new(tasks, options), 0)).collect());
                let configs = member_configs(&attack.config);
                for (m, (member, (acc, wins))) in ensemble.members.iter().zip(members.iter_mut()).enumerate() {
                    let direction = configs[m].direction.build(tasks)?;
                    scored.add(acc, direction.as_ref(), &configs[m].label(), &member.x_adv, member.counts, &member.checks)?;
                    *wins += ensemble.winners.iter().filter(|&&w| w == m).count();
                }
            }
        }
        observer.event(Event::Progress { done: b as u64 + 1, message: format!("{samples} samples") });
    }
    observer.event(Event::Finish);
    let mut warnings = Vec::new();
    let mut reports = Vec::new();
    for (i, (acc, attack)) in attacked.iter().zip(attacks).enumerate() {
        let mut r = acc.report(tasks, options, attack.config.label(), Some(attack.config.clone()));
        if let Some(members) = members.get(&i) {
            let reports = members.iter().zip(member_configs(&attack.config)).map(|((acc, wins), config)| {
                let mut report = acc.report(tasks, options, config.label(), Some(config));
                report.arp = Some(arp::arp_with(&clean.report.metrics, &report.metrics, options.convention).0);
                MemberReport { wins: *wins, report }
            });
            r.ensemble = Some(reports.collect());
        }
        let (a, skipped) = arp::arp_with(&clean.report.metrics, &r.metrics, options.convention);
        if !skipped.is_empty() {
            warnings.push(Warning::ArpSkipped { label: r.label.clone(), metrics: skipped });
        }
        if let Some(c) = &r.checks {
            if !c.passed() {
                warnings.push(Warning::SanityCheck { label: r.label.clone(), failures: c.failures() });
            }
            if c.zero_gradient_samples > 0 {
                warnings.push(Warning::ZeroGradient { label: r.label.clone(), samples: c.zero_gradient_samples });
            }
        }
        r.arp = Some(a);
        reports.push(r);
    }
    for w in &warnings {
        observer.event(Event::Warning(w.clone()));
    }
    Ok((reports, warnings))
}

/// An ensemble attack's members as attacks of their own (none for other attacks).
fn member_configs(config: &AttackConfig) -> Vec<AttackConfig> {
    match &config.rule {
        crate::attack::Rule::Ensemble(e) => e.member_configs(config),
        _ => Vec::new(),
    }
}

/// Scores adversarial inputs of one batch into a condition's running sums.
struct Scored<'a> {
    model: &'a Model,
    tasks: &'a [Task],
    batch: &'a Batch,
    b: usize,
    /// The batch's clean per-sample losses, on the model's device.
    clean_losses: &'a TaskMap<Tensor>,
}

impl Scored<'_> {
    /// One forward at `x_adv`: metrics, losses and the direction's objective clean → adversarial,
    /// plus the attack's passes and checks.
    fn add(
        &self,
        acc: &mut Accumulator,
        direction: &dyn crate::attack::Direction,
        label: &str,
        x_adv: &Tensor,
        counts: PassCounts,
        checks: &Checks,
    ) -> Result<()> {
        let _guard = tch::no_grad_guard();
        let out = self.model.forward_t(x_adv, false).map_err(|e| at_batch(self.b, self.batch, e))?;
        let adv_losses = acc.update(self.tasks, &out, &self.batch.targets, &format!("adversarial ({label})"))?;
        let ctx = DirectionContext { clean: Some(self.clean_losses.map(|_, t| t.shallow_clone())), ..Default::default() };
        let f_clean = direction.objective(self.clean_losses, &ctx).sum(Kind::Double);
        let f_adv = direction.objective(&adv_losses, &ctx).sum(Kind::Double);
        acc.objective.0 += f64::try_from(f_clean).unwrap_or(f64::NAN);
        acc.objective.1 += f64::try_from(f_adv).unwrap_or(f64::NAN);
        acc.counts.forward += counts.forward;
        acc.counts.backward += counts.backward;
        acc.checks = Some(merge_checks(acc.checks.take(), checks));
        acc.samples += self.batch.len();
        Ok(())
    }
}

/// How much decoded data an evaluation keeps in memory between its passes.
pub const CACHE_BYTES: usize = 4 << 30;

/// Evaluates `model` on `data` clean and under each attack: [`clean_run`] then [`attack_runs`].
///
/// # Errors
/// Data errors, tasks that do not match the model, or an attack that cannot run.
pub fn evaluate(
    model: &Model,
    tasks: &[Task],
    data: &dyn BatchSource,
    attacks: &[Attack],
    options: EvalOptions,
    observer: &mut dyn Observer,
    sink: Option<&mut AdversarialSink>,
) -> Result<Evaluation> {
    // Both passes read the same batches: decode them once.
    let data = crate::data::Cached::new(data, CACHE_BYTES);
    let clean = clean_run(model, tasks, &data, options, observer)?;
    let (attacked, warnings) = attack_runs(model, tasks, &data, &clean, attacks, options, observer, sink)?;
    Ok(Evaluation { options, clean: clean.report, attacked, warnings })
}

/// `e` on batch `b`, named by its position and its first sample.
fn at_batch(b: usize, batch: &crate::data::Batch, e: Error) -> Error {
    let first = batch.names.first().map_or(String::new(), |n| format!(", first sample `{n}`"));
    Error::context(format!("batch {b} ({} samples{first})", batch.len()), e)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::attack::{Pgd, Rule};
    use crate::data::InMemory;
    use crate::observe::Silent;
    use crate::testutil::{random_batch, small_model, tasks_of, three_tasks};

    #[test]
    fn clean_and_attacked_runs_with_arp() {
        let specs = three_tasks();
        let model = small_model(&specs, 9, 1);
        let tasks = tasks_of(&specs);
        let data = InMemory(vec![random_batch(&specs, 2, 32, 2, Kind::Float), random_batch(&specs, 1, 32, 3, Kind::Float)]);
        let attacks: Vec<Attack> = ["total", "gbmta"]
            .iter()
            .map(|d| {
                let rule = Rule::Pgd(Pgd { n_iter: 3, ..Pgd::default() });
                Attack::new(AttackConfig { rule, direction: d.parse().unwrap(), ..Default::default() }).unwrap()
            })
            .collect();
        let mut saved = Vec::new();
        let mut sink = |i: usize, b: usize, _: &Batch, x: &Tensor| {
            saved.push((i, b, x.size()));
            Ok(())
        };
        let e = evaluate(&model, &tasks, &data, &attacks, EvalOptions::default(), &mut Silent, Some(&mut sink)).unwrap();
        assert_eq!(e.clean.samples, 3);
        assert_eq!(e.attacked.len(), 2);
        assert_eq!(saved.len(), 4);
        for r in &e.attacked {
            let (f0, f1) = r.objective.unwrap();
            assert!(f1 > f0, "{}: objective {f0} → {f1}", r.label);
            assert!(r.checks.as_ref().unwrap().passed());
            assert_eq!(r.counts.unwrap().forward, 6);
            let arp = r.arp.as_ref().unwrap();
            assert!(arp.arp.is_finite());
            // The recomputed ARP equals the mean of the per-task ARPs.
            let mean = arp.per_task.values().sum::<f64>() / arp.per_task.len() as f64;
            assert!((arp.arp - mean).abs() < 1e-12);
        }
    }

    #[test]
    fn an_ensembles_members_report_as_if_run_alone_and_its_worst_case_dominates() {
        use crate::attack::{Apgd, Ensemble, Fgsm, Member, Square};
        let specs = three_tasks();
        let model = small_model(&specs, 9, 1);
        let tasks = tasks_of(&specs);
        let data = InMemory(vec![random_batch(&specs, 3, 32, 2, Kind::Float), random_batch(&specs, 2, 32, 3, Kind::Float)]);
        let members = vec![
            Member { rule: Rule::Apgd(Apgd { n_iter: 4, ..Apgd::default() }), direction: "gbmta".parse().unwrap() },
            Member { rule: Rule::Fgsm(Fgsm {}), direction: "single:depth".parse().unwrap() },
            Member { rule: Rule::Square(Square { n_queries: 6, ..Square::default() }), direction: "gbmta".parse().unwrap() },
            Member { rule: Rule::Pgd(Pgd { n_iter: 2, ..Pgd::default() }), direction: "total".parse().unwrap() },
        ];
        let ensemble = Rule::Ensemble(Ensemble { name: "test".into(), members });
        let config = AttackConfig { rule: ensemble, direction: "gbmta".parse().unwrap(), eps: 8.0, seed: 3, ..Default::default() };
        let Rule::Ensemble(e) = &config.rule else { unreachable!() };
        // The members run alone, in the same evaluation, as ordinary attacks.
        let mut attacks = vec![Attack::new(config.clone()).unwrap()];
        attacks.extend(e.member_configs(&config).into_iter().map(|c| Attack::new(c).unwrap()));
        let ev = evaluate(&model, &tasks, &data, &attacks, EvalOptions::default(), &mut Silent, None).unwrap();
        let worst = &ev.attacked[0];
        let members = worst.ensemble.as_ref().expect("the ensemble reports its members");
        assert_eq!(members.len(), 4);
        assert_eq!(members.iter().map(|m| m.wins).sum::<usize>(), 5, "every sample has one worst case");
        for (m, alone) in members.iter().zip(&ev.attacked[1..]) {
            assert!(m.report.ensemble.is_none() && alone.ensemble.is_none());
            assert_eq!(m.report, *alone, "{}: the member's report differs from its run alone", alone.label);
        }
        // Per sample the kept example scores at least each member's on GB-MTA's objective, so the
        // mean over samples does too, for every GB-MTA member.
        let (_, ensemble_objective) = worst.objective.unwrap();
        for m in members.iter().filter(|m| m.report.attack.as_ref().unwrap().direction.to_string() == "gbmta") {
            let (_, own) = m.report.objective.unwrap();
            assert!(ensemble_objective >= own - 1e-6, "{}: {own} > ensemble {ensemble_objective}", m.report.label);
        }
        let (passes, clean_forward) =
            (members.iter().map(|m| m.report.counts.unwrap()).fold((0, 0), |(f, b), c| (f + c.forward, b + c.backward)), 2);
        let counts = worst.counts.unwrap();
        assert_eq!(
            (counts.forward, counts.backward),
            (passes.0 + 4 * 2 + clean_forward, passes.1),
            "members + a scoring forward each + a clean forward, per batch"
        );
        assert!(worst.checks.as_ref().unwrap().passed() && worst.checks.as_ref().unwrap().max_perturbation <= 8.0 + 1e-4);
    }

    #[test]
    fn clean_losses_pool_pixels_or_average_batch_means() {
        // Depth labels far above any prediction make |z − y| = y − z, so raising a label by 10 raises
        // the loss by 10 whatever the model. Batch A: one input, labels 1000, loss L over W pixels.
        // Batch B: the same input twice, labels 1010, loss L + 10 over 2W pixels. Pooled:
        // (L·W + (L + 10)·2W)/3W = L + 20/3; the reference's mean of batch means: (L + L + 10)/2 = L + 5.
        let specs = vec![crate::task::TaskSpec { kind: crate::task::TaskKind::DepthZbuffer, channels: 1 }];
        let model = small_model(&specs, 0, 4);
        let tasks = tasks_of(&specs);
        let x = random_batch(&specs, 1, 32, 5, Kind::Float).x;
        let depth = |n: i64, label: f64| {
            let valid = Tensor::ones([n, 1, 32, 32], (Kind::Float, tch::Device::Cpu));
            [(crate::task::TaskKind::DepthZbuffer, Target { value: &valid * label, valid })].into_iter().collect()
        };
        let data = |with_b: bool| {
            let mut batches = vec![Batch { x: x.shallow_clone(), targets: depth(1, 1000.0), names: vec!["a".into()] }];
            if with_b {
                batches.push(Batch { x: Tensor::cat(&[&x, &x], 0), targets: depth(2, 1010.0), names: vec!["b".into(), "c".into()] });
            }
            InMemory(batches)
        };
        let kind = crate::task::TaskKind::DepthZbuffer;
        let loss = |with_b: bool, c: Convention| *clean_losses(&model, &tasks, &data(with_b), c, &mut Silent).unwrap().get(kind).unwrap();
        let l = loss(false, Convention::Standard);
        assert!(l > 990.0, "predictions stay far below the labels: {l}");
        let pooled = loss(true, Convention::Standard);
        let batch_mean = loss(true, Convention::Reference);
        assert!((pooled - (l + 20.0 / 3.0)).abs() < 1e-3, "{pooled} vs {l}");
        assert!((batch_mean - (l + 5.0)).abs() < 1e-3, "{batch_mean} vs {l}");
    }

    #[test]
    fn non_finite_outputs_are_an_error_naming_the_task() {
        let specs = three_tasks();
        let mut model = small_model(&specs, 9, 1);
        let tasks = tasks_of(&specs);
        let data = InMemory(vec![random_batch(&specs, 2, 32, 2, Kind::Float)]);
        // Poison one head only: the error names its task, not the first task.
        let mut names: Vec<String> = model.vs.variables().into_keys().filter(|n| n.starts_with("heads.depth_zbuffer.")).collect();
        names.sort();
        tch::no_grad(|| {
            // `variables()` shares storage with the model's variables.
            let _ = model.vs.variables().get_mut(&names[0]).unwrap().fill_(f64::NAN);
        });
        model.vs.freeze();
        let err = evaluate(&model, &tasks, &data, &[], EvalOptions::default(), &mut Silent, None).unwrap_err().to_string();
        assert!(err.starts_with("the output of task `depth_zbuffer`: ") && err.contains("NaN or infinite on the clean inputs"), "{err}");
        let err = clean_losses(&model, &tasks, &data, Convention::Standard, &mut Silent).unwrap_err().chain();
        assert!(err.contains("the output of task `depth_zbuffer`: "), "{err}");
    }
}
