//! Data: the sample and batch types every dataset yields, the input space, the NYUv2 and
//! Tiny-Taskonomy readers, the loader, and the procedural scene generator.
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

pub use batch::{read_npy, write_npy, Batch, Target};
pub use input_space::{ChannelOrder, InputSpace};
pub use raw::{Dense, RawSample, RawTarget};
pub use reader::{Mode, Reader};
pub use loader::Loader;
pub use open::{open, Dataset, Format, Sizes};
pub use source::{BatchSource, InMemory, InMemorySamples, SampleSource};
