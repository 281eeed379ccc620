//! Progress of `run` and `reproduce`: on a terminal an indicatif bar (leg, step of steps, rate,
//! time left); off a terminal (a log file, a pipe, CI) indicatif draws nothing, so one line per
//! leg instead — its name, its length and the time since the command started — so that a long
//! preset is never silent for minutes and a log stays short.
//!
//! Progress of the commands made of a few long phases with no step count (`bench`, `data fetch`,
//! `data export`, `data web-asset`): [`Phases`], a spinner with the time so far and the last phase
//! done on a terminal (the phases' lines printed above it), the phases' lines with the time so far
//! elsewhere.

use std::cell::RefCell;
use std::io::IsTerminal;
use std::time::Instant;

/// Where progress goes: a bar on a terminal, one line per leg elsewhere.
pub(super) struct Progress {
    bar: indicatif::ProgressBar,
    tty: bool,
    started: Instant,
    /// The leg (name, length) of the last line written off a terminal.
    last: RefCell<Option<(String, usize)>>,
}

impl Progress {
    /// On stderr, as a bar when stderr is a terminal.
    pub(super) fn new() -> Progress {
        Progress::with_terminal(std::io::stderr().is_terminal())
    }

    /// `tty` chooses the bar (true) or the per-leg lines (false).
    pub(super) fn with_terminal(tty: bool) -> Progress {
        let bar = if tty {
            let bar = indicatif::ProgressBar::new(1);
            bar.set_style(
                indicatif::ProgressStyle::with_template(
                    "{msg:>12} [{bar:30}] {pos}/{len} {per_sec} ETA {eta}",
                )
                .unwrap_or_else(|_| indicatif::ProgressStyle::default_bar()),
            );
            bar
        } else {
            indicatif::ProgressBar::hidden()
        };
        Progress {
            bar,
            tty,
            started: Instant::now(),
            last: RefCell::new(None),
        }
    }

    /// The runner's report: leg `run` is at `step` of `total`.
    pub(super) fn update(&self, run: &str, step: usize, total: usize) {
        if self.tty {
            self.bar.set_length(total as u64);
            self.bar.set_position(step as u64);
            self.bar.set_message(run.to_string());
        } else if let Some(line) = self.line(run, step, total) {
            eprintln!("{line}");
        }
    }

    /// The line to write off a terminal, once per leg (a new name or length).
    pub(super) fn line(&self, run: &str, step: usize, total: usize) -> Option<String> {
        let mut last = self.last.borrow_mut();
        let key = (run.to_string(), total);
        if last.as_ref() == Some(&key) {
            return None;
        }
        *last = Some(key);
        // A leg continued from a checkpoint says where it stands.
        let at = if step > 1 {
            format!(" (from step {step})")
        } else {
            String::new()
        };
        Some(format!(
            "[{:>5.0} s] {run}: {total} steps{at}",
            self.started.elapsed().as_secs_f64()
        ))
    }

    /// Clear the bar (before the results are printed); the next leg writes a line again.
    pub(super) fn finish(&self) {
        self.bar.finish_and_clear();
        *self.last.borrow_mut() = None;
    }
}

/// A command's phases as they finish: on a terminal a spinner ticking every 200 ms (so a phase of
/// minutes — a download, timing kernels — visibly runs) that shows the time so far and the last
/// phase, each phase's line printed above it; off a terminal each line with the time so far
/// (`lines`: whether to write them there at all; `bench --json` keeps stderr empty off a
/// terminal, as before).
pub(super) struct Phases {
    bar: indicatif::ProgressBar,
    tty: bool,
    lines: bool,
    started: Instant,
}

impl Phases {
    /// On stderr, as a spinner when stderr is a terminal; `what` names the command.
    pub(super) fn new(what: &str, lines: bool) -> Phases {
        Phases::with_terminal(what, lines, std::io::stderr().is_terminal())
    }

    /// `tty` chooses the spinner (true) or the plain lines (false).
    pub(super) fn with_terminal(what: &str, lines: bool, tty: bool) -> Phases {
        let bar = if tty {
            let bar = indicatif::ProgressBar::new_spinner();
            bar.set_style(
                indicatif::ProgressStyle::with_template("{spinner} [{elapsed:>4}] {prefix}: {msg}")
                    .unwrap_or_else(|_| indicatif::ProgressStyle::default_spinner()),
            );
            bar.set_prefix(what.to_string());
            bar.set_message("starting");
            bar.enable_steady_tick(std::time::Duration::from_millis(200));
            bar
        } else {
            indicatif::ProgressBar::hidden()
        };
        Phases {
            bar,
            tty,
            lines,
            started: Instant::now(),
        }
    }

    /// A phase finished (or started) with this line.
    pub(super) fn say(&self, msg: &str) {
        if self.tty {
            if self.lines {
                self.bar.println(msg);
            }
            self.bar.set_message(msg.to_string());
        } else if let Some(line) = self.line(msg) {
            eprintln!("{line}");
        }
    }

    /// A result line on stdout, the spinner hidden while it is written.
    pub(super) fn println(&self, line: &str) {
        self.bar.suspend(|| println!("{line}"));
    }

    /// The line written off a terminal (none when `lines` is off).
    pub(super) fn line(&self, msg: &str) -> Option<String> {
        self.lines
            .then(|| format!("[{:>5.0} s] {msg}", self.started.elapsed().as_secs_f64()))
    }

    /// Clear the spinner (before the results are printed).
    pub(super) fn finish(&self) {
        self.bar.finish_and_clear();
    }
}

impl Drop for Phases {
    /// An error's message must not land on a spinner's line.
    fn drop(&mut self) {
        self.bar.finish_and_clear();
    }
}

#[cfg(test)]
mod tests {
    use super::{Phases, Progress};

    /// Off a terminal each phase is one line with the time so far; `lines` off, none.
    #[test]
    fn off_a_terminal_one_line_per_phase() {
        let p = Phases::with_terminal("bench", true, false);
        let l = p.line("gradient: 3.1 ms").unwrap_or_default();
        assert!(l.starts_with("[    0 s] gradient: 3.1 ms"), "{l}");
        let quiet = Phases::with_terminal("bench", false, false);
        assert_eq!(quiet.line("gradient: 3.1 ms"), None);
        p.finish();
    }

    #[test]
    fn off_a_terminal_one_line_per_leg() {
        let p = Progress::with_terminal(false);
        let lines: Vec<String> = [("SGD", 1, 300), ("SGD", 2, 300), ("Dom-SGD", 1, 60)]
            .iter()
            .chain(&[("Dom-SGD", 2, 60), ("Bulk-SGD", 1, 60)])
            .filter_map(|&(r, s, t)| p.line(r, s, t))
            .collect();
        assert_eq!(lines.len(), 3, "{lines:?}");
        assert!(lines[0].contains("SGD: 300 steps"), "{lines:?}");
        assert!(lines[2].contains("Bulk-SGD: 60 steps"), "{lines:?}");
    }
}
