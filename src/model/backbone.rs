//! Backbones as ordered lists of fine blocks (TreeMTL's branching points), grouped into five
//! coarse blocks, the unit layouts are written in (docs/REFERENCE.md §2.1–2.2):
//! - `resnet34`: Deeplab-ResNet34, 17 fine blocks, dilations 2/4, output stride 8, 512 channels;
//! - `mobilenetv2`: MobileNetV2 with plain ReLU, 32 fine blocks, output stride 32, 1280 channels;
//! - `small`: the same five coarse stages as the Deeplab-ResNet (stem, then four stages of one
//!   BasicBlock each, dilations 2/4, output stride 8) with few channels, so training and attack
//!   sweeps run on a 2-core CPU in minutes. One fine block per coarse block.
use super::blocks::{BasicBlock, Block, ConvBn, InvertedResidual, ResnetStem};
use tch::nn;

/// Which backbone a model is built on.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
#[cfg_attr(feature = "cli", derive(clap::ValueEnum))]
#[serde(rename_all = "lowercase")]
pub enum BackboneKind {
    /// Five BasicBlocks, 16–64 channels: the CPU-sized backbone of the demo and the tests.
    Small,
    /// Deeplab-ResNet34 (17 fine blocks).
    Resnet34,
    /// MobileNetV2 (32 fine blocks).
    Mobilenetv2,
}

/// Channel widths of the small backbone's five stages.
const SMALL_WIDTHS: [i64; 5] = [16, 24, 32, 48, 64];

/// One fine block, as data; [`BlockSpec::build`] makes the module.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum BlockSpec {
    /// Stride-2 `k×k` conv → BN → ReLU → 3×3/2 max-pool (`ceil_mode` as the reference's ResNet, or floor).
    Stem { cin: i64, cout: i64, k: i64, ceil_mode: bool },
    /// ResNet BasicBlock.
    Basic { cin: i64, cout: i64, stride: i64, dilation: i64, downsample: bool },
    /// conv → BN (→ ReLU): the pieces of a non-residual MobileNetV2 bottleneck, its stem and last conv.
    ConvBn { cin: i64, cout: i64, k: i64, stride: i64, groups: i64, relu: bool },
    /// A residual MobileNetV2 bottleneck.
    Residual { channels: i64, t: i64 },
}

impl BlockSpec {
    /// Builds the block's module under `p`.
    pub fn build(&self, p: nn::Path) -> Box<dyn Block> {
        match *self {
            BlockSpec::Stem { cin, cout, k, ceil_mode } => Box::new(ResnetStem::new(p, cin, cout, k, ceil_mode)),
            BlockSpec::Basic { cin, cout, stride, dilation, downsample } => {
                Box::new(BasicBlock::new(p, cin, cout, stride, dilation, downsample))
            }
            BlockSpec::ConvBn { cin, cout, k, stride, groups, relu } => Box::new(ConvBn::new(p, cin, cout, k, stride, 1, groups, relu)),
            BlockSpec::Residual { channels, t } => Box::new(InvertedResidual::new(p, channels, t)),
        }
    }

    /// Output channels.
    pub fn out_channels(&self) -> i64 {
        match *self {
            BlockSpec::Stem { cout, .. } | BlockSpec::Basic { cout, .. } | BlockSpec::ConvBn { cout, .. } => cout,
            BlockSpec::Residual { channels, .. } => channels,
        }
    }

    /// Number of trainable parameters (conv weights, BN γ and β).
    pub fn param_count(&self) -> i64 {
        let conv_bn = |cin: i64, cout: i64, k: i64, groups: i64| cin / groups * cout * k * k + 2 * cout;
        match *self {
            BlockSpec::Stem { cin, cout, k, .. } => conv_bn(cin, cout, k, 1),
            BlockSpec::Basic { cin, cout, downsample, .. } => {
                conv_bn(cin, cout, 3, 1) + conv_bn(cout, cout, 3, 1) + if downsample { conv_bn(cin, cout, 1, 1) } else { 0 }
            }
            BlockSpec::ConvBn { cin, cout, k, groups, .. } => conv_bn(cin, cout, k, groups),
            BlockSpec::Residual { channels, t } => {
                let h = channels * t;
                conv_bn(channels, h, 1, 1) + conv_bn(h, h, 3, h) + conv_bn(h, channels, 1, 1)
            }
        }
    }
}

impl BackboneKind {
    /// The stable name (`small`, `resnet34`, `mobilenetv2`).
    pub fn name(self) -> &'static str {
        match self {
            BackboneKind::Small => "small",
            BackboneKind::Resnet34 => "resnet34",
            BackboneKind::Mobilenetv2 => "mobilenetv2",
        }
    }

    /// The fine blocks in order.
    pub fn fine_blocks(self) -> Vec<BlockSpec> {
        match self {
            BackboneKind::Small => small_blocks(),
            BackboneKind::Resnet34 => resnet34_blocks(),
            BackboneKind::Mobilenetv2 => mobilenet_v2_blocks(),
        }
    }

    /// How many fine blocks each of the five coarse blocks spans (docs/REFERENCE.md §2.1–2.2 mappings).
    pub fn coarse_counts(self) -> &'static [usize] {
        match self {
            BackboneKind::Small => &[1, 1, 1, 1, 1],
            BackboneKind::Resnet34 => &[1, 3, 4, 6, 3],
            BackboneKind::Mobilenetv2 => &[7, 11, 5, 8, 1],
        }
    }

    /// Channels of the last block's output, i.e. the heads' input.
    pub fn out_channels(self) -> i64 {
        self.fine_blocks().last().expect("backbones have blocks").out_channels()
    }

    /// The ASPP head configuration the backbone is used with by default.
    pub fn default_head(self) -> super::head::HeadConfig {
        match self {
            // Rates scaled to 12–16² feature maps (96–128² inputs at stride 8); narrow (the heads
            // would otherwise cost five times the backbone with five tasks) and light dropout, so a
            // few minutes of training suffice.
            BackboneKind::Small => super::head::HeadConfig { width: 32, rates: vec![1, 2, 3, 4], dropout: 0.1 },
            _ => super::head::HeadConfig::paper(),
        }
    }
}

/// Deeplab-ResNet34 (docs/REFERENCE.md §2.1).
fn resnet34_blocks() -> Vec<BlockSpec> {
    let basic = |cin, cout, stride, dilation, downsample| BlockSpec::Basic { cin, cout, stride, dilation, downsample };
    let mut b = vec![BlockSpec::Stem { cin: 3, cout: 64, k: 7, ceil_mode: true }];
    b.extend((0..3).map(|_| basic(64, 64, 1, 1, false)));
    b.push(basic(64, 128, 2, 1, true));
    b.extend((0..3).map(|_| basic(128, 128, 1, 1, false)));
    // The first block of a dilated stage uses the full dilation (not half of it).
    b.push(basic(128, 256, 1, 2, true));
    b.extend((0..5).map(|_| basic(256, 256, 1, 2, false)));
    b.push(basic(256, 512, 1, 4, true));
    b.extend((0..2).map(|_| basic(512, 512, 1, 4, false)));
    b
}

/// MobileNetV2 as TreeMTL's min-cut detector splits it (docs/REFERENCE.md §2.2): a non-residual bottleneck is
/// three blocks (expand / depthwise / project), a residual bottleneck one.
fn mobilenet_v2_blocks() -> Vec<BlockSpec> {
    let cb = |cin, cout, k, stride, groups, relu| BlockSpec::ConvBn { cin, cout, k, stride, groups, relu };
    let mut b = vec![cb(3, 32, 3, 2, 1, true), cb(32, 32, 3, 1, 32, true), cb(32, 16, 1, 1, 1, false)];
    #[rustfmt::skip]
    const STAGES: [(i64, i64, usize, i64); 6] = [
        // (expansion t, output channels c, repeats n, first stride s)
        (6, 24, 2, 2), (6, 32, 3, 2), (6, 64, 4, 2), (6, 96, 3, 1), (6, 160, 3, 2), (6, 320, 1, 1),
    ];
    let mut cin = 16;
    for (t, c, n, s) in STAGES {
        let h = cin * t;
        b.push(cb(cin, h, 1, 1, 1, true));
        b.push(cb(h, h, 3, s, h, true));
        b.push(cb(h, c, 1, 1, 1, false));
        b.extend((1..n).map(|_| BlockSpec::Residual { channels: c, t }));
        cin = c;
    }
    b.push(cb(320, 1280, 1, 1, 1, true));
    b
}

/// The small backbone: Deeplab-ResNet's shape with one BasicBlock per stage.
fn small_blocks() -> Vec<BlockSpec> {
    let [c0, c1, c2, c3, c4] = SMALL_WIDTHS;
    vec![
        // Floor-mode pooling keeps power-of-two inputs exact: 128 → 64 → 32 → 16.
        BlockSpec::Stem { cin: 3, cout: c0, k: 3, ceil_mode: false },
        BlockSpec::Basic { cin: c0, cout: c1, stride: 1, dilation: 1, downsample: c0 != c1 },
        BlockSpec::Basic { cin: c1, cout: c2, stride: 2, dilation: 1, downsample: true },
        BlockSpec::Basic { cin: c2, cout: c3, stride: 1, dilation: 2, downsample: true },
        BlockSpec::Basic { cin: c3, cout: c4, stride: 1, dilation: 4, downsample: true },
    ]
}

#[cfg(test)]
mod tests {
    use super::*;

    fn coarse_params(kind: BackboneKind) -> Vec<i64> {
        let blocks = kind.fine_blocks();
        let mut out = Vec::new();
        let mut i = 0;
        for &n in kind.coarse_counts() {
            out.push(blocks[i..i + n].iter().map(BlockSpec::param_count).sum());
            i += n;
        }
        assert_eq!(i, blocks.len());
        out
    }

    #[test]
    fn resnet34_matches_the_reference_counts() {
        assert_eq!(BackboneKind::Resnet34.fine_blocks().len(), 17);
        assert_eq!(coarse_params(BackboneKind::Resnet34), vec![9_536, 221_952, 1_116_416, 6_822_400, 13_114_368]);
        assert_eq!(BackboneKind::Resnet34.fine_blocks()[4].param_count(), 230_144);
        assert_eq!(BackboneKind::Resnet34.out_channels(), 512);
    }

    #[test]
    fn mobilenet_v2_matches_the_reference_counts() {
        assert_eq!(BackboneKind::Mobilenetv2.fine_blocks().len(), 32);
        assert_eq!(coarse_params(BackboneKind::Mobilenetv2), vec![15_792, 223_568, 303_168, 1_269_184, 412_160]);
        assert_eq!(coarse_params(BackboneKind::Mobilenetv2).iter().sum::<i64>(), 2_223_872);
        assert_eq!(BackboneKind::Mobilenetv2.out_channels(), 1280);
    }
}
