//! `connect.hgrm`, `rtt.hgrm`: HdrHistogram's percentile-distribution text,
//! as Java's `AbstractHistogram.outputPercentileDistribution` writes it
//! (values in microseconds, 5 ticks per half distance), so HdrHistogram's
//! plotter and other tools read it. hdrhistogram-rust has no text writer.
//!
//! ```text
//!        Value     Percentile TotalCount 1/(1-Percentile)
//!
//!       85.000 0.000000000000          1           1.00
//!      ...
//!    12000.000 1.000000000000        200
//! #[Mean    =      123.456, StdDeviation   =       78.901]
//! #[Max     =    12000.000, Total count    =          200]
//! #[Buckets =           20, SubBuckets     =         2048]
//! ```

use std::fmt::Write as _;
use std::io;

use hdrhistogram::Histogram;

use super::{Exporter, Metric, RunResults};

/// Percentile steps per half distance to 100%, as HdrHistogram's default.
pub const TICKS_PER_HALF_DISTANCE: u32 = 5;

/// Writes one metric's histogram as `.hgrm` text.
pub struct Hgrm(pub Metric);

impl Exporter for Hgrm {
    fn serialize(&self, run: &RunResults<'_>) -> io::Result<Vec<u8>> {
        Ok(percentile_distribution(self.0.histogram(run.last)).into_bytes())
    }
}

/// One step of the percentile distribution.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Step {
    /// Highest value equivalent to the step's bucket.
    pub value: u64,
    /// The percentile iterated to, 0 to 100.
    pub percentile: f64,
    /// Values recorded at or below `value`.
    pub total_count: u64,
}

impl Step {
    pub fn quantile(&self) -> f64 {
        self.percentile / 100.0
    }
}

/// The steps of the percentile distribution, as HdrHistogram's
/// `PercentileIterator` makes them: from 0%, `ticks_per_half_distance` equal
/// steps in each half of the distance left to 100%, one step in the bucket
/// of the highest value, then 100%. Empty for an empty histogram.
///
/// Done here rather than with `Histogram::iter_quantiles`, which steps in
/// quantiles (0.1 + 0.2 != 0.3) where Java steps in percents, whose ticks
/// are exact; at a bucket boundary that gives a different row.
pub fn steps(hist: &Histogram<u64>, ticks_per_half_distance: u32) -> Vec<Step> {
    let total = hist.len();
    let mut steps = Vec::new();
    let mut level = 0.0_f64;
    let mut total_count = 0_u64;
    for bucket in hist.iter_recorded() {
        total_count += bucket.count_at_value();
        let value = bucket.value_iterated_to();
        if total_count >= total {
            steps.push(Step {
                value,
                percentile: level,
                total_count,
            });
            steps.push(Step {
                value,
                percentile: 100.0,
                total_count,
            });
            break;
        }
        let percentile = 100.0 * total_count as f64 / total as f64;
        while percentile >= level {
            steps.push(Step {
                value,
                percentile: level,
                total_count,
            });
            let next = level + next_tick(level, ticks_per_half_distance);
            if next <= level {
                // Ticks below the float resolution near 100% (counts past
                // ~10^15): one step per bucket from here on.
                break;
            }
            level = next;
        }
    }
    steps
}

/// The percent step after `level`: the tick size halves with each half
/// distance to 100% (Java's `PercentileIterator.incrementIterationLevel`).
fn next_tick(level: f64, ticks_per_half_distance: u32) -> f64 {
    let halvings = ((100.0 / (100.0 - level)).ln() / 2.0_f64.ln()).floor();
    let ticks = f64::from(ticks_per_half_distance) * 2.0_f64.powf(halvings + 1.0);
    100.0 / ticks
}

/// The `.hgrm` text of `hist`, values unscaled (microseconds here).
pub fn percentile_distribution(hist: &Histogram<u64>) -> String {
    let digits = usize::from(hist.sigfig());
    let mut out = String::new();
    // Writing to a String cannot fail.
    let _ = writeln!(
        out,
        "{:>12} {:>14} {:>10} {:>14}\n",
        "Value", "Percentile", "TotalCount", "1/(1-Percentile)"
    );
    for step in steps(hist, TICKS_PER_HALF_DISTANCE) {
        let value = step.value as f64;
        let quantile = step.quantile();
        if step.percentile != 100.0 {
            let _ = writeln!(
                out,
                "{value:12.digits$} {quantile:2.12} {:10} {:14.2}",
                step.total_count,
                1.0 / (1.0 - quantile)
            );
        } else {
            let _ = writeln!(
                out,
                "{value:12.digits$} {quantile:2.12} {:10}",
                step.total_count
            );
        }
    }
    let max = if hist.is_empty() { 0 } else { hist.max() };
    let _ = writeln!(
        out,
        "#[Mean    = {:12.digits$}, StdDeviation   = {:12.digits$}]",
        hist.mean(),
        hist.stdev()
    );
    let _ = writeln!(
        out,
        "#[Max     = {:12.digits$}, Total count    = {:12}]",
        max as f64,
        hist.len()
    );
    let _ = writeln!(
        out,
        "#[Buckets = {:12}, SubBuckets     = {:12}]",
        hist.buckets(),
        sub_bucket_count(hist.sigfig())
    );
    out
}

/// Sub-buckets per bucket, as HdrHistogram derives it from the significant
/// figures (hdrhistogram-rust keeps it private).
fn sub_bucket_count(sigfig: u8) -> u64 {
    let single_unit_resolution = 2 * 10_u64.pow(u32::from(sigfig));
    let magnitude = (single_unit_resolution as f64).log2().ceil() as u32;
    1 << magnitude.max(1)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::stats::{new_histogram, record_us};

    #[test]
    fn small_histogram_matches_hdrhistogram_text() {
        let mut hist = new_histogram();
        for us in 1..=4 {
            record_us(&mut hist, us * 100);
        }
        // Checked by hand against Java's outputPercentileDistribution(.., 5, 1.0).
        let expected = "       Value     Percentile TotalCount 1/(1-Percentile)

     100.000 0.000000000000          1           1.00
     100.000 0.100000000000          1           1.11
     100.000 0.200000000000          1           1.25
     200.000 0.300000000000          2           1.43
     200.000 0.400000000000          2           1.67
     200.000 0.500000000000          2           2.00
     300.000 0.550000000000          3           2.22
     300.000 0.600000000000          3           2.50
     300.000 0.650000000000          3           2.86
     300.000 0.700000000000          3           3.33
     300.000 0.750000000000          3           4.00
     400.000 0.775000000000          4           4.44
     400.000 1.000000000000          4
#[Mean    =      250.000, StdDeviation   =      111.803]
#[Max     =      400.000, Total count    =            4]
#[Buckets =           20, SubBuckets     =         2048]
";
        assert_eq!(percentile_distribution(&hist), expected);
    }

    #[test]
    fn empty_histogram_has_header_and_footer_only() {
        let text = percentile_distribution(&new_histogram());
        assert!(text.starts_with("       Value     Percentile TotalCount"));
        assert!(text.contains("#[Max     =        0.000, Total count    =            0]"));
        assert_eq!(text.lines().count(), 5);
    }

    #[test]
    fn sub_bucket_count_follows_significant_figures() {
        assert_eq!(sub_bucket_count(3), 2048);
        assert_eq!(sub_bucket_count(2), 256);
        assert_eq!(sub_bucket_count(0), 2);
    }
}
