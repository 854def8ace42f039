//! The model spec of a TorchScript module (`--model-spec spec.toml`): which tasks the module
//! predicts, which of its outputs holds each one, and what input it expects. mtrobust's data and
//! budgets live in its own input space (docs/REFERENCE.md §1.2); the spec says how to turn that into
//! the module's input, so ε stays in grey levels whatever normalisation the module uses.
use crate::data::ChannelOrder;
use crate::error::{Error, Result};
use crate::task::{TaskKind, TaskSpec};
use std::path::Path;

/// A commented example spec (ImageNet-normalised RGB input, dict output).
pub const EXAMPLE: &str = r#"# mtrobust model spec for a TorchScript module.
[input]
channel_order = "rgb"          # channel order the module expects: rgb | bgr
pixel_range = 1.0              # pixels the module expects: 1.0 (0..1) or 255.0 (0..255)
mean = [0.485, 0.456, 0.406]   # subtracted per channel (module order, pixel_range units); default 0
std = [0.229, 0.224, 0.225]    # then divided per channel; default 1

[[task]]
name = "segment_semantic"      # segment_semantic | normal | depth_zbuffer | keypoints2d | edge_texture
channels = 40                  # output channels (segmentation: classes; default 3 for normal, else 1)
output = "seg"                 # dict key, or index into a tuple/list output (default: name / position)

[[task]]
name = "normal"
output = "normal"

[[task]]
name = "depth_zbuffer"
output = "depth"
"#;

/// Where a task's output is in what the module returns.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
#[serde(untagged)]
pub enum OutputKey {
    /// Position in a tuple or list.
    Index(usize),
    /// Key of a dict.
    Key(String),
}

impl std::fmt::Display for OutputKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            OutputKey::Index(i) => write!(f, "output {i}"),
            OutputKey::Key(k) => write!(f, "output \"{k}\""),
        }
    }
}

/// `[input]`: what the module expects.
#[derive(Debug, Clone, PartialEq, serde::Serialize, serde::Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ScriptInput {
    pub channel_order: ChannelOrder,
    /// 1.0 when the module expects pixels in 0..1, 255.0 for 0..255.
    pub pixel_range: f64,
    /// Subtracted per channel, in the module's channel order and pixel range.
    #[serde(default)]
    pub mean: [f64; 3],
    /// Divides per channel after the mean is subtracted.
    #[serde(default = "ones")]
    pub std: [f64; 3],
}

impl ScriptInput {
    /// `x` (in `space`, e.g. the data loaders' reference space) as the module's input:
    /// `(pixel · pixel_range / 255 − mean) / std` per channel in the module's channel order. A
    /// differentiable affine map, so gradients reach `x`; the Python package feeds a live module
    /// the data loaders' batches through the same map.
    pub fn module_input(&self, x: &tch::Tensor, space: &crate::data::InputSpace) -> tch::Tensor {
        let rgb = space.to_rgb_pixels(x);
        let pixels = match self.channel_order {
            ChannelOrder::Rgb => rgb,
            ChannelOrder::Bgr => rgb.flip([1]),
        };
        let per_channel = |v: [f64; 3]| tch::Tensor::from_slice(&v).to_kind(x.kind()).to_device(x.device()).view([1, 3, 1, 1]);
        let gain = per_channel([0, 1, 2].map(|c| self.pixel_range / 255.0 / self.std[c]));
        let offset = per_channel([0, 1, 2].map(|c| -self.mean[c] / self.std[c]));
        pixels * gain + offset
    }
}

fn ones() -> [f64; 3] {
    [1.0; 3]
}

/// `[[task]]`: one task of the module.
#[derive(Debug, Clone, PartialEq, serde::Serialize, serde::Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ScriptTask {
    /// Task id, as `--tasks` spells it (`segment_semantic`, `segm`, `normal`, `depth`, …).
    pub name: String,
    /// Output channels; segmentation: the class count (required). Default 3 for normals, else 1.
    #[serde(default)]
    pub channels: Option<i64>,
    /// Which output; default: the task's full name for a dict, its position for a tuple or list.
    #[serde(default)]
    pub output: Option<OutputKey>,
}

/// A TorchScript module's spec, as written.
#[derive(Debug, Clone, PartialEq, serde::Serialize, serde::Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ScriptSpec {
    pub input: ScriptInput,
    #[serde(rename = "task", default)]
    pub tasks: Vec<ScriptTask>,
}

/// A spec checked and resolved: the model's tasks in spec order, each with its output.
#[derive(Debug, Clone, PartialEq)]
pub struct ResolvedSpec {
    pub spec: ScriptSpec,
    pub tasks: Vec<TaskSpec>,
    /// Per task (same order): the key given, if any.
    pub outputs: Vec<Option<OutputKey>>,
}

impl ScriptSpec {
    /// Reads and checks a spec file.
    ///
    /// # Errors
    /// An unreadable file, invalid TOML, an unknown key, or a problem [`ScriptSpec::resolve`] finds;
    /// every message names the file.
    pub fn read(path: &Path) -> Result<ResolvedSpec> {
        let text = std::fs::read_to_string(path).map_err(|e| Error::io(path, e))?;
        let spec: ScriptSpec = toml::from_str(&text)
            .map_err(|e| Error::data(path, format!("not a model spec: {}\n(an example spec:)\n{EXAMPLE}", e.to_string().trim_end())))?;
        spec.resolve().map_err(|e| match e {
            Error::Config { name, reason } => Error::data(path, format!("{name}: {reason}")),
            e => e,
        })
    }

    /// Checks the spec: known, distinct tasks with valid channel counts, distinct outputs, a
    /// finite input transform.
    ///
    /// # Errors
    /// The first problem, naming its `[[task]]` entry or `[input]` field.
    pub fn resolve(self) -> Result<ResolvedSpec> {
        let i = &self.input;
        if !(i.pixel_range.is_finite() && i.pixel_range > 0.0) {
            return Err(Error::config("[input] pixel_range", format!("{} is not a pixel range; use 1.0 or 255.0", i.pixel_range)));
        }
        if i.mean.iter().any(|m| !m.is_finite()) {
            return Err(Error::config("[input] mean", "must be three finite numbers"));
        }
        if i.std.iter().any(|s| !(s.is_finite() && *s > 0.0)) {
            return Err(Error::config("[input] std", format!("{:?}: each must be a finite number > 0", i.std)));
        }
        if self.tasks.is_empty() {
            return Err(Error::config("spec", "no [[task]] entry; add one per task output, e.g. `name = \"depth_zbuffer\"`"));
        }
        if self.tasks.len() > 16 {
            return Err(Error::config("spec", "at most 16 tasks are supported"));
        }
        let mut tasks: Vec<TaskSpec> = Vec::new();
        for (n, t) in self.tasks.iter().enumerate() {
            let at = format!("[[task]] #{} (`{}`)", n + 1, t.name);
            let kind: TaskKind = t.name.parse().map_err(|e: String| Error::config(&at, e))?;
            if tasks.iter().any(|s| s.kind == kind) {
                return Err(Error::config(&at, format!("task `{kind}` is listed twice")));
            }
            let channels = match (kind, t.channels) {
                (TaskKind::SegmentSemantic, None) => {
                    return Err(Error::config(&at, "segmentation needs its class count: `channels = 40`"));
                }
                (TaskKind::SegmentSemantic, Some(c)) if c < 2 => {
                    return Err(Error::config(&at, format!("`channels = {c}`: segmentation needs at least 2 classes")));
                }
                (TaskKind::SegmentSemantic, Some(c)) => c,
                (_, c) => {
                    let usual = TaskSpec::new(kind, None)?.channels;
                    if c.is_some_and(|c| c != usual) {
                        return Err(Error::config(
                            &at,
                            format!("`{kind}` outputs have {usual} channel(s); remove `channels` or set it to {usual}"),
                        ));
                    }
                    usual
                }
            };
            if let Some(o) = &t.output
                && let Some(m) = self.tasks[..n].iter().position(|p| p.output.as_ref() == Some(o))
            {
                return Err(Error::config(&at, format!("{o} is already task #{}'s", m + 1)));
            }
            tasks.push(TaskSpec { kind, channels });
        }
        let outputs = self.tasks.iter().map(|t| t.output.clone()).collect();
        Ok(ResolvedSpec { spec: self, tasks, outputs })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(text: &str) -> Result<ResolvedSpec> {
        toml::from_str::<ScriptSpec>(text).map_err(|e| Error::config("toml", e.to_string()))?.resolve()
    }

    const INPUT: &str = "[input]\nchannel_order = \"bgr\"\npixel_range = 255.0\n";

    #[test]
    fn the_example_resolves_to_the_nyuv2_tasks() {
        let r = parse(EXAMPLE).unwrap();
        assert_eq!(r.tasks, crate::task::nyuv2_tasks());
        assert_eq!(r.outputs[0], Some(OutputKey::Key("seg".into())));
        assert_eq!(r.spec.input.std, [0.229, 0.224, 0.225]);
    }

    #[test]
    fn defaults_aliases_and_indices() {
        let r = parse(&format!("{INPUT}[[task]]\nname = \"depth\"\noutput = 1\n[[task]]\nname = \"norm\"\n")).unwrap();
        assert_eq!(r.tasks, vec![TaskSpec { kind: TaskKind::DepthZbuffer, channels: 1 }, TaskSpec { kind: TaskKind::Normal, channels: 3 }]);
        assert_eq!(r.outputs, vec![Some(OutputKey::Index(1)), None]);
        assert_eq!((r.spec.input.mean, r.spec.input.std), ([0.0; 3], [1.0; 3]));
    }

    #[test]
    fn bad_specs_name_the_entry_and_the_fix() {
        let err = |tasks: &str| parse(&format!("{INPUT}{tasks}")).unwrap_err().to_string();
        assert!(err("[[task]]\nname = \"sky\"\n").contains("[[task]] #1 (`sky`): unknown task `sky`"));
        assert!(err("[[task]]\nname = \"segm\"\n").contains("class count"));
        assert!(
            err("[[task]]\nname = \"depth\"\n[[task]]\nname = \"depth_zbuffer\"\n")
                .contains("#2 (`depth_zbuffer`): task `depth_zbuffer` is listed twice")
        );
        assert!(err("[[task]]\nname = \"normal\"\nchannels = 2\n").contains("3 channel(s)"));
        assert!(
            err("[[task]]\nname = \"depth\"\noutput = \"a\"\n[[task]]\nname = \"edge\"\noutput = \"a\"\n")
                .contains("output \"a\" is already task #1's")
        );
        assert!(err("").contains("no [[task]]"));
        let bad_std = "[input]\nchannel_order = \"rgb\"\npixel_range = 1.0\nstd = [1.0, 0.0, 1.0]\n[[task]]\nname = \"depth\"\n";
        assert!(parse(bad_std).unwrap_err().to_string().contains("[input] std"));
        assert!(
            parse("[input]\nchannel_order = \"rgb\"\npixel_range = 1.0\nscale = 2\n")
                .unwrap_err()
                .to_string()
                .contains("unknown field `scale`")
        );
    }
}
