//! The line for the model. Generation is blocking work that already uses every core, so
//! requests wait here, first come first served, and a fixed number of worker threads (one for
//! the local engine; several for a remote server that batches by itself) take them in turn.
//! A worker takes the generations at the head of the line together, up to the backend's
//! `max_batch`, and the engine decodes them as one batch (one read of the weights per token
//! for all of them).
//!
//! Invariants:
//! - The async runtime never runs model work: handlers only enqueue and await.
//! - A full line refuses at once (429 with an estimated wait), it never grows without bound.
//! - A request whose client has gone is skipped when its turn comes, and a running one is
//!   cancelled at its next token (the job's result channel is closed when the client leaves).

use crate::error::ApiError;
use inkling_engine::{Backend, EngineError, Event, GenerateRequest, Generation};
use std::collections::VecDeque;
use std::sync::atomic::{AtomicBool, AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Condvar, Mutex};
use std::time::Instant;
use tokio::sync::oneshot;

type Work = Box<dyn FnOnce(&dyn Backend) + Send>;
type Events = Box<dyn FnMut(Event<'_>) -> bool + Send>;

enum Job {
    /// Any work on the backend, done alone.
    Work(Work),
    /// One generation; those next to each other in the line decode together.
    Generate { request: GenerateRequest, on_event: Events, done: oneshot::Sender<Result<Generation, EngineError>> },
}

/// Counters for `/health` and `/metrics`.
#[derive(Default)]
pub struct Metrics {
    pub waiting: AtomicUsize,
    pub running: AtomicUsize,
    pub requests: AtomicU64,
    pub completed: AtomicU64,
    pub rejected: AtomicU64,
    pub cancelled: AtomicU64,
    /// Decode batches run, and the generations in them (their ratio is the mean batch size).
    pub batches: AtomicU64,
    pub batched_requests: AtomicU64,
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
    jobs: Mutex<VecDeque<Job>>,
    ready: Condvar,
    max_waiting: usize,
    workers: usize,
    /// 0: the backend's own limit.
    max_batch: usize,
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
    /// Starts `workers` threads serving `backend`; at most `max_waiting` requests wait; at most
    /// `max_batch` generations decode together (0: the backend's limit).
    pub fn start(backend: Arc<dyn Backend>, workers: usize, max_waiting: usize, max_batch: usize) -> Self {
        let inner = Arc::new(Inner {
            jobs: Mutex::new(VecDeque::new()),
            ready: Condvar::new(),
            max_waiting,
            workers: workers.max(1),
            max_batch,
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

    /// Puts `work` in line, to run alone. Its result arrives on the returned channel; dropping
    /// the receiver tells the job its client has gone.
    pub fn submit<T, F>(&self, work: F) -> Result<oneshot::Receiver<T>, ApiError>
    where
        T: Send + 'static,
        F: FnOnce(&dyn Backend, &Client<'_>) -> T + Send + 'static,
    {
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
        self.push(Job::Work(job))?;
        Ok(rx)
    }

    /// Puts a generation in line. `on_event` sees its text as it is made (returning false
    /// cancels it); the result arrives on the returned channel, and dropping the receiver
    /// cancels it too.
    pub fn generate<F>(&self, request: GenerateRequest, on_event: F) -> Result<oneshot::Receiver<Result<Generation, EngineError>>, ApiError>
    where
        F: FnMut(Event<'_>) -> bool + Send + 'static,
    {
        let (done, rx) = oneshot::channel();
        self.push(Job::Generate { request, on_event: Box::new(on_event), done })?;
        Ok(rx)
    }

    fn push(&self, job: Job) -> Result<(), ApiError> {
        let m = &self.inner.metrics;
        if self.inner.closed.load(Ordering::SeqCst) {
            return Err(ApiError::ShuttingDown);
        }
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
        Ok(())
    }
}

/// The next thing a worker does: one piece of work, or generations to decode together.
enum Turn {
    Work(Work),
    Batch(Vec<(GenerateRequest, Events, oneshot::Sender<Result<Generation, EngineError>>)>),
}

/// Waits for the head of the line and takes it, with the generations right behind a
/// generation (up to `max_batch`).
fn next_turn(inner: &Inner, max_batch: usize) -> Option<Turn> {
    let mut jobs = inner.jobs.lock().ok()?;
    loop {
        if let Some(first) = jobs.pop_front() {
            let turn = match first {
                Job::Work(w) => Turn::Work(w),
                Job::Generate { request, on_event, done } => {
                    let mut batch = vec![(request, on_event, done)];
                    while batch.len() < max_batch && matches!(jobs.front(), Some(Job::Generate { .. })) {
                        if let Some(Job::Generate { request, on_event, done }) = jobs.pop_front() {
                            batch.push((request, on_event, done));
                        }
                    }
                    Turn::Batch(batch)
                }
            };
            inner.metrics.waiting.store(jobs.len(), Ordering::Relaxed);
            return Some(turn);
        }
        jobs = inner.ready.wait(jobs).ok()?;
    }
}

fn run_batch(m: &Metrics, backend: &dyn Backend, batch: Vec<(GenerateRequest, Events, oneshot::Sender<Result<Generation, EngineError>>)>) -> usize {
    // Clients that left while waiting are skipped.
    let (live, gone): (Vec<_>, Vec<_>) = batch.into_iter().partition(|(_, _, done)| !done.is_closed());
    m.cancelled.fetch_add(gone.len() as u64, Ordering::Relaxed);
    if live.is_empty() {
        return 0;
    }
    m.batches.fetch_add(1, Ordering::Relaxed);
    m.batched_requests.fetch_add(live.len() as u64, Ordering::Relaxed);
    let mut requests = Vec::with_capacity(live.len());
    let mut sinks = Vec::with_capacity(live.len());
    for (r, e, d) in live {
        requests.push(r);
        sinks.push((e, d));
    }
    let results = backend.generate_batch(&requests, &mut |i, e| {
        let (on_event, done) = &mut sinks[i];
        on_event(e) && !done.is_closed()
    });
    let n = results.len();
    for (result, (_, done)) in results.into_iter().zip(sinks) {
        if let Ok(g) = &result {
            m.record(g);
        }
        if done.send(result).is_err() {
            m.cancelled.fetch_add(1, Ordering::Relaxed);
        }
    }
    n
}

fn worker(inner: &Inner, backend: &dyn Backend) {
    let m = &inner.metrics;
    let max_batch = match inner.max_batch {
        0 => backend.max_batch(),
        n => n.min(backend.max_batch()),
    };
    while let Some(turn) = next_turn(inner, max_batch.max(1)) {
        let size = match &turn {
            Turn::Work(_) => 1,
            Turn::Batch(b) => b.len(),
        };
        m.running.fetch_add(size, Ordering::Relaxed);
        let t0 = Instant::now();
        // A panic in one request must not take the worker (and every later request) with it.
        let outcome = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| match turn {
            Turn::Work(w) => {
                w(backend);
                1
            }
            Turn::Batch(b) => run_batch(m, backend, b),
        }));
        let ms = t0.elapsed().as_millis() as u64;
        let served = match outcome {
            Ok(n) => n as u64,
            Err(_) => {
                tracing::error!("a generation panicked; its clients get an error and the worker goes on");
                1
            }
        };
        m.busy_ms.fetch_add(ms, Ordering::Relaxed);
        if served > 0 {
            // The line moves `served` requests per `ms`: that is what a wait is estimated from.
            let per = ms / served;
            let avg = m.avg_job_ms.load(Ordering::Relaxed);
            m.avg_job_ms.store(if avg == 0 { per } else { (avg * 7 + per) / 8 }, Ordering::Relaxed);
        }
        m.completed.fetch_add(served, Ordering::Relaxed);
        m.running.fetch_sub(size, Ordering::Relaxed);
    }
}
