//! A closed pipe is a quiet end, not a panic: `subspace-lab reproduce --list | head` stops
//! reading after ten lines, and the next `println!` finds stdout closed. Rust ignores SIGPIPE, so
//! the write fails with `BrokenPipe` and `println!` panics ("failed printing to stdout: Broken
//! pipe"). The panic hook below turns exactly that panic into exit status 0 without a message
//! (what `head` wanted: the rest of the output unread); every other panic goes to the default hook.

use std::panic::PanicHookInfo;

/// Whether a panic is `println!`'s failure on a closed stdout (its message names the broken
/// pipe; `print!`, `println!` and `writeln!(stdout().lock(), ..)` unwrapped all say so).
pub(super) fn is_closed_pipe(message: &str) -> bool {
    message.contains("failed printing to stdout") && message.contains("Broken pipe")
}

fn message(info: &PanicHookInfo<'_>) -> String {
    let p = info.payload();
    p.downcast_ref::<String>()
        .cloned()
        .or_else(|| p.downcast_ref::<&str>().map(|s| s.to_string()))
        .unwrap_or_default()
}

/// Install the hook (once, at the start of `main`): a write to a closed stdout exits 0 quietly.
pub(super) fn quiet_on_closed_pipe() {
    let default = std::panic::take_hook();
    std::panic::set_hook(Box::new(move |info| {
        if is_closed_pipe(&message(info)) {
            std::process::exit(0);
        }
        default(info);
    }));
}

#[cfg(test)]
mod tests {
    use super::is_closed_pipe;

    #[test]
    fn only_the_closed_pipe_is_quiet() {
        assert!(is_closed_pipe(
            "failed printing to stdout: Broken pipe (os error 32)"
        ));
        assert!(!is_closed_pipe("failed printing to stdout: No space left"));
        assert!(!is_closed_pipe("index out of bounds"));
    }
}
