//! The line for the model. Generation is blocking work that already uses every core, so
//! requests wait here, first come first served, and a fixed number of worker threads (one for
//! the local engine; several for a remote server that batches by itself) take them in turn.
//!
//! Invariants:
//! - The async runtime never runs model work: handlers only enqueue and await.
//! - A full line refuses at once (429 with an estimated wait), it never grows without bound.
//! - A request whose client has gone is skipped when its turn comes, and a running one is
//!   cancelled at its next token (the job's result channel is closed when the client leaves).

use crate::error::ApiError;
use inkling_engine::{Backend, Generation};
use std::collections::VecDeque;
use std::sync::atomic::{AtomicBool, AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Condvar, Mutex};
use std::time::Instant;
use tokio::sync::oneshot;

type Work = Box<dyn FnOnce(&dyn Backend) + Send>;

/// Counters for `/health` and `/metrics`.
#[derive(Default)]
pub struct Metrics {
    pub waiting: AtomicUsize,
    pub running: AtomicUsize,
    pub requests: AtomicU64,
    pub completed: AtomicU64,
    pub rejected: AtomicU64,
    pub cancelled: AtomicU64,
    pub prompt_tokens: AtomicU64,
    pub completion_tokens: AtomicU64,
    /// Busy time of the workers, for tokens per second.
    pub busy_ms: AtomicU64,
    /// Of the last generation, times 1000 (atomics hold integers).
    pub last_decode_tps_milli: AtomicU64,
    pub last_prompt_tps_milli: AtomicU64,
    /// Moving average of a job's duration, for Retry-After.
    pub avg_job_ms: AtomicU64,
}

impl Metrics {
    pub fn record(&self, g: &Generation) {
        self.prompt_tokens.fetch_add(g.timings.prompt_tokens_computed as u64, Ordering::Relaxed);
        self.completion_tokens.fetch_add(g.candidates.iter().map(|c| c.completion_tokens as u64).sum(), Ordering::Relaxed);
        self.last_decode_tps_milli.store((g.timings.decode_tokens_per_s * 1e3) as u64, Ordering::Relaxed);
        self.last_prompt_tps_milli.store((g.timings.prompt_tokens_per_s * 1e3) as u64, Ordering::Relaxed);
    }
}

struct Inner {
    jobs: Mutex<VecDeque<Work>>,
    ready: Condvar,
    max_waiting: usize,
    workers: usize,
    closed: AtomicBool,
    metrics: Metrics,
}

#[derive(Clone)]
pub struct Queue {
    inner: Arc<Inner>,
}

/// Handed to a job: whether its client is still there.
pub struct Client<'a> {
    gone: &'a dyn Fn() -> bool,
}

impl Client<'_> {
    pub fn gone(&self) -> bool {
        (self.gone)()
    }
}

impl Queue {
    /// Starts `workers` threads serving `backend`; at most `max_waiting` requests wait.
    pub fn start(backend: Arc<dyn Backend>, workers: usize, max_waiting: usize) -> Self {
        let inner = Arc::new(Inner {
            jobs: Mutex::new(VecDeque::new()),
            ready: Condvar::new(),
            max_waiting,
            workers: workers.max(1),
            closed: AtomicBool::new(false),
            metrics: Metrics::default(),
        });
        for i in 0..inner.workers {
            let inner = inner.clone();
            let backend = backend.clone();
            let spawned = std::thread::Builder::new().name(format!("inkling-model-{i}")).spawn(move || worker(&inner, &*backend));
            if let Err(e) = spawned {
                tracing::error!("cannot start model worker {i}: {e}");
            }
        }
        Self { inner }
    }

    pub fn metrics(&self) -> &Metrics {
        &self.inner.metrics
    }

    /// Stops taking new requests; those already in line still run.
    pub fn close(&self) {
        self.inner.closed.store(true, Ordering::SeqCst);
    }

    /// Puts `work` in line. Its result arrives on the returned channel; dropping the receiver
    /// tells the job its client has gone.
    pub fn submit<T, F>(&self, work: F) -> Result<oneshot::Receiver<T>, ApiError>
    where
        T: Send + 'static,
        F: FnOnce(&dyn Backend, &Client<'_>) -> T + Send + 'static,
    {
        let m = &self.inner.metrics;
        if self.inner.closed.load(Ordering::SeqCst) {
            return Err(ApiError::ShuttingDown);
        }
        let (tx, rx) = oneshot::channel();
        let inner = self.inner.clone();
        let job: Work = Box::new(move |backend| {
            let cancelled = &inner.metrics.cancelled;
            if tx.is_closed() {
                cancelled.fetch_add(1, Ordering::Relaxed);
                return;
            }
            let gone = || tx.is_closed();
            let out = work(backend, &Client { gone: &gone });
            if tx.send(out).is_err() {
                cancelled.fetch_add(1, Ordering::Relaxed);
            }
        });
        let mut jobs = self.inner.jobs.lock().map_err(|_| ApiError::Internal("the request queue is poisoned".into()))?;
        if jobs.len() >= self.inner.max_waiting {
            m.rejected.fetch_add(1, Ordering::Relaxed);
            let avg = m.avg_job_ms.load(Ordering::Relaxed).max(1000);
            let retry_after = (avg * (jobs.len() as u64 + 1) / self.inner.workers as u64).div_ceil(1000).max(1);
            return Err(ApiError::Busy { queued: jobs.len(), retry_after });
        }
        jobs.push_back(job);
        m.requests.fetch_add(1, Ordering::Relaxed);
        m.waiting.store(jobs.len(), Ordering::Relaxed);
        drop(jobs);
        self.inner.ready.notify_one();
        Ok(rx)
    }
}

fn worker(inner: &Inner, backend: &dyn Backend) {
    let m = &inner.metrics;
    loop {
        let job = {
            let Ok(mut jobs) = inner.jobs.lock() else { return };
            loop {
                if let Some(j) = jobs.pop_front() {
                    m.waiting.store(jobs.len(), Ordering::Relaxed);
                    break j;
                }
                jobs = match inner.ready.wait(jobs) {
                    Ok(j) => j,
                    Err(_) => return,
                };
            }
        };
        m.running.fetch_add(1, Ordering::Relaxed);
        let t0 = Instant::now();
        // A panic in one request must not take the worker (and every later request) with it.
        let outcome = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| job(backend)));
        let ms = t0.elapsed().as_millis() as u64;
        if outcome.is_err() {
            tracing::error!("a generation panicked; its client gets an error and the worker goes on");
        }
        m.busy_ms.fetch_add(ms, Ordering::Relaxed);
        let avg = m.avg_job_ms.load(Ordering::Relaxed);
        m.avg_job_ms.store(if avg == 0 { ms } else { (avg * 7 + ms) / 8 }, Ordering::Relaxed);
        m.completed.fetch_add(1, Ordering::Relaxed);
        m.running.fetch_sub(1, Ordering::Relaxed);
    }
}
