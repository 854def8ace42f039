//! `MTSeqModel` names (docs/REFERENCE.md §2.6): each block copy is a `ComputeBlock` whose
//! `compute_nodes.{j}` are the prototxt layers of the block in file order, parameter-free ReLU,
//! pooling and add nodes included; a layer's module is its `basicOp`. Node lists, from the
//! reference prototxts:
//! - ResNet stem: [conv, BN, ReLU, MaxPool];
//! - BasicBlock: [conv1, BN1, ReLU, conv2, BN2, Add, ReLU], with the shortcut's [conv, BN] first
//!   when it has one;
//! - MobileNetV2 conv+BN(+ReLU) pieces: [conv, BN(, ReLU)]; residual bottleneck:
//!   [conv, BN, ReLU, dw-conv, BN, ReLU, conv, BN, Add].
use super::Pairs;
use crate::model::backbone::BlockSpec;

fn node(j: usize) -> String {
    format!("compute_nodes.{j}.basicOp")
}

/// Adds the pairs of one block copy.
pub(super) fn block(spec: &BlockSpec, p: &mut Pairs) {
    match *spec {
        BlockSpec::Stem { .. } | BlockSpec::ConvBn { .. } => {
            p.conv("conv", &node(0));
            p.bn("bn", &node(1));
        }
        BlockSpec::Basic { downsample, .. } => {
            let first = if downsample {
                p.conv("downsample.conv", &node(0));
                p.bn("downsample.bn", &node(1));
                2
            } else {
                0
            };
            p.conv("conv1", &node(first));
            p.bn("bn1", &node(first + 1));
            p.conv("conv2", &node(first + 3));
            p.bn("bn2", &node(first + 4));
        }
        BlockSpec::Residual { .. } => {
            for (j, part) in ["expand", "depthwise", "project"].iter().enumerate() {
                p.conv(&format!("{part}.conv"), &node(3 * j));
                p.bn(&format!("{part}.bn"), &node(3 * j + 1));
            }
        }
    }
}
