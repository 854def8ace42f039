//! The building blocks the backbones are made of: conv+BN(+ReLU), the ResNet BasicBlock with
//! dilation, and the MobileNetV2 inverted residual. All convolutions are bias-free and every BN is
//! `BatchNorm2d(eps 1e-5, momentum 0.1)` with γ = 1, β = 0 at init (docs/REFERENCE.md §2.1–2.2).
use tch::Tensor;
use tch::nn::{self, ModuleT};

/// The reference's batch norm.
pub fn batch_norm(p: nn::Path, channels: i64) -> nn::BatchNorm {
    let cfg = nn::BatchNormConfig {
        eps: 1e-5,
        momentum: 0.1,
        ws_init: nn::Init::Const(1.0),
        bs_init: nn::Init::Const(0.0),
        ..Default::default()
    };
    nn::batch_norm2d(p, channels, cfg)
}

/// A bias-free convolution, He-initialised (fan-out, as torchvision's ResNet; the reference's
/// N(0, 0.01) init trains poorly from scratch on small models).
#[allow(clippy::too_many_arguments)]
pub fn conv(p: nn::Path, cin: i64, cout: i64, k: i64, stride: i64, padding: i64, dilation: i64, groups: i64) -> nn::Conv2D {
    let cfg = nn::ConvConfig {
        stride,
        padding,
        dilation,
        groups,
        bias: false,
        ws_init: nn::Init::Kaiming {
            dist: nn::init::NormalOrUniform::Normal,
            fan: nn::init::FanInOut::FanOut,
            non_linearity: nn::init::NonLinearity::ReLU,
        },
        ..Default::default()
    };
    nn::conv2d(p, cin, cout, k, cfg)
}

/// conv → BN → optional ReLU (`same` padding for odd kernels, scaled by dilation).
#[derive(Debug)]
pub struct ConvBn {
    conv: nn::Conv2D,
    bn: nn::BatchNorm,
    relu: bool,
}

impl ConvBn {
    /// A conv+BN unit; `p / "conv"` and `p / "bn"` hold its variables.
    #[allow(clippy::too_many_arguments)]
    pub fn new(p: nn::Path, cin: i64, cout: i64, k: i64, stride: i64, dilation: i64, groups: i64, relu: bool) -> Self {
        let padding = dilation * (k - 1) / 2;
        ConvBn { conv: conv(&p / "conv", cin, cout, k, stride, padding, dilation, groups), bn: batch_norm(&p / "bn", cout), relu }
    }
}

impl ModuleT for ConvBn {
    fn forward_t(&self, xs: &Tensor, train: bool) -> Tensor {
        let y = xs.apply(&self.conv).apply_t(&self.bn, train);
        if self.relu { y.relu() } else { y }
    }
}

/// Deeplab-ResNet stem: conv 7×7/2 → BN → ReLU → max-pool 3×3/2, in `ceil_mode` for the
/// reference ResNet (321 → 161 → 81).
#[derive(Debug)]
pub struct ResnetStem {
    conv: nn::Conv2D,
    bn: nn::BatchNorm,
    ceil_mode: bool,
}

impl ResnetStem {
    /// A stem with a `k×k` stride-2 convolution and the max-pool.
    pub fn new(p: nn::Path, cin: i64, cout: i64, k: i64, ceil_mode: bool) -> Self {
        ResnetStem { conv: conv(&p / "conv", cin, cout, k, 2, k / 2, 1, 1), bn: batch_norm(&p / "bn", cout), ceil_mode }
    }
}

impl ModuleT for ResnetStem {
    fn forward_t(&self, xs: &Tensor, train: bool) -> Tensor {
        xs.apply(&self.conv).apply_t(&self.bn, train).relu().max_pool2d([3, 3], [2, 2], [1, 1], [1, 1], self.ceil_mode)
    }
}

/// ResNet BasicBlock with dilation: `ReLU(shortcut(x) + BN(conv(ReLU(BN(conv(x))))))`.
#[derive(Debug)]
pub struct BasicBlock {
    conv1: nn::Conv2D,
    bn1: nn::BatchNorm,
    conv2: nn::Conv2D,
    bn2: nn::BatchNorm,
    downsample: Option<(nn::Conv2D, nn::BatchNorm)>,
}

impl BasicBlock {
    /// A block `cin → cout`; a 1×1 conv + BN shortcut is added when `downsample`.
    pub fn new(p: nn::Path, cin: i64, cout: i64, stride: i64, dilation: i64, downsample: bool) -> Self {
        let ds = downsample.then(|| {
            let q = &p / "downsample";
            (conv(&q / "conv", cin, cout, 1, stride, 0, 1, 1), batch_norm(&q / "bn", cout))
        });
        BasicBlock {
            conv1: conv(&p / "conv1", cin, cout, 3, stride, dilation, dilation, 1),
            bn1: batch_norm(&p / "bn1", cout),
            conv2: conv(&p / "conv2", cout, cout, 3, 1, dilation, dilation, 1),
            bn2: batch_norm(&p / "bn2", cout),
            downsample: ds,
        }
    }
}

impl ModuleT for BasicBlock {
    fn forward_t(&self, xs: &Tensor, train: bool) -> Tensor {
        let y = xs.apply(&self.conv1).apply_t(&self.bn1, train).relu().apply(&self.conv2).apply_t(&self.bn2, train);
        let shortcut = match &self.downsample {
            Some((c, b)) => xs.apply(c).apply_t(b, train),
            None => xs.shallow_clone(),
        };
        (y + shortcut).relu()
    }
}

/// MobileNetV2 inverted residual whose input and output shapes agree: expand 1×1 → depthwise
/// 3×3 → project 1×1, plus the identity (one fine block in TreeMTL's split, docs/REFERENCE.md §2.2).
#[derive(Debug)]
pub struct InvertedResidual {
    expand: ConvBn,
    depthwise: ConvBn,
    project: ConvBn,
}

impl InvertedResidual {
    /// A residual bottleneck on `channels` with expansion factor `t`.
    pub fn new(p: nn::Path, channels: i64, t: i64) -> Self {
        let hidden = channels * t;
        InvertedResidual {
            expand: ConvBn::new(&p / "expand", channels, hidden, 1, 1, 1, 1, true),
            depthwise: ConvBn::new(&p / "depthwise", hidden, hidden, 3, 1, 1, hidden, true),
            project: ConvBn::new(&p / "project", hidden, channels, 1, 1, 1, 1, false),
        }
    }
}

impl ModuleT for InvertedResidual {
    fn forward_t(&self, xs: &Tensor, train: bool) -> Tensor {
        xs.apply_t(&self.expand, train).apply_t(&self.depthwise, train).apply_t(&self.project, train) + xs
    }
}
