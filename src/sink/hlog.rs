//! `connect.hlog`, `rtt.hlog` (and in request mode `queue.hlog`,
//! `service.hlog`, `total.hlog`): the run's latency histograms, one per second,
//! as an HdrHistogram interval log (compressed V2 histograms in base64, one
//! line per interval), which HdrHistogram's tools (`HistogramLogProcessor`,
//! the plotters) read and `ceiling merge` adds. Written with hdrhistogram's
//! own interval-log writer; values in microseconds, as in `.hgrm`.
//!
//! Each interval is one row of `timeseries.csv`: it ends at the row's `utc`
//! and begins where the previous row ended (the first at the run's start),
//! so the intervals of two runs align on their UTC seconds as their rows
//! do. `StartTime` and `BaseTime` are both the run's start: an interval's
//! timestamp is seconds since the start, its UTC is BaseTime plus that.
//!
//! The intervals are serialized as they come, in the tick loop (never on
//! a worker's path) and kept until the end, when the file is written whole
//! like the other end-of-run files (a full disk leaves none of it, and
//! names it). Measured (release build): a second of 10,000 connects spread
//! over 100 ms takes 0.6 ms to serialize and 765 bytes (2.7 MB an hour);
//! a quiet second a few dozen bytes.

use std::io;
use std::time::{Duration, SystemTime};

use base64::Engine as _;
use hdrhistogram::Histogram;
use hdrhistogram::serialization::interval_log::{
    IntervalLogIterator, IntervalLogWriterBuilder, LogEntry,
};
use hdrhistogram::serialization::{Deserializer, V2DeflateSerializer};

use super::{Exporter, Metric, RunResults};
use crate::stats::IntervalHistograms;

/// The format version HdrHistogram's Java log writer states first.
pub const FORMAT_COMMENT: &str = "[Histogram log format version 1.3]";

/// One metric's intervals, serialized.
#[derive(Default)]
struct Lines {
    bytes: Vec<u8>,
    /// A histogram could not be serialized (counts past i64): the file is
    /// not written, and named with this.
    error: Option<String>,
}

/// The run's interval logs as they grow, one per [`Metric`].
pub struct IntervalLogs {
    started_at: SystemTime,
    /// Where the next interval begins: the last one's end.
    last_end: SystemTime,
    serializer: V2DeflateSerializer,
    connect: Lines,
    rtt: Lines,
    queue: Lines,
    service: Lines,
    total: Lines,
}

impl IntervalLogs {
    pub fn new(started_at: SystemTime) -> IntervalLogs {
        let started_at = whole_ms(started_at);
        IntervalLogs {
            started_at,
            last_end: started_at,
            serializer: V2DeflateSerializer::new(),
            connect: Lines::default(),
            rtt: Lines::default(),
            queue: Lines::default(),
            service: Lines::default(),
            total: Lines::default(),
        }
    }

    /// Sets the run's start (the logs' StartTime and BaseTime, the first
    /// interval's beginning); before the first interval only.
    pub fn set_start(&mut self, started_at: SystemTime) {
        let started_at = whole_ms(started_at);
        self.started_at = started_at;
        self.last_end = started_at;
    }

    /// Adds the seconds' histograms, oldest first.
    pub fn append(&mut self, intervals: Vec<IntervalHistograms>) {
        for interval in intervals {
            // The rows' utc is ceiling's own RFC 3339 clock reading; were
            // it not, the interval is taken to be one second long.
            let end = humantime::parse_rfc3339(&interval.utc)
                .unwrap_or(self.last_end + Duration::from_secs(1))
                .max(self.last_end);
            let start = since(self.started_at, self.last_end);
            let length = since(self.last_end, end);
            self.last_end = end;
            for (lines, hist) in [
                (&mut self.connect, &interval.connect_us),
                (&mut self.rtt, &interval.rtt_us),
            ] {
                write_interval(lines, &mut self.serializer, hist, start, length);
            }
            if let Some(r) = &interval.requests {
                for (lines, hist) in [
                    (&mut self.queue, &r.queue_us),
                    (&mut self.service, &r.service_us),
                    (&mut self.total, &r.total_us),
                ] {
                    write_interval(lines, &mut self.serializer, hist, start, length);
                }
            }
        }
    }

    /// The whole log of `metric`: headers, then every interval.
    pub fn content(&self, metric: Metric) -> io::Result<Vec<u8>> {
        let lines = match metric {
            Metric::Connect => &self.connect,
            Metric::Rtt => &self.rtt,
            Metric::Queue => &self.queue,
            Metric::Service => &self.service,
            Metric::Total => &self.total,
        };
        if let Some(error) = &lines.error {
            return Err(io::Error::other(error.clone()));
        }
        let mut out = Vec::with_capacity(lines.bytes.len() + 256);
        let mut serializer = V2DeflateSerializer::new();
        IntervalLogWriterBuilder::new()
            .add_comment(FORMAT_COMMENT)
            .add_comment(&format!(
                "ceiling {}: {} latency in microseconds, one interval per row of \
                 timeseries.csv",
                env!("CARGO_PKG_VERSION"),
                metric.as_str()
            ))
            .with_start_time(self.started_at)
            .with_base_time(self.started_at)
            .begin_log_with(&mut out, &mut serializer)?;
        out.extend_from_slice(&lines.bytes);
        Ok(out)
    }
}

/// `t` cut to whole milliseconds: the log writes times to the millisecond,
/// and the rows' `utc` is in milliseconds; so read back, an interval ends
/// exactly at its row's `utc`.
fn whole_ms(t: SystemTime) -> SystemTime {
    let since_epoch = since(SystemTime::UNIX_EPOCH, t);
    SystemTime::UNIX_EPOCH + Duration::from_millis(since_epoch.as_millis() as u64)
}

/// `to - from`, zero when `to` is earlier.
fn since(from: SystemTime, to: SystemTime) -> Duration {
    to.duration_since(from).unwrap_or(Duration::ZERO)
}

/// Appends one interval line, whole or not at all.
fn write_interval(
    lines: &mut Lines,
    serializer: &mut V2DeflateSerializer,
    hist: &Histogram<u64>,
    start: Duration,
    length: Duration,
) {
    if lines.error.is_some() {
        return;
    }
    let len = lines.bytes.len();
    let written = IntervalLogWriterBuilder::new()
        .begin_log_with(&mut lines.bytes, serializer)
        .map_err(|e| e.to_string())
        .and_then(|mut log| {
            log.write_histogram(hist, start, length, None)
                .map_err(|e| e.to_string())
        });
    if let Err(e) = written {
        lines.bytes.truncate(len);
        lines.error = Some(format!("cannot serialize a histogram: {e}"));
    }
}

/// Writes one metric's interval log.
pub struct Hlog(pub Metric);

impl Exporter for Hlog {
    fn serialize(&self, run: &RunResults<'_>) -> io::Result<Vec<u8>> {
        run.intervals.content(self.0)
    }
}

/// One interval read back from a `.hlog` file. Its histogram is kept
/// compressed (a whole histogram takes 170 KiB, a second of a log under one)
/// and decoded again by [`ReadInterval::histogram`] when it is added.
#[derive(Debug, Clone)]
pub struct ReadInterval {
    /// When it ended, UTC: BaseTime + its timestamp + its length.
    pub end: SystemTime,
    /// Its histogram's lowest discernible and highest trackable values and
    /// significant figures.
    pub settings: (u64, u64, u8),
    compressed: Vec<u8>,
}

impl ReadInterval {
    /// Its histogram, decoded.
    pub fn histogram(&self) -> Result<Histogram<u64>, HlogError> {
        Deserializer::new()
            .deserialize(&mut self.compressed.as_slice())
            .map_err(|e| HlogError(format!("an interval's histogram: {e:?}")))
    }
}

/// A `.hlog` file read back.
#[derive(Debug, Clone)]
pub struct ReadLog {
    pub start_time: Option<SystemTime>,
    pub intervals: Vec<ReadInterval>,
}

/// A `.hlog` file that cannot be read: where, and why.
#[derive(Debug, thiserror::Error)]
#[error("not an HdrHistogram interval log: {0}")]
pub struct HlogError(String);

/// Reads an interval log as this module writes it (any log with a
/// BaseTime, or absolute timestamps without one), with hdrhistogram's
/// iterator and deserializer.
pub fn read(bytes: &[u8]) -> Result<ReadLog, HlogError> {
    let mut start_time = None;
    let mut base_time = SystemTime::UNIX_EPOCH;
    let mut intervals = Vec::new();
    for entry in IntervalLogIterator::new(bytes) {
        match entry {
            Err(e) => return Err(HlogError(format!("{e:?}"))),
            Ok(LogEntry::StartTime(t)) => start_time = Some(SystemTime::UNIX_EPOCH + t),
            Ok(LogEntry::BaseTime(t)) => base_time = SystemTime::UNIX_EPOCH + t,
            Ok(LogEntry::Interval(interval)) => {
                let compressed = base64::engine::general_purpose::STANDARD
                    .decode(interval.encoded_histogram())
                    .map_err(|e| HlogError(format!("an interval is not base64: {e}")))?;
                let mut read = ReadInterval {
                    end: base_time + interval.start_timestamp() + interval.duration(),
                    settings: (0, 0, 0),
                    compressed,
                };
                // Decoded once here: a log that does not decode is refused
                // whole, before anything is added.
                let histogram = read.histogram()?;
                read.settings = (histogram.low(), histogram.high(), histogram.sigfig());
                intervals.push(read);
            }
        }
    }
    Ok(ReadLog {
        start_time,
        intervals,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::stats::{new_histogram, record_us};

    fn second(utc: &str, connect: &[u64]) -> IntervalHistograms {
        let mut connect_us = new_histogram();
        for us in connect {
            record_us(&mut connect_us, *us);
        }
        IntervalHistograms {
            utc: utc.into(),
            connect_us,
            rtt_us: new_histogram(),
            requests: None,
        }
    }

    #[test]
    fn the_intervals_read_back_add_up_to_the_run_and_keep_their_utc() {
        let start = humantime::parse_rfc3339("2026-12-06T01:02:03.400Z").unwrap();
        // A clock reading finer than the log's milliseconds.
        let mut logs = IntervalLogs::new(start + Duration::from_nanos(700_123));
        let seconds = [
            second("2026-12-06T01:02:04.401Z", &[100, 120, 5_000]),
            second("2026-12-06T01:02:05.399Z", &[]),
            second("2026-12-06T01:02:05.950Z", &[70, 1_000_000]),
        ];
        let mut whole = new_histogram();
        for s in &seconds {
            whole.add(&s.connect_us).unwrap();
        }
        logs.append(seconds.to_vec());
        let bytes = logs.content(Metric::Connect).unwrap();
        let text = String::from_utf8(bytes.clone()).unwrap();
        assert!(
            text.starts_with("#[Histogram log format version 1.3]\n"),
            "{text}"
        );
        assert!(text.contains("#[StartTime: 1796518923.400 (seconds since epoch)]"));
        assert!(text.contains("#[BaseTime: 1796518923.400 (seconds since epoch)]"));

        // Read with the crate's own iterator, as other tools would.
        let entries: Vec<_> = IntervalLogIterator::new(&bytes)
            .collect::<Result<_, _>>()
            .unwrap();
        let timestamps: Vec<(f64, f64)> = entries
            .iter()
            .filter_map(|e| match e {
                LogEntry::Interval(i) => Some((
                    i.start_timestamp().as_secs_f64(),
                    i.duration().as_secs_f64(),
                )),
                _ => None,
            })
            .collect();
        assert_eq!(timestamps, [(0.0, 1.001), (1.001, 0.998), (1.999, 0.551)]);

        let log = read(&bytes).unwrap();
        assert_eq!(log.start_time, Some(start));
        let histograms: Vec<Histogram<u64>> = log
            .intervals
            .iter()
            .map(|i| i.histogram().unwrap())
            .collect();
        let counts: Vec<u64> = histograms.iter().map(Histogram::len).collect();
        assert_eq!(counts, [3, 0, 2]);
        let mut sum = new_histogram();
        for histogram in &histograms {
            sum.add(histogram).unwrap();
        }
        assert_eq!(sum.len(), whole.len());
        assert_eq!(
            sum, whole,
            "the sum is the whole run's histogram, bucket by bucket"
        );
        let ends: Vec<SystemTime> = log.intervals.iter().map(|i| i.end).collect();
        let expected: Vec<SystemTime> = seconds
            .iter()
            .map(|s| humantime::parse_rfc3339(&s.utc).unwrap())
            .collect();
        assert_eq!(ends, expected, "each interval ends at its row's utc");
        // Same settings as the run's histograms.
        assert_eq!(
            log.intervals[0].settings,
            (whole.low(), whole.high(), whole.sigfig())
        );
    }

    #[test]
    fn a_file_that_is_not_a_log_is_refused() {
        assert!(read(b"elapsed_s,utc\n1,2\n").is_err());
    }
}
