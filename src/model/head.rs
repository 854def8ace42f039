//! ASPP task heads (docs/REFERENCE.md §2.3): the sum of four branches with dilation rates 6/12/18/24, each
//! `conv3×3(dilated, bias) → ReLU → Dropout → conv1×1 → ReLU → Dropout → conv1×1 → C`. There is no
//! output activation (logits / raw values) and the spatial size is kept: outputs stay at feature
//! resolution; labels are resized for losses and predictions for metrics.
use super::blocks::{Block, Conv};
use tch::nn;
use tch::{TchError, Tensor};

/// Width, rates and dropout of an ASPP head.
#[derive(Debug, Clone, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct HeadConfig {
    /// Channels of the hidden layers (1024 in the paper's models).
    pub width: i64,
    /// One branch per dilation rate.
    pub rates: Vec<i64>,
    /// Dropout probability after each hidden layer, active in training only.
    pub dropout: f64,
}

impl HeadConfig {
    /// The paper's heads: width 1024, rates 6/12/18/24, dropout 0.5.
    pub fn paper() -> Self {
        HeadConfig { width: 1024, rates: vec![6, 12, 18, 24], dropout: 0.5 }
    }

    /// Trainable parameters of one head from `cin` input channels to `classes` outputs.
    pub fn param_count(&self, cin: i64, classes: i64) -> i64 {
        let w = self.width;
        self.rates.len() as i64 * (9 * cin * w + w + w * w + w + w * classes + classes)
    }
}

#[derive(Debug)]
struct Branch {
    conv1: Conv,
    conv2: Conv,
    conv3: Conv,
}

/// One task's ASPP head.
#[derive(Debug)]
pub struct AsppHead {
    branches: Vec<Branch>,
    dropout: f64,
}

impl AsppHead {
    /// A head under `p` with branches `p/fc1 .. p/fcN` (the reference's key names).
    pub fn new(p: nn::Path, cin: i64, classes: i64, cfg: &HeadConfig) -> Self {
        let conv = |q: nn::Path, i: i64, o: i64, k: i64, rate: i64| {
            Conv::new(q, i, o, k, nn::ConvConfig { padding: rate * (k / 2), dilation: rate, ..Default::default() })
        };
        let branches = cfg
            .rates
            .iter()
            .enumerate()
            .map(|(i, &rate)| {
                let q = &p / format!("fc{}", i + 1);
                Branch {
                    conv1: conv(&q / "conv1", cin, cfg.width, 3, rate),
                    conv2: conv(&q / "conv2", cfg.width, cfg.width, 1, 1),
                    conv3: conv(&q / "conv3", cfg.width, classes, 1, 1),
                }
            })
            .collect();
        AsppHead { branches, dropout: cfg.dropout }
    }
}

impl Block for AsppHead {
    fn forward(&self, xs: &Tensor, train: bool) -> Result<Tensor, TchError> {
        let mut out: Option<Tensor> = None;
        for b in &self.branches {
            let y = b.conv1.forward(xs)?.f_relu()?.f_dropout(self.dropout, train)?;
            let y = b.conv2.forward(&y)?.f_relu()?.f_dropout(self.dropout, train)?;
            let y = b.conv3.forward(&y)?;
            out = Some(match out {
                Some(acc) => acc.f_add(&y)?,
                None => y,
            });
        }
        Ok(out.expect("a head has at least one branch"))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn paper_head_counts_match_the_reference() {
        let cfg = HeadConfig::paper();
        // docs/REFERENCE.md §2.3: 23,076,864 + 4100·C for 512 input channels; NYUv2's three heads: 69,410,992.
        assert_eq!(cfg.param_count(512, 1), 23_076_864 + 4_100);
        let nyu: i64 = [40, 3, 1].iter().map(|&c| cfg.param_count(512, c)).sum();
        assert_eq!(nyu, 69_410_992);
    }
}
