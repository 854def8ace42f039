//! The attacked model seen from an attack: per-task losses at a point and input gradients, with
//! every forward and backward pass counted. Targets are resized to the output resolution once
//! per batch (the reference resizes them on every loss call). Gradients are taken with respect to
//! the input only (`run_backward` on `x`), never the weights.
use crate::data::Target;
use crate::error::{Error, Result};
use crate::model::Model;
use crate::task::{LossParts, Task, TaskMap, TaskSet};
use std::cell::{Cell, RefCell};
use tch::Tensor;

/// Model passes an attack made.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct PassCounts {
    /// Forward passes (full multi-task or task-path).
    pub forward: usize,
    /// Backward passes (one per `run_backward`).
    pub backward: usize,
}

/// The batch's targets resized to one output resolution (h, w).
type ResizedTargets = Option<((i64, i64), TaskMap<Target>)>;

/// A model, its tasks and one batch's targets.
pub struct Oracle<'a> {
    model: &'a Model,
    tasks: &'a [Task],
    targets: &'a TaskMap<Target>,
    resized: RefCell<ResizedTargets>,
    counts: Cell<PassCounts>,
    /// On CPU, the previous forward's outputs, held until the next forward is done. glibc's
    /// malloc returns the heap's top to the system once it is free, and the outputs are the last
    /// large blocks a forward allocates: freed before the next forward, every forward faulted
    /// its activations into fresh pages (2–3× the page faults and ~15 % per PGD iteration on a
    /// five-task model; plain PyTorch loops that free their outputs pay the same). Holding them
    /// keeps that memory in the process for reuse. Held detached: their storage only, never the
    /// autograd graph (a forward without a backward must not keep its activations alive). See
    /// BENCHMARKS.md, "Python package".
    held_outputs: RefCell<Option<TaskMap<Tensor>>>,
}

impl<'a> Oracle<'a> {
    /// Checks that `tasks` are the model's tasks in its order and that every task has a target.
    ///
    /// # Errors
    /// Tasks that do not match the model, or a missing target.
    pub fn new(model: &'a Model, tasks: &'a [Task], targets: &'a TaskMap<Target>) -> Result<Self> {
        let model_tasks: Vec<_> = model.tasks().iter().map(|t| (t.kind, t.channels)).collect();
        let given: Vec<_> = tasks.iter().map(|t| (t.kind(), t.channels())).collect();
        if model_tasks != given {
            return Err(Error::config("tasks", format!("the model predicts {model_tasks:?} but the attack was given {given:?}")));
        }
        for t in tasks {
            if targets.get(t.kind()).is_none() {
                return Err(Error::config("data", format!("the batch has no `{}` labels, which the model predicts", t.kind())));
            }
        }
        Ok(Oracle {
            model,
            tasks,
            targets,
            resized: RefCell::new(None),
            counts: Cell::new(PassCounts::default()),
            held_outputs: RefCell::new(None),
        })
    }

    /// The tasks in model order.
    pub fn tasks(&self) -> &[Task] {
        self.tasks
    }

    /// Passes so far.
    pub fn counts(&self) -> PassCounts {
        self.counts.get()
    }

    /// Runs the tasks in `set` at `x` (eval mode; with autograd if `x` requires grad) and returns
    /// their loss parts. One forward pass.
    ///
    /// # Errors
    /// What the model's forward fails with (out of memory, a module's own failure).
    pub fn losses(&self, x: &Tensor, set: TaskSet) -> Result<TaskMap<LossParts>> {
        let outputs = self.model.forward_tasks(x, set, false)?;
        let mut c = self.counts.get();
        c.forward += 1;
        self.counts.set(c);
        let mut out = TaskMap::new();
        for (id, task) in self.tasks.iter().enumerate() {
            if !set.contains(id) {
                continue;
            }
            let y = outputs.get(task.kind()).expect("forward_tasks returns every requested task");
            let (_, _, h, w) = y.size4().expect("task outputs are 4-D");
            let mut cache = self.resized.borrow_mut();
            if cache.as_ref().map(|(hw, _)| *hw) != Some((h, w)) {
                let at = |kind| self.tasks.iter().find(|t| t.kind() == kind);
                *cache = Some(((h, w), self.targets.map(|k, t| at(k).map_or_else(|| t.resized(h, w), |task| task.target_at(t, h, w)))));
            }
            let target = cache.as_ref().and_then(|(_, m)| m.get(task.kind())).expect("resized above");
            out.insert(task.kind(), task.loss(y, target)?);
        }
        if self.model.device() == tch::Device::Cpu {
            // Dropping the older outputs only now, after this forward (see `held_outputs`).
            *self.held_outputs.borrow_mut() = Some(outputs.map(|_, y| y.detach()));
        }
        Ok(out)
    }

    /// Input gradients of each scalar in `scalars` (one backward pass each; the graph is kept
    /// between them and freed after the last).
    ///
    /// # Errors
    /// What the backward fails with (out of memory, a module's own backward).
    pub fn gradients(&self, scalars: &[Tensor], x: &Tensor) -> Result<Vec<Tensor>> {
        let n = scalars.len();
        let mut grads = Vec::with_capacity(n);
        for (i, s) in scalars.iter().enumerate() {
            let mut g = Tensor::f_run_backward(&[s], &[x], i + 1 < n, false)
                .map_err(|e| Error::context(format!("{}: backward to the input", self.model.name()), e))?;
            grads.push(g.pop().expect("one input, one gradient"));
            let mut c = self.counts.get();
            c.backward += 1;
            self.counts.set(c);
        }
        Ok(grads)
    }
}
