//! `density_every` in runs: the SLQ density and trace recorded along a run at the steps asked
//! (and at the switch), the metrics unchanged by it, a resumed run recording exactly the densities
//! of an uninterrupted one (CPU f64), the files written, the spec fields checked and written only
//! when set. A tiny network (174 parameters), a few seconds in release.

mod common;
use common::*;
use subspace_lab::backend::Activation;
use subspace_lab::experiment::density::DensityRecord;
use subspace_lab::experiment::output;
use subspace_lab::experiment::run::{self, Checkpoint, Observer, Record, Vectors};
use subspace_lab::experiment::spec::{OptKind, OptimizerSpec, Projection, RunSpec};

fn spec() -> RunSpec {
    let mut s = RunSpec::new(
        "tiny",
        OptimizerSpec::new(OptKind::Momentum, 0.02, Some(20)),
        30,
    );
    s.model.widths = vec![12, 10, 4];
    s.data.samples = 200;
    s.variants = vec![Projection::None, Projection::Dominant, Projection::Bulk];
    s.steps_after = 20;
    s.record_every = 5;
    s.k = 4;
    s.top = Some(6);
    s.tol = 1e-8;
    s.seed = 1;
    s.density_every = 10;
    s.density_probes = 3;
    s.density_steps = 12;
    s
}

fn data() -> subspace_lab::data::dataset::Dataset {
    tiny(&[12, 10, 4], Activation::Tanh, 200, 5).2
}

/// Keeps rows, the last checkpoint and the density records; stops after `after` steps.
struct Collect {
    steps: usize,
    after: usize,
    rows: Vec<Record>,
    ckpt: Option<(Checkpoint, Vectors)>,
    densities: Vec<DensityRecord>,
}

impl Collect {
    fn new(after: usize) -> Self {
        Collect {
            steps: 0,
            after,
            rows: Vec::new(),
            ckpt: None,
            densities: Vec::new(),
        }
    }
}

impl Observer for Collect {
    fn record(&mut self, r: &Record) -> subspace_lab::Result<()> {
        self.rows.push(r.clone());
        Ok(())
    }
    fn progress(&mut self, _: &str, _: usize, _: usize) {
        self.steps += 1;
    }
    fn checkpoint(&mut self, c: &Checkpoint, v: &Vectors) -> subspace_lab::Result<()> {
        self.ckpt = Some((c.clone(), v.clone()));
        Ok(())
    }
    fn stop_requested(&self) -> bool {
        self.steps >= self.after
    }
    fn density(&mut self, all: &[DensityRecord]) -> subspace_lab::Result<()> {
        self.densities = all.to_vec();
        Ok(())
    }
}

/// Densities at steps 0, 10, 20 and the switch (30) before it, at 40 and 50 in each variant (not
/// at a variant's first step: that is the switch); each with its probes' quadrature, a finite
/// trace and the step's own top-k sum; the metrics equal a run without densities bit for bit.
#[test]
fn densities_are_recorded_where_asked_and_leave_the_metrics_alone() {
    let (s, d) = (spec(), data());
    let mut obs = Collect::new(usize::MAX);
    let with = run::run(F64::new(), &s, &d, false, None, &mut obs).unwrap();
    let steps: Vec<(String, usize)> = obs
        .densities
        .iter()
        .map(|r| (r.run.clone(), r.step))
        .collect();
    let mut want: Vec<(String, usize)> = [0, 10, 20, 30]
        .map(|t| ("SGD (momentum)".to_string(), t))
        .to_vec();
    let legs: Vec<String> = with.legs.iter().map(|l| l.run.clone()).collect();
    for leg in &legs[1..] {
        want.push((leg.clone(), 40));
        want.push((leg.clone(), 50));
    }
    want[..4].iter_mut().for_each(|w| w.0 = legs[0].clone());
    assert_eq!(steps, want);
    for r in &obs.densities {
        assert_eq!((r.probes, r.steps, r.hvps), (3, 12, 36));
        assert_eq!(r.quadrature.len(), 3);
        assert!(r.trace.is_finite() && r.trace_std_error >= 0.0, "{r:?}");
        let row = with
            .records
            .iter()
            .find(|x| x.step == r.step && x.run == r.run)
            .expect("a metrics row at every density step here");
        let sum: f64 = row.eigenvalues[..4].iter().sum();
        assert_eq!(r.top_k_sum.to_bits(), sum.to_bits());
        assert_eq!(r.top_k_share, r.top_k_sum / r.trace);
    }
    let mut off = s.clone();
    off.density_every = 0;
    let without = run::run(
        F64::new(),
        &off,
        &d,
        false,
        None,
        &mut Collect::new(usize::MAX),
    )
    .unwrap();
    assert_eq!(with.records.len(), without.records.len());
    for (a, b) in with.records.iter().zip(&without.records) {
        assert_eq!(a.csv_line(6), b.csv_line(6));
    }
}

/// Stopped before and after the switch and resumed from its checkpoint (through the files), the
/// run records exactly the densities of an uninterrupted run.
#[test]
fn a_resumed_run_records_the_densities_of_an_uninterrupted_one() {
    let (mut s, d) = (spec(), data());
    s.checkpoint_every = 7;
    let mut full = Collect::new(usize::MAX);
    run::run(F64::new(), &s, &d, false, None, &mut full).unwrap();
    for stop_at in [12, 41] {
        let mut obs = Collect::new(stop_at);
        let err = run::run(F64::new(), &s, &d, false, None, &mut obs).unwrap_err();
        assert!(
            matches!(err, subspace_lab::Error::Interrupted { .. }),
            "{err}"
        );
        let (c, v) = obs.ckpt.unwrap();
        assert!(!c.densities.is_empty());
        let dir = tempfile::tempdir().unwrap();
        output::save_checkpoint(dir.path(), &c, &v).unwrap();
        let (c, v) = output::load_checkpoint(dir.path()).unwrap();
        let mut again = Collect::new(usize::MAX);
        run::run(F64::new(), &s, &d, false, Some((c, v)), &mut again).unwrap();
        assert_eq!(
            again.densities.len(),
            full.densities.len(),
            "stop at {stop_at}"
        );
        for (a, b) in again.densities.iter().zip(&full.densities) {
            assert!(
                a.same_as(b),
                "stop at {stop_at}: step {} vs {}",
                a.step,
                b.step
            );
        }
    }
}

/// `density.csv`, `trace.csv` and `density.json` from the records: headers, one trace row and
/// 400 density rows per record, the JSON reads back equal, each density integrates to 1.
#[test]
fn the_density_files_are_written_and_read_back() {
    let mut obs = Collect::new(usize::MAX);
    let mut s = spec();
    s.steps_after = 0;
    s.variants = vec![Projection::None];
    run::run(F64::new(), &s, &data(), false, None, &mut obs).unwrap();
    let n = obs.densities.len();
    assert_eq!(n, 4);
    let dir = tempfile::tempdir().unwrap();
    output::write_densities(dir.path(), &obs.densities).unwrap();
    let trace = std::fs::read_to_string(dir.path().join("trace.csv")).unwrap();
    assert!(trace.starts_with("run,phase,step,probes,steps,hvps,trace,"));
    assert_eq!(trace.lines().count(), 1 + n);
    let dens = std::fs::read_to_string(dir.path().join("density.csv")).unwrap();
    assert_eq!(dens.lines().next(), Some("run,phase,step,lambda,density"));
    assert_eq!(dens.lines().count(), 1 + 400 * n);
    let back: Vec<DensityRecord> =
        serde_json::from_str(&std::fs::read_to_string(dir.path().join("density.json")).unwrap())
            .unwrap();
    assert_eq!(back, obs.densities);
    let png = dir.path().join("density.png");
    subspace_lab::experiment::plot_density::densities_png(&png, "tiny", &back).unwrap();
    assert!(std::fs::metadata(&png).unwrap().len() > 1000);
    assert!(subspace_lab::experiment::plot_density::densities_png(&png, "none", &[]).is_err());
    let d = back[0].density(400);
    let h = d.grid[1] - d.grid[0];
    let integral: f64 = d.density.windows(2).map(|w| 0.5 * (w[0] + w[1]) * h).sum();
    assert!((integral - 1.0).abs() < 1e-9, "{integral}");
}

/// The fields: checked when on (no probes, too few or too many steps refused, named), written to
/// TOML only when set, absent from older specs (off).
#[test]
fn the_density_fields_are_checked_and_written_when_set() {
    let d = data();
    for (probes, steps, field) in [
        (0, 12, "density_probes"),
        (3, 1, "density_steps"),
        (3, 175, "density_steps"),
    ] {
        let mut s = spec();
        (s.density_probes, s.density_steps) = (probes, steps);
        let e = s.validate(d.d, d.classes, d.n).unwrap_err().to_string();
        assert!(e.contains(field), "{e}");
    }
    let toml = spec().to_toml().unwrap();
    assert!(
        toml.contains("density_every = 10") && toml.contains("density_probes = 3"),
        "{toml}"
    );
    let mut off = spec();
    (off.density_every, off.density_probes, off.density_steps) = (0, 4, 40);
    let toml = off.to_toml().unwrap();
    assert!(!toml.contains("density"), "{toml}");
    // Records only: a checkpoint written without densities continues with them (and back).
    assert!(spec().differences(&off).is_empty());
    let back = RunSpec::parse_toml(&toml).unwrap();
    assert_eq!(
        (back.density_every, back.density_probes, back.density_steps),
        (0, 4, 40)
    );
}
