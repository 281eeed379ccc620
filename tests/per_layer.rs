//! Per-layer Hessian blocks: the restricted operator of each named parameter block equals the
//! slice H[l, l] of the dense Hessian, and its top eigenvalues by Lanczos equal the slice's.
#![allow(clippy::needless_range_loop)]
mod common;
use common::*;
use subspace_lab::backend::{Activation, LossKind};
use subspace_lab::hessian::dense_matrix;
use subspace_lab::hessian::lanczos::LanczosOptions;
use subspace_lab::hessian::layers::{Restricted, layer_densities, layer_spectra, param_blocks};
use subspace_lab::hessian::probe::rademacher;
use subspace_lab::hessian::slq::{DensityOptions, SlqOptions};

#[test]
fn blocks_are_named_by_layer_and_cover_theta() {
    let (spec, theta, _) = tiny(&[6, 8, 5, 4], Activation::Tanh, 40, 3);
    let blocks = param_blocks(&spec.graph().params);
    let names: Vec<&str> = blocks.iter().map(|b| b.name.as_str()).collect();
    assert_eq!(names, ["fc1", "fc2", "fc3"]);
    assert_eq!(blocks[0].tensors, ["fc1.weight", "fc1.bias"]);
    assert_eq!(blocks[0].len, 6 * 8 + 8);
    let mut off = 0;
    for b in &blocks {
        assert_eq!(b.off, off);
        off += b.len;
    }
    assert_eq!(off, theta.len());
}

#[test]
fn restricted_blocks_equal_slices_of_the_dense_hessian_and_their_spectra() {
    let (spec, theta, data) = tiny(&[6, 8, 5, 4], Activation::Tanh, 40, 3);
    let b = F64::new();
    let mut e = engine(b.clone(), &spec, LossKind::Ce, &data, 16, &theta);
    let p = theta.len();
    let h = dense_matrix(&b, &mut e).unwrap();
    let scale = h.iter().fold(0.0f64, |m, x| m.max(x.abs()));
    let blocks = param_blocks(&spec.graph().params);
    let mut dense_tops = Vec::new();
    for blk in &blocks {
        let (o, n) = (blk.off, blk.len);
        let mut r = Restricted::new(&b, &mut e, o, n).unwrap();
        let hb = dense_matrix(&b, &mut r).unwrap();
        let mut slice = vec![0.0; n * n];
        for i in 0..n {
            for j in 0..n {
                slice[i * n + j] = h[(o + i) * p + o + j];
                let d = (hb[i * n + j] - slice[i * n + j]).abs();
                assert!(
                    d <= 1e-14 * scale,
                    "{}: ({i}, {j}) differs by {d}",
                    blk.name
                );
            }
        }
        dense_tops.push(dense_eigs(&slice, n).0);
    }
    let opts = LanczosOptions {
        k: 3,
        tol: 1e-10,
        ..LanczosOptions::default()
    };
    let mut seen = Vec::new();
    let spectra = layer_spectra(&b, &mut e, &blocks, &opts, &mut |n| {
        seen.push(n.to_string())
    })
    .unwrap();
    assert_eq!(seen, ["fc1", "fc2", "fc3"]);
    for (s, dense) in spectra.iter().zip(&dense_tops) {
        assert!(s.converged, "{}", s.block.name);
        let top = dense[0].abs().max(dense[dense.len() - 1].abs());
        for i in 0..3 {
            assert!(
                (s.eigenvalues[i] - dense[i]).abs() <= 1e-8 * top,
                "{} λ{}: {} vs dense {}",
                s.block.name,
                i + 1,
                s.eigenvalues[i],
                dense[i]
            );
        }
        eprintln!(
            "{}: top {:?}, {} HVPs",
            s.block.name, &s.eigenvalues, s.hvps
        );
    }
}

#[test]
fn out_of_range_blocks_are_errors() {
    let (spec, theta, data) = tiny(&[6, 8, 5, 4], Activation::Tanh, 40, 3);
    let b = F64::new();
    let mut e = engine(b.clone(), &spec, LossKind::Mse, &data, 0, &theta);
    let p = theta.len();
    assert!(Restricted::new(&b, &mut e, p - 2, 3).is_err());
    assert!(Restricted::new(&b, &mut e, 0, 0).is_err());
}

/// Each block's SLQ density: its quadrature's trace is exactly the mean of vᵀ H_ll v over its
/// Rademacher probes (the first moment of a Gauss rule is exact), computed here from the dense
/// slice with the same probes; with as many steps as the block has dimensions the nodes span
/// the slice's extreme eigenvalues. Tolerances fixed before the numbers: 1e-9 relative.
#[test]
fn per_layer_densities_match_the_dense_blocks() {
    let (spec, theta, data) = tiny(&[6, 8, 5, 4], Activation::Tanh, 40, 3);
    let b = F64::new();
    let mut e = engine(b.clone(), &spec, LossKind::Mse, &data, 16, &theta);
    let p = theta.len();
    let h = dense_matrix(&b, &mut e).unwrap();
    let scale = h.iter().fold(0.0f64, |m, x| m.max(x.abs()));
    let blocks = param_blocks(&spec.graph().params);
    let slq = SlqOptions {
        probes: 5,
        steps: 200,
        seed: 7,
        ..SlqOptions::default()
    };
    let mut seen = Vec::new();
    let dens = layer_densities(
        &b,
        &mut e,
        &blocks,
        &slq,
        &DensityOptions::default(),
        &mut |n| seen.push(n.to_string()),
    )
    .unwrap();
    assert_eq!(seen, ["fc1", "fc2", "fc3"]);
    for (d, blk) in dens.iter().zip(&blocks) {
        let (o, n) = (blk.off, blk.len);
        let mut mean = 0.0;
        for i in 0..slq.probes {
            let v = rademacher(n, slq.seed.wrapping_add(i as u64));
            let mut q = 0.0;
            for r in 0..n {
                for c in 0..n {
                    q += v[r] * h[(o + r) * p + o + c] * v[c];
                }
            }
            mean += q / slq.probes as f64;
        }
        assert!(
            (d.trace - mean).abs() <= 1e-9 * scale * n as f64,
            "{}: SLQ trace {} vs the probes' dense vᵀHv {}",
            blk.name,
            d.trace,
            mean
        );
        // A probe's Krylov space ends early where H_ll has repeated eigenvalues (breakdown).
        assert!(
            d.hvps > 0 && d.hvps <= slq.probes * n.min(slq.steps),
            "{}",
            blk.name
        );
        let mut slice = vec![0.0; n * n];
        for r in 0..n {
            for c in 0..n {
                slice[r * n + c] = h[(o + r) * p + o + c];
            }
        }
        let eig = dense_eigs(&slice, n).0;
        let (hi, lo) = (eig[0], eig[n - 1]);
        let top = hi.abs().max(lo.abs());
        assert!(
            (d.range.1 - hi).abs() <= 1e-8 * top && (d.range.0 - lo).abs() <= 1e-8 * top,
            "{}: nodes in [{}, {}], dense [{lo}, {hi}]",
            blk.name,
            d.range.0,
            d.range.1
        );
        let integral: f64 = d
            .density
            .grid
            .windows(2)
            .zip(d.density.density.windows(2))
            .map(|(g, f)| (g[1] - g[0]) * (f[0] + f[1]) / 2.0)
            .sum();
        assert!(
            (integral - 1.0).abs() < 1e-6,
            "{}: ∫ = {integral}",
            blk.name
        );
    }
}
