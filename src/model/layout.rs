//! TreeMTL layouts (docs/REFERENCE.md §2.4): for every backbone block, an ordered list of disjoint task sets
//! whose union is all tasks; the tasks in one set share one copy of that block. Each block may
//! only split the sets of the block before it, so a layout describes a tree that branches
//! towards the heads.
//!
//! Text form (Display/FromStr) is the reference's Python repr:
//! `[[{0, 1, 2}], [{1, 2}, {0}], [{0}, {2}, {1}], ...]`.
use crate::error::{Error, Result};
use crate::task::TaskSet;
use std::fmt;
use std::str::FromStr;

/// A checked branching layout over `n_blocks` blocks for `n_tasks` tasks.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct Layout {
    n_tasks: usize,
    blocks: Vec<Vec<TaskSet>>,
}

impl Layout {
    /// Checks and wraps a block list.
    ///
    /// # Errors
    /// Empty sets, sets that overlap or miss a task, ids ≥ `n_tasks`, or a block whose set is not
    /// inside a set of the previous block.
    pub fn new(n_tasks: usize, blocks: Vec<Vec<TaskSet>>) -> Result<Self> {
        let layout = Layout { n_tasks, blocks };
        layout.check()?;
        Ok(layout)
    }

    /// The all-shared layout (index 0 in TreeMTL's order).
    pub fn all_shared(n_tasks: usize, n_blocks: usize) -> Self {
        Layout { n_tasks, blocks: vec![vec![TaskSet::all(n_tasks)]; n_blocks] }
    }

    fn check(&self) -> Result<()> {
        let fail = |reason: String| Err(Error::Layout { spec: self.to_string(), reason });
        if self.n_tasks == 0 || self.n_tasks > 16 {
            return fail(format!("{} tasks; between 1 and 16 are supported", self.n_tasks));
        }
        if self.blocks.is_empty() {
            return fail("a layout needs at least one block".into());
        }
        let all = TaskSet::all(self.n_tasks);
        for (i, block) in self.blocks.iter().enumerate() {
            let mut seen = TaskSet::default();
            for &set in block {
                if set.is_empty() {
                    return fail(format!("block {i} has an empty task set"));
                }
                if !all.is_superset(set) {
                    return fail(format!("block {i}: task set {set} names a task ≥ {} (tasks are 0..{})", self.n_tasks, self.n_tasks - 1));
                }
                if seen.intersects(set) {
                    return fail(format!("block {i}: task set {set} overlaps another set of the block"));
                }
                seen = TaskSet(seen.0 | set.0);
            }
            if seen != all {
                let missing = TaskSet(all.0 & !seen.0);
                return fail(format!("block {i} does not place task(s) {missing}; every block must cover all tasks"));
            }
            if i > 0 {
                for &set in block {
                    if !self.blocks[i - 1].iter().any(|p| p.is_superset(set)) {
                        return fail(format!(
                            "block {i}: task set {set} is not inside one set of block {}; a branch cannot merge again",
                            i - 1
                        ));
                    }
                }
            }
        }
        Ok(())
    }

    /// Number of tasks.
    pub fn n_tasks(&self) -> usize {
        self.n_tasks
    }

    /// Number of blocks.
    pub fn n_blocks(&self) -> usize {
        self.blocks.len()
    }

    /// The task sets of every block, in list order.
    pub fn blocks(&self) -> &[Vec<TaskSet>] {
        &self.blocks
    }

    /// The layout with each block's sets sorted: two layouts describe the same tree iff their
    /// canonical forms are equal (TreeMTL's order-insensitive equality).
    pub fn canonical(&self) -> Vec<Vec<TaskSet>> {
        self.blocks
            .iter()
            .map(|b| {
                let mut b = b.clone();
                b.sort();
                b
            })
            .collect()
    }

    /// True when both layouts describe the same tree (set order inside a block ignored).
    pub fn same_tree(&self, other: &Layout) -> bool {
        self.n_tasks == other.n_tasks && self.canonical() == other.canonical()
    }

    /// Expands a coarse layout to fine blocks: coarse block `i` is repeated `counts[i]` times
    /// (TreeMTL's `coarse_to_fined`).
    ///
    /// # Errors
    /// When `counts` does not have one entry per coarse block.
    pub fn to_fine(&self, counts: &[usize]) -> Result<Layout> {
        if counts.len() != self.blocks.len() {
            return Err(Error::Layout {
                spec: self.to_string(),
                reason: format!("has {} blocks but the backbone has {} coarse blocks", self.blocks.len(), counts.len()),
            });
        }
        let blocks = self.blocks.iter().zip(counts).flat_map(|(b, &n)| std::iter::repeat_n(b.clone(), n)).collect();
        Ok(Layout { n_tasks: self.n_tasks, blocks })
    }

    /// Number of leading blocks shared by all tasks (5 = all-shared, 0 = independent for 5 blocks).
    pub fn shared_prefix(&self) -> usize {
        self.blocks.iter().take_while(|b| b.len() == 1).count()
    }
}

impl fmt::Display for Layout {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("[")?;
        for (i, block) in self.blocks.iter().enumerate() {
            if i > 0 {
                f.write_str(", ")?;
            }
            f.write_str("[")?;
            for (j, set) in block.iter().enumerate() {
                if j > 0 {
                    f.write_str(", ")?;
                }
                write!(f, "{set}")?;
            }
            f.write_str("]")?;
        }
        f.write_str("]")
    }
}

impl FromStr for Layout {
    type Err = Error;

    /// Parses the Python repr; the number of tasks is one more than the largest id.
    fn from_str(text: &str) -> Result<Self> {
        let fail = |reason: &str| Error::Layout { spec: text.to_string(), reason: reason.to_string() };
        let s: String = text.chars().filter(|c| !c.is_whitespace()).collect();
        let inner = s
            .strip_prefix('[')
            .and_then(|r| r.strip_suffix(']'))
            .ok_or_else(|| fail("expected `[[{0, 1}], [{0}, {1}], ...]`: a list of blocks in brackets"))?;
        let mut blocks = Vec::new();
        let mut rest = inner;
        while !rest.is_empty() {
            let body = rest.strip_prefix('[').ok_or_else(|| fail("each block must be a bracketed list of sets like `[{0, 1}, {2}]`"))?;
            let end = body.find(']').ok_or_else(|| fail("a block is missing its closing `]`"))?;
            let mut sets = Vec::new();
            for part in body[..end].split('}').filter(|p| !p.is_empty()) {
                let part = part.strip_prefix(',').unwrap_or(part);
                let ids = part.strip_prefix('{').ok_or_else(|| fail("task sets must be written in braces, like `{0, 2}`"))?;
                let mut set = TaskSet::default();
                for id in ids.split(',').filter(|t| !t.is_empty()) {
                    let id: usize = id.parse().map_err(|_| fail(&format!("`{id}` is not a task id")))?;
                    if id >= 16 {
                        return Err(fail(&format!("task id {id} is too large (at most 16 tasks)")));
                    }
                    if set.contains(id) {
                        return Err(fail(&format!("task {id} appears twice in one set")));
                    }
                    set = TaskSet(set.0 | (1 << id));
                }
                sets.push(set);
            }
            blocks.push(sets);
            rest = &body[end + 1..];
            rest = rest.strip_prefix(',').unwrap_or(rest);
        }
        let n_tasks = blocks.iter().flatten().flat_map(|s| s.ids()).max().map_or(0, |m| m + 1);
        Layout::new(n_tasks, blocks)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn display_round_trips_and_python_spacing_is_kept() {
        let text = "[[{0, 1, 2}], [{1, 2}, {0}], [{0}, {2}, {1}]]";
        let l: Layout = text.parse().unwrap();
        assert_eq!(l.n_tasks(), 3);
        assert_eq!(l.to_string(), text);
        assert_eq!("[[{0,1,2}],[{1,2},{0}],[{0},{2},{1}]]".parse::<Layout>().unwrap(), l);
    }

    #[test]
    fn bad_layouts_are_rejected_with_the_reason() {
        let err = |s: &str| s.parse::<Layout>().unwrap_err().to_string();
        assert!(err("[[{0, 1}], [{0}, {0, 1}]]").contains("overlaps"));
        assert!(err("[[{0, 1, 2}], [{0}, {1}]]").contains("does not place task(s) {2}"));
        assert!(err("[[{0}, {1}], [{0, 1}]]").contains("cannot merge"));
        assert!(err("[[{0, x}]]").contains("not a task id"));
        assert!(err("{0}").contains("list of blocks"));
        assert!(err("[[{0, 0}]]").contains("twice"));
        assert!(err("[]").contains("at least one block") || err("[]").contains("tasks"));
    }

    #[test]
    fn fine_expansion_repeats_coarse_blocks() {
        let l: Layout = "[[{0, 1}], [{0}, {1}]]".parse().unwrap();
        let f = l.to_fine(&[2, 3]).unwrap();
        assert_eq!(f.n_blocks(), 5);
        assert_eq!(f.blocks()[1], vec![TaskSet::all(2)]);
        assert_eq!(f.blocks()[4].len(), 2);
        assert!(l.to_fine(&[1]).is_err());
        assert_eq!(l.shared_prefix(), 1);
    }

    #[test]
    fn same_tree_ignores_set_order() {
        let a: Layout = "[[{0, 1, 2}], [{1, 2}, {0}]]".parse().unwrap();
        let b: Layout = "[[{0, 1, 2}], [{0}, {1, 2}]]".parse().unwrap();
        assert!(a.same_tree(&b));
        assert_ne!(a, b);
    }
}
