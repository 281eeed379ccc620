//! Tick values for a log axis, shared by the CLI's PNGs (plotters) and the app's plots (egui_plot):
//! at 1-2-5 in each decade (…, 0.1, 0.2, 0.5, 1, 2, 5, …), as a reader of a log axis expects (the
//! axis of matplotlib's `LogLocator(subs=(1, 2, 5))`); one tick a decade (or every second, fifth,
//! … decade) on a wide range; on a range narrower than about a decade, where 1-2-5 leaves fewer
//! than three ticks, 1…9 × 10^e, and failing that evenly spaced ticks (a step of 1, 2 or 5 ×
//! 10^e) such as 0.102, 0.104, … on a loss that moves by a few per cent.

/// The fewest ticks an axis should have before a denser rule is tried.
const MIN_TICKS: usize = 3;

/// The values `m × 10^e` (m in `mantissas`, every `every` decade for the 1-only rule) in
/// `[lo, hi]`, ascending. `lo > 0`.
fn decade_ticks(lo: f64, hi: f64, mantissas: &[f64], every: i32) -> Vec<f64> {
    let (e0, e1) = (lo.log10().floor() as i32 - 1, hi.log10().ceil() as i32 + 1);
    let mut out = Vec::new();
    for e in e0..=e1 {
        if e.rem_euclid(every) != 0 {
            continue;
        }
        let p = 10f64.powi(e);
        for m in mantissas {
            // Rounded to 12 significant digits, so that 2 × 10^-1 is 0.2, not 0.20000000000000004.
            let v = round_sig(m * p);
            // A hair of slack: a tick at the range's very end belongs to it.
            if v >= lo * (1.0 - 1e-9) && v <= hi * (1.0 + 1e-9) {
                out.push(v);
            }
        }
    }
    out
}

/// `v` rounded to 12 significant digits (through its decimal form, which no exponent overflows).
fn round_sig(v: f64) -> f64 {
    format!("{v:.11e}").parse().unwrap_or(v)
}

/// The step between evenly spaced ticks for about `n` ticks over `span`: 1, 2 or 5 × 10^e.
pub fn nice_step(span: f64, n: usize) -> f64 {
    let raw = span / n.max(1) as f64;
    if !(raw.is_finite() && raw > 0.0) {
        return 1.0;
    }
    let e = 10f64.powf(raw.log10().floor());
    [1.0, 2.0, 5.0, 10.0]
        .into_iter()
        .map(|m| m * e)
        .find(|s| *s >= raw * 0.999)
        .unwrap_or(10.0 * e)
}

/// Evenly spaced ticks (a step of 1, 2 or 5 × 10^e, at least [`MIN_TICKS`] of them where the
/// range allows) in `[lo, hi]`.
fn linear_ticks(lo: f64, hi: f64, max_ticks: usize) -> Vec<f64> {
    let mut n = max_ticks.max(MIN_TICKS);
    loop {
        let step = nice_step(hi - lo, n);
        let first = (lo / step).ceil() as i64;
        let last = (hi / step).floor() as i64;
        let out: Vec<f64> = (first..=last).map(|i| round_sig(i as f64 * step)).collect();
        if out.len() >= MIN_TICKS || n > 4 * max_ticks.max(MIN_TICKS) {
            return out;
        }
        n += 1;
    }
}

/// The ticks of a log axis over `[lo, hi]` (values, not logarithms), ascending, at most
/// `max_ticks` of them (at least 2 is useful): 1-2-5 per decade where that gives at least three
/// and at most `max_ticks`; fewer decades' worth of ticks (1 per decade, then every 2nd, 5th,
/// 10th … decade) on a wider range; 1…9 × 10^e, then evenly spaced ticks on a narrower one.
/// Empty unless `0 < lo < hi`, both finite.
pub fn log_ticks(lo: f64, hi: f64, max_ticks: usize) -> Vec<f64> {
    if !(lo > 0.0 && hi > lo && hi.is_finite()) {
        return Vec::new();
    }
    let max_ticks = max_ticks.max(2);
    let t125 = decade_ticks(lo, hi, &[1.0, 2.0, 5.0], 1);
    if t125.len() > max_ticks {
        // Too many: whole decades, thinned to every 2nd, 5th, 10th, 20th … decade.
        for every in [1, 2, 5, 10, 20, 50, 100] {
            let t = decade_ticks(lo, hi, &[1.0], every);
            if t.len() <= max_ticks {
                return t;
            }
        }
        return decade_ticks(lo, hi, &[1.0], 1000);
    }
    if t125.len() >= MIN_TICKS {
        return t125;
    }
    let t19 = decade_ticks(lo, hi, &[1.0, 2.0, 3.0, 4.0, 5.0, 6.0, 7.0, 8.0, 9.0], 1);
    if (MIN_TICKS..=max_ticks).contains(&t19.len()) {
        return t19;
    }
    if t125.len() >= 2 {
        return t125;
    }
    linear_ticks(lo, hi, max_ticks)
}

/// For each tick of `ticks` (ascending, positive), its distance in log10 units to its nearest
/// neighbour (`span`, the axis' length in log10 units, for a lone tick): the `step_size` egui_plot
/// fades a mark's grid line and label by.
pub fn log_gaps(ticks: &[f64], span: f64) -> Vec<f64> {
    let l: Vec<f64> = ticks.iter().map(|t| t.log10()).collect();
    (0..l.len())
        .map(|i| {
            let before = i.checked_sub(1).map(|j| l[i] - l[j]);
            let after = l.get(i + 1).map(|n| n - l[i]);
            match (before, after) {
                (Some(a), Some(b)) => a.min(b),
                (Some(a), None) | (None, Some(a)) => a,
                (None, None) => span,
            }
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn one_two_five_over_a_few_decades() {
        assert_eq!(
            log_ticks(0.05, 30.0, 12),
            vec![0.05, 0.1, 0.2, 0.5, 1.0, 2.0, 5.0, 10.0, 20.0]
        );
        assert_eq!(log_ticks(0.09, 1.1, 12), vec![0.1, 0.2, 0.5, 1.0]);
        // The ends belong to the range.
        assert_eq!(log_ticks(1.0, 10.0, 12), vec![1.0, 2.0, 5.0, 10.0]);
    }

    #[test]
    fn wide_ranges_keep_whole_decades_thinned() {
        assert_eq!(
            log_ticks(1e-3, 1e3, 7),
            vec![1e-3, 1e-2, 0.1, 1.0, 10.0, 100.0, 1e3]
        );
        let t = log_ticks(1e-8, 1e4, 7);
        assert_eq!(t, vec![1e-8, 1e-6, 1e-4, 1e-2, 1.0, 100.0, 1e4]);
        assert!(log_ticks(1e-300, 1e300, 5).len() <= 5);
    }

    #[test]
    fn narrow_ranges_get_denser_ticks() {
        // Under a decade, 1-2-5 gives two ticks here: 1…9 gives six.
        assert_eq!(
            log_ticks(0.15, 0.95, 8),
            vec![0.2, 0.3, 0.4, 0.5, 0.6, 0.7, 0.8, 0.9]
        );
        // A loss that moves by 10 %: evenly spaced ticks, three digits.
        let t = log_ticks(0.101, 0.113, 7);
        assert_eq!(t, vec![0.102, 0.104, 0.106, 0.108, 0.11, 0.112]);
        // 0.2 to 0.45 has the 1-2-5 tick 0.2 only, 1…9 gives 0.2, 0.3, 0.4.
        assert_eq!(log_ticks(0.2, 0.45, 7), vec![0.2, 0.3, 0.4]);
    }

    #[test]
    fn bad_ranges_have_no_ticks() {
        assert!(log_ticks(0.0, 1.0, 7).is_empty());
        assert!(log_ticks(-1.0, 1.0, 7).is_empty());
        assert!(log_ticks(2.0, 1.0, 7).is_empty());
        assert!(log_ticks(1.0, f64::INFINITY, 7).is_empty());
        assert!(log_ticks(f64::NAN, 1.0, 7).is_empty());
    }

    #[test]
    fn gaps_are_the_nearest_neighbour_in_decades() {
        let g = log_gaps(&[0.1, 0.2, 0.5, 1.0], 1.0);
        let want = [2f64.log10(), 2f64.log10(), 2f64.log10(), 2f64.log10()];
        for (a, b) in g.iter().zip(want) {
            assert!((a - b).abs() < 1e-12, "{g:?}");
        }
        assert_eq!(log_gaps(&[3.0], 0.7), vec![0.7]);
        assert!(log_gaps(&[], 1.0).is_empty());
    }
}
