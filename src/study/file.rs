//! The study file (TOML): one `[data]` table, `[[model]]` entries (a checkpoint path or glob, or
//! TorchScript modules with their model spec), `[[attack]]` blocks, each a step rule with its
//! parameters × directions × ε × norms × seeds, and `[[ensemble]]` blocks, each a per-sample worst
//! case over several attacks × ε × norms × seeds.
//! Unknown keys are errors that name the key and its line.
use crate::attack::{Member, Norm, Reduction, Rule};
use crate::error::{Error, Result};
use crate::job::DataSpec;
use crate::model::{ModelSource, Precision};
use crate::task::{Convention, MetricProfile};
use std::path::{Path, PathBuf};

/// The paper's ε grid in grey levels: 1–9, 10, 12, 14, 16.
pub const PAPER_EPS: [f64; 13] = [1.0, 2.0, 3.0, 4.0, 5.0, 6.0, 7.0, 8.0, 9.0, 10.0, 12.0, 14.0, 16.0];

/// A whole study.
#[derive(Debug, Clone, PartialEq, serde::Serialize, serde::Deserialize)]
#[serde(deny_unknown_fields)]
pub struct StudyFile {
    /// `auto`, `cpu`, `cuda` or `cuda:N` (the command line's `--device` wins when given).
    #[serde(default)]
    pub device: Option<String>,
    pub data: StudyData,
    /// Empty only when the caller adds models of its own ([`super::plan_with`]).
    #[serde(rename = "model", default)]
    pub models: Vec<ModelEntry>,
    #[serde(rename = "attack", default)]
    pub attacks: Vec<AttackBlock>,
    #[serde(rename = "ensemble", default)]
    pub ensembles: Vec<EnsembleBlock>,
}

/// `[data]`: the data every model is attacked on, and how metrics are computed. It repeats
/// [`DataSpec`]'s fields instead of flattening it because serde cannot combine `flatten` with
/// `deny_unknown_fields`, and unknown keys must be errors; [`StudyData::spec`] converts.
#[derive(Debug, Clone, PartialEq, serde::Serialize, serde::Deserialize)]
#[serde(deny_unknown_fields)]
pub struct StudyData {
    /// Dataset directory.
    pub path: PathBuf,
    #[serde(default = "test_split")]
    pub split: String,
    #[serde(default)]
    pub limit: Option<usize>,
    #[serde(default = "sixteen")]
    pub batch_size: usize,
    #[serde(default)]
    pub resize: Option<usize>,
    #[serde(default)]
    pub crop: Option<usize>,
    /// `full` or `taskonomy` (default: the data's own).
    #[serde(default)]
    pub metrics: Option<MetricProfile>,
    #[serde(default)]
    pub convention: Convention,
    /// `fp32` (default), `tf32` or `bf16` (see [`Precision`]); not fp32: part of every cell's identity.
    #[serde(default, skip_serializing_if = "is_fp32")]
    pub precision: Precision,
}

fn is_fp32(p: &Precision) -> bool {
    p.is_default()
}

impl StudyData {
    /// A cell identity with the precision folded in when it is not fp32 (fp32 cells keep the
    /// identities they had before `precision` existed, so stored results stay valid).
    pub fn cell_identity(&self, id: String) -> String {
        if self.precision.is_default() { id } else { crate::digest::json_digest(&(id, self.precision)) }
    }
}

/// `[[model]]`: a checkpoint, or a glob matching several.
#[derive(Debug, Clone, PartialEq, serde::Serialize, serde::Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ModelEntry {
    /// `.safetensors` path or glob, relative to the study file; or TorchScript modules with `spec`.
    pub path: String,
    /// The model spec of a TorchScript module (`path`), relative to the study file.
    #[serde(default)]
    pub spec: Option<PathBuf>,
    /// Display name (default: the checkpoint's folder name; with a glob, used as a prefix).
    #[serde(default)]
    pub name: Option<String>,
}

/// `[[attack]]`: one step rule with its parameters (`rule = "pgd"`, `n_iter = 10`, …: the fields
/// of [`Rule`], whose defaults apply), crossed with directions × ε × norms × seeds. A key the
/// rule does not read is an error.
#[derive(Debug, Clone, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct AttackBlock {
    #[serde(flatten)]
    pub rule: Rule,
    /// `single:<task>`, `total`, `sign-total`, `gbmta`, `weighted:…`, or `all` (every Single-x,
    /// Total, SignTotal and GB-MTA of each model).
    #[serde(default = "all_directions")]
    pub directions: Vec<String>,
    /// Budgets in grey levels (default: the paper's grid).
    #[serde(default = "paper_eps")]
    pub eps: Vec<f64>,
    #[serde(default = "linf")]
    pub norms: Vec<Norm>,
    #[serde(default = "seed_zero")]
    pub seeds: Vec<u64>,
    #[serde(default)]
    pub reduction: Reduction,
}

/// `[[ensemble]]`: the per-sample worst case over several attacks (see [`crate::attack::Ensemble`]),
/// × ε × norms × seeds. Either `name = "standard"` (the default: APGD along GB-MTA, Total and each
/// of the model's Single-x, then Square along GB-MTA, with `n_iter` and `n_queries`), or a name of
/// yours with `[[ensemble.member]]` tables, each a rule with its parameters and a `direction`.
#[derive(Debug, Clone, PartialEq, serde::Serialize, serde::Deserialize)]
#[serde(deny_unknown_fields)]
pub struct EnsembleBlock {
    #[serde(default = "standard")]
    pub name: String,
    #[serde(rename = "member", default)]
    pub members: Vec<Member>,
    /// `standard`: the APGD members' iterations (default 100).
    #[serde(default)]
    pub n_iter: Option<usize>,
    /// `standard`: the Square member's queries (default 5000).
    #[serde(default)]
    pub n_queries: Option<usize>,
    /// Which member's example each sample keeps: the highest per-sample objective of this
    /// direction (`gbmta`: the balanced relative loss increase; `single:<task>`: that task's loss).
    #[serde(default = "gbmta")]
    pub score: String,
    #[serde(default = "paper_eps")]
    pub eps: Vec<f64>,
    #[serde(default = "linf")]
    pub norms: Vec<Norm>,
    #[serde(default = "seed_zero")]
    pub seeds: Vec<u64>,
    #[serde(default)]
    pub reduction: Reduction,
}

impl EnsembleBlock {
    /// The ensemble for a model predicting `tasks`.
    ///
    /// # Errors
    /// `standard` with members of its own, another name without members, or `n_iter`/`n_queries`
    /// beside members that carry their own.
    pub fn ensemble(&self, tasks: &[crate::task::TaskKind]) -> Result<crate::attack::Ensemble> {
        use crate::attack::step::{STANDARD_N_ITER, STANDARD_N_QUERIES};
        match (self.name.as_str(), self.members.is_empty()) {
            ("standard", true) => Ok(crate::attack::Ensemble::standard(
                tasks,
                self.n_iter.unwrap_or(STANDARD_N_ITER),
                self.n_queries.unwrap_or(STANDARD_N_QUERIES),
            )),
            ("standard", false) => Err(Error::parameter(
                "name",
                "`standard` is the built-in list of members; give an ensemble with [[ensemble.member]] tables a name of its own",
            )),
            (_, true) => Err(Error::parameter(
                "member",
                format!("ensemble `{}` has no [[ensemble.member]] table; add members, or use name = \"standard\"", self.name),
            )),
            (_, false) => match (self.n_iter, self.n_queries) {
                (Some(_), _) => {
                    Err(Error::parameter("n_iter", "is read by the `standard` ensemble only; set it in each [[ensemble.member]]"))
                }
                (_, Some(_)) => {
                    Err(Error::parameter("n_queries", "is read by the `standard` ensemble only; set it in each [[ensemble.member]]"))
                }
                _ => Ok(crate::attack::Ensemble { name: self.name.clone(), members: self.members.clone() }),
            },
        }
    }
}

fn standard() -> String {
    "standard".into()
}
fn gbmta() -> String {
    "gbmta".into()
}

impl StudyData {
    /// The data as a job reads it.
    pub fn spec(&self) -> DataSpec {
        DataSpec {
            path: self.path.clone(),
            split: self.split.clone(),
            limit: self.limit,
            batch_size: self.batch_size,
            resize: self.resize,
            crop: self.crop,
        }
    }
}

fn test_split() -> String {
    "test".into()
}
fn sixteen() -> usize {
    16
}
fn all_directions() -> Vec<String> {
    vec!["all".into()]
}
fn paper_eps() -> Vec<f64> {
    PAPER_EPS.to_vec()
}
fn linf() -> Vec<Norm> {
    vec![Norm::Linf]
}
fn seed_zero() -> Vec<u64> {
    vec![0]
}

impl StudyFile {
    /// Reads and parses a study file; relative paths in it are resolved against its folder.
    ///
    /// # Errors
    /// An unreadable file, invalid TOML, an unknown key (named, with its line), or empty lists.
    pub fn read(path: &Path) -> Result<StudyFile> {
        Self::read_with(path, true)
    }

    /// [`StudyFile::read`], without requiring a `[[model]]` entry when `models_required` is
    /// false: the caller then adds live models ([`super::plan_with`]).
    ///
    /// # Errors
    /// See [`StudyFile::read`].
    pub fn read_with(path: &Path, models_required: bool) -> Result<StudyFile> {
        let text = std::fs::read_to_string(path).map_err(|e| Error::io(path, e))?;
        let mut study = StudyFile::parse_with(&text, models_required).map_err(|e| match e {
            Error::Config { name, reason } if name == "study" => Error::data(path, reason),
            e => Error::context(path.display().to_string(), e),
        })?;
        let base = path.parent().unwrap_or(Path::new(""));
        if study.data.path.is_relative() {
            study.data.path = base.join(&study.data.path);
        }
        for m in &mut study.models {
            if Path::new(&m.path).is_relative() {
                m.path = base.join(&m.path).to_string_lossy().into_owned();
            }
            if let Some(spec) = m.spec.as_mut().filter(|s| s.is_relative()) {
                *spec = base.join(&*spec);
            }
        }
        Ok(study)
    }

    /// Parses study TOML.
    ///
    /// # Errors
    /// Invalid TOML, unknown keys, empty lists, out-of-range numbers.
    pub fn parse(text: &str) -> Result<StudyFile> {
        Self::parse_with(text, true)
    }

    /// [`StudyFile::parse`], with `[[model]]` entries optional unless `models_required`.
    ///
    /// # Errors
    /// See [`StudyFile::parse`].
    pub fn parse_with(text: &str, models_required: bool) -> Result<StudyFile> {
        let study: StudyFile = toml::from_str(text).map_err(|e| Error::config("study", describe_toml_error(text, &e)))?;
        if models_required && study.models.is_empty() {
            return Err(Error::config("study", "no [[model]] entry; add one with `path = \"run/model.safetensors\"`"));
        }
        if study.attacks.is_empty() && study.ensembles.is_empty() {
            return Err(Error::config("study", "no [[attack]] or [[ensemble]] block; add one with `rule = \"pgd\"`"));
        }
        for (i, a) in study.attacks.iter().enumerate() {
            let block = format!("[[attack]] #{} ({})", i + 1, a.rule.id());
            for (field, empty) in [
                ("directions", a.directions.is_empty()),
                ("eps", a.eps.is_empty()),
                ("norms", a.norms.is_empty()),
                ("seeds", a.seeds.is_empty()),
            ] {
                if empty {
                    return Err(Error::context(
                        &block,
                        Error::parameter(field, "is an empty list; give at least one value, or leave the key out for its default"),
                    ));
                }
            }
            if let Some(e) = a.eps.iter().find(|e| !(e.is_finite() && **e > 0.0)) {
                return Err(Error::context(&block, Error::parameter("eps", format!("{e} is not a budget: ε must be > 0 grey levels"))));
            }
            a.rule.check().map_err(|e| Error::context(&block, e))?;
        }
        for (i, e) in study.ensembles.iter().enumerate() {
            let block = format!("[[ensemble]] #{} ({})", i + 1, e.name);
            for (field, empty) in [("eps", e.eps.is_empty()), ("norms", e.norms.is_empty()), ("seeds", e.seeds.is_empty())] {
                if empty {
                    return Err(Error::context(
                        &block,
                        Error::parameter(field, "is an empty list; give at least one value, or leave the key out for its default"),
                    ));
                }
            }
            if let Some(x) = e.eps.iter().find(|x| !(x.is_finite() && **x > 0.0)) {
                return Err(Error::context(&block, Error::parameter("eps", format!("{x} is not a budget: ε must be > 0 grey levels"))));
            }
            // Task-free checks now (the members' parameters); a member's direction is checked
            // against each model when the study is planned.
            let ensemble = e.ensemble(&[]).map_err(|err| Error::context(&block, err))?;
            crate::attack::StepRule::check(&ensemble).map_err(|err| Error::context(&block, err))?;
            e.score
                .parse::<crate::attack::DirectionSpec>()
                .map_err(|err| Error::context(&block, Error::parameter("score", err.to_string())))?;
        }
        if study.data.batch_size == 0 {
            return Err(Error::context("[data]", Error::parameter("batch_size", "must be at least 1")));
        }
        if study.data.limit == Some(0) {
            return Err(Error::context("[data]", Error::parameter("limit", "must be at least 1 (leave it out for every sample)")));
        }
        Ok(study)
    }

    /// The checkpoints of every `[[model]]` entry with their display names, globs expanded in
    /// sorted order.
    ///
    /// # Errors
    /// A glob that matches nothing, an invalid pattern, or a name used twice.
    pub fn checkpoints(&self) -> Result<Vec<(String, ModelSource)>> {
        let mut out: Vec<(String, ModelSource)> = Vec::new();
        for (i, m) in self.models.iter().enumerate() {
            let entry = format!("[[model]] #{} (`{}`)", i + 1, m.path);
            let is_glob = m.path.contains(['*', '?', '[']);
            let paths: Vec<PathBuf> = if is_glob {
                let mut v = glob::glob(&m.path)
                    .map_err(|e| Error::config(&entry, format!("invalid glob: {e}")))?
                    .collect::<std::result::Result<Vec<_>, _>>()
                    .map_err(|e| Error::config(&entry, e.to_string()))?;
                v.sort();
                if v.is_empty() {
                    return Err(Error::config(&entry, "matches no file"));
                }
                v
            } else {
                vec![PathBuf::from(&m.path)]
            };
            for p in paths {
                let folder = p.parent().and_then(|d| d.file_name()).map(|s| s.to_string_lossy().into_owned());
                let stem = p.file_stem().map(|s| s.to_string_lossy().into_owned()).unwrap_or_default();
                let own = folder.filter(|_| stem == "model").unwrap_or(stem);
                let name = match (&m.name, is_glob) {
                    (Some(n), false) => n.clone(),
                    (Some(n), true) => format!("{n}{own}"),
                    (None, _) => own,
                };
                if let Some((_, q)) = out.iter().find(|(n, _)| *n == name) {
                    return Err(Error::config(
                        &entry,
                        format!("the name `{name}` is already used by {}; give the entries distinct `name`s", q.path.display()),
                    ));
                }
                out.push((name, ModelSource::new(p, m.spec.clone())));
            }
        }
        Ok(out)
    }
}

/// toml's message, with the line of an unknown key added: a key the step rule does not read is
/// reported at its `[[attack]]` header (the rule's fields are read after the block's own), so
/// the key itself is looked up in the block's lines.
fn describe_toml_error(text: &str, e: &toml::de::Error) -> String {
    let message = e.to_string().trim_end().to_string();
    let key = e.message().strip_prefix("unknown field `").and_then(|rest| rest.split('`').next());
    let (Some(key), Some(span)) = (key, e.span()) else { return message };
    // The header's 0-based line: the number of line breaks before it.
    let header = text[..span.start.min(text.len())].matches('\n').count();
    let found = text
        .lines()
        .enumerate()
        .skip(header + 1)
        .take_while(|(_, l)| !l.trim_start().starts_with('['))
        .find(|(_, l)| l.trim_start().strip_prefix(key).is_some_and(|rest| rest.trim_start().starts_with('=')));
    match found {
        Some((i, _)) => format!("{message}\n(the unknown key `{key}` is at line {})", i + 1),
        None => message,
    }
}

/// `mtrobust study init`'s commented example.
pub const EXAMPLE: &str = r#"# An mtrobust study: every [[model]] × every [[attack]] block × its directions × eps × norms × seeds.
# Run it with `mtrobust study run THIS.toml --db results.sqlite`; rerun the same command to resume.
# Relative paths are relative to this file.

# device = "cuda"            # auto (default), cpu, cuda, cuda:N; --device on the command line wins

[data]
path = "data/synth"          # NYUv2, Tiny-Taskonomy, or `mtrobust data synth` output
split = "test"
# limit = 96                 # at most this many samples (default: all)
batch_size = 16
# resize = 321               # NYUv2: square size; Taskonomy: first resize
# crop = 224                 # Taskonomy: final size
# metrics = "full"           # full | taskonomy (default: the data's own)
convention = "standard"      # standard | reference (the authors' code's quirks)
# precision = "fp32"         # fp32 | tf32 | bf16 (autocast; see BENCHMARKS.md for the ARP change)

[[model]]
path = "runs/clean/model.safetensors"
name = "clean"

# [[model]]
# path = "runs/layouts/*/model.safetensors"   # a glob: every match is a model
# name = "layout-"                            # prefix for the names (default: the folder)

# [[model]]
# path = "models/traced.pt"  # a TorchScript module whose forward returns a dict, tuple or list
# spec = "models/spec.toml"  # its model spec: tasks, outputs, input normalisation (see the README)

[[attack]]
rule = "pgd"                 # fgsm | mifgsm | pgd | apgd | auto-sage | square
directions = ["all"]         # all = every single:<task>, total, sign-total, gbmta
eps = [2, 4, 8, 16]          # grey levels of 0..255 (default: 1-9, 10, 12, 14, 16)
n_iter = 10
# norms = ["linf"]           # linf | l2
# seeds = [0]
# step_size = 0.8            # grey levels (default eps / n_iter)
# random_start = false
# reduction = "per-sample"   # per-sample | pooled (the reference's)

[[attack]]
rule = "apgd"
directions = ["total", "gbmta"]
eps = [8]
# apgd_profile = "autoattack"  # autoattack | paper
# restarts = 1

# [[attack]]
# rule = "square"            # gradient-free random search (L∞ only)
# directions = ["gbmta"]
# eps = [8]
# n_queries = 5000           # forwards after the initialisation
# p_init = 0.8

# [[ensemble]]               # per sample, the worst case over several attacks
# name = "standard"          # APGD GB-MTA, APGD Total, APGD each Single-x, Square GB-MTA
# n_iter = 100               # the APGD members' iterations
# n_queries = 5000           # the Square member's queries
# score = "gbmta"            # which example a sample keeps: gbmta | single:<task>
# eps = [8]

# [[ensemble]]               # or members of your own
# name = "mine"
# eps = [8]
# [[ensemble.member]]
# rule = "pgd"
# direction = "gbmta"
# n_iter = 20
# [[ensemble.member]]
# rule = "square"
# direction = "total"
# n_queries = 1000
"#;

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_example_parses_with_defaults() {
        let s = StudyFile::parse(EXAMPLE).unwrap();
        assert_eq!(s.models.len(), 1);
        assert_eq!(s.attacks[0].eps, vec![2.0, 4.0, 8.0, 16.0]);
        assert_eq!(s.attacks[1].norms, vec![Norm::Linf]);
        assert_eq!(s.data.split, "test");
        let minimal = StudyFile::parse("[data]\npath='d'\n[[model]]\npath='m.safetensors'\n[[attack]]\nrule='fgsm'\n").unwrap();
        assert_eq!(minimal.attacks[0].eps, PAPER_EPS.to_vec());
        assert_eq!(minimal.attacks[0].directions, vec!["all".to_string()]);
    }

    #[test]
    fn unknown_keys_are_named_with_their_line() {
        let text = "[data]\npath = 'd'\n[[model]]\npath = 'm.safetensors'\n[[attack]]\nrule = 'pgd'\nn_iters = 5\n";
        let e = StudyFile::parse(text).unwrap_err().to_string();
        assert!(e.contains("n_iters") && e.contains("line 7"), "{e}");
        let e = StudyFile::parse("[data]\npath='d'\nsplitt='x'\n[[model]]\npath='m'\n[[attack]]\nrule='pgd'\n").unwrap_err().to_string();
        assert!(e.contains("splitt") && e.contains("line 3"), "{e}");
    }

    #[test]
    fn bad_values_are_refused() {
        let base = "[data]\npath='d'\n[[model]]\npath='m'\n[[attack]]\nrule='pgd'\n";
        let e = StudyFile::parse(&format!("{base}eps=[0]\n")).unwrap_err().chain();
        assert!(e.starts_with("[[attack]] #1 (pgd): eps: ") && e.contains("ε must be > 0"), "{e}");
        let e = StudyFile::parse(&format!("{base}seeds=[]\n")).unwrap_err().chain();
        assert!(e.starts_with("[[attack]] #1 (pgd): seeds: is an empty list"), "{e}");
        let e = StudyFile::parse(&format!("{base}directions=[]\n")).unwrap_err().chain();
        assert!(e.starts_with("[[attack]] #1 (pgd): directions: is an empty list"), "{e}");
        let e = StudyFile::parse(&format!("{base}n_iter=18446744073709551615\n")).unwrap_err().chain();
        assert!(e.starts_with("[[attack]] #1 (pgd): n_iter: "), "{e}");
        let e = StudyFile::parse(&base.replace("path='d'", "path='d'\nbatch_size=0")).unwrap_err().chain();
        assert_eq!(e, "[data]: batch_size: must be at least 1");
        let e = StudyFile::parse(&base.replace("rule='pgd'", "rule='pgdd'")).unwrap_err().to_string();
        assert!(e.contains("pgdd"), "{e}");
        let e = StudyFile::parse("[data]\npath='d'\n[[attack]]\nrule='pgd'\n").unwrap_err().to_string();
        assert!(e.contains("model"), "{e}");
    }

    #[test]
    fn ensemble_blocks_give_the_standard_ensemble_or_the_members_given() {
        use crate::attack::{DirectionSpec, Rule};
        use crate::task::TaskKind;
        let base = "[data]\npath='d'\n[[model]]\npath='m'\n";
        let tasks = [TaskKind::SegmentSemantic, TaskKind::DepthZbuffer];
        // The default block is the standard ensemble with AutoAttack's budgets and GB-MTA's score.
        let s = StudyFile::parse(&format!("{base}[[ensemble]]\n")).unwrap();
        let block = &s.ensembles[0];
        assert_eq!((block.score.as_str(), block.eps.clone(), block.seeds.clone()), ("gbmta", PAPER_EPS.to_vec(), vec![0]));
        assert_eq!(block.ensemble(&tasks).unwrap(), crate::attack::Ensemble::standard(&tasks, 100, 5000));
        let s = StudyFile::parse(&format!("{base}[[ensemble]]\nn_iter=7\nn_queries=30\neps=[4]\nscore='single:segm'\n")).unwrap();
        assert_eq!(s.ensembles[0].ensemble(&tasks).unwrap(), crate::attack::Ensemble::standard(&tasks, 7, 30));
        assert_eq!(s.ensembles[0].score.parse::<DirectionSpec>().unwrap(), DirectionSpec::Single(TaskKind::SegmentSemantic));
        // Members of one's own, each a rule with its parameters and a direction.
        let custom = format!(
            "{base}[[ensemble]]\nname='mine'\n[[ensemble.member]]\nrule='pgd'\nn_iter=3\ndirection='total'\n\
             [[ensemble.member]]\nrule='square'\nn_queries=9\ndirection='single:depth'\n"
        );
        let e = StudyFile::parse(&custom).unwrap().ensembles[0].ensemble(&tasks).unwrap();
        assert_eq!(e.name, "mine");
        assert_eq!(e.members.len(), 2);
        assert_eq!(e.members[0].rule, Rule::Pgd(crate::attack::Pgd { n_iter: 3, ..Default::default() }));
        assert_eq!(e.members[1].rule, Rule::Square(crate::attack::Square { n_queries: 9, ..Default::default() }));
        assert_eq!(e.members[1].direction, DirectionSpec::Single(TaskKind::DepthZbuffer));
        // What is refused, naming the block.
        let refused = |extra: &str| StudyFile::parse(&format!("{base}[[ensemble]]\n{extra}")).unwrap_err().chain();
        let e = refused("[[ensemble.member]]\nrule='pgd'\ndirection='total'\n");
        assert!(e.starts_with("[[ensemble]] #1 (standard): name: ") && e.contains("built-in"), "{e}");
        let e = refused("name='mine'\n");
        assert!(e.starts_with("[[ensemble]] #1 (mine): member: ") && e.contains("no [[ensemble.member]]"), "{e}");
        let e = refused("name='mine'\nn_iter=5\n[[ensemble.member]]\nrule='pgd'\ndirection='total'\n");
        assert!(e.starts_with("[[ensemble]] #1 (mine): n_iter: "), "{e}");
        let e = refused("name='mine'\n[[ensemble.member]]\nrule='pgd'\nn_iter=0\ndirection='total'\n");
        assert!(e.starts_with("[[ensemble]] #1 (mine): member #1 (pgd total): n_iter: "), "{e}");
        let e = refused("score='sideways'\n");
        assert!(e.starts_with("[[ensemble]] #1 (standard): score: "), "{e}");
        let e = refused("eps=[]\n");
        assert!(e.starts_with("[[ensemble]] #1 (standard): eps: is an empty list"), "{e}");
        let e = StudyFile::parse(&format!("{base}[[ensemble]]\nn_iters=5\n")).unwrap_err().to_string();
        assert!(e.contains("n_iters") && e.contains("line 6"), "{e}");
    }

    #[test]
    fn precision_enters_cell_identities_only_when_not_fp32() {
        let base = "[data]\npath='d'\n{}[[model]]\npath='m'\n[[attack]]\nrule='pgd'\n";
        let parse = |extra: &str| StudyFile::parse(&base.replace("{}", extra)).unwrap().data;
        let (plain, fp32, bf16) = (parse(""), parse("precision='fp32'\n"), parse("precision='bf16'\n"));
        assert_eq!((plain.precision, bf16.precision), (Precision::Fp32, Precision::Bf16));
        let id = "0123456789abcdef".to_string();
        assert_eq!(plain.cell_identity(id.clone()), id, "fp32 cells keep the identity they had before");
        assert_eq!(fp32.cell_identity(id.clone()), id);
        assert_ne!(bf16.cell_identity(id.clone()), id);
        assert_ne!(bf16.cell_identity(id.clone()), parse("precision='tf32'\n").cell_identity(id));
        let e = StudyFile::parse(&base.replace("{}", "precision='fp16'\n")).unwrap_err().to_string();
        assert!(e.contains("fp16"), "{e}");
    }
}
