//! The solve itself: [`lanczos_riding`]'s loop of block steps, convergence checks by true
//! residuals (which carry the [`Riders`]), verification rounds and thick restarts, over the state
//! of one solve ([`Solve`]).

use super::basis::{Basis, ritz_vectors};
use super::{
    EigResult, LanczosOptions, LanczosWork, Progress, Ridden, Riders, Verify, basis_cap,
    check_k_tol, product_budget, random_vector, take_or_zeros, write_rows,
};
use crate::backend::{Backend, Mat, MatMut};
use crate::backend::{Ten, TenMut};
use crate::error::{Error, Result};
use crate::hessian::Operator;
use nalgebra::DMatrix;

/// [`lanczos_with`](super::lanczos_with) with [`Riders`]: values read back with the solve's last
/// read-back ([`EigResult::ridden`]).
///
/// Read-backs on a device: one per operator product (its orthogonalisation's coefficients and
/// norm), and one per convergence check by true residuals, which also brings the warm-start
/// evidence and the riders — a warm solve (block 1) that converges at once costs its products + 1
/// (each random start vector of a wider block costs two more). The warm start's norms are
/// computed on the backend and read with the first product's coefficients.
pub fn lanczos_riding<B: Backend, O: Operator<B>>(
    b: &B,
    op: &mut O,
    opts: &LanczosOptions,
    warm: Option<(&B::Buf, usize)>,
    progress: &mut dyn FnMut(&Progress),
    work: &mut LanczosWork<B>,
    riders: &Riders<B>,
) -> Result<EigResult<B>> {
    let mut s = Solve::start(b, op.dim(), opts, warm, work, riders)?;
    let (p, k) = (s.p, s.k);
    loop {
        let (r, first) = s.basis.step(b, op)?;
        if let Some((_, rows)) = s.warm
            && s.warm_norms.is_empty()
            && s.basis.fetched.len() == rows + 1
        {
            s.warm_norms = s.basis.fetched[..rows]
                .iter()
                .map(|&x| x.max(0.0).sqrt())
                .collect();
        }
        if std::mem::take(&mut s.basis.zero_start) {
            s.restart_cold()?;
            continue;
        }
        let m = s.basis.applied;
        let (theta, sm) = s.basis.ritz();
        // Pairs that must meet the tolerance: k, or in a round the kept ones and the deflated top.
        let want = s.round.as_ref().map_or(k, |(hold, _)| (hold + 1).min(p));
        let kk = want.min(m);
        let rz = Ritz {
            kk,
            kout: k.min(kk),
            want,
            scale: theta
                .iter()
                .fold(0.0f64, |a, &x| a.max(x.abs()))
                .max(f64::MIN_POSITIVE),
            s: &sm,
            theta: &theta,
        };
        let limit = opts.tol * rz.scale;
        // ‖A y_i − θ_i y_i‖ = ‖R · s_i[first..m]‖ (the kept vectors of a verification round add
        // their own residuals, which the true residuals below include).
        let estimate: Vec<f64> = (0..kk)
            .map(|i| (&r * sm.view((first, i), (m - first, 1))).norm())
            .collect();
        let all_met = kk == want && estimate.iter().all(|&e| e <= limit);
        let out_of_room = s.basis.m == s.basis.applied && s.basis.m == p; // nothing left to add: exact
        let out_of_budget = s.basis.products >= s.max_products;
        let mut report = estimate.clone();
        let mut met = false;
        // At a check: the top kout Ritz vectors (what a finish returns), the warm-start evidence
        // G = Y Uᵀ if it will be wanted, what the riders brought.
        let mut checked: Option<Checked<B>> = None;
        if all_met || out_of_room || out_of_budget {
            let c = s.check(&rz, work)?;
            report = c.report.clone();
            met = kk == want && report.iter().all(|&x| x <= limit);
            checked = Some(c);
        }
        let kout = rz.kout;
        progress(&Progress {
            products: s.basis.products,
            basis: m,
            converged: report[..kout].iter().filter(|&&x| x <= limit).count(),
            k,
            worst_relative_residual: report[..kout].iter().fold(0.0f64, |a, &x| a.max(x))
                / rz.scale,
        });
        let (finish, start_round) = s.next(&rz, met, out_of_room, out_of_budget, &checked);
        if let Some(certified) = finish {
            // Every finish follows a check in the same iteration.
            let c = checked.ok_or_else(|| {
                Error::Backend("Lanczos: finished without a residual check".into())
            })?;
            return Ok(s.finish(&rz, c, &report, certified, work));
        }
        // Not finished: the vectors formed rz the check are scratch for the next one.
        if let Some(c) = checked {
            work.spare = Some(c.y);
        }
        s.go_on(&rz, start_round)?;
    }
}

/// The Ritz pairs of one iteration: `kk` of them must meet the tolerance (`want` in all), `kout`
/// are returned; the tolerance's scale max |θ|; the coefficients `s` (columns) and values.
struct Ritz<'t> {
    kk: usize,
    kout: usize,
    want: usize,
    scale: f64,
    s: &'t DMatrix<f64>,
    theta: &'t [f64],
}

/// What a check by true residuals brought: the top Ritz vectors Y, the residual norms, the
/// warm-start evidence G = Y Uᵀ (when wanted) and what the riders brought.
struct Checked<B: Backend> {
    y: B::Buf,
    report: Vec<f64>,
    g: Option<Vec<f64>>,
    ridden: Ridden,
}

/// The state of one solve between its iterations.
struct Solve<'a, B: Backend> {
    b: &'a B,
    opts: &'a LanczosOptions,
    riders: &'a Riders<'a, B>,
    p: usize,
    k: usize,
    block: usize,
    cap: usize,
    max_products: usize,
    /// Ritz values closer than this (relative) count as coincident: evidence of a multiplicity.
    coincide: f64,
    n_carry: usize,
    /// The warm rows (at most k: the previous top k), their sum the start vector.
    warm: Option<(&'a B::Buf, usize)>,
    seed: u64,
    basis: Basis<B>,
    factors: B::Buf,
    resid: B::Buf,
    ts_up: B::Buf,
    /// What a check reads back: ‖R_i‖² (≤ k + 2 in a verification round) | G (k × k) | Y v and
    /// ‖v‖² (≤ k + 1) | carried.
    last: B::Buf,
    /// None while searching; during a verification round, (hold, base): the round started from
    /// the top `hold` converged Ritz vectors, whose top-k values were `base`.
    round: Option<(usize, Vec<f64>)>,
    rounds: usize,
    /// The budget ran out before a wanted verification was done.
    verify_cut: bool,
    warnings: Vec<String>,
    /// The warm rows' norms (read with the first product's coefficients; for the evidence check).
    warm_norms: Vec<f64>,
}

impl<'a, B: Backend> Solve<'a, B> {
    /// Check the arguments, take the buffers from `work` and start the basis: from the warm rows'
    /// sum, then random vectors up to the block.
    fn start(
        b: &'a B,
        p: usize,
        opts: &'a LanczosOptions,
        warm: Option<(&'a B::Buf, usize)>,
        work: &mut LanczosWork<B>,
        riders: &'a Riders<'a, B>,
    ) -> Result<Self> {
        let k = opts.k;
        check_k_tol(opts, p)?;
        let block = opts.block.max(1).min(p);
        let cap = basis_cap(k, opts.max_basis, 0, p);
        if cap < p && cap < k + 2 * block {
            return Err(Error::InvalidArgument(format!(
                "max_basis {cap} is below k + 2·block = {}",
                k + 2 * block
            )));
        }
        // The warm rows, checked before the workspace's buffers are taken.
        let warm = warm.filter(|&(_, rows)| rows > 0);
        if let Some((w, rows)) = warm {
            crate::backend::check_range("warm start", b.len(w), 0, rows * p)?;
            if rows > k {
                return Err(Error::InvalidArgument(format!(
                    "a warm start of {rows} vectors for the top {k}: give at most k"
                )));
            }
        }
        if work.key != (p, k, cap) {
            *work = LanczosWork {
                key: (p, k, cap),
                ..LanczosWork::default()
            };
        }
        let mut basis = Basis::<B>::new(b, p, k, cap, work)?;
        let mut factors = take_or_zeros(b, &mut work.factors, k + 1)?;
        if let Some((w, rows)) = warm
            && cap > 0
        {
            basis.warm_start(b, w, rows, &mut factors)?;
        }
        let n_carry = riders.carry.map_or(0, |c| c.2);
        let resid = take_or_zeros(b, &mut work.resid, (k + 2).min(p) * p)?;
        let ts_up = take_or_zeros(b, &mut work.ts_up, cap * cap)?;
        let last = take_or_zeros(b, &mut work.last, (k + 2) + k * k + (k + 1) + n_carry)?;
        let mut s = Solve {
            b,
            opts,
            riders,
            p,
            k,
            block,
            cap,
            max_products: product_budget(opts),
            coincide: 1e-6f64.max(100.0 * b.precision().eps()),
            n_carry,
            warm,
            seed: opts.seed,
            basis,
            factors,
            resid,
            ts_up,
            last,
            round: None,
            rounds: 0,
            verify_cut: false,
            warnings: Vec::new(),
            warm_norms: Vec::new(),
        };
        s.fill_block()?;
        Ok(s)
    }

    /// Append a fresh seeded random vector; false if it lies in the span already.
    fn add_random(&mut self) -> Result<bool> {
        self.seed = self.seed.wrapping_add(1);
        self.basis.cand = self.b.upload(&random_vector(self.p, self.seed))?;
        self.basis.append_start(self.b)
    }

    /// Random vectors until the basis holds a block (or one lies in the span).
    fn fill_block(&mut self) -> Result<()> {
        while self.basis.m < self.block {
            if !self.add_random()? {
                break;
            }
        }
        Ok(())
    }

    /// The warm rows summed to zero: drop that product and solve as from a cold start (random
    /// vectors, verified like one).
    fn restart_cold(&mut self) -> Result<()> {
        self.warm = None;
        self.basis.m = 0;
        self.basis.applied = 0;
        self.basis.dropped = 0;
        self.basis.t.fill(0.0);
        self.fill_block()
    }

    /// The true residuals R = Sₖᵀ W − Θ Sₖᵀ Q from the stored products and the top Ritz vectors,
    /// read back in one range with the warm-start evidence and the riders.
    fn check(&mut self, rz: &Ritz, work: &mut LanczosWork<B>) -> Result<Checked<B>> {
        let (b, p, k, m) = (self.b, self.p, self.k, self.basis.applied);
        let (kk, kout) = (rz.kk, rz.kout);
        write_rows(b, rz.s, kk, None, &mut self.basis.s_up)?;
        write_rows(b, rz.s, kk, Some(rz.theta), &mut self.ts_up)?;
        let (s_up, ts_up, resid) = (&self.basis.s_up, &self.ts_up, &mut self.resid);
        let (q, w) = (&self.basis.q, &self.basis.w);
        b.gemm(
            Mat::new(s_up, 0, kk, m),
            Mat::new(w, 0, m, p),
            MatMut::new(resid, 0, kk, p),
            1.0,
            0.0,
        )?;
        b.gemm(
            Mat::new(ts_up, 0, kk, m),
            Mat::new(q, 0, m, p),
            MatMut::new(resid, 0, kk, p),
            -1.0,
            1.0,
        )?;
        let spare = take_or_zeros(b, &mut work.spare, kout * p)?;
        let y = ritz_vectors(b, &self.basis, kout, spare)?;
        // G is wanted when these pairs meet the tolerance and the evidence check follows.
        let g_rows = match (
            self.round.is_none() && kout == k,
            self.opts.verify,
            self.warm,
        ) {
            (true, Verify::Auto | Verify::Never, Some((_, rows))) => rows,
            _ => 0,
        };
        // One read-back: ‖R_i‖² (kk) | G (k·g_rows) | Y v (kout) and ‖v‖² | the carried range.
        let n_proj = if self.riders.project.is_some() {
            kout + 1
        } else {
            0
        };
        let n_carry = self.n_carry;
        let len = kk + k * g_rows + n_proj + n_carry;
        let last = &mut self.last;
        for i in 0..kk {
            b.dot_into(
                Ten(&self.resid, i * p),
                Ten(&self.resid, i * p),
                p,
                TenMut(last, i),
            )?;
        }
        let mut at = kk;
        if let (true, Some((w, rows))) = (g_rows > 0, self.warm) {
            b.gemm(
                Mat::new(&y, 0, k, p),
                Mat::new(w, 0, rows, p).t(),
                MatMut::new(last, at, k, rows),
                1.0,
                0.0,
            )?;
            at += k * rows;
        }
        if let Some(v) = self.riders.project {
            crate::backend::check_range("projected vector", b.len(v), 0, p)?;
            b.gemm(
                Mat::new(&y, 0, kout, p),
                Mat::new(v, 0, p, 1),
                MatMut::new(last, at, kout, 1),
                1.0,
                0.0,
            )?;
            b.dot_into(Ten(v, 0), Ten(v, 0), p, TenMut(last, at + kout))?;
            at += kout + 1;
        }
        if let Some((c, off, n)) = self.riders.carry {
            b.copy(c, off, last, at, n)?;
        }
        let vals = b.download_range(last, 0, len)?;
        let report = vals[..kk].iter().map(|&x| x.max(0.0).sqrt()).collect();
        let mut at = kk;
        let g = (g_rows > 0).then(|| vals[at..at + k * g_rows].to_vec());
        at += k * g_rows;
        let mut ridden = Ridden::default();
        if n_proj > 0 {
            ridden.coefs = vals[at..at + kout].to_vec();
            ridden.norm2 = vals[at + kout];
            at += n_proj;
        }
        ridden.carried = vals[at..at + n_carry].to_vec();
        Ok(Checked {
            y,
            report,
            g,
            ridden,
        })
    }

    /// What next: finish (Some(certified)), start a verification round keeping the top `hold`
    /// pairs (the second value), or go on (both None).
    fn next(
        &mut self,
        rz: &Ritz,
        met: bool,
        out_of_room: bool,
        out_of_budget: bool,
        checked: &Option<Checked<B>>,
    ) -> (Option<bool>, Option<usize>) {
        let (k, p) = (self.k, self.p);
        let limit = self.opts.tol * rz.scale;
        let mut finish = None;
        let mut start_round = None;
        if out_of_room {
            finish = Some(true);
        } else if met {
            match &self.round {
                None => {
                    let g = checked.as_ref().and_then(|c| c.g.as_deref());
                    (finish, start_round) = self.first_met(rz, g);
                }
                Some((_, base)) => {
                    let gain = rz.theta[..k].iter().sum::<f64>() - base.iter().sum::<f64>();
                    if gain <= limit {
                        finish = Some(true);
                    } else {
                        // Something ≥ θ_k was missed and is now merged; its round converged the
                        // top k + 1 pairs, so the next round keeps them all when there is room.
                        self.rounds += 1;
                        let hold = if k + 1 < p && k + 3 <= self.cap {
                            k + 1
                        } else {
                            k
                        };
                        start_round = Some(hold);
                    }
                }
            }
        }
        if finish.is_none() && out_of_budget {
            if self.round.is_some() || start_round.is_some() {
                self.verify_cut = true;
                self.warnings.push(format!(
                    "the budget of {} products ran out while verifying the top {k} \
                     (after {} merge(s)): copies of a repeated eigenvalue may be missing; \
                     raise max_products",
                    self.max_products, self.rounds
                ));
            }
            start_round = None;
            finish = Some(false);
        }
        (finish, start_round)
    }

    /// The search's top k met the tolerance: verify them (a round keeping k), finish certified
    /// (k = dim) or finish unverified, with a warning when there was evidence of a multiplicity.
    fn first_met(&mut self, rz: &Ritz, g: Option<&[f64]>) -> (Option<bool>, Option<usize>) {
        let (k, p) = (self.k, self.p);
        let evidence = match (self.opts.verify, self.warm) {
            (Verify::Auto, None) | (Verify::Always, _) => Vec::new(),
            _ => multiplicity_evidence(
                self.basis.dropped,
                rz.theta,
                k,
                rz.scale,
                self.coincide,
                g.zip(self.warm.map(|w| w.1)),
                &self.warm_norms,
            ),
        };
        let verify = match self.opts.verify {
            Verify::Always => true,
            Verify::Auto => self.warm.is_none() || !evidence.is_empty(),
            Verify::Never => false,
        };
        if k == p {
            (Some(true), None)
        } else if verify {
            (None, Some(k))
        } else {
            if !evidence.is_empty() {
                self.warnings.push(format!(
                    "a repeated eigenvalue may have copies missing from the top {k} \
                     (not verified): {}",
                    evidence.join("; ")
                ));
            }
            (Some(false), None)
        }
    }

    /// The result, the buffers back to the workspace for the next solve.
    fn finish(
        mut self,
        rz: &Ritz,
        c: Checked<B>,
        report: &[f64],
        certified: bool,
        work: &mut LanczosWork<B>,
    ) -> EigResult<B> {
        let (k, kk, kout) = (self.k, rz.kk, rz.kout);
        let (theta, limit) = (rz.theta, self.opts.tol * rz.scale);
        let pairs_met = kout == k && report[..k].iter().all(|&x| x <= limit);
        // A value tied across the k-th place: right values, but the vectors are one choice.
        if certified && kk > k && report[k] <= limit && theta[k] >= theta[k - 1] - limit {
            self.warnings.push(format!(
                "λ{k} = {:.6e} is repeated beyond the top {k}: the returned vectors span only \
                 part of its eigenspace (projections onto them depend on that choice)",
                theta[k - 1]
            ));
        }
        let products = self.basis.products;
        self.basis.give_back(work);
        work.resid = Some(self.resid);
        work.factors = Some(self.factors);
        work.ts_up = Some(self.ts_up);
        work.last = Some(self.last);
        EigResult {
            values: theta[..kout].to_vec(),
            converged: pairs_met && !self.verify_cut,
            residuals: report[..kout].to_vec(),
            vectors: c.y,
            dim: self.p,
            products,
            scale: rz.scale,
            certified,
            warnings: self.warnings,
            ridden: (self.riders.project.is_some() || self.riders.carry.is_some())
                .then_some(c.ridden),
        }
    }

    /// Not finished: start a verification round on the top `start_round` pairs, or make room (a
    /// thick restart) and extend the basis.
    fn go_on(&mut self, rz: &Ritz, start_round: Option<usize>) -> Result<()> {
        let (b, p, k, cap, block) = (self.b, self.p, self.k, self.cap, self.block);
        if let Some(hold) = start_round {
            // Verification round: restart on exactly the top `hold` (converged) Ritz vectors, drop
            // the pending Lanczos vector and go on from a fresh random vector orthogonal to them.
            self.basis.restart(b, rz.s, rz.theta, hold, false)?;
            self.round = Some((hold, rz.theta[..k].to_vec()));
            if !self.add_random()? && !self.add_random()? {
                return Err(Error::Backend(
                    "Lanczos: no random direction left outside the found vectors".into(),
                ));
            }
            return Ok(());
        }
        let m = self.basis.applied;
        let want = rz.want;
        if cap < p && self.basis.m + block > cap {
            // Thick restart: keep the leading Ritz vectors and the pending block.
            let keep = ((cap + want) / 2)
                .min(m)
                .max(want.min(m))
                .min(cap - 2 * block);
            self.basis.restart(b, rz.s, rz.theta, keep, true)?;
        }
        if self.basis.m == self.basis.applied && !self.add_random()? {
            // An invariant subspace and no independent direction left to add.
            return Err(Error::Backend(
                "Lanczos: the basis cannot be extended (dimension exhausted)".into(),
            ));
        }
        Ok(())
    }
}

/// Signs that the k converged pairs may hold too few copies of a repeated eigenvalue (empty: none
/// seen). `dropped`: the search's invariant-subspace breakdowns; `warm`: G = Y Uᵀ (k × rows, row
/// major) of the k top Ritz vectors Y and the warm rows U, with the rows' norms.
fn multiplicity_evidence(
    dropped: usize,
    theta: &[f64],
    k: usize,
    scale: f64,
    coincide: f64,
    warm: Option<(&[f64], usize)>,
    warm_norms: &[f64],
) -> Vec<String> {
    let mut why = Vec::new();
    if dropped > 0 {
        why.push(format!(
            "the Krylov space became invariant {dropped} time(s) (few distinct eigenvalues)"
        ));
    }
    let top = (k + 1).min(theta.len());
    if let Some(i) = (1..top).find(|&i| theta[i - 1] - theta[i] <= coincide * scale) {
        why.push(format!(
            "Ritz values {i} and {} coincide ({:.3e} relative)",
            i + 1,
            (theta[i - 1] - theta[i]) / scale
        ));
    }
    if let Some((g, rows)) = warm
        && rows > 0
        && rows <= k
        && warm_norms.len() == rows
    {
        // g = Y Uᵀ (k × rows): the part of each warm vector inside the new top-k span; the rows'
        // norms as read at the start (the same buffer, unchanged since).
        let norms = warm_norms;
        let worst = (0..rows)
            .filter(|&r| norms[r] > 0.0 && norms[r].is_finite())
            .map(|r| {
                let inside: f64 = (0..k).map(|i| g[i * rows + r].powi(2)).sum();
                (r, 1.0 - inside / (norms[r] * norms[r]))
            })
            .max_by(|a, c| a.1.total_cmp(&c.1));
        if let Some((r, out)) = worst
            && out >= 0.25
        {
            why.push(format!(
                "warm-start vector {} has {:.0}% of its squared norm outside the new top-{k} span",
                r + 1,
                100.0 * out
            ));
        }
    }
    why
}
