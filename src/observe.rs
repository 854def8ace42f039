//! Progress and warnings leave the library as events; the CLI turns them into progress bars and
//! messages, tests ignore them. The library itself never prints.
//!
//! ```
//! use mtrobust::observe::{Collect, Event, Observer};
//! use mtrobust::warning::Warning;
//!
//! let mut seen = Collect::default();
//! seen.event(Event::Start { what: "attack".into(), total: 2 });
//! seen.event(Event::Warning(Warning::Other("1 sample left out".into())));
//! seen.event(Event::Finish);
//! assert_eq!(seen.warnings[0].to_string(), "1 sample left out");
//! ```

use crate::warning::Warning;

/// Something a long-running operation reports.
#[derive(Debug, Clone, PartialEq)]
pub enum Event {
    /// A phase with `total` units of work starts (`total` 0 = unknown).
    Start { what: String, total: u64 },
    /// `done` units of the current phase are finished; `message` is a short status line.
    Progress { done: u64, message: String },
    /// The current phase ended.
    Finish,
    /// A status line worth showing (e.g. "resuming from step 200").
    Info(String),
    /// A problem that does not stop the run.
    Warning(Warning),
}

/// Receives events.
pub trait Observer {
    /// Handles one event.
    fn event(&mut self, event: Event);
}

/// Ignores everything.
#[derive(Debug, Default, Clone, Copy)]
pub struct Silent;

impl Observer for Silent {
    fn event(&mut self, _event: Event) {}
}

/// Collects warnings (and drops progress): for tests and for reports that list warnings.
#[derive(Debug, Default, Clone)]
pub struct Collect {
    pub warnings: Vec<Warning>,
}

impl Observer for Collect {
    fn event(&mut self, event: Event) {
        if let Event::Warning(w) = event {
            self.warnings.push(w);
        }
    }
}
