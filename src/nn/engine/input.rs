//! The data set in the form the graph's first op reads ([`crate::nn::ops::DataForm`]): feature
//! rows, NHWC images, or token ids with each chunk's token index; uploaded once, rewritten in
//! place for a new minibatch, and addressed per chunk by the passes.

use crate::backend::Backend;
use crate::data::dataset::Dataset;
use crate::error::{Error, Result};
use crate::nn::graph::Graph;
use crate::nn::ops::{Input, Ten};

use super::tokens::{HostPack, Pack, TokenPlan};

/// The data as the first op reads it.
pub(super) enum DataInput<B: Backend> {
    /// Features for a fully connected first layer (the CPU's sparse form where it applies).
    Features(B::Input),
    /// Images in NHWC for a convolution.
    Images(B::Buf),
    /// Token ids (one scalar per position) for an embedding, with each chunk's positions grouped
    /// by id for the embedding's gradient ([`crate::backend::TokenIndex`]), chunk i at rows
    /// i·chunk...
    Tokens {
        ids: B::Buf,
        seq: usize,
        index: Vec<(B::Buf, B::Buf)>,
        /// Each chunk's live tokens packed, when the engine packs them ([`TokenPlan`]); empty
        /// otherwise.
        packs: Vec<Pack<B>>,
    },
}

/// [`DataInput`] on the host, before it is uploaded.
enum HostInput {
    Features,
    Images(Vec<f64>),
    Tokens {
        seq: usize,
        index: Vec<(Vec<f64>, Vec<f64>)>,
        packs: Vec<HostPack>,
    },
}

/// The data set in the layout the graph's first op reads: CHW features become NHWC images for a
/// convolution; token ids are checked and indexed per chunk of `chunk` rows.
pub(super) fn data_input<B: Backend>(
    backend: &B,
    graph: &Graph,
    data: &Dataset,
    chunk: usize,
) -> Result<DataInput<B>> {
    Ok(
        match host_input(graph, data, chunk, packs(backend, graph))? {
            HostInput::Features => DataInput::Features(backend.input(&data.x, data.n, data.d)?),
            HostInput::Images(x) => DataInput::Images(backend.upload(&x)?),
            HostInput::Tokens { seq, index, packs } => DataInput::Tokens {
                ids: backend.upload(&data.x)?,
                seq,
                index: index
                    .iter()
                    .map(|(s, o)| Ok((backend.upload(s)?, backend.upload(o)?)))
                    .collect::<Result<_>>()?,
                packs: upload_packs(backend, &packs, seq)?,
            },
        },
    )
}

/// Another data set of the same shape into `into`'s buffers ([`Backend::write`], no allocation
/// on a device), or uploaded afresh where a size differs.
pub(super) fn write_input<B: Backend>(
    backend: &B,
    into: &mut DataInput<B>,
    graph: &Graph,
    data: &Dataset,
    chunk: usize,
) -> Result<()> {
    let host = host_input(graph, data, chunk, packs(backend, graph))?;
    let fits = match (&*into, &host) {
        (DataInput::Features(_), HostInput::Features) => true,
        (DataInput::Images(b), HostInput::Images(x)) => backend.len(b) == x.len(),
        (DataInput::Tokens { ids, index, .. }, HostInput::Tokens { index: hi, .. }) => {
            backend.len(ids) == data.x.len()
                && index.len() == hi.len()
                && index.iter().zip(hi).all(|((s, o), (hs, ho))| {
                    backend.len(s) == hs.len() && backend.len(o) == ho.len()
                })
        }
        _ => false,
    };
    if !fits {
        *into = data_input(backend, graph, data, chunk)?;
        return Ok(());
    }
    match (into, host) {
        (DataInput::Features(x), _) => backend.input_write(x, &data.x, data.n, data.d),
        (DataInput::Images(b), HostInput::Images(x)) => backend.write(b, 0, &x),
        (
            DataInput::Tokens {
                ids,
                index,
                packs,
                seq,
            },
            HostInput::Tokens {
                index: hi,
                packs: hp,
                ..
            },
        ) => {
            backend.write(ids, 0, &data.x)?;
            for ((s, o), (hs, ho)) in index.iter_mut().zip(&hi) {
                backend.write(s, 0, hs)?;
                backend.write(o, 0, ho)?;
            }
            // Live-token counts differ from minibatch to minibatch: packed anew (host only).
            *packs = upload_packs(backend, &hp, *seq)?;
            Ok(())
        }
        _ => Err(Error::Shape("write_input: the input's kind changed".into())),
    }
}

/// Whether the engine runs `graph` on packed tokens on `backend` ([`TokenPlan`]).
pub(super) fn packs<B: Backend>(backend: &B, graph: &Graph) -> bool {
    backend.packs_tokens() && TokenPlan::new(graph).is_some()
}

/// The chunks' packings uploaded.
fn upload_packs<B: Backend>(backend: &B, packs: &[HostPack], seq: usize) -> Result<Vec<Pack<B>>> {
    packs.iter().map(|p| p.upload(backend, seq)).collect()
}

/// The host form of [`data_input`] (checks the token ids), with each chunk's packing when
/// `pack`.
fn host_input(graph: &Graph, data: &Dataset, chunk: usize, pack: bool) -> Result<HostInput> {
    if let Some((vocab, seq)) = graph.tokens() {
        if let Some((i, bad)) = data
            .x
            .iter()
            .enumerate()
            .find(|(_, v)| !(v.fract() == 0.0 && **v >= 0.0 && (**v as usize) < vocab))
        {
            return Err(Error::Shape(format!(
                "token id {bad} at sample {}, position {} is not an integer in 0..{vocab} (the model's vocabulary): the data and the weights come from different vocabularies",
                i / seq,
                i % seq
            )));
        }
        if chunk.max(1) * seq > 1 << 24 {
            return Err(Error::Shape(format!(
                "{} positions per chunk ({} sequences of {seq}): the token index stores positions as scalars, exact in f32 below 2^24; use a smaller --chunk",
                chunk * seq,
                chunk
            )));
        }
        let mut index = Vec::new();
        let mut packs = Vec::new();
        for rows in data.x.chunks(chunk.max(1) * seq) {
            let ti = crate::backend::TokenIndex::new(rows, vocab);
            index.push((ti.start, ti.order));
            if pack {
                packs.push(HostPack::new(rows, seq, vocab));
            }
        }
        return Ok(HostInput::Tokens { seq, index, packs });
    }
    match graph.image_input() {
        Some((c, h, w)) => {
            let hw = h * w;
            let mut x = vec![0.0; data.x.len()];
            for (src, dst) in data.x.chunks_exact(c * hw).zip(x.chunks_exact_mut(c * hw)) {
                for ch in 0..c {
                    for p in 0..hw {
                        dst[p * c + ch] = src[ch * hw + p];
                    }
                }
            }
            Ok(HostInput::Images(x))
        }
        None => Ok(HostInput::Features),
    }
}

impl<B: Backend> DataInput<B> {
    /// The first op's input: the data rows r0.. of `width` scalars in the form the op reads.
    pub(super) fn first(&self, r0: usize, width: usize) -> Input<'_, B> {
        match self {
            DataInput::Features(x) => Input::Data(x, r0),
            DataInput::Images(b) => Input::Buf(Ten(b, r0 * width)),
            DataInput::Tokens { ids, .. } => Input::Buf(Ten(ids, r0 * width)),
        }
    }

    /// The token ids of rows r0.. (for the ops that mask padding); None without tokens.
    pub(super) fn ids(&self, r0: usize) -> Option<Ten<'_, B>> {
        match self {
            DataInput::Tokens { ids, seq, .. } => Some(Ten(ids, r0 * seq)),
            _ => None,
        }
    }

    /// Whether the chunks' packings were built (token ids on a backend that packs them).
    pub(super) fn packed(&self) -> bool {
        matches!(self, DataInput::Tokens { packs, .. } if !packs.is_empty())
    }

    /// The packed live tokens of chunk `ci`; None when the engine does not pack.
    pub(super) fn pack(&self, ci: usize) -> Option<&Pack<B>> {
        match self {
            DataInput::Tokens { packs, .. } => packs.get(ci),
            _ => None,
        }
    }

    /// The token index of chunk `ci`; None without tokens.
    pub(super) fn index(&self, ci: usize) -> Option<(&B::Buf, &B::Buf)> {
        match self {
            DataInput::Tokens { index, .. } => index.get(ci).map(|(s, o)| (s, o)),
            _ => None,
        }
    }
}
