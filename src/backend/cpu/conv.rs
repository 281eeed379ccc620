//! The CPU's im2col and its adjoint col2im for any convolution geometry ([`ConvGeom`]): a loop
//! specialised to 3×3, stride 1, padding 1 (the CNN's, unchanged since it was the only one) and
//! a general loop for every other kernel, stride and padding. Both write whole output rows (or
//! pixels) per thread in a fixed order, so results do not depend on the thread count.

use super::par::par_rows;
use super::real::Real;
use super::{CpuBackend, sl, sl_mut};
use crate::backend::{ConvGeom, Nhwc, Ten, TenMut};
use crate::error::Result;

/// [`Nn::im2col`](crate::backend::Nn::im2col) on this backend.
pub(super) fn im2col<T: Real>(
    g: Nhwc,
    k: ConvGeom,
    x: Ten<'_, CpuBackend<T>>,
    col: TenMut<'_, CpuBackend<T>>,
) -> Result<()> {
    if k == ConvGeom::SAME_3X3 {
        return im2col3x3(g, x, col);
    }
    let (oh, ow) = k.out_hw(g)?;
    let Ten(x, x_off) = x;
    let TenMut(col, col_off) = col;
    let x = sl(x, x_off, g.len(), "im2col x")?;
    let width = k.taps() * g.c;
    let col = sl_mut(col, col_off, g.n * oh * ow * width, "im2col col")?;
    let work = col.len();
    par_rows(col, width, work, |row0, rows| {
        for (r, row) in rows.chunks_exact_mut(width).enumerate() {
            im2col_row(g, k, (oh, ow), row0 + r, x, row);
        }
    });
    Ok(())
}

/// Row `pix` (sample s, output pixel oy, ox) of the im2col matrix of geometry `k`.
fn im2col_row<T: Real>(
    g: Nhwc,
    k: ConvGeom,
    (oh, ow): (usize, usize),
    pix: usize,
    x: &[T],
    row: &mut [T],
) {
    let (h, w, c) = (g.h as isize, g.w as isize, g.c);
    let taps = k.taps();
    let (s, p) = (pix / (oh * ow), pix % (oh * ow));
    let (oy, ox) = (p / ow, p % ow);
    for ky in 0..k.kernel {
        let y = (oy * k.stride + ky) as isize - k.pad as isize;
        for kx in 0..k.kernel {
            let xs = (ox * k.stride + kx) as isize - k.pad as isize;
            let j = ky * k.kernel + kx;
            if y >= 0 && y < h && xs >= 0 && xs < w {
                let base = ((s * g.h + y as usize) * g.w + xs as usize) * c;
                for ci in 0..c {
                    row[ci * taps + j] = x[base + ci];
                }
            } else {
                for ci in 0..c {
                    row[ci * taps + j] = T::zero();
                }
            }
        }
    }
}

/// [`Nn::col2im`](crate::backend::Nn::col2im) on this backend.
pub(super) fn col2im<T: Real>(
    g: Nhwc,
    k: ConvGeom,
    col: Ten<'_, CpuBackend<T>>,
    beta: f64,
    dx: TenMut<'_, CpuBackend<T>>,
) -> Result<()> {
    if k == ConvGeom::SAME_3X3 {
        return col2im3x3(g, col, beta, dx);
    }
    let (oh, ow) = k.out_hw(g)?;
    let Ten(col, col_off) = col;
    let TenMut(dx, dx_off) = dx;
    let width = k.taps() * g.c;
    let col = sl(col, col_off, g.n * oh * ow * width, "col2im col")?;
    let dx = sl_mut(dx, dx_off, g.len(), "col2im dx")?;
    let beta = T::of(beta);
    let work = dx.len() * k.taps();
    par_rows(dx, g.c, work, |pix0, px| {
        for (r, out) in px.chunks_exact_mut(g.c).enumerate() {
            for v in out.iter_mut() {
                *v = if beta == T::zero() {
                    T::zero()
                } else {
                    beta * *v
                };
            }
            col2im_pixel(g, k, (oh, ow), pix0 + r, col, out);
        }
    });
    Ok(())
}

/// The output position along an axis whose window reads input pixel `i` at tap `t`: `o` with
/// o·stride + t − pad = i, if there is one below `n`.
#[inline]
fn source(k: ConvGeom, i: usize, t: usize, n: usize) -> Option<usize> {
    let a = (i + k.pad).checked_sub(t)?;
    let o = a / k.stride;
    (a % k.stride == 0 && o < n).then_some(o)
}

/// Adds to input pixel `pix`'s channels `out` every entry of `col` read from it, taps in order
/// (ky, kx).
fn col2im_pixel<T: Real>(
    g: Nhwc,
    k: ConvGeom,
    (oh, ow): (usize, usize),
    pix: usize,
    col: &[T],
    out: &mut [T],
) {
    let (taps, width) = (k.taps(), k.taps() * g.c);
    let (s, p) = (pix / (g.h * g.w), pix % (g.h * g.w));
    let (y, x) = (p / g.w, p % g.w);
    for ky in 0..k.kernel {
        let Some(oy) = source(k, y, ky, oh) else {
            continue;
        };
        for kx in 0..k.kernel {
            let Some(ox) = source(k, x, kx, ow) else {
                continue;
            };
            let row = ((s * oh + oy) * ow + ox) * width;
            let j = ky * k.kernel + kx;
            for (ci, v) in out.iter_mut().enumerate() {
                *v = *v + col[row + ci * taps + j];
            }
        }
    }
}

/// im2col of [`ConvGeom::SAME_3X3`], the loop specialised to it.
fn im2col3x3<T: Real>(
    g: Nhwc,
    x: Ten<'_, CpuBackend<T>>,
    col: TenMut<'_, CpuBackend<T>>,
) -> Result<()> {
    let Ten(x, x_off) = x;
    let TenMut(col, col_off) = col;
    let x = sl(x, x_off, g.len(), "im2col x")?;
    let k9 = 9 * g.c;
    let col = sl_mut(col, col_off, g.n * g.h * g.w * k9, "im2col col")?;
    let (h, w, c) = (g.h, g.w, g.c);
    let work = col.len();
    // Whole rows (one output pixel each) per thread.
    par_rows(col, k9, work, |row0, rows| {
        for (r, row) in rows.chunks_exact_mut(k9).enumerate() {
            let pix = row0 + r;
            let (s, p) = (pix / (h * w), pix % (h * w));
            let (y, xx) = (p / w, p % w);
            for ky in 0..3 {
                let yy = y as isize + ky as isize - 1;
                for kx in 0..3 {
                    let xs = xx as isize + kx as isize - 1;
                    let inside = yy >= 0 && yy < h as isize && xs >= 0 && xs < w as isize;
                    let j = ky * 3 + kx;
                    if inside {
                        let base = ((s * h + yy as usize) * w + xs as usize) * c;
                        for ci in 0..c {
                            row[ci * 9 + j] = x[base + ci];
                        }
                    } else {
                        for ci in 0..c {
                            row[ci * 9 + j] = T::zero();
                        }
                    }
                }
            }
        }
    });
    Ok(())
}

/// col2im of [`ConvGeom::SAME_3X3`], the loop specialised to it.
fn col2im3x3<T: Real>(
    g: Nhwc,
    col: Ten<'_, CpuBackend<T>>,
    beta: f64,
    dx: TenMut<'_, CpuBackend<T>>,
) -> Result<()> {
    let Ten(col, col_off) = col;
    let TenMut(dx, dx_off) = dx;
    let k9 = 9 * g.c;
    let col = sl(col, col_off, g.n * g.h * g.w * k9, "col2im col")?;
    let dx = sl_mut(dx, dx_off, g.len(), "col2im dx")?;
    let (h, w, c) = (g.h, g.w, g.c);
    let beta = T::of(beta);
    let work = dx.len() * 9;
    par_rows(dx, c, work, |pix0, px| {
        for (r, out) in px.chunks_exact_mut(c).enumerate() {
            let pix = pix0 + r;
            let (s, p) = (pix / (h * w), pix % (h * w));
            let (y, xx) = (p / w, p % w);
            for v in out.iter_mut() {
                *v = if beta == T::zero() {
                    T::zero()
                } else {
                    beta * *v
                };
            }
            // Pixel (y, x) is read by output pixel (y − ky + 1, x − kx + 1) at tap (ky, kx).
            for ky in 0..3 {
                let yo = y as isize - ky as isize + 1;
                if yo < 0 || yo >= h as isize {
                    continue;
                }
                for kx in 0..3 {
                    let xo = xx as isize - kx as isize + 1;
                    if xo < 0 || xo >= w as isize {
                        continue;
                    }
                    let row = ((s * h + yo as usize) * w + xo as usize) * k9;
                    let j = ky * 3 + kx;
                    for (ci, v) in out.iter_mut().enumerate() {
                        *v = *v + col[row + ci * 9 + j];
                    }
                }
            }
        }
    });
    Ok(())
}
