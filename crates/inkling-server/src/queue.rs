//! The line for the model. Generation is blocking work that already uses every core, so
//! requests wait here, first come first served, and a fixed number of worker threads (one for
//! the local engine; several for a remote server that batches by itself) take them in turn.
//! A worker takes the generations at the head of the line together, up to the backend's
//! `max_batch`, and the engine decodes them as one batch (one read of the weights per token
//! for all of them). A job may name its own model (a project's feedback adapter, merged into a
//! second engine); a batch holds jobs for one model only.
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

type Events = Box<dyn FnMut(Event<'_>) -> bool + Send>;
type Done = oneshot::Sender<Result<Generation, EngineError>>;

/// One generation waiting for the model.
struct Job {
    /// `None`: the served model.
    model: Option<Arc<dyn Backend>>,
    request: GenerateRequest,
    on_event: Events,
    done: Done,
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
    /// Tokens guessed ahead by speculative decoding, and those the model kept.
    pub draft_tokens: AtomicU64,
    pub draft_accepted: AtomicU64,
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
        self.draft_tokens.fetch_add(g.timings.draft_tokens as u64, Ordering::Relaxed);
        self.draft_accepted.fetch_add(g.timings.draft_accepted as u64, Ordering::Relaxed);
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

impl Queue {
    /// Starts `workers` threads serving `backend`; at most `max_waiting` requests wait; at most
    /// `max_batch` generations decode together (0: the backend's limit).
    pub fn start(backend: Arc<dyn Backend>, workers: usize, max_waiting: usize, max_batch: usize) -> Self {
        let inner =
            Arc::new(Inner { jobs: Mutex::new(VecDeque::new()), ready: Condvar::new(), max_waiting, workers: workers.max(1), max_batch, closed: AtomicBool::new(false), metrics: Metrics::default() });
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

    /// Puts a generation in line. `on_event` sees its text as it is made (returning false
    /// cancels it); the result arrives on the returned channel, and dropping the receiver
    /// cancels it too.
    pub fn generate<F>(&self, request: GenerateRequest, on_event: F) -> Result<oneshot::Receiver<Result<Generation, EngineError>>, ApiError>
    where
        F: FnMut(Event<'_>) -> bool + Send + 'static,
    {
        self.generate_on(None, request, on_event)
    }

    /// As [`Queue::generate`], on `model` instead of the served model when it is given (the
    /// same model's tokenizer, with an adapter merged in).
    pub fn generate_on<F>(&self, model: Option<Arc<dyn Backend>>, request: GenerateRequest, on_event: F) -> Result<oneshot::Receiver<Result<Generation, EngineError>>, ApiError>
    where
        F: FnMut(Event<'_>) -> bool + Send + 'static,
    {
        let (done, rx) = oneshot::channel();
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
        jobs.push_back(Job { model, request, on_event: Box::new(on_event), done });
        m.requests.fetch_add(1, Ordering::Relaxed);
        m.waiting.store(jobs.len(), Ordering::Relaxed);
        drop(jobs);
        self.inner.ready.notify_one();
        Ok(rx)
    }
}

/// Waits for the head of the line and takes it with the generations right behind it for the
/// same model, up to `max_batch`.
fn next_batch(inner: &Inner, max_batch: usize) -> Option<Vec<Job>> {
    let mut jobs = inner.jobs.lock().ok()?;
    while jobs.is_empty() {
        jobs = inner.ready.wait(jobs).ok()?;
    }
    let same = |a: &Option<Arc<dyn Backend>>, b: &Option<Arc<dyn Backend>>| match (a, b) {
        (None, None) => true,
        (Some(a), Some(b)) => Arc::ptr_eq(a, b),
        _ => false,
    };
    let head = jobs.front().map(|j| j.model.clone())?;
    let take = jobs.iter().take(max_batch).take_while(|j| same(&j.model, &head)).count();
    let batch: Vec<Job> = jobs.drain(..take).collect();
    inner.metrics.waiting.store(jobs.len(), Ordering::Relaxed);
    Some(batch)
}

fn run_batch(m: &Metrics, served: &dyn Backend, batch: Vec<Job>) -> usize {
    // Clients that left while waiting are skipped.
    let (live, gone): (Vec<_>, Vec<_>) = batch.into_iter().partition(|j| !j.done.is_closed());
    m.cancelled.fetch_add(gone.len() as u64, Ordering::Relaxed);
    let Some(first) = live.first() else { return 0 };
    let own = first.model.clone();
    let backend: &dyn Backend = own.as_deref().unwrap_or(served);
    m.batches.fetch_add(1, Ordering::Relaxed);
    m.batched_requests.fetch_add(live.len() as u64, Ordering::Relaxed);
    let mut requests = Vec::with_capacity(live.len());
    let mut sinks = Vec::with_capacity(live.len());
    for j in live {
        requests.push(j.request);
        sinks.push((j.on_event, j.done));
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
    while let Some(batch) = next_batch(inner, max_batch.max(1)) {
        let size = batch.len();
        m.running.fetch_add(size, Ordering::Relaxed);
        let t0 = Instant::now();
        // A panic in one request must not take the worker (and every later request) with it;
        // its clients see their channels close and get an error.
        let served = match std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| run_batch(m, backend, batch))) {
            Ok(n) => n as u64,
            Err(_) => {
                tracing::error!("a generation panicked; its clients get an error and the worker goes on");
                size as u64
            }
        };
        let ms = t0.elapsed().as_millis() as u64;
        m.busy_ms.fetch_add(ms, Ordering::Relaxed);
        // The line moves `served` requests per `ms`: that is what a wait is estimated from.
        if let Some(per) = ms.checked_div(served) {
            let avg = m.avg_job_ms.load(Ordering::Relaxed);
            m.avg_job_ms.store(if avg == 0 { per } else { (avg * 7 + per) / 8 }, Ordering::Relaxed);
        }
        m.completed.fetch_add(served, Ordering::Relaxed);
        m.running.fetch_sub(size, Ordering::Relaxed);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use inkling_engine::testing::TinyModel;
    use inkling_engine::{Engine, EngineConfig, Prompt};

    fn job(model: Option<Arc<dyn Backend>>) -> Job {
        let (done, _) = oneshot::channel();
        Job { model, request: GenerateRequest::new(Prompt::Text("the".into())), on_event: Box::new(|_| true), done }
    }

    #[test]
    fn a_batch_holds_jobs_for_one_model_in_line_order() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("tiny.gguf");
        TinyModel::default().write(&path).unwrap();
        let adapted: Arc<dyn Backend> = Arc::new(Engine::load(&path, &EngineConfig::default()).unwrap());
        let other: Arc<dyn Backend> = Arc::new(Engine::load(&path, &EngineConfig::default()).unwrap());
        let inner = Inner { jobs: Mutex::new(VecDeque::new()), ready: Condvar::new(), max_waiting: 16, workers: 1, max_batch: 0, closed: AtomicBool::new(false), metrics: Metrics::default() };
        let line = [None, None, Some(adapted.clone()), Some(adapted.clone()), Some(other.clone()), None, None, None];
        inner.jobs.lock().unwrap().extend(line.iter().cloned().map(job));
        let mut batches = Vec::new();
        while !inner.jobs.lock().unwrap().is_empty() {
            let batch = next_batch(&inner, 2).unwrap();
            let named = |m: &Option<Arc<dyn Backend>>| match m {
                None => "served",
                Some(m) if Arc::ptr_eq(m, &adapted) => "adapted",
                Some(_) => "other",
            };
            batches.push(batch.iter().map(|j| named(&j.model)).collect::<Vec<_>>());
        }
        assert_eq!(batches, [vec!["served", "served"], vec!["adapted", "adapted"], vec!["other"], vec!["served", "served"], vec!["served"]]);
    }
}
