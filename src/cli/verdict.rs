//! `verdict`: re-judge a preset's output directory with the current rules.

use anyhow::Result;
use subspace_lab::experiment::verdict::Verdict;

/// `verdict DIR [--write]`: the verdicts printed; `summary.json` rewritten only with `write`.
pub(super) fn verdict_cmd(dir: &std::path::Path, write: bool) -> Result<()> {
    use subspace_lab::experiment::reproduce;
    let r = reproduce::rejudge_with(dir, write)?;
    match r.stopped_at {
        Some(step) => println!(
            "{} (stopped at step {step}; judged on the rows so far, nothing written):",
            r.preset
        ),
        None => println!("{} ({}):", r.preset, dir.display()),
    }
    if r.verdicts.is_empty() {
        println!(
            "  no verdict yet: the legs its claims need have not finished; finish the preset with `{}`",
            r.resume_command
                .as_deref()
                .unwrap_or(&format!("subspace-lab reproduce {} --resume", r.preset))
        );
    }
    let all = print_verdicts(&r.verdicts);
    if r.stopped_at.is_none() {
        for v in &r.verdicts {
            let before = r
                .previous
                .iter()
                .find(|p| p["claim"].as_str().is_some_and(|c| same_claim(c, &v.claim)));
            match before.and_then(|p| p["holds"].as_bool()) {
                Some(h) if h != v.holds => println!(
                    "  changed: \"{}\" {} under rules {}, {} now",
                    v.claim,
                    if h { "held" } else { "did not hold" },
                    r.previous_rules,
                    if v.holds { "holds" } else { "does not hold" }
                ),
                Some(_) => {}
                None => println!("  new: \"{}\" (no verdict of that claim before)", v.claim),
            }
        }
    }
    match &r.rewrote {
        Some(path) => println!(
            "rewrote {} (verdict_rules {}; the old verdicts are in previous_verdicts)",
            path.display(),
            reproduce::VERDICT_RULES
        ),
        None if r.stopped_at.is_none() => println!(
            "{} left as it was (pass --write to record these verdicts there; the old ones then move to previous_verdicts)",
            dir.join("summary.json").display()
        ),
        None => {}
    }
    if !all {
        println!("some claims did not hold on these numbers");
    }
    Ok(())
}

/// Two verdict claims are the same claim when they agree up to the first parenthesis (a threshold
/// or a setting in the text may have been corrected since).
fn same_claim(a: &str, b: &str) -> bool {
    let head = |s: &str| s.split(" (").next().unwrap_or(s).trim().to_string();
    head(a) == head(b)
}

pub(super) fn print_verdicts(verdicts: &[Verdict]) -> bool {
    let mut all = true;
    for v in verdicts {
        println!("  {}", v.text);
        all &= v.holds;
    }
    all
}
