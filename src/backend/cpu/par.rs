//! How the CPU kernels split their work over threads: contiguous pieces or whole rows of an
//! output, each piece computed in one fixed order (results do not depend on the thread count).

/// Below this many elements a kernel runs on one thread.
pub(super) const PAR_MIN: usize = 1 << 16;

/// Threads of the CPU kernels: `SUBSPACE_LAB_THREADS` if set (the desktop app leaves one core to
/// the UI), else every core.
pub(super) fn threads() -> usize {
    pub(super) static N: std::sync::OnceLock<usize> = std::sync::OnceLock::new();
    *N.get_or_init(|| {
        std::env::var("SUBSPACE_LAB_THREADS")
            .ok()
            .and_then(|v| v.parse::<usize>().ok())
            .filter(|n| *n >= 1)
            .unwrap_or_else(|| std::thread::available_parallelism().map_or(1, |n| n.get()))
    })
}

/// Run `f(start, chunk)` over `out` split into contiguous pieces on up to `threads()` threads.
pub(super) fn par_chunks<T: Send>(out: &mut [T], work: usize, f: impl Fn(usize, &mut [T]) + Sync) {
    let t = threads().min(out.len().max(1));
    if t <= 1 || work < PAR_MIN {
        f(0, out);
        return;
    }
    let per = out.len().div_ceil(t);
    std::thread::scope(|s| {
        for (i, chunk) in out.chunks_mut(per).enumerate() {
            let f = &f;
            s.spawn(move || f(i * per, chunk));
        }
    });
}

/// Run `f(first_row, rows)` over `out` split into whole rows of `width` elements on up to
/// `threads()` threads.
pub(super) fn par_rows<T: Send>(
    out: &mut [T],
    width: usize,
    work: usize,
    f: impl Fn(usize, &mut [T]) + Sync,
) {
    let width = width.max(1);
    let rows = out.len() / width;
    let t = threads().min(rows.max(1));
    if t <= 1 || work < PAR_MIN {
        f(0, out);
        return;
    }
    let per = rows.div_ceil(t);
    std::thread::scope(|s| {
        for (i, chunk) in out.chunks_mut(per * width).enumerate() {
            let f = &f;
            s.spawn(move || f(i * per, chunk));
        }
    });
}

/// [`par_rows`] over two outputs split into the same rows of `width`.
pub(super) fn par_rows2<T: Send>(
    a: &mut [T],
    b: &mut [T],
    width: usize,
    work: usize,
    f: impl Fn(usize, &mut [T], &mut [T]) + Sync,
) {
    let width = width.max(1);
    let rows = a.len() / width;
    let t = threads().min(rows.max(1));
    if t <= 1 || work < PAR_MIN {
        f(0, a, b);
        return;
    }
    let per = rows.div_ceil(t);
    std::thread::scope(|s| {
        for (i, (ca, cb)) in a
            .chunks_mut(per * width)
            .zip(b.chunks_mut(per * width))
            .enumerate()
        {
            let f = &f;
            s.spawn(move || f(i * per, ca, cb));
        }
    });
}

/// Run `f(r, a_r, b_r)` for every sequence r, where `a` and `b` are split into rows of `aw` and
/// `bw` elements (`bw` may be 0: `b_r` is then empty), on up to `threads` threads.
pub(super) fn par_seqs2<T: Send>(
    threads: usize,
    a: &mut [T],
    aw: usize,
    b: &mut [T],
    bw: usize,
    f: impl Fn(usize, &mut [T], &mut [T]) + Sync,
) {
    let rows = a.len().checked_div(aw).unwrap_or(0);
    let t = threads.min(rows).max(1);
    let per = rows.div_ceil(t).max(1);
    let run = |r0: usize, a: &mut [T], b: &mut [T]| {
        let n = a.len().checked_div(aw).unwrap_or(0);
        for i in 0..n {
            let (ai, bi) = (
                &mut a[i * aw..(i + 1) * aw],
                if bw > 0 {
                    &mut b[i * bw..(i + 1) * bw]
                } else {
                    &mut b[0..0]
                },
            );
            f(r0 + i, ai, bi);
        }
    };
    if t <= 1 {
        run(0, a, b);
        return;
    }
    std::thread::scope(|s| {
        let mut b_rest: &mut [T] = b;
        for (i, ac) in a.chunks_mut(per * aw).enumerate() {
            let nb = if bw > 0 { (ac.len() / aw) * bw } else { 0 };
            let (bc, rest) = std::mem::take(&mut b_rest).split_at_mut(nb);
            b_rest = rest;
            let run = &run;
            s.spawn(move || run(i * per, ac, bc));
        }
    });
}
