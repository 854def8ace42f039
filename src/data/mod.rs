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

pub use crate::task::Target;
pub use batch::{Batch, read_npy, write_npy};
pub use input_space::{ChannelOrder, InputSpace};
pub use loader::Loader;
pub use open::{Dataset, Format, Sizes, open};
pub use raw::{Dense, RawSample, RawTarget};
pub use reader::{Mode, Reader};
pub use source::{BatchSource, Cached, InMemory, InMemorySamples, SampleSource};
