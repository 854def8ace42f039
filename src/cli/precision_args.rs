//! `--precision` and `--channels-last`, shared by attack, eval, study, train and bench.
use clap::{Args, ValueEnum};
use mtrobust::model::{Model, Precision};

/// How the network computes.
#[derive(Debug, Clone, Args)]
pub struct PrecisionArgs {
    /// fp32 (libtorch's defaults: exact on CPU, TF32 cuDNN convolutions on CUDA), tf32 (TF32 matmuls too), or
    /// bf16 (autocast over forward and backward; losses, objective, adversarial input, projection
    /// and clip stay fp32). Not fp32: part of a run's identity.
    #[arg(long, value_enum, default_value_t = Precision::Fp32)]
    pub precision: Precision,
    /// Channels-last memory format: auto (on for CUDA, where cuDNN's NHWC kernels are faster),
    /// on, off. Same values either way.
    #[arg(long, value_enum, default_value_t = ChannelsLast::Auto)]
    pub channels_last: ChannelsLast,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum ChannelsLast {
    Auto,
    On,
    Off,
}

impl PrecisionArgs {
    /// Sets the precision and memory format on a loaded model.
    pub fn apply(&self, model: &mut Model) -> anyhow::Result<()> {
        model.set_precision(self.precision)?;
        let on = match self.channels_last {
            ChannelsLast::Auto => matches!(model.device(), tch::Device::Cuda(_)),
            ChannelsLast::On => true,
            ChannelsLast::Off => false,
        };
        model.set_channels_last(on);
        Ok(())
    }
}
