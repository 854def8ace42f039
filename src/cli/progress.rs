//! The CLI's observer: an indicatif progress bar on stderr (hidden when stderr is not a terminal
//! or with `--quiet`), info lines and warnings on stderr. stdout carries results only.
use indicatif::{ProgressBar, ProgressStyle};
use mtrobust::observe::{Event, Observer};
use std::io::IsTerminal;

/// Progress bars and messages on stderr.
pub struct Progress {
    quiet: bool,
    bars: bool,
    bar: Option<ProgressBar>,
}

impl Progress {
    /// Bars only on an interactive stderr; nothing but warnings with `quiet`.
    pub fn new(quiet: bool) -> Self {
        let bars = !quiet && std::io::stderr().is_terminal() && std::env::var_os("NO_COLOR").is_none();
        Progress { quiet, bars, bar: None }
    }

    /// Prints a status line (unless quiet), above any bar.
    pub fn info(&self, msg: &str) {
        if self.quiet {
            return;
        }
        match &self.bar {
            Some(b) => b.println(msg),
            None => eprintln!("{msg}"),
        }
    }
}

impl Observer for Progress {
    fn event(&mut self, event: Event) {
        match event {
            Event::Start { what, total } => {
                if self.bars {
                    let bar = ProgressBar::new(total);
                    bar.set_style(
                        ProgressStyle::with_template("{prefix:>10} [{elapsed_precise}] {bar:30} {pos}/{len} {msg} (eta {eta})")
                            .expect("valid template"),
                    );
                    bar.set_prefix(what);
                    self.bar = Some(bar);
                } else if !self.quiet {
                    eprintln!("{what} ({total})…");
                }
            }
            Event::Progress { done, message } => {
                if let Some(b) = &self.bar {
                    b.set_position(done);
                    b.set_message(message);
                }
            }
            Event::Finish => {
                if let Some(b) = self.bar.take() {
                    b.finish_and_clear();
                }
            }
            Event::Info(msg) => self.info(&msg),
            Event::Warning(msg) => match &self.bar {
                Some(b) => b.println(format!("warning: {msg}")),
                None => eprintln!("warning: {msg}"),
            },
        }
    }
}
