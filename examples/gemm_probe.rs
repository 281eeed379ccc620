use std::time::Instant;
use subspace_lab::backend::{Backend, cpu::CpuBackend, Activation};
fn main() {
    let b = CpuBackend::<f32>::new();
    let shapes: &[(bool, bool, usize, usize, usize)] = &[
        (false, true, 1000, 200, 784), (true, false, 200, 784, 1000), (false, true, 5000, 200, 784),
        (true, false, 200, 784, 5000), (false, false, 1000, 200, 200), (false, true, 1000, 200, 200),
    ];
    for &(ta, tb, m, n, k) in shapes {
        let a = b.upload(&vec![0.5; m * k]).unwrap();
        let bb = b.upload(&vec![0.25; k * n]).unwrap();
        let mut c = b.zeros(m * n).unwrap();
        b.gemm(ta, tb, m, n, k, 1.0, &a, 0, &bb, 0, 0.0, &mut c, 0).unwrap();
        let t = Instant::now();
        let reps = 10;
        for _ in 0..reps { b.gemm(ta, tb, m, n, k, 1.0, &a, 0, &bb, 0, 0.0, &mut c, 0).unwrap(); }
        let s = t.elapsed().as_secs_f64() / reps as f64;
        println!("ta={ta} tb={tb} {m}x{n}x{k}: {:.2} ms {:.1} GFLOP/s", s * 1e3, 2.0 * (m * n * k) as f64 / s / 1e9);
    }
    let z = b.upload(&vec![0.3; 1000 * 200]).unwrap();
    let mut zz = z.clone(); let mut a = b.zeros(200000).unwrap(); let bias = b.zeros(200).unwrap();
    let t = Instant::now();
    for _ in 0..10 { b.bias_act(Some(Activation::Tanh), 1000, 200, &bias, 0, &mut zz, 0, Some((&mut a, 0))).unwrap(); }
    println!("tanh 200k: {:.2} ms", t.elapsed().as_secs_f64() / 10.0 * 1e3);
}
