//! All layouts of T tasks over B blocks in TreeMTL's exact order (docs/REFERENCE.md §2.4), so that a
//! **model index** means what it means in the paper (index 0 = all-shared; NYUv2 index 2 and
//! Taskonomy index 4 = independent). The reference compares each candidate with every layout
//! found so far (≈ 20 s for 5 tasks); a hash set of canonical forms makes it milliseconds.
use super::layout::Layout;
use crate::error::{Error, Result};
use crate::task::TaskSet;
use std::collections::HashSet;

/// A layout under construction, with TreeMTL's bookkeeping.
struct Node {
    blocks: Vec<Vec<TaskSet>>,
    num_cut: usize,
    lowest_avail_cut: usize,
}

/// TreeMTL's `divide_set`: the two-way splits of `set`, in `itertools.product([True, False])`
/// order with the first element False (so the second part always holds the smallest id).
fn divide_set(set: TaskSet) -> Vec<(TaskSet, TaskSet)> {
    let ids: Vec<usize> = set.ids().collect();
    let n = ids.len();
    let mut out = Vec::new();
    // Pattern number p enumerates product([True, False]) lexicographically: position j is True
    // when bit (n-1-j) of p is 0.
    for p in 0..(1usize << n) {
        let is_true = |j: usize| p & (1 << (n - 1 - j)) == 0;
        if is_true(0) || (0..n).all(|j| !is_true(j)) {
            continue;
        }
        let s1 = TaskSet::from_ids((0..n).filter(|&j| is_true(j)).map(|j| ids[j]));
        out.push((s1, TaskSet(set.0 & !s1.0)));
    }
    out
}

/// TreeMTL's `apply_cut`: from block `i` on, replace the first occurrence of `set` by `s1, s2` at the end.
fn apply_cut(node: &Node, i: usize, set: TaskSet, (s1, s2): (TaskSet, TaskSet)) -> Node {
    let mut blocks = node.blocks.clone();
    for block in blocks.iter_mut().skip(i) {
        if let Some(pos) = block.iter().position(|&s| s == set) {
            block.remove(pos);
        }
        block.push(s1);
        block.push(s2);
    }
    Node { blocks, num_cut: node.num_cut + 1, lowest_avail_cut: i }
}

fn canonical(blocks: &[Vec<TaskSet>]) -> Vec<Vec<u32>> {
    blocks
        .iter()
        .map(|b| {
            let mut v: Vec<u32> = b.iter().map(|s| s.0).collect();
            v.sort_unstable();
            v
        })
        .collect()
}

/// TreeMTL's depth-first `enum_layout_wo_rdt`.
fn visit(node: &Node, n_tasks: usize, seen: &mut HashSet<Vec<Vec<u32>>>, out: &mut Vec<Vec<Vec<TaskSet>>>) {
    if node.num_cut >= n_tasks - 1 {
        return;
    }
    for i in node.lowest_avail_cut..node.blocks.len() {
        for &set in &node.blocks[i] {
            if set.len() <= 1 {
                continue;
            }
            for split in divide_set(set) {
                let child = apply_cut(node, i, set, split);
                if seen.insert(canonical(&child.blocks)) {
                    out.push(child.blocks.clone());
                    visit(&child, n_tasks, seen, out);
                }
            }
        }
    }
}

/// Every layout of `n_tasks` tasks over `n_blocks` blocks, in TreeMTL's order.
///
/// # Errors
/// For 0 tasks, more than 8 tasks (the enumeration explodes), or 0 blocks.
pub fn enumerate_layouts(n_tasks: usize, n_blocks: usize) -> Result<Vec<Layout>> {
    if n_tasks == 0 || n_tasks > 8 || n_blocks == 0 {
        return Err(Error::config(
            "layout enumeration",
            format!("{n_tasks} tasks over {n_blocks} blocks; enumeration supports 1–8 tasks and ≥ 1 block"),
        ));
    }
    let root = Node { blocks: vec![vec![TaskSet::all(n_tasks)]; n_blocks], num_cut: 0, lowest_avail_cut: 0 };
    let mut seen = HashSet::from([canonical(&root.blocks)]);
    let mut out = vec![root.blocks.clone()];
    visit(&root, n_tasks, &mut seen, &mut out);
    out.into_iter().map(|b| Layout::new(n_tasks, b)).collect()
}

/// The layout with model index `index` (TreeMTL order).
///
/// # Errors
/// An index past the end of the enumeration.
pub fn layout_at(n_tasks: usize, n_blocks: usize, index: usize) -> Result<Layout> {
    let all = enumerate_layouts(n_tasks, n_blocks)?;
    let len = all.len();
    all.into_iter().nth(index).ok_or_else(|| {
        Error::parameter(
            "index",
            format!("{index} is out of range: {n_tasks} tasks over {n_blocks} blocks have {len} layouts (0..{})", len - 1),
        )
    })
}

/// The index of `layout` in TreeMTL's order (set order inside a block ignored), if present.
pub fn index_of(layout: &Layout) -> Option<usize> {
    let all = enumerate_layouts(layout.n_tasks(), layout.n_blocks()).ok()?;
    all.iter().position(|l| l.same_tree(layout))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn spec_list(name: &str) -> Vec<String> {
        let path = format!("{}/tests/data/{name}", env!("CARGO_MANIFEST_DIR"));
        let text = std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("{path}: {e}"));
        text.lines()
            .map(|l| {
                let (idx, layout) = l.split_once(' ').unwrap();
                let _: usize = idx.parse().unwrap();
                layout.to_string()
            })
            .collect()
    }

    #[test]
    fn divide_set_follows_itertools_order() {
        let got = divide_set(TaskSet::from_ids([0, 1, 2]));
        let want = [("{1, 2}", "{0}"), ("{1}", "{0, 2}"), ("{2}", "{0, 1}")];
        assert_eq!(got.len(), 3);
        for ((a, b), (c, d)) in got.iter().zip(want) {
            assert_eq!((a.to_string().as_str(), b.to_string().as_str()), (c, d));
        }
    }

    #[test]
    fn three_tasks_match_the_reference_list() {
        let want = spec_list("nyuv2_layouts_T3_B5.txt");
        let got: Vec<String> = enumerate_layouts(3, 5).unwrap().iter().map(|l| l.to_string()).collect();
        assert_eq!(got.len(), 51);
        assert_eq!(got, want);
    }

    #[test]
    fn five_tasks_match_the_reference_list() {
        let want = spec_list("taskonomy_layouts_T5_B5.txt");
        let got: Vec<String> = enumerate_layouts(5, 5).unwrap().iter().map(|l| l.to_string()).collect();
        assert_eq!(got.len(), 7556);
        for (i, (g, w)) in got.iter().zip(&want).enumerate() {
            assert_eq!(g, w, "layout index {i}");
        }
    }

    #[test]
    fn named_indices_and_lookup() {
        assert_eq!(
            layout_at(3, 5, 2).unwrap().to_string(),
            "[[{0}, {2}, {1}], [{0}, {2}, {1}], [{0}, {2}, {1}], [{0}, {2}, {1}], [{0}, {2}, {1}]]"
        );
        assert_eq!(layout_at(3, 5, 0).unwrap(), Layout::all_shared(3, 5));
        let err = layout_at(3, 5, 51).unwrap_err().to_string();
        assert!(err.contains("51 layouts"), "{err}");
        let l9 = layout_at(3, 5, 9).unwrap();
        assert_eq!(index_of(&l9), Some(9));
    }
}
