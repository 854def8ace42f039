//! The tensor form of samples: one `Batch` type for every dataset (input plus, per task, a
//! target and a validity mask), so losses and metrics never special-case a dataset.
use super::raw::{Dense, RawSample};
use crate::error::{Error, Result};
use crate::task::{Target, TaskKind, TaskMap};
use tch::{Device, Kind, Tensor};

/// A batch of preprocessed inputs and their per-task targets.
#[derive(Debug)]
pub struct Batch {
    /// `[B, 3, H, W]` float in the model's input space.
    pub x: Tensor,
    /// One target per task.
    pub targets: TaskMap<Target>,
    /// The sample names, in batch order.
    pub names: Vec<String>,
}

impl Batch {
    /// Number of samples.
    pub fn len(&self) -> usize {
        self.names.len()
    }

    /// True when the batch holds no sample.
    pub fn is_empty(&self) -> bool {
        self.names.is_empty()
    }

    /// Stacks raw samples into a batch on `device`, keeping only `tasks` (in that order).
    ///
    /// # Errors
    /// Samples of different sizes, or a sample without one of the requested tasks.
    pub fn from_raw(samples: &[RawSample], tasks: &[TaskKind], device: Device) -> Result<Batch> {
        let first = samples.first().ok_or_else(|| Error::config("batch", "no samples to stack"))?;
        let (h, w) = (first.input.height, first.input.width);
        for s in samples {
            if (s.input.height, s.input.width) != (h, w) || s.input.channels != 3 {
                return Err(Error::shape(
                    format!("input of sample {}", s.name),
                    [3, h, w],
                    [s.input.channels, s.input.height, s.input.width],
                ));
            }
        }
        let x = stack(samples.iter().map(|s| &s.input)).to_device(device);
        let mut targets = TaskMap::new();
        for &kind in tasks {
            let mut values = Vec::with_capacity(samples.len());
            let mut valids = Vec::with_capacity(samples.len());
            for s in samples {
                let (_, t) = s
                    .targets
                    .iter()
                    .find(|(k, _)| *k == kind)
                    .ok_or_else(|| Error::config("tasks", format!("sample {} has no `{kind}` label", s.name)))?;
                if (t.value.height, t.value.width) != (h, w) || (t.valid.height, t.valid.width) != (h, w) {
                    return Err(Error::shape(format!("`{kind}` label of sample {}", s.name), [h, w], [t.value.height, t.value.width]));
                }
                values.push(&t.value);
                valids.push(&t.valid);
            }
            let value = stack(values.into_iter()).to_device(device);
            let valid = stack_u8(valids.into_iter()).to_device(device);
            targets.insert(kind, Target { value, valid });
        }
        Ok(Batch { x, targets, names: samples.iter().map(|s| s.name.clone()).collect() })
    }

    /// The batch on `device`.
    pub fn to_device(&self, device: Device) -> Batch {
        Batch { x: self.x.to_device(device), targets: self.targets.map(|_, t| t.to_device(device)), names: self.names.clone() }
    }
}

/// `[C, H, W]` arrays → `[N, C, H, W]` float tensor.
fn stack<'a>(items: impl Iterator<Item = &'a Dense<f32>>) -> Tensor {
    let items: Vec<&Dense<f32>> = items.collect();
    let (c, h, w) = (items[0].channels, items[0].height, items[0].width);
    let mut data = Vec::with_capacity(items.len() * c * h * w);
    for d in &items {
        data.extend_from_slice(&d.data);
    }
    Tensor::from_slice(&data).view([items.len() as i64, c as i64, h as i64, w as i64])
}

/// `[1, H, W]` masks → `[N, 1, H, W]` float 0/1 tensor.
fn stack_u8<'a>(items: impl Iterator<Item = &'a Dense<u8>>) -> Tensor {
    let items: Vec<&Dense<u8>> = items.collect();
    let (h, w) = (items[0].height, items[0].width);
    let data: Vec<f32> = items.iter().flat_map(|d| d.data.iter().map(|&v| if v != 0 { 1.0 } else { 0.0 })).collect();
    Tensor::from_slice(&data).view([items.len() as i64, 1, h as i64, w as i64]).to_kind(Kind::Float)
}

/// Writes a float tensor as a little-endian float32 `.npy` file of the same shape (e.g. a batch of
/// adversarial inputs `[B, 3, H, W]` in the model's input space).
///
/// # Errors
/// I/O failures.
pub fn write_npy(path: &std::path::Path, t: &Tensor) -> Result<()> {
    let shape: Vec<usize> = t.size().iter().map(|&d| d as usize).collect();
    let data = Vec::<f32>::try_from(t.detach().to_kind(Kind::Float).to_device(Device::Cpu).flatten(0, -1))
        .map_err(|e| Error::context(format!("{}: cannot convert the tensor", path.display()), e))?;
    super::codec::write_npy_f32(path, &shape, &data)
}

/// Reads a float32/float64 `.npy` file as a float tensor.
///
/// # Errors
/// A missing or malformed file.
pub fn read_npy(path: &std::path::Path) -> Result<Tensor> {
    let a = super::codec::read_npy_f32(path)?;
    let shape = a.shape.iter().map(|&d| i64::try_from(d)).collect::<std::result::Result<Vec<i64>, _>>();
    let shape =
        shape.map_err(|_| Error::data(path, format!("its shape {:?} has a dimension beyond 2^63; the header is corrupt", a.shape)))?;
    Ok(Tensor::from_slice(&a.data).f_view(shape.as_slice())?)
}
