//! Fewer points for long series, keeping their shape: the rows are cut into
//! buckets of equal count and each bucket gives two points, each series'
//! minimum and maximum in the order they came. A spike or a dip of a single
//! second stays on the chart (an average would hide it), and a day-long run
//! draws as fast and weighs as little as a short one.

/// Series over a shared x: `columns[i][j]` is series i at `x[j]`.
pub struct Series {
    pub x: Vec<f64>,
    pub columns: Vec<Vec<Option<f64>>>,
}

/// At most `2 * buckets` points; `series` unchanged when it has no more.
pub fn min_max(series: Series, buckets: usize) -> Series {
    let n = series.x.len();
    if buckets == 0 || n <= 2 * buckets {
        return series;
    }
    let mut x = Vec::with_capacity(2 * buckets);
    let mut columns: Vec<Vec<Option<f64>>> = (0..series.columns.len())
        .map(|_| Vec::with_capacity(2 * buckets))
        .collect();
    for b in 0..buckets {
        let (lo, hi) = (b * n / buckets, (b + 1) * n / buckets);
        x.push(series.x[lo]);
        x.push(series.x[hi - 1]);
        for (out, column) in columns.iter_mut().zip(&series.columns) {
            let (first, second) = extremes(&column[lo..hi]);
            out.push(first);
            out.push(second);
        }
    }
    Series { x, columns }
}

/// The minimum and maximum of a bucket, in the order they occur.
fn extremes(values: &[Option<f64>]) -> (Option<f64>, Option<f64>) {
    let mut min: Option<(usize, f64)> = None;
    let mut max: Option<(usize, f64)> = None;
    for (i, v) in values.iter().enumerate() {
        let Some(v) = *v else { continue };
        if min.is_none_or(|(_, m)| v < m) {
            min = Some((i, v));
        }
        if max.is_none_or(|(_, m)| v > m) {
            max = Some((i, v));
        }
    }
    match (min, max) {
        (Some((i, lo)), Some((j, hi))) if i <= j => (Some(lo), Some(hi)),
        (Some((_, lo)), Some((_, hi))) => (Some(hi), Some(lo)),
        _ => (None, None),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn short_series_pass_unchanged() {
        let s = min_max(
            Series {
                x: vec![1.0, 2.0, 3.0],
                columns: vec![vec![Some(1.0), None, Some(3.0)]],
            },
            2,
        );
        assert_eq!(s.x, [1.0, 2.0, 3.0]);
        assert_eq!(s.columns[0], [Some(1.0), None, Some(3.0)]);
    }

    #[test]
    fn a_one_second_spike_survives_and_the_length_is_bounded() {
        let n = 100_000;
        let x: Vec<f64> = (1..=n).map(|i| i as f64).collect();
        let mut y: Vec<Option<f64>> = (0..n).map(|i| Some((i % 7) as f64)).collect();
        y[54_321] = Some(1e9);
        y[77_777] = Some(-5.0);
        let gaps: Vec<Option<f64>> = vec![None; n];
        let s = min_max(
            Series {
                x,
                columns: vec![y, gaps],
            },
            1000,
        );
        assert_eq!(s.x.len(), 2000);
        assert_eq!(s.columns[0].len(), 2000);
        assert!(s.columns[0].contains(&Some(1e9)));
        assert!(s.columns[0].contains(&Some(-5.0)));
        assert!(s.columns[1].iter().all(Option::is_none));
        assert_eq!(s.x[0], 1.0);
        assert_eq!(*s.x.last().unwrap(), n as f64);
        assert!(s.x.windows(2).all(|w| w[0] <= w[1]));
    }

    #[test]
    fn a_bucket_keeps_the_order_of_its_extremes() {
        assert_eq!(
            extremes(&[Some(5.0), Some(9.0), Some(1.0)]),
            (Some(9.0), Some(1.0))
        );
        assert_eq!(
            extremes(&[Some(1.0), None, Some(9.0)]),
            (Some(1.0), Some(9.0))
        );
    }
}
