//! The five dense prediction tasks mtrobust knows, with the names the reference code and the
//! Taskonomy/NYUv2 file layouts use (docs/REFERENCE.md §1.1).
use std::fmt;
use std::str::FromStr;

/// One dense prediction task.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum TaskKind {
    /// Semantic segmentation (per-pixel class logits).
    SegmentSemantic,
    /// Surface normals (a 3-vector per pixel, normalised inside loss and metric).
    Normal,
    /// Depth (one real value per pixel).
    DepthZbuffer,
    /// 2-D keypoint heat map (one real value per pixel).
    Keypoints2d,
    /// Texture edges (one real value per pixel).
    EdgeTexture,
}

impl TaskKind {
    /// All tasks in Taskonomy order (ids 0..4).
    pub const ALL: [TaskKind; 5] =
        [TaskKind::SegmentSemantic, TaskKind::Normal, TaskKind::DepthZbuffer, TaskKind::Keypoints2d, TaskKind::EdgeTexture];

    /// The full name used in file layouts and reports (`segment_semantic`, ...).
    pub fn name(self) -> &'static str {
        match self {
            TaskKind::SegmentSemantic => "segment_semantic",
            TaskKind::Normal => "normal",
            TaskKind::DepthZbuffer => "depth_zbuffer",
            TaskKind::Keypoints2d => "keypoints2d",
            TaskKind::EdgeTexture => "edge_texture",
        }
    }

    /// The four-letter abbreviation the reference CSVs and the paper use (`segm`, `norm`, ...).
    pub fn short(self) -> &'static str {
        &self.name()[..4]
    }

    /// The paper's column name: `Segm`, `Norm`, `Dept`, `Keyp`, `Edge`.
    pub fn display_short(self) -> &'static str {
        match self {
            TaskKind::SegmentSemantic => "Segm",
            TaskKind::Normal => "Norm",
            TaskKind::DepthZbuffer => "Dept",
            TaskKind::Keypoints2d => "Keyp",
            TaskKind::EdgeTexture => "Edge",
        }
    }

    /// The position in Taskonomy order ([`TaskKind::ALL`]).
    pub fn index(self) -> usize {
        self as usize
    }
}

impl fmt::Display for TaskKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

impl FromStr for TaskKind {
    type Err = String;

    /// Accepts the full name, the four-letter abbreviation, or a common alias
    /// (`seg`, `segmentation`, `normals`, `depth`, `keypoints`, `edges`, `edge`).
    fn from_str(s: &str) -> Result<Self, String> {
        let s = s.trim().to_ascii_lowercase();
        let kind = match s.as_str() {
            "segment_semantic" | "segm" | "seg" | "segmentation" | "semseg" => TaskKind::SegmentSemantic,
            "normal" | "norm" | "normals" => TaskKind::Normal,
            "depth_zbuffer" | "dept" | "depth" => TaskKind::DepthZbuffer,
            "keypoints2d" | "keyp" | "keypoints" => TaskKind::Keypoints2d,
            "edge_texture" | "edge" | "edges" => TaskKind::EdgeTexture,
            _ => {
                return Err(format!(
                    "unknown task `{s}`; known tasks: segment_semantic (segm), normal (norm), \
                     depth_zbuffer (dept), keypoints2d (keyp), edge_texture (edge)"
                ));
            }
        };
        Ok(kind)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_and_aliases_round_trip() {
        for t in TaskKind::ALL {
            assert_eq!(t.name().parse::<TaskKind>().unwrap(), t);
            assert_eq!(t.short().parse::<TaskKind>().unwrap(), t);
        }
        assert_eq!(TaskKind::DepthZbuffer.short(), "dept");
        assert!("colour".parse::<TaskKind>().unwrap_err().contains("unknown task `colour`"));
    }
}
