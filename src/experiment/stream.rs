//! The minibatch stream: a seeded ChaCha permutation of the samples, redrawn every epoch, whose
//! whole state is saved with a checkpoint or a snapshot and restored on resume.

use rand::{RngExt, SeedableRng};

/// The minibatch stream: consecutive slices of a permutation of 0..n redrawn every epoch from a
/// seeded ChaCha stream. Its whole state can be saved and restored (checkpoints).
#[derive(Clone)]
pub struct Stream {
    rng: rand_chacha::ChaCha8Rng,
    perm: Vec<usize>,
    pos: usize,
}

/// A stream's state as numbers.
#[derive(Clone, Debug, serde::Serialize, serde::Deserialize)]
pub struct StreamState {
    pub seed: u64,
    pub word_pos: u128,
    pub perm: Vec<usize>,
    pub pos: usize,
}

impl Stream {
    pub fn new(n: usize, seed: u64) -> Self {
        Stream {
            rng: rand_chacha::ChaCha8Rng::seed_from_u64(seed ^ 0xba7c4),
            perm: (0..n).collect(),
            pos: n,
        }
    }
    pub fn next(&mut self, batch: usize) -> Vec<usize> {
        let n = self.perm.len();
        if self.pos + batch > n {
            for i in (1..n).rev() {
                let j = self.rng.random_range(0..=i);
                self.perm.swap(i, j);
            }
            self.pos = 0;
        }
        let b = self.perm[self.pos..self.pos + batch].to_vec();
        self.pos += batch;
        b
    }
    /// The number of samples the stream draws from.
    pub fn len(&self) -> usize {
        self.perm.len()
    }
    pub fn is_empty(&self) -> bool {
        self.perm.is_empty()
    }
    pub fn state(&self, seed: u64) -> StreamState {
        StreamState {
            seed,
            word_pos: self.rng.get_word_pos(),
            perm: self.perm.clone(),
            pos: self.pos,
        }
    }
    pub fn restore(s: &StreamState) -> Self {
        let mut rng = rand_chacha::ChaCha8Rng::seed_from_u64(s.seed ^ 0xba7c4);
        rng.set_word_pos(s.word_pos);
        Stream {
            rng,
            perm: s.perm.clone(),
            pos: s.pos,
        }
    }
}
