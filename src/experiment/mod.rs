//! The paper's experiments: the exact 2-D toy, the SGD / Dom-SGD / Bulk-SGD protocol on a
//! network, and the verdicts that check the paper's claims on the measured numbers.

pub mod reproduce;
pub mod sgd;
pub mod toy;
pub mod verdict;
