//! A cell of a study: one model × one dataset × one attack configuration (step rule and its
//! parameters, direction, norm, ε, seed) × the metric options. Its identity is a digest of the
//! model's and dataset's identities and of every parameter that changes its numbers, so a cell
//! is stored once, skipped when done, and falls in the same shard whatever else the study holds.
use crate::attack::AttackConfig;
use crate::eval::EvalOptions;

/// One unit of work and of storage.
#[derive(Debug, Clone, PartialEq)]
pub struct Cell {
    /// Digest identity (hex).
    pub id: String,
    /// Index of the model in the plan.
    pub model: usize,
    pub config: AttackConfig,
}

/// The identity of a cell.
pub fn cell_id(model_id: &str, dataset_id: &str, config: &AttackConfig, options: &EvalOptions) -> String {
    crate::digest::json_digest(&(model_id, dataset_id, config, options))
}

/// Which of `n` shards a cell belongs to: its identity's first 64 bits modulo `n`.
pub fn shard_of(id: &str, n: usize) -> usize {
    let head = u64::from_str_radix(&id[..16.min(id.len())], 16).unwrap_or(0);
    (head % n as u64) as usize
}

/// A shard `i/n`, `i` from 1 to `n` (Slurm's `SLURM_ARRAY_TASK_ID` with `--array=1-n`, or
/// Kubernetes' 0-based `JOB_COMPLETION_INDEX` + 1).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Shard {
    /// 1-based index.
    pub index: usize,
    pub count: usize,
}

impl std::str::FromStr for Shard {
    type Err = crate::error::Error;

    /// `i/n` with 1 ≤ i ≤ n.
    fn from_str(s: &str) -> crate::error::Result<Shard> {
        let bad = || crate::error::Error::parameter("shard", format!("`{s}` is not a shard; write i/n with 1 ≤ i ≤ n, e.g. 2/8"));
        let (i, n) = s.split_once('/').ok_or_else(bad)?;
        let (index, count): (usize, usize) = (i.trim().parse().map_err(|_| bad())?, n.trim().parse().map_err(|_| bad())?);
        if count == 0 || index == 0 || index > count {
            return Err(bad());
        }
        Ok(Shard { index, count })
    }
}

impl Shard {
    /// Whether the cell `id` is this shard's.
    pub fn owns(&self, id: &str) -> bool {
        shard_of(id, self.count) == self.index - 1
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn shards_partition_and_parse() {
        let ids: Vec<String> = (0..200).map(|i| crate::digest::bytes_digest(format!("{i}"))).collect();
        let shards: Vec<Shard> = (1..=3).map(|i| format!("{i}/3").parse().unwrap()).collect();
        for id in &ids {
            assert_eq!(shards.iter().filter(|s| s.owns(id)).count(), 1);
        }
        // Every shard gets a fair share.
        for s in &shards {
            let n = ids.iter().filter(|id| s.owns(id)).count();
            assert!((40..=95).contains(&n), "{n}");
        }
        assert_eq!(shard_of("000000000000000a", 4), 2);
        for bad in ["0/3", "4/3", "1/0", "x", "1-3"] {
            assert!(bad.parse::<Shard>().is_err(), "{bad}");
        }
    }

    #[test]
    fn identity_covers_every_parameter() {
        let o = EvalOptions::default();
        let a = AttackConfig::default();
        let id = cell_id("m", "d", &a, &o);
        assert_eq!(id, cell_id("m", "d", &a.clone(), &o));
        assert_ne!(id, cell_id("m2", "d", &a, &o));
        assert_ne!(id, cell_id("m", "d2", &a, &o));
        assert_ne!(id, cell_id("m", "d", &AttackConfig { seed: 1, ..a.clone() }, &o));
        assert_ne!(id, cell_id("m", "d", &AttackConfig { rule: a.rule.with_n_iter(3), ..a.clone() }, &o));
        let reference = EvalOptions { convention: crate::task::Convention::Reference, ..o };
        assert_ne!(id, cell_id("m", "d", &a, &reference));
    }
}
