//! The engine against an independent PyTorch float64 computation (torch.func forward-over-reverse
//! HVPs + scipy eigsh at tol 1e-12) of fc-tanh at `subspace-lab init --seed 0` on MNIST-5k, MSE,
//! `normalize`. The fixture was produced by
//!
//!   subspace-lab init --seed 0 --dtype f64 --out w0.safetensors
//!   python3 scripts/torch_reference.py spectrum --weights w0.safetensors --tol 1e-12
//!
//! with torch 2.15.0 and scipy 1.17.1.

use subspace_lab::backend::LossKind;
use subspace_lab::backend::cpu::CpuBackend;
use subspace_lab::data::mnist::{self, Preprocess};
use subspace_lab::hessian::lanczos::LanczosOptions;
use subspace_lab::jobs::{SpectrumOptions, spectrum};
use subspace_lab::nn::model::ModelSpec;

#[test]
fn top10_matches_pytorch_float64() {
    let fixture: serde_json::Value =
        serde_json::from_str(include_str!("fixtures/torch_fc_tanh_seed0_f64.json")).unwrap();
    let m = match mnist::data_dir().and_then(|d| mnist::load_or_fetch(&d, &mut |_| {})) {
        Ok((m, _)) => m,
        Err(e) => {
            eprintln!("SKIP: MNIST-5k cannot be fetched on this machine: {e}");
            return;
        }
    };
    let data = m.dataset(Preprocess::Normalize, 5000).unwrap();
    let spec = ModelSpec::fc_tanh();
    let theta = spec.init(0);
    let opts = SpectrumOptions {
        lanczos: LanczosOptions {
            k: 10,
            tol: 1e-7,
            ..LanczosOptions::default()
        },
        chunk: 0,
    };
    let rep = spectrum(
        CpuBackend::<f64>::new(),
        &spec,
        &theta,
        &data,
        LossKind::Mse,
        &opts,
        &mut |_| {},
    )
    .unwrap();
    check(&rep, &fixture);
}

/// Loss and ‖∇L‖ to 1e-12 relative, every eigenvalue to 1e-6, against a PyTorch fixture.
fn check(rep: &subspace_lab::jobs::SpectrumReport, fixture: &serde_json::Value) {
    let rel = |a: f64, b: f64| (a - b).abs() / b.abs();
    assert!(
        rel(rep.loss, fixture["loss"].as_f64().unwrap()) < 1e-12,
        "loss {}",
        rep.loss
    );
    assert!(rel(rep.grad_norm, fixture["grad_norm"].as_f64().unwrap()) < 1e-12);
    let want: Vec<f64> = serde_json::from_value(fixture["eigenvalues"].clone()).unwrap();
    assert_eq!(rep.eigenvalues.len(), want.len());
    for (i, (a, b)) in rep.eigenvalues.iter().zip(&want).enumerate() {
        assert!(rel(*a, *b) < 1e-6, "λ{} = {a} vs PyTorch {b}", i + 1);
    }
}

/// cnn-relu at `subspace-lab init --model cnn-relu --seed 0` on the first 200 CIFAR-10 records
/// (standardised with the statistics of the 4000 at hand), MSE, against the independent PyTorch
/// float64 twin. The fixture was produced by
///
///   subspace-lab init --model cnn-relu --seed 0 --dtype f64 --out cnn0.safetensors
///   python3 scripts/torch_cnn_reference.py spectrum --weights cnn0.safetensors --samples 200 --k 5 --tol 1e-12
///
/// with torch 2.15.0, scipy 1.17.1 (62 HVPs, 44 s on 2 cores).
#[test]
fn cnn_relu_top5_matches_pytorch_float64() {
    use subspace_lab::data::cifar10::{self, Cifar10Preprocess};
    let fixture: serde_json::Value =
        serde_json::from_str(include_str!("fixtures/torch_cnn_relu_seed0_n200_f64.json")).unwrap();
    let c = match mnist::data_dir().and_then(|d| cifar10::load_or_fetch(&d, &mut |_| {})) {
        Ok((c, _)) if c.n() == 4000 => c,
        Ok((c, _)) => {
            eprintln!(
                "SKIP: the fixture was made with the 4000 shared records; {} here",
                c.describe()
            );
            return;
        }
        Err(e) => {
            eprintln!("SKIP: CIFAR-10 is not at hand on this machine: {e}");
            return;
        }
    };
    let data = c.dataset(Cifar10Preprocess::Standardize, 200).unwrap();
    let spec = ModelSpec::cnn_relu();
    let theta = spec.init(0);
    let opts = SpectrumOptions {
        lanczos: LanczosOptions {
            k: 5,
            tol: 1e-9,
            ..LanczosOptions::default()
        },
        chunk: 0,
    };
    let rep = spectrum(
        CpuBackend::<f64>::new(),
        &spec,
        &theta,
        &data,
        LossKind::Mse,
        &opts,
        &mut |_| {},
    )
    .unwrap();
    check(&rep, &fixture);
}

/// The paper's Transformer at `subspace-lab init --model transformer --seed 0` (Damian et al.'s
/// initialisation: zero head, so the loss is exactly ½) on the first 100 sentences of SST2-1k,
/// MSE, padding masked, against the independent PyTorch float64 twin, which builds its own
/// vocabulary from the TSV and checks it against the file's. The fixture was produced by
///
///   subspace-lab init --model transformer --seed 0 --dtype f64 --out tr0.safetensors
///   python3 scripts/torch_transformer_reference.py spectrum --weights tr0.safetensors --samples 100 --k 3 --tol 1e-12
///
/// with torch 2.15.0, scipy 1.17.1 (70 HVPs, 123 s on 2 cores).
#[test]
fn transformer_top3_matches_pytorch_float64() {
    use subspace_lab::data::sst2;
    let fixture: serde_json::Value = serde_json::from_str(include_str!(
        "fixtures/torch_transformer_seed0_n100_f64.json"
    ))
    .unwrap();
    let s = match mnist::data_dir().and_then(|d| sst2::load_or_fetch(&d, &mut |_| {})) {
        Ok(s) => s,
        Err(e) => {
            eprintln!("SKIP: SST-2 is not at hand on this machine: {e}");
            return;
        }
    };
    let data = s.dataset(&s.vocab(), sst2::SEQ_1K, 100).unwrap();
    let spec = ModelSpec::by_name("transformer").unwrap();
    let theta = spec.init(0);
    let opts = SpectrumOptions {
        lanczos: LanczosOptions {
            k: 3,
            tol: 1e-9,
            ..LanczosOptions::default()
        },
        chunk: 0,
    };
    let rep = spectrum(
        CpuBackend::<f64>::new(),
        &spec,
        &theta,
        &data,
        LossKind::Mse,
        &opts,
        &mut |_| {},
    )
    .unwrap();
    check(&rep, &fixture);
}
