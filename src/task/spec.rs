//! Which tasks a model predicts and with how many output channels: `--tasks nyuv2`,
//! `--tasks taskonomy`, or an explicit list such as `segm:10,normal,depth`.
use super::TaskKind;
use crate::error::{Error, Result};

/// One task of a model and the number of channels its head outputs.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct TaskSpec {
    pub kind: TaskKind,
    pub channels: i64,
}

impl TaskSpec {
    /// A task with its usual channel count (3 for normals, 1 for depth/keypoints/edges);
    /// segmentation needs a class count.
    pub fn new(kind: TaskKind, seg_classes: Option<i64>) -> Result<Self> {
        let channels = match kind {
            TaskKind::SegmentSemantic => {
                seg_classes.ok_or_else(|| Error::parameter("tasks", "segmentation needs a class count, e.g. `segm:40`"))?
            }
            TaskKind::Normal => 3,
            _ => 1,
        };
        Ok(TaskSpec { kind, channels })
    }
}

/// The NYUv2 task list of the reference (docs/REFERENCE.md §1.1): segmentation (40), normals, depth.
pub fn nyuv2_tasks() -> Vec<TaskSpec> {
    vec![
        TaskSpec { kind: TaskKind::SegmentSemantic, channels: 40 },
        TaskSpec { kind: TaskKind::Normal, channels: 3 },
        TaskSpec { kind: TaskKind::DepthZbuffer, channels: 1 },
    ]
}

/// The Taskonomy task list of the reference (docs/REFERENCE.md §1.1) with `seg_classes` classes (17 there).
pub fn taskonomy_tasks(seg_classes: i64) -> Vec<TaskSpec> {
    vec![
        TaskSpec { kind: TaskKind::SegmentSemantic, channels: seg_classes },
        TaskSpec { kind: TaskKind::Normal, channels: 3 },
        TaskSpec { kind: TaskKind::DepthZbuffer, channels: 1 },
        TaskSpec { kind: TaskKind::Keypoints2d, channels: 1 },
        TaskSpec { kind: TaskKind::EdgeTexture, channels: 1 },
    ]
}

/// Parses `nyuv2`, `taskonomy` or a comma-separated list like `segm:17,normal,depth,keyp,edge`.
///
/// # Errors
/// Unknown or repeated tasks, a segmentation task without a class count, or an empty list.
pub fn parse_tasks(text: &str) -> Result<Vec<TaskSpec>> {
    let bad = |reason: String| Error::parameter("tasks", reason);
    match text.trim() {
        "nyuv2" => return Ok(nyuv2_tasks()),
        "taskonomy" => return Ok(taskonomy_tasks(17)),
        _ => {}
    }
    let mut tasks: Vec<TaskSpec> = Vec::new();
    for item in text.split(',').map(str::trim).filter(|s| !s.is_empty()) {
        let (name, count) = match item.split_once(':') {
            Some((n, c)) => {
                let c: i64 = c.trim().parse().map_err(|_| bad(format!("`{item}`: `{c}` is not a class count")))?;
                if c < 2 {
                    return Err(bad(format!("`{item}`: a segmentation task needs at least 2 classes")));
                }
                (n, Some(c))
            }
            None => (item, None),
        };
        let kind: TaskKind = name.parse().map_err(bad)?;
        if count.is_some() && kind != TaskKind::SegmentSemantic {
            return Err(bad(format!("`{item}`: only segmentation takes a class count")));
        }
        if tasks.iter().any(|t| t.kind == kind) {
            return Err(bad(format!("task `{kind}` is listed twice")));
        }
        tasks.push(TaskSpec::new(kind, count)?);
    }
    if tasks.is_empty() {
        return Err(bad("no task given; use e.g. `nyuv2`, `taskonomy` or `segm:10,normal,depth`".into()));
    }
    if tasks.len() > 16 {
        return Err(bad("at most 16 tasks are supported".into()));
    }
    Ok(tasks)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn presets_and_lists_parse() {
        assert_eq!(parse_tasks("nyuv2").unwrap(), nyuv2_tasks());
        assert_eq!(parse_tasks("taskonomy").unwrap().len(), 5);
        let t = parse_tasks("segm:10, depth,normal").unwrap();
        assert_eq!(t[0], TaskSpec { kind: TaskKind::SegmentSemantic, channels: 10 });
        assert_eq!(t[1].kind, TaskKind::DepthZbuffer);
        assert_eq!(t[2].channels, 3);
    }

    #[test]
    fn bad_lists_are_rejected_with_reasons() {
        assert!(parse_tasks("segm").unwrap_err().to_string().contains("class count"));
        assert!(parse_tasks("depth,depth").unwrap_err().to_string().contains("twice"));
        assert!(parse_tasks("depth:3").unwrap_err().to_string().contains("only segmentation"));
        assert!(parse_tasks("sky").unwrap_err().to_string().contains("unknown task"));
        assert!(parse_tasks(" , ").is_err());
    }
}
