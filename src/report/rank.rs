//! The Mann-Whitney U test (two-sided), as benchstat uses it to say
//! whether two sets of runs differ: exact (every split of the pooled
//! ranks, ties as midranks) when there are few enough splits, otherwise the
//! normal approximation with the tie correction and a continuity
//! correction.

/// Most splits of the pooled sample enumerated for the exact p-value
/// (C(20,10) = 184,756: up to 10 runs a side).
const EXACT_SPLITS: u64 = 200_000;

/// The outcome of a test.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct UTest {
    /// U of the first sample: pairs (a, b) with a > b, ties counting one half.
    pub u: f64,
    /// Two-sided p-value.
    pub p: f64,
    /// Whether `p` is exact (enumerated) or from the normal approximation.
    pub exact: bool,
}

/// Tests whether `a` and `b` come from the same distribution. None when
/// either is empty.
pub fn mann_whitney(a: &[f64], b: &[f64]) -> Option<UTest> {
    let (na, nb) = (a.len(), b.len());
    if na == 0 || nb == 0 {
        return None;
    }
    let pooled: Vec<f64> = a.iter().chain(b).copied().collect();
    let ranks = midranks(&pooled);
    let rank_sum_a: f64 = ranks[..na].iter().sum();
    let u = rank_sum_a - (na * (na + 1)) as f64 / 2.0;
    let n = na + nb;
    let ties: f64 = tie_groups(&pooled)
        .into_iter()
        .map(|t| (t * t * t - t) as f64)
        .sum();
    if ties == (n * n * n - n) as f64 {
        // Every value the same: nothing to tell apart.
        return Some(UTest {
            u,
            p: 1.0,
            exact: true,
        });
    }
    if binomial(n as u64, na as u64) <= EXACT_SPLITS {
        return Some(UTest {
            u,
            p: exact_p(&ranks, na, rank_sum_a),
            exact: true,
        });
    }
    let (naf, nbf, nf) = (na as f64, nb as f64, n as f64);
    let mean = naf * nbf / 2.0;
    let variance = naf * nbf / 12.0 * ((nf + 1.0) - ties / (nf * (nf - 1.0)));
    let z = ((u - mean).abs() - 0.5).max(0.0) / variance.sqrt();
    Some(UTest {
        u,
        p: erfc(z / std::f64::consts::SQRT_2).min(1.0),
        exact: false,
    })
}

/// Ranks 1..=n, tied values sharing the mean of their ranks.
fn midranks(values: &[f64]) -> Vec<f64> {
    let mut order: Vec<usize> = (0..values.len()).collect();
    order.sort_by(|&i, &j| values[i].total_cmp(&values[j]));
    let mut ranks = vec![0.0; values.len()];
    let mut start = 0;
    while start < order.len() {
        let mut end = start + 1;
        while end < order.len() && values[order[end]] == values[order[start]] {
            end += 1;
        }
        // Positions start..end (0-based) hold ranks start+1..=end.
        let rank = (start + 1 + end) as f64 / 2.0;
        for &i in &order[start..end] {
            ranks[i] = rank;
        }
        start = end;
    }
    ranks
}

/// Sizes of the groups of equal values.
fn tie_groups(values: &[f64]) -> Vec<usize> {
    let mut sorted = values.to_vec();
    sorted.sort_by(f64::total_cmp);
    let mut groups = Vec::new();
    let mut i = 0;
    while i < sorted.len() {
        let mut j = i + 1;
        while j < sorted.len() && sorted[j] == sorted[i] {
            j += 1;
        }
        groups.push(j - i);
        i = j;
    }
    groups
}

fn binomial(n: u64, k: u64) -> u64 {
    let k = k.min(n - k);
    let mut c: u64 = 1;
    for i in 0..k {
        c = c.saturating_mul(n - i) / (i + 1);
    }
    c
}

/// The share of all ways to pick `k` of the pooled ranks whose rank sum is
/// at least as far from its mean as the observed one.
fn exact_p(ranks: &[f64], k: usize, observed: f64) -> f64 {
    let n = ranks.len();
    let mean = k as f64 * (n + 1) as f64 / 2.0;
    let far = (observed - mean).abs() - 1e-9;
    let mut total = 0_u64;
    let mut extreme = 0_u64;
    // Index combinations in lexicographic order.
    let mut pick: Vec<usize> = (0..k).collect();
    loop {
        let sum: f64 = pick.iter().map(|&i| ranks[i]).sum();
        total += 1;
        if (sum - mean).abs() >= far {
            extreme += 1;
        }
        // Next combination.
        let mut i = k;
        loop {
            if i == 0 {
                return extreme as f64 / total as f64;
            }
            i -= 1;
            if pick[i] < n - k + i {
                break;
            }
        }
        pick[i] += 1;
        for j in i + 1..k {
            pick[j] = pick[j - 1] + 1;
        }
    }
}

/// The complementary error function (Numerical Recipes' erfcc, relative
/// error below 1.2e-7).
fn erfc(x: f64) -> f64 {
    let z = x.abs();
    let t = 1.0 / (1.0 + 0.5 * z);
    let r = t
        * (-z * z - 1.265_512_23
            + t * (1.000_023_68
                + t * (0.374_091_96
                    + t * (0.096_784_18
                        + t * (-0.186_288_06
                            + t * (0.278_868_07
                                + t * (-1.135_203_98
                                    + t * (1.488_515_87
                                        + t * (-0.822_152_23 + t * 0.170_872_77)))))))))
            .exp();
    if x >= 0.0 { r } else { 2.0 - r }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn close(a: f64, b: f64, tol: f64) -> bool {
        (a - b).abs() <= tol
    }

    #[test]
    fn fully_separated_four_a_side_is_significant_three_a_side_cannot_be() {
        // All 70 splits of 8 ranks, 2 as extreme as this one.
        let t = mann_whitney(&[1.0, 2.0, 3.0, 4.0], &[5.0, 6.0, 7.0, 8.0]).unwrap();
        assert_eq!(t.u, 0.0);
        assert!(t.exact);
        assert!(close(t.p, 2.0 / 70.0, 1e-12), "{t:?}");
        // 20 splits, 2 extreme: 0.1 is the smallest p three runs a side get.
        let t = mann_whitney(&[10.0, 11.0, 12.0], &[1.0, 2.0, 3.0]).unwrap();
        assert_eq!(t.u, 9.0);
        assert!(close(t.p, 0.1, 1e-12), "{t:?}");
    }

    #[test]
    fn scipy_documentation_example() {
        // scipy.stats.mannwhitneyu(males, females, method="exact"): U 17,
        // p 0.1111; method="asymptotic": p 0.11134688653314041.
        let males = [19.0, 22.0, 16.0, 29.0, 24.0];
        let females = [20.0, 11.0, 17.0, 12.0];
        let t = mann_whitney(&males, &females).unwrap();
        assert_eq!(t.u, 17.0);
        assert!(t.exact);
        assert!(close(t.p, 1.0 / 9.0, 1e-12), "{t:?}");
        // The normal approximation (forced by counting every split).
        let (na, nb) = (5.0_f64, 4.0_f64);
        let z = ((t.u - na * nb / 2.0).abs() - 0.5) / (na * nb * (na + nb + 1.0) / 12.0).sqrt();
        assert!(close(
            erfc(z / std::f64::consts::SQRT_2),
            0.111_346_886_533_140_41,
            1e-6
        ));
    }

    #[test]
    fn ties_get_midranks_in_the_exact_test() {
        assert_eq!(midranks(&[3.0, 1.0, 3.0, 2.0]), [3.5, 1.0, 3.5, 2.0]);
        // Enumerated independently (Python, itertools.combinations over the
        // midranks [1, 3, 3, 3, 5.5, 5.5, 7, 8]): 14 of 70 splits have a
        // rank sum at least 5.5 from its mean of 18.
        let t = mann_whitney(&[1.0, 2.0, 2.0, 3.0], &[2.0, 3.0, 4.0, 5.0]).unwrap();
        assert_eq!(t.u, 2.5);
        assert!(t.exact);
        assert!(close(t.p, 14.0 / 70.0, 1e-12), "{t:?}");
    }

    #[test]
    fn large_samples_with_ties_use_the_corrected_normal_approximation() {
        // 12 a side: C(24,12) = 2,704,156 splits, past the exact bound.
        let a = [1.0, 2.0, 2.0, 3.0, 3.0, 3.0, 4.0, 5.0, 5.0, 6.0, 7.0, 8.0];
        let b = [3.0, 4.0, 5.0, 5.0, 6.0, 6.0, 7.0, 8.0, 8.0, 9.0, 9.0, 10.0];
        let t = mann_whitney(&a, &b).unwrap();
        assert!(!t.exact);
        // Computed independently (Python): R_a = 106.5, U = 28.5, mean 72,
        // tie term sum(t^3-t) = 192, variance 144/12 * (25 - 192/552) =
        // 295.826, z = (43.5 - 0.5)/17.1996 = 2.50006, p = erfc(z/√2) =
        // 0.0124173.
        assert_eq!(t.u, 28.5);
        assert!(close(t.p, 0.012_417_27, 1e-6), "{t:?}");
    }

    #[test]
    fn identical_samples_are_not_different() {
        let t = mann_whitney(&[5.0, 5.0], &[5.0, 5.0, 5.0]).unwrap();
        assert_eq!(t.p, 1.0);
        assert!(mann_whitney(&[], &[1.0]).is_none());
    }
}
