//! SGD with momentum and Adam, written out (PyTorch's update rules) so that their state can be
//! checkpointed and a resumed run continues bit for bit. Weight decay is the L2 term added to the
//! gradient, as in `torch.optim`.
use crate::error::{Error, Result};
use std::path::Path;
use tch::Tensor;
use tch::nn::VarStore;

/// Which optimiser.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
#[cfg_attr(feature = "cli", derive(clap::ValueEnum))]
#[serde(rename_all = "lowercase")]
pub enum OptimizerKind {
    /// SGD with (heavy-ball) momentum.
    Sgd,
    /// Adam.
    Adam,
}

/// Optimiser hyper-parameters.
#[derive(Debug, Clone, Copy, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct OptimizerConfig {
    pub kind: OptimizerKind,
    pub momentum: f64,
    pub beta1: f64,
    pub beta2: f64,
    pub weight_decay: f64,
}

impl Default for OptimizerConfig {
    fn default() -> Self {
        OptimizerConfig { kind: OptimizerKind::Sgd, momentum: 0.9, beta1: 0.9, beta2: 0.999, weight_decay: 1e-4 }
    }
}

/// The optimiser with its per-parameter state.
pub struct Optimizer {
    cfg: OptimizerConfig,
    /// Trainable variables, sorted by name.
    params: Vec<(String, Tensor)>,
    /// SGD momentum buffer / Adam first moment.
    m: Vec<Tensor>,
    /// Adam second moment.
    v: Vec<Tensor>,
    /// Steps taken.
    pub t: u64,
}

impl Optimizer {
    /// An optimiser over every trainable variable of `vs`.
    pub fn new(vs: &VarStore, cfg: OptimizerConfig) -> Self {
        let mut params: Vec<(String, Tensor)> = vs.variables().into_iter().filter(|(_, t)| t.requires_grad()).collect();
        params.sort_by(|a, b| a.0.cmp(&b.0));
        let zeros = |p: &Vec<(String, Tensor)>| p.iter().map(|(_, t)| t.zeros_like()).collect();
        let m = zeros(&params);
        let v = if cfg.kind == OptimizerKind::Adam { zeros(&params) } else { Vec::new() };
        Optimizer { cfg, params, m, v, t: 0 }
    }

    /// Clears the gradients of all parameters.
    pub fn zero_grad(&mut self) {
        for (_, p) in &self.params {
            let mut g = p.grad();
            if g.defined() {
                let _ = g.zero_();
            }
        }
    }

    /// One update with learning rate `lr`, from the gradients `backward` left in the parameters.
    pub fn step(&mut self, lr: f64) {
        let _guard = tch::no_grad_guard();
        self.t += 1;
        let c = self.cfg;
        for (i, (_, p)) in self.params.iter_mut().enumerate() {
            let g = p.grad();
            if !g.defined() {
                continue;
            }
            let g = if c.weight_decay != 0.0 { &g + &*p * c.weight_decay } else { g };
            match c.kind {
                OptimizerKind::Sgd => {
                    // buf ← μ·buf + g (buf starts at 0, so the first step uses g as PyTorch does).
                    let _ = self.m[i].g_mul_scalar_(c.momentum).g_add_(&g);
                    let _ = p.g_sub_(&(&self.m[i] * lr));
                }
                OptimizerKind::Adam => {
                    let _ = self.m[i].g_mul_scalar_(c.beta1).g_add_(&(&g * (1.0 - c.beta1)));
                    let _ = self.v[i].g_mul_scalar_(c.beta2).g_add_(&(g.square() * (1.0 - c.beta2)));
                    let bc1 = 1.0 - c.beta1.powi(self.t as i32);
                    let bc2 = 1.0 - c.beta2.powi(self.t as i32);
                    let denom = (&self.v[i] / bc2).sqrt() + 1e-8;
                    let _ = p.g_sub_(&(&self.m[i] / denom * (lr / bc1)));
                }
            }
        }
    }

    /// Writes the state tensors (`m.<param>`, `v.<param>`) as safetensors.
    ///
    /// # Errors
    /// I/O failures.
    pub fn save(&self, path: &Path) -> Result<()> {
        let mut named: Vec<(String, Tensor)> = Vec::new();
        for (i, (name, _)) in self.params.iter().enumerate() {
            named.push((format!("m.{name}"), self.m[i].shallow_clone()));
            if let Some(v) = self.v.get(i) {
                named.push((format!("v.{name}"), v.shallow_clone()));
            }
        }
        Tensor::write_safetensors(&named, path)
            .map_err(|e| Error::context(format!("checkpoint {}: cannot write optimizer state", path.display()), e))
    }

    /// Reads state written by [`Optimizer::save`] for the same parameters; `t` is set by the caller.
    ///
    /// # Errors
    /// A missing or mismatched state tensor.
    pub fn load(&mut self, path: &Path) -> Result<()> {
        let saved: std::collections::HashMap<String, Tensor> = Tensor::read_safetensors(path)
            .map_err(|e| Error::context(format!("checkpoint {}: cannot read optimizer state", path.display()), e))?
            .into_iter()
            .collect();
        let _guard = tch::no_grad_guard();
        for (i, (name, _)) in self.params.iter().enumerate() {
            let copy = |key: String, dst: &mut Tensor| -> Result<()> {
                let src = saved
                    .get(&key)
                    .ok_or_else(|| Error::checkpoint(path, format!("lacks `{key}`; was it written for another model or optimiser?")))?;
                if src.size() != dst.size() {
                    return Err(Error::checkpoint(path, format!("`{key}` has shape {:?}, expected {:?}", src.size(), dst.size())));
                }
                dst.f_copy_(&src.to_kind(dst.kind()).to_device(dst.device()))?;
                Ok(())
            };
            copy(format!("m.{name}"), &mut self.m[i])?;
            if let Some(v) = self.v.get_mut(i) {
                copy(format!("v.{name}"), v)?;
            }
        }
        Ok(())
    }
}
