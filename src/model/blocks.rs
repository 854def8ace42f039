//! The building blocks the backbones are made of: conv+BN(+ReLU), the ResNet BasicBlock with
//! dilation, and the MobileNetV2 inverted residual. All convolutions are bias-free and every BN is
//! `BatchNorm2d(eps 1e-5, momentum 0.1)` with γ = 1, β = 0 at init (docs/REFERENCE.md §2.1–2.2).
//!
//! Every forward is fallible ([`Block::forward`] calls libtorch's `f_` operations): an out-of-memory
//! or any other libtorch failure inside a model comes back as an error the caller can match,
//! never as a panic.
use tch::nn;
use tch::{TchError, Tensor};

/// A piece of network whose forward reports libtorch's errors.
pub trait Block: std::fmt::Debug + Send {
    /// The output for `xs` (`train`: batch statistics and dropout).
    ///
    /// # Errors
    /// What libtorch reports: out of memory, or an input of the wrong shape.
    fn forward(&self, xs: &Tensor, train: bool) -> Result<Tensor, TchError>;
}

/// A 2-d convolution: tch's variables (`ws`, `bs`) with the geometry kept beside them, since
/// `Conv` keeps its configuration private and has no fallible forward.
#[derive(Debug)]
pub struct Conv {
    pub inner: nn::Conv2D,
    stride: i64,
    padding: i64,
    dilation: i64,
    groups: i64,
}

impl Conv {
    /// A convolution `cin → cout` with a `k×k` kernel under `p` (`p/weight`, `p/bias`).
    pub fn new(p: nn::Path, cin: i64, cout: i64, k: i64, cfg: nn::ConvConfig) -> Self {
        let (stride, padding, dilation, groups) = (cfg.stride, cfg.padding, cfg.dilation, cfg.groups);
        Conv { inner: nn::conv2d(p, cin, cout, k, cfg), stride, padding, dilation, groups }
    }

    /// The convolution of `xs`.
    ///
    /// # Errors
    /// What libtorch reports.
    pub fn forward(&self, xs: &Tensor) -> Result<Tensor, TchError> {
        let (s, p, d) = (self.stride, self.padding, self.dilation);
        xs.f_conv2d(&self.inner.ws, self.inner.bs.as_ref(), [s, s], [p, p], [d, d], self.groups)
    }
}

/// The reference's `BatchNorm2d(eps 1e-5, momentum 0.1)`.
#[derive(Debug)]
pub struct BatchNorm {
    pub inner: nn::BatchNorm,
}

const BN_EPS: f64 = 1e-5;
const BN_MOMENTUM: f64 = 0.1;

impl BatchNorm {
    /// γ = 1, β = 0 under `p` (`weight`, `bias`, `running_mean`, `running_var`).
    pub fn new(p: nn::Path, channels: i64) -> Self {
        let cfg = nn::BatchNormConfig {
            eps: BN_EPS,
            momentum: BN_MOMENTUM,
            ws_init: nn::Init::Const(1.0),
            bs_init: nn::Init::Const(0.0),
            ..Default::default()
        };
        BatchNorm { inner: nn::batch_norm2d(p, channels, cfg) }
    }
}

impl Block for BatchNorm {
    fn forward(&self, xs: &Tensor, train: bool) -> Result<Tensor, TchError> {
        let bn = &self.inner;
        Tensor::f_batch_norm(
            xs,
            bn.ws.as_ref(),
            bn.bs.as_ref(),
            Some(&bn.running_mean),
            Some(&bn.running_var),
            train,
            BN_MOMENTUM,
            BN_EPS,
            true,
        )
    }
}

/// The reference's batch norm.
pub fn batch_norm(p: nn::Path, channels: i64) -> BatchNorm {
    BatchNorm::new(p, channels)
}

/// A bias-free convolution, He-initialised (fan-out, as torchvision's ResNet; the reference's
/// N(0, 0.01) init trains poorly from scratch on small models).
#[allow(clippy::too_many_arguments)]
pub fn conv(p: nn::Path, cin: i64, cout: i64, k: i64, stride: i64, padding: i64, dilation: i64, groups: i64) -> Conv {
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
    Conv::new(p, cin, cout, k, cfg)
}

/// conv → BN → optional ReLU (`same` padding for odd kernels, scaled by dilation).
#[derive(Debug)]
pub struct ConvBn {
    conv: Conv,
    bn: BatchNorm,
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

impl Block for ConvBn {
    fn forward(&self, xs: &Tensor, train: bool) -> Result<Tensor, TchError> {
        let y = self.bn.forward(&self.conv.forward(xs)?, train)?;
        if self.relu { y.f_relu() } else { Ok(y) }
    }
}

/// Deeplab-ResNet stem: conv 7×7/2 → BN → ReLU → max-pool 3×3/2, in `ceil_mode` for the
/// reference ResNet (321 → 161 → 81).
#[derive(Debug)]
pub struct ResnetStem {
    conv: Conv,
    bn: BatchNorm,
    ceil_mode: bool,
}

impl ResnetStem {
    /// A stem with a `k×k` stride-2 convolution and the max-pool.
    pub fn new(p: nn::Path, cin: i64, cout: i64, k: i64, ceil_mode: bool) -> Self {
        ResnetStem { conv: conv(&p / "conv", cin, cout, k, 2, k / 2, 1, 1), bn: batch_norm(&p / "bn", cout), ceil_mode }
    }
}

impl Block for ResnetStem {
    fn forward(&self, xs: &Tensor, train: bool) -> Result<Tensor, TchError> {
        self.bn.forward(&self.conv.forward(xs)?, train)?.f_relu()?.f_max_pool2d([3, 3], [2, 2], [1, 1], [1, 1], self.ceil_mode)
    }
}

/// ResNet BasicBlock with dilation: `ReLU(shortcut(x) + BN(conv(ReLU(BN(conv(x))))))`.
#[derive(Debug)]
pub struct BasicBlock {
    conv1: Conv,
    bn1: BatchNorm,
    conv2: Conv,
    bn2: BatchNorm,
    downsample: Option<(Conv, BatchNorm)>,
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

impl Block for BasicBlock {
    fn forward(&self, xs: &Tensor, train: bool) -> Result<Tensor, TchError> {
        let y = self.bn1.forward(&self.conv1.forward(xs)?, train)?.f_relu()?;
        let y = self.bn2.forward(&self.conv2.forward(&y)?, train)?;
        let shortcut = match &self.downsample {
            Some((c, b)) => b.forward(&c.forward(xs)?, train)?,
            None => xs.shallow_clone(),
        };
        y.f_add(&shortcut)?.f_relu()
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

impl Block for InvertedResidual {
    fn forward(&self, xs: &Tensor, train: bool) -> Result<Tensor, TchError> {
        let y = self.expand.forward(xs, train)?;
        let y = self.depthwise.forward(&y, train)?;
        self.project.forward(&y, train)?.f_add(xs)
    }
}
