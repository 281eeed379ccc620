//! The metadata of a weights file: one set of key names for this program and its PyTorch twins
//! (`scripts/twin_metadata.py` holds the same table), older names read as their new ones, and a
//! warning naming every key the reader does not know.

use crate::error::Result;
use std::collections::{BTreeMap, HashMap};

/// The keys that describe the network or its training, read by the loader: `model`
/// (`fc-tanh`, `cnn-relu`, `convnet-…`, `transformer`, …), `activation`, `heads`, `mask`
/// (`true`/`false`), `ln_eps`, `input` (a CNN's `C,H,W`), `loss`, `dataset`, `vocab` (a JSON list
/// of the Transformer's words in id order).
pub const MODEL_KEYS: &[&str] = &[
    "model",
    "activation",
    "heads",
    "mask",
    "ln_eps",
    "input",
    "loss",
    "dataset",
    "vocab",
];

/// Keys that describe the file, not the network (kept, never read): `format` (safetensors'
/// framework, `pt`), `seed`, `random_head` (how the twin drew it), `widths` (the CNN twin's
/// option, the same as the tensors' shapes); for the final weights of a leg that `run` and
/// `reproduce` save: `run` (its name, e.g. `Dom-SGD`), `phase` (`before`/`after` the switch),
/// `step` (the global step) and `train_loss` (the full-batch training loss at that step).
pub const INFO_KEYS: &[&str] = &[
    "format",
    "seed",
    "random_head",
    "widths",
    "run",
    "phase",
    "step",
    "train_loss",
];

/// Older names read as the current ones: `act` (what `torch_transformer_reference.py` wrote
/// before it wrote `activation`).
pub const ALIASES: &[(&str, &str)] = &[("act", "activation")];

/// A file's metadata under the current key names.
pub(crate) struct Meta {
    keys: BTreeMap<&'static str, String>,
    /// One line per key the reader does not know.
    pub(crate) warnings: Vec<String>,
}

impl Meta {
    /// Read `raw` (the safetensors `__metadata__`): known keys by their current names, an alias
    /// by its new name (an error when both are present and differ), a warning per unknown key.
    pub(crate) fn read(raw: Option<&HashMap<String, String>>) -> Result<Meta, String> {
        let mut keys: BTreeMap<&'static str, String> = BTreeMap::new();
        let mut warnings = Vec::new();
        let mut entries: Vec<(&String, &String)> = raw.into_iter().flatten().collect();
        // Current names first, so that an alias meets the value it must agree with.
        entries.sort_by_key(|(k, _)| (ALIASES.iter().any(|(a, _)| a == k), k.as_str()));
        for (k, v) in entries {
            if let Some(key) = MODEL_KEYS.iter().find(|m| *m == k) {
                keys.insert(key, v.clone());
            } else if let Some((old, new)) = ALIASES.iter().find(|(a, _)| a == k) {
                match keys.get(new) {
                    Some(cur) if cur != v => {
                        return Err(format!(
                            "the file's metadata says {old} = {v} and {new} = {cur}: two names of one setting that disagree ({old} is the older name of {new}); fix the file"
                        ));
                    }
                    _ => {
                        let key = MODEL_KEYS.iter().find(|m| *m == new).copied();
                        keys.insert(key.unwrap_or("activation"), v.clone());
                    }
                }
            } else if !INFO_KEYS.contains(&k.as_str()) {
                warnings.push(format!(
                    "the file's metadata has the key `{k}` (= {}), which this reader does not know, so it is ignored: the network is built from {} only",
                    short(v),
                    MODEL_KEYS.join(", ")
                ));
            }
        }
        Ok(Meta { keys, warnings })
    }

    /// The value of a key (by its current name).
    pub(crate) fn get(&self, key: &str) -> Option<String> {
        self.keys.get(key).cloned()
    }
}

/// A value cut to 40 characters for a message.
fn short(v: &str) -> String {
    if v.chars().count() > 40 {
        format!("{}…", v.chars().take(40).collect::<String>())
    } else {
        v.to_string()
    }
}
