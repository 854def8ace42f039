//! `Deeplab_ASPP_Layout` names (docs/REFERENCE.md §2.6): each block copy is a `LayoutBlock` whose
//! `residual_block` is the stem `Sequential(conv, BN, ReLU, MaxPool)` (`residual_block.0`/`.1`) or a
//! `ResidualBlock` with `block.{conv1,bn1,conv2,bn2}` and the shortcut `ds.{0,1}` (conv, BN).
use super::Pairs;
use crate::model::backbone::BlockSpec;

/// Adds the pairs of one block copy; MobileNetV2 blocks have no Deeplab names.
pub(super) fn block(spec: &BlockSpec, p: &mut Pairs) -> Result<(), String> {
    match *spec {
        BlockSpec::Stem { .. } => {
            p.conv("conv", "residual_block.0");
            p.bn("bn", "residual_block.1");
        }
        BlockSpec::Basic { downsample, .. } => {
            p.conv("conv1", "residual_block.block.conv1");
            p.bn("bn1", "residual_block.block.bn1");
            p.conv("conv2", "residual_block.block.conv2");
            p.bn("bn2", "residual_block.block.bn2");
            if downsample {
                p.conv("downsample.conv", "residual_block.ds.0");
                p.bn("downsample.bn", "residual_block.ds.1");
            }
        }
        BlockSpec::ConvBn { .. } | BlockSpec::Residual { .. } => {
            return Err("Deeplab_ASPP_Layout keys exist only for ResNet blocks".into());
        }
    }
    Ok(())
}
