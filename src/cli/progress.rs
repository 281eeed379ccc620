//! Progress of `run` and `reproduce`: on a terminal an indicatif bar (leg, step of steps, rate,
//! time left); off a terminal (a log file, a pipe, CI) indicatif draws nothing, so one line per
//! leg instead — its name, its length and the time since the command started — so that a long
//! preset is never silent for minutes and a log stays short.

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

#[cfg(test)]
mod tests {
    use super::Progress;

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
