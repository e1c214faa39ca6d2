//! `--model pool`: a fixed pool of worker threads serves requests, behind a
//! queue of bounded length; connections stay on tasks.
//!
//! A connection task that has read a whole request asks the pool to serve
//! it ([`WorkerPool::serve`]): it needs one of `workers + queue` admission
//! permits (a semaphore), then hands a job to the workers over a channel and
//! awaits the job's end. A worker takes jobs in order and sleeps each one's
//! service time (the work a real server would do on that thread). When no
//! permit is free, `--when-queue-full` decides: wait for one, answer busy,
//! or close. A job whose connection went away meanwhile is still served
//! (its worker cannot know), as a real pool would.

use std::io;
use std::sync::atomic::Ordering;
use std::sync::{Arc, Mutex, mpsc};
use std::time::Duration;

use tokio::sync::{Semaphore, oneshot};

use super::ServerStats;
use super::options::{Pool, WhenQueueFull};

/// What the pool did with one request.
#[derive(Debug, PartialEq, Eq)]
pub(super) enum Verdict {
    /// A worker served it: send its response.
    Served,
    /// Queue full, `reject`: answer busy.
    Busy,
    /// Queue full, `close`: close without an answer.
    Close,
}

/// One request for a worker: its service time, and whom to tell when done.
struct Job {
    time: Option<Duration>,
    done: oneshot::Sender<()>,
}

/// The workers and their queue.
pub(super) struct WorkerPool {
    /// `workers + queue` permits: a request holds one from admission until
    /// its worker is done with it.
    admission: Arc<Semaphore>,
    jobs: mpsc::Sender<Job>,
    when_full: WhenQueueFull,
    stats: Arc<ServerStats>,
}

impl WorkerPool {
    /// Starts `pool.workers` threads of `stack` bytes; they end when the
    /// pool is dropped. Fails if a thread cannot be started.
    pub fn start(pool: Pool, stack: usize, stats: &Arc<ServerStats>) -> io::Result<WorkerPool> {
        let (jobs, queue) = mpsc::channel::<Job>();
        let queue = Arc::new(Mutex::new(queue));
        for index in 0..pool.workers {
            let queue = Arc::clone(&queue);
            let stats = Arc::clone(stats);
            std::thread::Builder::new()
                .name(format!("ceiling-worker-{index}"))
                .stack_size(stack)
                .spawn(move || work(&queue, &stats))
                .map_err(|err| {
                    io::Error::new(
                        err.kind(),
                        format!(
                            "cannot start worker thread {} of {}: {err}",
                            index + 1,
                            pool.workers
                        ),
                    )
                })?;
        }
        Ok(WorkerPool {
            admission: Arc::new(Semaphore::new(pool.workers + pool.queue)),
            jobs,
            when_full: pool.when_full,
            stats: Arc::clone(stats),
        })
    }

    /// Serves one request of service time `time` on a worker, or says it
    /// is turned away (counted here).
    pub async fn serve(&self, time: Option<Duration>) -> Verdict {
        let permit = match self.admission.try_acquire() {
            Ok(permit) => permit,
            Err(_) => match self.when_full {
                WhenQueueFull::Wait => match self.admission.acquire().await {
                    Ok(permit) => permit,
                    // Never closed while the pool lives.
                    Err(_) => return Verdict::Close,
                },
                WhenQueueFull::Reject => {
                    self.stats.busy_rejected.fetch_add(1, Ordering::Relaxed);
                    return Verdict::Busy;
                }
                WhenQueueFull::Close => {
                    self.stats.busy_closed.fetch_add(1, Ordering::Relaxed);
                    return Verdict::Close;
                }
            },
        };
        let (done, finished) = oneshot::channel();
        self.stats.request_queue.fetch_add(1, Ordering::Relaxed);
        if self.jobs.send(Job { time, done }).is_err() {
            // No worker left (they only end with the pool).
            self.stats.request_queue.fetch_sub(1, Ordering::Relaxed);
            return Verdict::Close;
        }
        let _ = finished.await;
        drop(permit);
        Verdict::Served
    }
}

/// A worker: takes jobs in order until the pool is gone.
fn work(queue: &Mutex<mpsc::Receiver<Job>>, stats: &ServerStats) {
    loop {
        let job = {
            let queue = queue
                .lock()
                .unwrap_or_else(|poisoned| poisoned.into_inner());
            queue.recv()
        };
        let Ok(job) = job else { return };
        stats.request_queue.fetch_sub(1, Ordering::Relaxed);
        stats.workers_busy.fetch_add(1, Ordering::Relaxed);
        if let Some(time) = job.time {
            std::thread::sleep(time);
        }
        stats.workers_busy.fetch_sub(1, Ordering::Relaxed);
        let _ = job.done.send(());
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn pool(
        workers: usize,
        queue: usize,
        when_full: WhenQueueFull,
    ) -> (WorkerPool, Arc<ServerStats>) {
        let stats = Arc::new(ServerStats::default());
        let pool = WorkerPool::start(
            Pool {
                workers,
                queue,
                when_full,
            },
            64 * 1024,
            &stats,
        )
        .expect("workers start");
        (pool, stats)
    }

    /// One worker, a queue of one: of three requests at once, one is
    /// served, one waits its turn, the third is turned away by the policy.
    #[tokio::test]
    async fn past_workers_and_queue_the_policy_decides() {
        let time = Some(Duration::from_millis(100));
        for (when_full, third) in [
            (WhenQueueFull::Reject, Verdict::Busy),
            (WhenQueueFull::Close, Verdict::Close),
            (WhenQueueFull::Wait, Verdict::Served),
        ] {
            let (pool, stats) = pool(1, 1, when_full);
            let (a, b, c) = tokio::join!(pool.serve(time), pool.serve(time), pool.serve(time));
            assert_eq!((a, b, c), (Verdict::Served, Verdict::Served, third));
            let totals = stats.totals();
            assert_eq!(
                (totals.busy_rejected, totals.busy_closed),
                match when_full {
                    WhenQueueFull::Reject => (1, 0),
                    WhenQueueFull::Close => (0, 1),
                    WhenQueueFull::Wait => (0, 0),
                }
            );
            assert_eq!((totals.request_queue, totals.workers_busy), (0, 0));
        }
    }
}
