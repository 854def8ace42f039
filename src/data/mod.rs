//! Data: the sample and batch types every dataset yields, the input space, and (later) the
//! dataset readers and the procedural scene generator.
pub mod batch;
pub mod input_space;
pub mod raw;
pub mod source;

pub use batch::{Batch, Target};
pub use input_space::{ChannelOrder, InputSpace};
pub use raw::{Dense, RawSample, RawTarget};
pub use source::{BatchSource, InMemory};
