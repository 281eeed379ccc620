//! The settings' key table: one row per setting with its key (in the URL hash and the saved
//! settings), how to read and write it as text, and its range. The hash ([`Settings::to_hash`],
//! [`Settings::from_hash`]), the native app's saved settings (the same text), sanitising
//! ([`Settings::sanitize`]) and the panels' controls ([`Settings::range_of`]) all read it, so a
//! setting is added in one place.

use super::{AppModel, Compute, OPTIMIZERS, Settings, opt_name};
use crate::experiment::toy::ToyMethod;

/// Where a setting's values must lie.
#[derive(Clone, Copy, Debug, PartialEq)]
pub enum Range {
    /// A number in lo..=hi (NaN and infinities are outside).
    Num(f64, f64),
    /// Every value of its type: a seed, a name from a list (checked by parsing), free text.
    Any,
}

impl Range {
    /// Whether the text `v` (as [`Key::get`] writes it) is in the range.
    pub fn contains(self, v: &str) -> bool {
        match self {
            Range::Num(lo, hi) => v.parse::<f64>().is_ok_and(|x| lo <= x && x <= hi),
            Range::Any => true,
        }
    }
}

impl std::fmt::Display for Range {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Range::Num(lo, hi) => write!(f, "{lo}..={hi}"),
            Range::Any => write!(f, "any"),
        }
    }
}

/// One setting.
pub struct Key {
    /// Its key in the URL hash and the saved settings (`toy_c`).
    pub key: &'static str,
    /// The field's name, as messages say it (`toy_coupling`).
    pub field: &'static str,
    /// The value as text (what the hash carries).
    pub get: fn(&Settings) -> String,
    /// Parse and store a value; false (nothing stored): not a value of the setting's type.
    pub set: fn(&mut Settings, &str) -> bool,
    /// The range, which may depend on the other settings (n on the model's data set, the batch
    /// on n).
    pub range: fn(&Settings) -> Range,
}

/// A numeric setting: Display to write, `FromStr` to read.
macro_rules! num {
    ($key:literal, $f:ident, $t:ty, $range:expr) => {
        Key {
            key: $key,
            field: stringify!($f),
            get: |s| s.$f.to_string(),
            set: |s, v| v.parse::<$t>().map(|x| s.$f = x).is_ok(),
            range: $range,
        }
    };
}

fn toy_name(m: ToyMethod) -> &'static str {
    match m {
        ToyMethod::Gd => "gd",
        ToyMethod::Sgd => "sgd",
        ToyMethod::DomSgd => "dom-sgd",
        ToyMethod::BulkSgd => "bulk-sgd",
    }
}

fn toy_parse(s: &str) -> Option<ToyMethod> {
    ToyMethod::ALL.into_iter().find(|m| toy_name(*m) == s)
}

/// The toy's start: far enough for any experiment on L = ½(1000x² + y²) (the default is (1, 1)),
/// near enough that the path plot's bounds stay drawable.
const TOY_START: Range = Range::Num(-100.0, 100.0);

/// Every setting, in the hash's order.
pub const KEYS: &[Key] = &[
    num!("toy_lr", toy_lr, f64, |_| Range::Num(1e-7, 2e-3)),
    num!("toy_c", toy_coupling, f64, |_| Range::Num(0.0, 1000.0)),
    num!("toy_x0", toy_x0, f64, |_| TOY_START),
    num!("toy_y0", toy_y0, f64, |_| TOY_START),
    num!("toy_spf", toy_steps_per_frame, usize, |_| Range::Num(
        1.0, 5000.0
    )),
    Key {
        key: "toy_a",
        field: "toy_a",
        get: |s| toy_name(s.toy_a).into(),
        set: |s, v| toy_parse(v).map(|m| s.toy_a = m).is_some(),
        range: |_| Range::Any,
    },
    Key {
        key: "toy_b",
        field: "toy_b",
        get: |s| toy_name(s.toy_b).into(),
        set: |s, v| toy_parse(v).map(|m| s.toy_b = m).is_some(),
        range: |_| Range::Any,
    },
    num!("toy_seed", toy_seed, u64, |_| Range::Any),
    Key {
        key: "model",
        field: "model",
        get: |s| s.model.name().into(),
        set: |s, v| AppModel::parse(v).map(|m| s.model = m).is_some(),
        range: |_| Range::Any,
    },
    num!("lr", lr, f64, |_| Range::Num(1e-5, 1.0)),
    // A batch above n follows n down without a word (as in the panel when n changes).
    num!("batch", batch, usize, |s| Range::Num(1.0, s.samples as f64)),
    num!("k", k, usize, |_| Range::Num(1.0, 50.0)),
    Key {
        key: "opt",
        field: "optimizer",
        get: |s| opt_name(s.optimizer).into(),
        set: |s, v| {
            OPTIMIZERS
                .into_iter()
                .find(|o| opt_name(*o) == v)
                .map(|o| s.optimizer = o)
                .is_some()
        },
        range: |_| Range::Any,
    },
    num!("eig", eigen_every, usize, |_| Range::Num(1.0, 1000.0)),
    num!("seed", seed, u64, |_| Range::Any),
    num!("n", samples, usize, |s| Range::Num(
        1.0,
        s.model.dataset().max_samples() as f64
    )),
    num!("rho", rho, f64, |_| Range::Num(0.0, 1.0)),
    Key {
        key: "compute",
        field: "compute",
        get: |s| s.compute.name().into(),
        set: |s, v| {
            Compute::ALL
                .into_iter()
                .find(|c| c.name() == v)
                .map(|c| s.compute = c)
                .is_some()
        },
        range: |_| Range::Any,
    },
    // Checked against the scenarios' table by `sanitize`.
    Key {
        key: "scenario",
        field: "scenario",
        get: |s| s.scenario.clone(),
        set: |s, v| {
            s.scenario = v.to_string();
            true
        },
        range: |_| Range::Any,
    },
    // '&', '#' and '%' would end or garble the hash: escaped as in a URL.
    Key {
        key: "snapshot",
        field: "snapshot",
        get: |s| {
            s.snapshot
                .replace('%', "%25")
                .replace('&', "%26")
                .replace('#', "%23")
        },
        set: |s, v| {
            s.snapshot = v
                .replace("%26", "&")
                .replace("%23", "#")
                .replace("%25", "%");
            true
        },
        range: |_| Range::Any,
    },
    // `teacher=1` (or true) in a link: the app without its advanced controls.
    Key {
        key: "teacher",
        field: "teacher",
        get: |s| if s.teacher { "1" } else { "0" }.into(),
        set: |s, v| match v {
            "1" | "true" => {
                s.teacher = true;
                true
            }
            "0" | "false" => {
                s.teacher = false;
                true
            }
            _ => false,
        },
        range: |_| Range::Any,
    },
];

impl Settings {
    /// The setting called `key` ([`KEYS`]).
    pub fn key(key: &str) -> Option<&'static Key> {
        KEYS.iter().find(|k| k.key == key)
    }

    /// The numeric range of the setting `key` for the panels' controls (given the others: the
    /// batch's depends on n). A key without a numeric range: all finite numbers.
    pub fn range_of(&self, key: &str) -> std::ops::RangeInclusive<f64> {
        match Settings::key(key).map(|k| (k.range)(self)) {
            Some(Range::Num(lo, hi)) => lo..=hi,
            _ => f64::MIN..=f64::MAX,
        }
    }

    /// `key=value&…` with every field that differs from the model's defaults, and the model when
    /// it is not fc-tanh (the URL hash without '#'; also what the native app saves).
    pub fn to_hash(&self) -> String {
        // Against the model's own defaults (the paper's settings for it), so that a link that
        // names only the model, `#model=transformer`, gets them.
        let d = Settings {
            model: AppModel::default(),
            ..Settings::default().with_model(self.model)
        };
        KEYS.iter()
            .filter_map(|k| {
                let v = (k.get)(self);
                (v != (k.get)(&d)).then(|| format!("{}={v}", k.key))
            })
            .collect::<Vec<_>>()
            .join("&")
    }

    /// Put every field the app cannot run back to its default (the model's), one by one, saying
    /// which (one rule for the URL hash and for the settings a native app saved: a hand-edited or
    /// older file with `samples: 0` must not leave a panel stuck, nor a toy start of 1e308 crash
    /// the plots). The ranges are [`KEYS`]'; a scenario must exist and be of the model.
    pub fn sanitize(&mut self) -> Vec<String> {
        let d = Settings::default().with_model(self.model);
        let mut w = Vec::new();
        // n first: the batch's range depends on it.
        let n_first = KEYS
            .iter()
            .filter(|k| k.key == "n")
            .chain(KEYS.iter().filter(|k| k.key != "n"));
        for k in n_first {
            if k.key == "batch" && self.batch > self.samples {
                self.batch = self.samples;
            }
            let range = (k.range)(self);
            let v = (k.get)(self);
            if !range.contains(&v) {
                let to = (k.get)(&d);
                w.push(format!(
                    "{} = {v} is out of range ({range}): reset to {to}",
                    k.field
                ));
                (k.set)(self, &to);
            }
        }
        self.batch = self.batch.min(self.samples);
        self.check_scenario(&mut w);
        w
    }

    /// A scenario must exist and be of the model; not with a snapshot.
    fn check_scenario(&mut self, w: &mut Vec<String>) {
        if !self.snapshot.is_empty() && !self.scenario.is_empty() {
            w.push(format!(
                "scenario {} and snapshot {} both given: starting from the snapshot",
                self.scenario, self.snapshot
            ));
            self.scenario.clear();
        }
        if !self.scenario.is_empty() {
            match crate::app::scenario::find(&self.scenario) {
                Err(e) => {
                    w.push(format!("scenario: {e}; starting a fresh run"));
                    self.scenario.clear();
                }
                Ok(sc) if sc.model != self.model => {
                    w.push(format!(
                        "scenario {} is of {}, not of {}: starting a fresh run of {}",
                        sc.name,
                        sc.model.label(),
                        self.model.label(),
                        self.model.label()
                    ));
                    self.scenario.clear();
                }
                Ok(_) => {}
            }
        }
    }

    /// Parse a hash (with or without '#'). Unknown keys and unparsable values are skipped and
    /// reported; values out of range are reset by [`Settings::sanitize`] and reported. The native
    /// app's saved settings are read the same way, so one bad value costs only itself.
    pub fn from_hash(hash: &str) -> (Settings, Vec<String>) {
        let mut warnings = Vec::new();
        // The model first: the other keys override its paper settings. Without one, a
        // scenario's model (`#scenario=fig1-switch-transformer` is a run of the Transformer).
        let parts = || hash.trim_start_matches('#').split('&').rev();
        let model = parts()
            .find_map(|p| p.strip_prefix("model=").and_then(AppModel::parse))
            .or_else(|| {
                parts()
                    .find_map(|p| p.strip_prefix("scenario="))
                    .and_then(|n| crate::app::scenario::find(n).ok())
                    .map(|sc| sc.model)
            })
            .unwrap_or_default();
        let mut s = Settings::default().with_model(model);
        for part in hash
            .trim_start_matches('#')
            .split('&')
            .filter(|p| !p.is_empty())
        {
            let Some((k, v)) = part.split_once('=') else {
                warnings.push(format!("ignored '{part}': expected key=value"));
                continue;
            };
            match Settings::key(k) {
                None => warnings.push(format!("ignored unknown setting '{k}'")),
                Some(key) if !(key.set)(&mut s, v) => {
                    warnings.push(format!("ignored {k}={v}: not a valid value"));
                }
                Some(_) => {}
            }
        }
        warnings.extend(s.sanitize());
        (s, warnings)
    }
}
