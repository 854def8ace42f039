//! Numeric precision of a model's forward and backward passes (`--precision`).
//!
//! - `fp32`: libtorch's defaults — exact fp32 on CPU; on CUDA, cuDNN may run convolutions in TF32
//!   (PyTorch's default too), matmuls stay IEEE fp32. Runs and cells keep their identities.
//! - `tf32`: on CUDA, matmuls in TF32 too (`torch.set_float32_matmul_precision("high")`); on CPU
//!   the same as fp32.
//! - `bf16`: autocast (PyTorch's `torch.autocast(dtype=torch.bfloat16)`) over the network's
//!   forward, so its backward runs in the dtypes the forward chose; the weights stay fp32 (master
//!   weights for training) and the outputs are cast back to fp32, so losses, the attack objective,
//!   the adversarial input, the projection and the clip stay fp32.
use crate::error::{Error, Result};

/// How a model computes.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Hash, serde::Serialize, serde::Deserialize)]
#[cfg_attr(feature = "cli", derive(clap::ValueEnum))]
#[serde(rename_all = "lowercase")]
pub enum Precision {
    /// libtorch's defaults (exact fp32 on CPU).
    #[default]
    Fp32,
    /// TF32 matmuls on CUDA as well as the TF32 cuDNN convolutions fp32 already allows (fp32 on CPU).
    Tf32,
    /// bf16 autocast over the forward (and so the backward); fp32 weights, outputs and losses.
    Bf16,
}

impl Precision {
    /// The stable id (`fp32`, `tf32`, `bf16`).
    pub fn id(self) -> &'static str {
        match self {
            Precision::Fp32 => "fp32",
            Precision::Tf32 => "tf32",
            Precision::Bf16 => "bf16",
        }
    }

    /// Whether this is the default, which leaves stored identities unchanged.
    pub fn is_default(self) -> bool {
        self == Precision::Fp32
    }
}

impl std::fmt::Display for Precision {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.id())
    }
}

impl std::str::FromStr for Precision {
    type Err = Error;

    fn from_str(s: &str) -> Result<Precision> {
        match s.trim().to_ascii_lowercase().as_str() {
            "fp32" => Ok(Precision::Fp32),
            "tf32" => Ok(Precision::Tf32),
            "bf16" => Ok(Precision::Bf16),
            other => Err(Error::parameter("precision", format!("`{other}` is not a precision; use fp32, tf32 or bf16"))),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::attack::{Attack, AttackConfig};
    use crate::data::InMemory;
    use crate::eval::{EvalOptions, evaluate};
    use crate::model::shim;
    use crate::testutil::{random_batch, small_model, tasks_of, three_tasks};
    use tch::{Device, Kind};

    fn max_rel(a: &tch::Tensor, b: &tch::Tensor) -> f64 {
        (a - b).abs().max().double_value(&[]) / b.abs().max().double_value(&[]).max(1e-12)
    }

    #[test]
    fn bf16_autocasts_inside_the_forward_only_and_returns_fp32_close_to_fp32() {
        let specs = three_tasks();
        let mut model = small_model(&specs, 1, 0);
        let x = random_batch(&specs, 2, 32, 0, Kind::Float).x;
        let exact = model.forward_t(&x, false).unwrap();
        model.set_precision(Precision::Bf16).unwrap();
        let fast = model.forward_t(&x, false).unwrap();
        assert!(!shim::autocast_enabled(Device::Cpu), "autocast is off again after the forward");
        for (kind, t) in fast.iter() {
            assert_eq!(t.kind(), Kind::Float, "{kind}: outputs come back as fp32");
            let rel = max_rel(t, exact.get(kind).unwrap());
            // bf16 keeps 8 mantissa bits (relative step 2⁻⁸ ≈ 0.4 %); a few layers compound it.
            assert!(rel > 0.0 && rel < 0.05, "{kind}: {rel}");
        }
        // Inside the guard the convolution really runs in bf16.
        let _g = shim::autocast_bf16(Device::Cpu);
        let y = x.conv2d(&tch::Tensor::ones([2, 3, 3, 3], (Kind::Float, Device::Cpu)), None::<tch::Tensor>, [1, 1], [1, 1], [1, 1], 1);
        assert_eq!(y.kind(), Kind::BFloat16);
    }

    #[test]
    fn bf16_attack_raises_the_losses_as_much_as_fp32() {
        // An untrained model's ARP is meaningless (relative changes of metrics near zero; the ARP
        // check on trained models is in BENCHMARKS.md); its losses under attack are not.
        let specs = three_tasks();
        let tasks = tasks_of(&specs);
        let mut model = small_model(&specs, 1, 0);
        model.vs.freeze();
        let data = InMemory(vec![random_batch(&specs, 3, 32, 1, Kind::Float), random_batch(&specs, 3, 32, 2, Kind::Float)]);
        let attack = Attack::new(AttackConfig { rule: crate::attack::Rule::default().with_n_iter(5), ..AttackConfig::default() }).unwrap();
        let mut losses = |p: Precision| {
            model.set_precision(p).unwrap();
            let e =
                evaluate(&model, &tasks, &data, std::slice::from_ref(&attack), EvalOptions::default(), &mut crate::observe::Silent, None)
                    .unwrap();
            (e.clean.losses.clone(), e.attacked[0].losses.clone())
        };
        let ((clean, attacked), (clean16, attacked16)) = (losses(Precision::Fp32), losses(Precision::Bf16));
        for (kind, &a) in attacked.iter() {
            let c = clean.get(kind).copied().unwrap();
            assert!(a > 1.02 * c, "{kind}: the attack raises the loss ({c} → {a})");
            let rel = |x: f64, y: f64| (x - y).abs() / y.abs();
            assert!(rel(clean16.get(kind).copied().unwrap(), c) < 0.01, "{kind}: clean loss");
            // The increase itself within 5 %.
            let (up, up16) = (a - c, attacked16.get(kind).copied().unwrap() - clean16.get(kind).copied().unwrap());
            assert!(rel(up16, up) < 0.05, "{kind}: loss increase fp32 {up} vs bf16 {up16}");
        }
    }

    #[test]
    fn channels_last_gives_the_same_outputs_and_gradients() {
        let specs = three_tasks();
        let mut model = small_model(&specs, 2, 0);
        let x = random_batch(&specs, 2, 32, 0, Kind::Float).x;
        let run = |m: &crate::model::Model| {
            let x = x.detach().set_requires_grad(true);
            let out = m.forward_t(&x, false).unwrap();
            let loss = out.values().map(|t| t.square().sum(Kind::Float)).reduce(|a, b| a + b).unwrap();
            let g = tch::Tensor::run_backward(&[loss], &[&x], false, false).pop().unwrap();
            (out, g)
        };
        let (out, g) = run(&model);
        model.set_channels_last(true);
        let conv = model.vs.variables().into_iter().find(|(_, v)| v.dim() == 4).unwrap().1;
        assert!(shim::is_channels_last(&conv) && !shim::is_channels_last(&x));
        let (out_cl, g_cl) = run(&model);
        for (kind, t) in out_cl.iter() {
            assert!(max_rel(t, out.get(kind).unwrap()) <= 1e-6, "{kind}");
        }
        assert!(max_rel(&g_cl, &g) <= 1e-5);
    }

    #[test]
    fn ids_parse_and_non_float32_models_refuse_bf16() {
        for p in [Precision::Fp32, Precision::Tf32, Precision::Bf16] {
            assert_eq!(p.id().parse::<Precision>().unwrap(), p);
        }
        assert!("fp16".parse::<Precision>().unwrap_err().to_string().contains("fp32, tf32 or bf16"));
        let mut model = small_model(&three_tasks(), 0, 0);
        model.set_kind(Kind::Double).unwrap();
        assert!(model.set_precision(Precision::Bf16).is_err());
        assert!(model.set_precision(Precision::Fp32).is_ok());
        // The TF32 switch is process-wide and harmless without CUDA.
        shim::set_tf32(true);
        shim::set_tf32(false);
    }
}
