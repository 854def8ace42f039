//! The attack flags, shared by `attack` (many directions × budgets) and `train --adversarial` (one).
use clap::Args;
use mtrobust::attack::{ApgdProfile, AttackConfig, DirectionSpec, Norm, Reduction, StepKind, parse_eps};
use mtrobust::task::TaskKind;

/// How to attack.
#[derive(Debug, Clone, Args)]
pub struct AttackArgs {
    /// Step rule.
    #[arg(long = "attack", value_enum, default_value_t = StepKind::Pgd)]
    pub step: StepKind,
    /// Direction: single:<task>, total, sign-total, gbmta, weighted:<task>=<w>,… — repeat the flag
    /// for several, or `all` for every Single-x, Total, SignTotal and GB-MTA.
    #[arg(long = "direction", default_value = "gbmta")]
    pub directions: Vec<String>,
    /// Budget(s) in grey levels of 0..255: `8`, `8/255`, or a list `1,2,4,8`.
    #[arg(long, default_value = "8", value_delimiter = ',', allow_hyphen_values = true)]
    pub eps: Vec<String>,
    /// Threat model.
    #[arg(long, value_enum, default_value_t = Norm::Linf)]
    pub norm: Norm,
    /// Iterations of PGD, MI-FGSM, APGD and Auto-SAGE.
    #[arg(long, default_value_t = 10)]
    pub n_iter: usize,
    /// Step size in grey levels (default ε / n-iter).
    #[arg(long, allow_negative_numbers = true)]
    pub step_size: Option<f64>,
    /// PGD: start from a uniformly random point of the ball.
    #[arg(long)]
    pub random_start: bool,
    /// APGD: random restarts (autoattack profile).
    #[arg(long, default_value_t = 1)]
    pub restarts: usize,
    /// APGD: `autoattack` (Croce & Hein, per sample) or `paper` (the authors' code). With `paper`,
    /// GB-MTA's objective is relative to the dataset's clean losses, taken as `--convention` says:
    /// the mean of per-batch means under `reference` (the authors' definition; it depends on the
    /// batch size), pooled over all pixels under `standard`.
    #[arg(long, value_enum, default_value_t = ApgdProfile::Autoattack)]
    pub apgd_profile: ApgdProfile,
    /// APGD paper profile: restart from the best point when the step halves (their "AAR").
    #[arg(long)]
    pub apgd_revised: bool,
    /// Single/Total/weighted: `per-sample` losses or the reference's `pooled` batch mean.
    #[arg(long, value_enum, default_value_t = Reduction::PerSample)]
    pub reduction: Reduction,
    /// MI-FGSM momentum μ.
    #[arg(long, default_value_t = 1.0, allow_negative_numbers = true)]
    pub mi_momentum: f64,
    /// Auto-SAGE learning rate of the task weights.
    #[arg(long, default_value_t = 10.0, allow_negative_numbers = true)]
    pub sage_lr: f64,
    /// Auto-SAGE tanh fitting factor.
    #[arg(long, default_value_t = 50.0, allow_negative_numbers = true)]
    pub sage_fitting: f64,
}

impl AttackArgs {
    /// Every (direction, ε) combination, seeded with `seed`.
    pub fn configs(&self, tasks: &[TaskKind], seed: u64) -> anyhow::Result<Vec<AttackConfig>> {
        let mut directions = Vec::new();
        for d in &self.directions {
            if d.trim() == "all" {
                directions.extend(tasks.iter().map(|&t| DirectionSpec::Single(t)));
                directions.extend([DirectionSpec::Total, DirectionSpec::SignTotal, DirectionSpec::Gbmta]);
            } else {
                directions.push(d.parse()?);
            }
        }
        let mut eps = Vec::new();
        for e in &self.eps {
            eps.push(parse_eps(e)?);
        }
        let mut out = Vec::new();
        for e in &eps {
            for d in &directions {
                let c = AttackConfig {
                    step: self.step,
                    direction: d.clone(),
                    norm: self.norm,
                    eps: *e,
                    n_iter: self.n_iter,
                    step_size: self.step_size,
                    random_start: self.random_start,
                    restarts: self.restarts,
                    apgd_profile: self.apgd_profile,
                    apgd_revised: self.apgd_revised,
                    momentum: self.mi_momentum,
                    sage_fitting: self.sage_fitting,
                    sage_lr: self.sage_lr,
                    sage_decay: 0.0,
                    reduction: self.reduction,
                    early_stop: None,
                    seed,
                };
                c.check()?;
                out.push(c);
            }
        }
        Ok(out)
    }
}
