//! Criterion micro-benchmarks of what ceiling does per connection, apart
//! from the kernel: recording an outcome and its latency into a worker's
//! stats [`Delta`], classifying a failure (the pure table in `classify`),
//! and what the aggregator does every tick (merging a worker's delta,
//! taking a snapshot).
//!
//! ```text
//! cargo bench --bench hot_path              # full statistics, ~2-3 min
//! cargo bench --bench hot_path -- --quick   # a quick pass, well under a minute
//! cargo bench --bench hot_path -- classify  # one group by name
//! ```
//!
//! Criterion keeps the previous run under `target/criterion/` and reports
//! each change against it ("Performance has regressed/improved"), so run it
//! before and after a change to the hot path. Only public APIs are used.

use std::hint::black_box;
use std::time::{Duration, Instant};

use criterion::{BatchSize, Criterion, Throughput, criterion_group, criterion_main};

use ceiling::classify::{self, AttemptContext};
use ceiling::model::{FailureEvent, LimitKind, Syscall};
use ceiling::stats::{Aggregator, Delta, Phase, record_us};

/// Sources in the benchmarked deltas: a few, like a run with `--source`.
const SOURCES: usize = 4;

/// Connect latencies (µs) cycled through, spread over the histogram's
/// range so recording does not hit one bucket only.
const LATENCIES_US: [u64; 8] = [87, 215, 354, 1_070, 5_240, 8_850, 25_500, 3_000_000];

/// What the engine records when a connection is established (the
/// `established` path of `engine::worker`): counters, the connect latency,
/// the source's counter.
fn record_established(delta: &mut Delta, latency_us: u64, source: usize) {
    delta.attempted += 1;
    delta.established += 1;
    record_us(&mut delta.connect_us, latency_us);
    delta.sources[source].established += 1;
}

fn failure(kind: LimitKind, syscall: Syscall, errno: Option<i32>, attempt: u64) -> FailureEvent {
    FailureEvent {
        kind,
        syscall,
        errno,
        attempt,
        elapsed_s: attempt as f64 / 4000.0,
        active: attempt,
        source: "127.0.0.2".into(),
        target: "127.0.0.1:7070".into(),
        peer_close: None,
        age_ms: None,
        server_bytes: None,
        syn_retransmits: None,
    }
}

/// A worker's delta for one 100 ms tick at 4,000 connects/s: 400
/// established with latencies, 5 failures in 2 groups, one server close.
fn tick_delta(tick: u64) -> Delta {
    let mut delta = Delta::new(SOURCES);
    for i in 0..400 {
        record_established(
            &mut delta,
            LATENCIES_US[i % LATENCIES_US.len()],
            i % SOURCES,
        );
    }
    for i in 0..5 {
        let (kind, syscall, errno) = if i % 2 == 0 {
            (
                LimitKind::PortExhaustion,
                Syscall::Connect,
                Some(libc::EADDRNOTAVAIL),
            )
        } else {
            (
                LimitKind::Refused,
                Syscall::Connect,
                Some(libc::ECONNREFUSED),
            )
        };
        delta.attempted += 1;
        delta.record_failure(
            failure(kind, syscall, errno, tick * 400 + i),
            i as usize % SOURCES,
        );
    }
    delta.record_server_close(2_000, 350, 5_000);
    delta
}

fn delta_recording(c: &mut Criterion) {
    let mut group = c.benchmark_group("delta");
    group.throughput(Throughput::Elements(1));

    group.bench_function("record_established", |b| {
        let mut delta = Delta::new(SOURCES);
        let mut i = 0usize;
        b.iter(|| {
            i = i.wrapping_add(1);
            record_established(
                black_box(&mut delta),
                black_box(LATENCIES_US[i % LATENCIES_US.len()]),
                i % SOURCES,
            );
        });
    });

    // The event is built in the setup (the engine builds one per failure
    // anyway); what is timed is counting it into its group.
    group.bench_function("record_failure_known_group", |b| {
        let mut delta = Delta::new(SOURCES);
        let mut attempt = 0u64;
        b.iter_batched(
            || {
                attempt += 1;
                failure(
                    LimitKind::PortExhaustion,
                    Syscall::Connect,
                    Some(libc::EADDRNOTAVAIL),
                    attempt,
                )
            },
            |event| delta.record_failure(black_box(event), 1),
            BatchSize::SmallInput,
        );
    });

    group.bench_function("record_server_close", |b| {
        let mut delta = Delta::new(SOURCES);
        let mut age = 0u64;
        b.iter(|| {
            age = (age + 37) % 60_000;
            delta.record_server_close(black_box(age), black_box(age / 10), black_box(age + 1_000));
        });
    });
    group.finish();
}

/// Inputs covering every branch family of the table: each syscall, with
/// and without errno, with the contexts that change the answer.
fn classify_cases() -> Vec<(Syscall, Option<i32>, AttemptContext)> {
    let plain = AttemptContext::default();
    let overflowing = AttemptContext {
        target_local: true,
        listen_overflows_moved: Some(true),
        ..AttemptContext::default()
    };
    let held = AttemptContext {
        established: true,
        age_ms: Some(2_500),
        ..AttemptContext::default()
    };
    vec![
        (Syscall::Socket, Some(libc::EMFILE), plain),
        (Syscall::Bind, Some(libc::EADDRINUSE), plain),
        (Syscall::Connect, Some(libc::EADDRNOTAVAIL), plain),
        (Syscall::Connect, Some(libc::ECONNREFUSED), plain),
        (Syscall::Connect, Some(libc::ECONNRESET), overflowing),
        (Syscall::Timeout, None, overflowing),
        (Syscall::Read, None, held),
        (Syscall::Read, Some(libc::ECONNRESET), held),
    ]
}

fn classification(c: &mut Criterion) {
    let cases = classify_cases();
    let mut group = c.benchmark_group("classify");
    group.throughput(Throughput::Elements(cases.len() as u64));
    group.bench_function("table_8_cases", |b| {
        b.iter(|| {
            for (syscall, errno, ctx) in &cases {
                black_box(classify::classify(
                    black_box(*syscall),
                    black_box(*errno),
                    black_box(ctx),
                ));
            }
        });
    });
    group.finish();
}

fn aggregation(c: &mut Criterion) {
    let mut group = c.benchmark_group("aggregate");
    let tick = tick_delta(1);

    group.bench_function("delta_merge_tick", |b| {
        let mut total = Delta::new(SOURCES);
        b.iter(|| total.merge(black_box(&tick)));
    });

    group.bench_function("absorb_tick", |b| {
        let mut aggregator = Aggregator::new(SOURCES, 1_000_000);
        b.iter(|| aggregator.absorb(black_box(&tick)));
    });

    // A snapshot within the same second: no row is closed, the cumulative
    // delta is cloned (what the UI reads every tick).
    group.bench_function("snapshot_same_second", |b| {
        let mut aggregator = Aggregator::new(SOURCES, 1_000_000);
        for n in 0..10 {
            aggregator.absorb(&tick_delta(n));
        }
        b.iter(|| {
            black_box(aggregator.snapshot(
                Duration::from_millis(500),
                Phase::Opening,
                4_000.0,
                String::new,
                false,
            ))
        });
    });

    // A snapshot that closes a second's row (percentiles of the second,
    // rates), as happens once a second; rows are drained as the sinks do.
    group.bench_function("snapshot_closing_a_row", |b| {
        let mut aggregator = Aggregator::new(SOURCES, 1_000_000);
        let mut second = 0u64;
        b.iter_custom(|iters| {
            let mut timed = Duration::ZERO;
            for _ in 0..iters {
                second += 1;
                aggregator.absorb(&tick);
                let _ = aggregator.take_rows();
                let _ = aggregator.take_intervals();
                let start = Instant::now();
                black_box(aggregator.snapshot(
                    Duration::from_secs(second),
                    Phase::Opening,
                    4_000.0,
                    || String::from("2026-01-01T00:00:00Z"),
                    false,
                ));
                timed += start.elapsed();
            }
            timed
        });
    });
    group.finish();
}

criterion_group!(benches, delta_recording, classification, aggregation);
criterion_main!(benches);
