//! PyTorch's `torch.save` format without Python: a zip archive holding a pickle and the raw tensor
//! storages. [`read_state_dict`] reads state dicts (bare, or under `state_dict` in a training
//! checkpoint, or a safetensors file); [`write_state_dict`] writes one `torch.load` reads.
pub mod pickle;
mod read;
mod write;

pub use read::{Archive, is_zip, read_state_dict};
pub use write::write_state_dict;
