//! The CPU's im2col and col2im for every convolution geometry ([`ConvGeom`]: kernel ∈ {1, 3},
//! stride ∈ {1, 2}, padding ∈ {0, 1}) in f64: im2col followed by the GEMM equals a direct
//! convolution written from PyTorch's definition, and col2im is im2col's adjoint,
//! ⟨im2col x, c⟩ = ⟨x, col2im c⟩. 3×3/1/1 runs the specialised loop, the others the general one.

use subspace_lab::backend::cpu::CpuBackend;
use subspace_lab::backend::prelude::*;
use subspace_lab::backend::{ConvGeom, Nhwc, Ten, TenMut};

/// Deterministic values in [−1, 1).
fn values(n: usize, seed: u64) -> Vec<f64> {
    let mut s = seed
        .wrapping_mul(6364136223846793005)
        .wrapping_add(1442695040888963407);
    (0..n)
        .map(|_| {
            s = s
                .wrapping_mul(6364136223846793005)
                .wrapping_add(1442695040888963407);
            ((s >> 11) as f64 / (1u64 << 53) as f64) * 2.0 - 1.0
        })
        .collect()
}

/// y[s, oy, ox, co] = Σ W[co, ci, ky, kx]·x[s, oy·stride + ky − pad, ox·stride + kx − pad, ci]
/// (zero outside the image): `torch.nn.functional.conv2d` on NHWC storage.
fn direct_conv(g: Nhwc, k: ConvGeom, x: &[f64], w: &[f64], cout: usize) -> Vec<f64> {
    let (oh, ow) = (k.out_size(g.h), k.out_size(g.w));
    let mut y = vec![0.0; g.n * oh * ow * cout];
    for s in 0..g.n {
        for oy in 0..oh {
            for ox in 0..ow {
                for co in 0..cout {
                    let mut acc = 0.0;
                    for ci in 0..g.c {
                        for ky in 0..k.kernel {
                            for kx in 0..k.kernel {
                                let yy = (oy * k.stride + ky) as isize - k.pad as isize;
                                let xx = (ox * k.stride + kx) as isize - k.pad as isize;
                                if yy < 0 || xx < 0 || yy >= g.h as isize || xx >= g.w as isize {
                                    continue;
                                }
                                let xi = ((s * g.h + yy as usize) * g.w + xx as usize) * g.c + ci;
                                let wi = ((co * g.c + ci) * k.kernel + ky) * k.kernel + kx;
                                acc += w[wi] * x[xi];
                            }
                        }
                    }
                    y[((s * oh + oy) * ow + ox) * cout + co] = acc;
                }
            }
        }
    }
    y
}

fn geometries() -> Vec<ConvGeom> {
    let mut out = Vec::new();
    for kernel in [1, 3] {
        for stride in [1, 2] {
            for pad in [0, 1] {
                out.push(ConvGeom::new(kernel, stride, pad));
            }
        }
    }
    out
}

#[test]
fn im2col_gemm_is_the_direct_convolution() {
    let be = CpuBackend::<f64>::new();
    let (cout, x_off, col_off) = (2, 3, 5);
    for (i, k) in geometries().into_iter().enumerate() {
        for g in [
            Nhwc {
                n: 2,
                h: 5,
                w: 4,
                c: 3,
            },
            Nhwc {
                n: 1,
                h: 1,
                w: 2,
                c: 2,
            },
        ] {
            let Ok((oh, ow)) = k.out_hw(g) else {
                // Only a window wider than the padded image has no output.
                assert!(k.kernel > g.h.min(g.w) + 2 * k.pad, "{k} on {g:?}");
                continue;
            };
            let taps = k.taps() * g.c;
            let x = values(g.len(), 10 + i as u64);
            let w = values(cout * taps, 20 + i as u64);
            let mut xb = be.zeros(x_off + g.len()).unwrap();
            be.write(&mut xb, x_off, &x).unwrap();
            let rows = g.n * oh * ow;
            let mut col = be.zeros(col_off + rows * taps).unwrap();
            be.im2col(g, k, Ten(&xb, x_off), TenMut(&mut col, col_off))
                .unwrap();
            let col = &be.download(&col).unwrap()[col_off..];
            let want = direct_conv(g, k, &x, &w, cout);
            for r in 0..rows {
                for co in 0..cout {
                    let got: f64 = (0..taps)
                        .map(|j| col[r * taps + j] * w[co * taps + j])
                        .sum();
                    let e = want[r * cout + co];
                    assert!(
                        (got - e).abs() <= 1e-12 * (1.0 + e.abs()),
                        "{k} on {g:?}: row {r}, channel {co}: {got} vs {e}"
                    );
                }
            }
        }
    }
}

#[test]
fn col2im_is_the_adjoint_of_im2col() {
    let be = CpuBackend::<f64>::new();
    let g = Nhwc {
        n: 2,
        h: 5,
        w: 6,
        c: 3,
    };
    for (i, k) in geometries().into_iter().enumerate() {
        let (oh, ow) = k.out_hw(g).unwrap();
        let n_col = g.n * oh * ow * k.taps() * g.c;
        let x = values(g.len(), 30 + i as u64);
        let c = values(n_col, 40 + i as u64);
        let xb = be.upload(&x).unwrap();
        let cb = be.upload(&c).unwrap();
        let mut col = be.zeros(n_col).unwrap();
        be.im2col(g, k, Ten(&xb, 0), TenMut(&mut col, 0)).unwrap();
        let lhs = be.dot(&col, 0, &cb, 0, n_col).unwrap();
        // β = 0 overwrites whatever dx held.
        let mut dx = be.upload(&values(g.len(), 50)).unwrap();
        be.col2im(g, k, Ten(&cb, 0), 0.0, TenMut(&mut dx, 0))
            .unwrap();
        let rhs = be.dot(&xb, 0, &dx, 0, g.len()).unwrap();
        assert!(
            (lhs - rhs).abs() <= 1e-12 * (1.0 + lhs.abs()),
            "{k}: ⟨im2col x, c⟩ = {lhs}, ⟨x, col2im c⟩ = {rhs}"
        );
        // β = 2 accumulates onto twice the old value.
        let old = values(g.len(), 60);
        let mut acc = be.upload(&old).unwrap();
        be.col2im(g, k, Ten(&cb, 0), 2.0, TenMut(&mut acc, 0))
            .unwrap();
        let (acc, dx) = (be.download(&acc).unwrap(), be.download(&dx).unwrap());
        for j in 0..g.len() {
            let e = 2.0 * old[j] + dx[j];
            assert!(
                (acc[j] - e).abs() <= 1e-12 * (1.0 + e.abs()),
                "{k}: β at {j}"
            );
        }
    }
}

#[test]
fn geometries_that_do_not_fit_are_errors() {
    let be = CpuBackend::<f64>::new();
    let g = Nhwc {
        n: 1,
        h: 2,
        w: 2,
        c: 1,
    };
    let x = be.zeros(g.len()).unwrap();
    let mut col = be.zeros(64).unwrap();
    for k in [
        ConvGeom::new(5, 1, 1),
        ConvGeom::new(0, 1, 0),
        ConvGeom::new(1, 0, 0),
    ] {
        assert!(k.out_hw(g).is_err(), "{k}");
        assert!(
            be.im2col(g, k, Ten(&x, 0), TenMut(&mut col, 0)).is_err(),
            "{k}"
        );
    }
    // PyTorch's output sizes: (h + 2·pad − kernel)/stride + 1.
    assert_eq!(ConvGeom::new(3, 2, 1).out_size(5), 3);
    assert_eq!(ConvGeom::new(3, 2, 0).out_size(6), 2);
    assert_eq!(ConvGeom::SAME_3X3.out_size(7), 7);
    assert_eq!(ConvGeom::new(1, 2, 0).out_size(4), 2);
}
