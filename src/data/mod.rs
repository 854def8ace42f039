//! Data: the sample and batch types every dataset yields, the input space, the NYUv2 and
//! Tiny-Taskonomy readers, the loader, and the procedural scene generator.
//!
//! ```
//! use mtrobust::data::{BatchSource, Loader, Mode, Sizes, open};
//! use mtrobust::data::synth::export::{SynthOptions, write_dataset};
//! use mtrobust::task::TaskKind;
//!
//! let dir = std::env::temp_dir().join(format!("mtrobust-doc-data-{}", std::process::id()));
//! # let _ = std::fs::remove_dir_all(&dir);
//! let opts = SynthOptions { n: 10, size: 16, seed: 7, test_fraction: 0.2 };
//! write_dataset(&dir, &opts, &mut mtrobust::observe::Silent)?;
//! let test = open(&dir, "test", Mode::Test, Sizes::default())?;
//! let loader = Loader::new(test, vec![TaskKind::SegmentSemantic, TaskKind::DepthZbuffer], 4, None)?;
//! let batch = loader.batch(0, tch::Device::Cpu)?;
//! assert_eq!(batch.x.size(), [2, 3, 16, 16]); // the two test scenes, RGB
//! assert_eq!(batch.targets.get(TaskKind::DepthZbuffer).unwrap().value.size(), [2, 1, 16, 16]);
//! # std::fs::remove_dir_all(&dir).unwrap();
//! # Ok::<(), mtrobust::Error>(())
//! ```
pub mod batch;
pub(crate) mod codec;
pub mod input_space;
pub mod loader;
pub mod nyuv2;
pub mod open;
pub mod raw;
pub mod reader;
pub mod source;
pub mod synth;
pub mod taskonomy;
pub mod transform;

pub use crate::task::Target;
pub use batch::{Batch, read_npy, write_npy};
pub use input_space::{ChannelOrder, InputSpace};
pub use loader::Loader;
pub use open::{Dataset, Format, Sizes, open};
pub use raw::{Dense, RawSample, RawTarget};
pub use reader::{Mode, Reader};
pub use source::{BatchSource, Cached, InMemory, InMemorySamples, SampleSource};
