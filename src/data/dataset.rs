//! An in-memory classification data set: features and one-hot targets, row-major, in f64 (each
//! backend converts on upload).

use crate::error::{Error, Result};

#[derive(Clone, Debug)]
pub struct Dataset {
    /// Number of samples.
    pub n: usize,
    /// Features per sample.
    pub d: usize,
    /// Number of classes.
    pub classes: usize,
    /// n × d features.
    pub x: Vec<f64>,
    /// n × classes one-hot targets.
    pub y: Vec<f64>,
    /// n labels.
    pub labels: Vec<u8>,
}

impl Dataset {
    /// Build from features and labels; checks shapes and label range.
    pub fn new(d: usize, classes: usize, x: Vec<f64>, labels: Vec<u8>) -> Result<Self> {
        let n = labels.len();
        if d == 0 || classes == 0 || x.len() != n * d {
            return Err(Error::Shape(format!(
                "dataset: {} features for {n} samples of dimension {d}",
                x.len()
            )));
        }
        let mut y = vec![0.0; n * classes];
        for (i, &l) in labels.iter().enumerate() {
            if l as usize >= classes {
                return Err(Error::Shape(format!(
                    "dataset: label {l} of sample {i} is not below {classes} classes"
                )));
            }
            y[i * classes + l as usize] = 1.0;
        }
        Ok(Dataset {
            n,
            d,
            classes,
            x,
            y,
            labels,
        })
    }

    /// The first `n` samples.
    pub fn head(&self, n: usize) -> Result<Self> {
        if n == 0 || n > self.n {
            return Err(Error::InvalidArgument(format!(
                "asked for {n} samples; the data set has {} (use 1..={})",
                self.n, self.n
            )));
        }
        Dataset::new(
            self.d,
            self.classes,
            self.x[..n * self.d].to_vec(),
            self.labels[..n].to_vec(),
        )
    }

    /// The samples at `rows`, in that order (a minibatch).
    pub fn gather(&self, rows: &[usize]) -> Result<Self> {
        let mut x = Vec::with_capacity(rows.len() * self.d);
        let mut labels = Vec::with_capacity(rows.len());
        for &r in rows {
            if r >= self.n {
                return Err(Error::Shape(format!("row {r} of a data set of {}", self.n)));
            }
            x.extend_from_slice(&self.x[r * self.d..(r + 1) * self.d]);
            labels.push(self.labels[r]);
        }
        Dataset::new(self.d, self.classes, x, labels)
    }

    /// A reproducible random data set (Gaussian features, uniform labels) for tests and benches
    /// that must not depend on a download.
    pub fn synthetic(n: usize, d: usize, classes: usize, seed: u64) -> Result<Self> {
        use rand::{RngExt, SeedableRng};
        let mut rng = rand_chacha::ChaCha8Rng::seed_from_u64(seed);
        let x = (0..n * d)
            .map(|_| {
                // Box–Muller: a standard normal from two uniforms.
                let u1: f64 = rng.random::<f64>().max(1e-300);
                let u2: f64 = rng.random();
                (-2.0 * u1.ln()).sqrt() * (std::f64::consts::TAU * u2).cos()
            })
            .collect();
        let labels = (0..n)
            .map(|_| rng.random_range(0..classes as u32) as u8)
            .collect();
        Dataset::new(d, classes, x, labels)
    }
}
