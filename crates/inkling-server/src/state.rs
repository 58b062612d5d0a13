//! What every handler shares: the model behind its queue, the toolbox, the project database,
//! and the projects' feedback adapters.

use crate::error::{ApiError, ApiResult};
use crate::learning::{FeedbackTrainer, Learning};
use crate::queue::Queue;
use inkling_craft::Toolbox;
use inkling_engine::Backend;
use inkling_store::Store;
use std::path::PathBuf;
use std::sync::{Arc, Mutex};

/// How the server was started.
#[derive(Clone, Debug)]
pub struct ServerConfig {
    /// Required as `Authorization: Bearer KEY` on every API request when set.
    pub api_key: Option<String>,
    /// Largest request body accepted (413 above it).
    pub max_body_bytes: usize,
    /// Requests that may wait for the model before new ones get 429.
    pub max_queue: usize,
    /// Requests the model serves at once (1 for the local engine, which uses every core).
    pub workers: usize,
    /// Most generations a worker decodes together (0: as many as the backend takes).
    pub max_batch: usize,
    /// Origins allowed to call the API from other pages (CORS); empty: none.
    pub cors_origins: Vec<String>,
    /// The project database.
    pub db: PathBuf,
    /// The id `/v1/models` reports.
    pub model_id: String,
    /// The config file's banned phrases, under each project's and request's on the writing
    /// API (`/v1` bans only what a request names).
    pub bans: inkling_api::BanList,
    /// Serve the editor's files from this folder (read on every request) instead of the
    /// copy compiled in.
    pub web_dir: Option<PathBuf>,
}

impl Default for ServerConfig {
    fn default() -> Self {
        Self {
            api_key: None,
            max_body_bytes: 16 << 20,
            max_queue: 64,
            workers: 1,
            max_batch: 0,
            cors_origins: Vec::new(),
            db: PathBuf::from("inkling.db"),
            model_id: "default".into(),
            bans: inkling_api::BanList::default(),
            web_dir: None,
        }
    }
}

#[derive(Clone)]
pub struct AppState {
    pub backend: Arc<dyn Backend>,
    pub toolbox: Arc<Toolbox>,
    pub queue: Queue,
    store: Arc<Mutex<Store>>,
    pub config: Arc<ServerConfig>,
    pub started: std::time::Instant,
    /// Feedback trainings and the adapters they made, by project.
    pub learning: Arc<Learning>,
    /// Parsed voice profiles, by project.
    pub voices: Arc<crate::writing::VoiceCache>,
}

impl AppState {
    /// Opens the database and starts the model's workers.
    pub fn new(backend: Arc<dyn Backend>, toolbox: Toolbox, config: ServerConfig) -> Result<Self, inkling_store::StoreError> {
        let store = Store::open(&config.db)?;
        let queue = Queue::start(backend.clone(), config.workers, config.max_queue, config.max_batch);
        Ok(Self {
            backend,
            toolbox: Arc::new(toolbox),
            queue,
            store: Arc::new(Mutex::new(store)),
            config: Arc::new(config),
            started: std::time::Instant::now(),
            learning: Arc::new(Learning::new(None)),
            voices: Arc::default(),
        })
    }

    /// Lets the editor train feedback adapters with `trainer` (a local model's; a remote
    /// backend has none) and use them for their projects.
    pub fn with_trainer(mut self, trainer: Arc<dyn FeedbackTrainer>) -> Self {
        self.learning = Arc::new(Learning::new(Some(trainer)));
        self
    }

    /// Runs `f` on the database off the async runtime (SQLite calls block).
    pub async fn store<T, F>(&self, f: F) -> ApiResult<T>
    where
        T: Send + 'static,
        F: FnOnce(&mut Store) -> ApiResult<T> + Send + 'static,
    {
        let store = self.store.clone();
        tokio::task::spawn_blocking(move || {
            let mut guard = store.lock().map_err(|_| ApiError::Internal("the project database lock is poisoned".into()))?;
            f(&mut guard)
        })
        .await
        .map_err(|e| ApiError::Internal(format!("a database task failed: {e}")))?
    }

    /// Whether `name` names the served model (clients send what `/v1/models` listed; a
    /// few send nothing or "default").
    pub fn serves(&self, name: &str) -> bool {
        let info = self.backend.info();
        let stem = info.file.file_stem().and_then(|s| s.to_str()).unwrap_or_default();
        name.is_empty() || name == "default" || name == self.config.model_id || name == info.name || name == stem
    }
}
