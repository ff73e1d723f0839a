//! The history store: every result, state change and score change, in an
//! embedded SQLite database, so the page keeps its history across restarts.
//!
//! One thread owns the connection. Results arrive on a bounded channel that
//! the recorder never blocks on (a full channel drops the result and counts
//! it); the thread writes them in one transaction a second, keeps rollups
//! per hour and per day, and trims what is past retention. Reads are
//! closures run on the same thread, after the pending writes, so they see
//! everything recorded so far, and `:memory:` works the same as a file.
//!
//! Whatever happens to the disk (missing directory, read-only, full), the
//! store only reports itself degraded, retries, and drops what it cannot
//! write: probing and `/metrics` never wait for it.

pub mod query;
mod schema;
mod writer;

use std::path::PathBuf;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::mpsc::{SyncSender, TrySendError};
use std::sync::{Arc, Mutex, RwLock};
use std::thread::JoinHandle;
use std::time::Duration;

use rusqlite::Connection;

pub use schema::{BUCKETS, LATENCY_BOUNDS, quantile};

/// Queued messages beyond which results are dropped rather than queued.
const QUEUE: usize = 65_536;

#[derive(Clone, Debug, PartialEq, Eq)]
pub enum StorePath {
    File(PathBuf),
    /// `:memory:`: history lasts as long as the process.
    Memory,
}

impl std::fmt::Display for StorePath {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            StorePath::File(p) => write!(f, "{}", p.display()),
            StorePath::Memory => f.write_str(":memory:"),
        }
    }
}

#[derive(Clone, Debug)]
pub struct StoreSettings {
    pub path: StorePath,
    /// Changes, scores and daily rollups older than this are deleted.
    pub retention: Duration,
    /// Results kept per check or flow.
    pub keep_results: usize,
}

/// One run, as the history keeps it. Text is already redacted.
#[derive(Clone, Debug)]
pub struct RunRecord {
    pub monitor: Arc<str>,
    pub kind: &'static str,
    pub at_ms: i64,
    pub ok: bool,
    pub status: Option<u16>,
    pub duration_s: f64,
    pub outcome: &'static str,
    pub reason: Option<String>,
    /// Flows: steps passed and steps in all.
    pub steps: Option<(u32, u32)>,
}

#[derive(Clone, Debug)]
pub struct ChangeRecord {
    pub monitor: Arc<str>,
    pub kind: &'static str,
    pub at_ms: i64,
    pub from: &'static str,
    pub to: &'static str,
    pub reason: Option<String>,
}

/// A health score as it changed: `scope` is `overall` or `group:<name>`.
#[derive(Clone, Debug)]
pub struct ScoreRecord {
    pub at_ms: i64,
    pub scope: String,
    pub score: Option<f64>,
}

type ReadFn = Box<dyn FnOnce(Option<&Connection>) + Send>;

enum Msg {
    Run(RunRecord),
    Change(ChangeRecord),
    Score(ScoreRecord),
    Read(ReadFn),
    /// Trim now rather than at the next minute.
    Trim,
    Stop,
}

#[derive(Debug, thiserror::Error)]
pub enum ReadError {
    #[error("the history store is unavailable: {0}")]
    Unavailable(String),
    #[error("history query failed: {0}")]
    Query(#[from] rusqlite::Error),
}

#[derive(Default)]
struct Shared {
    /// `Some(reason)` while the store cannot write.
    degraded: RwLock<Option<String>>,
    dropped: AtomicU64,
    written: AtomicU64,
}

pub struct Store {
    tx: SyncSender<Msg>,
    shared: Arc<Shared>,
    thread: Mutex<Option<JoinHandle<()>>>,
    pub settings: StoreSettings,
}

impl Store {
    /// Starts the writer thread. Opening happens there; a failure makes the
    /// store degraded, not the daemon fail.
    pub fn start(settings: StoreSettings) -> Store {
        let (tx, rx) = std::sync::mpsc::sync_channel(QUEUE);
        let shared = Arc::new(Shared::default());
        let thread = {
            let (settings, shared) = (settings.clone(), shared.clone());
            std::thread::Builder::new()
                .name("lookout-store".into())
                .spawn(move || writer::run(settings, rx, shared))
        };
        let thread = match thread {
            Ok(t) => Some(t),
            Err(e) => {
                set_degraded(&shared, Some(format!("cannot start the store thread: {e}")));
                None
            }
        };
        Store {
            tx,
            shared,
            thread: Mutex::new(thread),
            settings,
        }
    }

    fn send(&self, msg: Msg) {
        match self.tx.try_send(msg) {
            Ok(()) => {}
            Err(TrySendError::Full(_)) | Err(TrySendError::Disconnected(_)) => {
                self.shared.dropped.fetch_add(1, Ordering::Relaxed);
            }
        }
    }

    pub fn run(&self, r: RunRecord) {
        self.send(Msg::Run(r));
    }

    pub fn change(&self, c: ChangeRecord) {
        self.send(Msg::Change(c));
    }

    pub fn score(&self, s: ScoreRecord) {
        self.send(Msg::Score(s));
    }

    /// `None` when healthy, else why not.
    pub fn degraded(&self) -> Option<String> {
        self.shared
            .degraded
            .read()
            .unwrap_or_else(|p| p.into_inner())
            .clone()
    }

    /// Records dropped because the queue was full or the disk failed.
    pub fn dropped(&self) -> u64 {
        self.shared.dropped.load(Ordering::Relaxed)
    }

    pub fn written(&self) -> u64 {
        self.shared.written.load(Ordering::Relaxed)
    }

    /// Runs `f` on the store's connection after everything queued before it
    /// was written.
    pub async fn read<T: Send + 'static>(
        &self,
        f: impl FnOnce(&Connection) -> rusqlite::Result<T> + Send + 'static,
    ) -> Result<T, ReadError> {
        let (tx, rx) = tokio::sync::oneshot::channel();
        let job: ReadFn = Box::new(move |conn| {
            let out = match conn {
                Some(c) => f(c).map_err(ReadError::from),
                None => Err(ReadError::Unavailable("no database is open".into())),
            };
            let _ = tx.send(out);
        });
        // Reads wait for a slot rather than being dropped.
        let sender = self.tx.clone();
        let queued = tokio::task::spawn_blocking(move || sender.send(Msg::Read(job))).await;
        if !matches!(queued, Ok(Ok(()))) {
            return Err(ReadError::Unavailable("the store has stopped".into()));
        }
        match tokio::time::timeout(Duration::from_secs(30), rx).await {
            Ok(Ok(out)) => out,
            Ok(Err(_)) => Err(ReadError::Unavailable("the store has stopped".into())),
            Err(_) => Err(ReadError::Unavailable(
                "the store did not answer within 30s".into(),
            )),
        }
    }

    /// Applies retention and the per-check result limit now (it also runs
    /// every minute by itself).
    pub fn trim_now(&self) {
        self.send(Msg::Trim);
    }

    /// Writes what is queued and stops the thread. Bounded: the thread
    /// finishes its current batch and the queue, then exits.
    pub fn shutdown(&self) {
        let _ = self.tx.send(Msg::Stop);
        let thread = self.thread.lock().unwrap_or_else(|p| p.into_inner()).take();
        if let Some(t) = thread
            && t.join().is_err()
        {
            tracing::error!("the store thread panicked");
        }
    }
}

impl Drop for Store {
    fn drop(&mut self) {
        self.shutdown();
    }
}

fn set_degraded(shared: &Shared, reason: Option<String>) {
    let mut d = shared.degraded.write().unwrap_or_else(|p| p.into_inner());
    match (&*d, &reason) {
        (None, Some(r)) => {
            tracing::error!(reason = %r, "the history store is degraded; probing goes on")
        }
        (Some(_), None) => tracing::info!("the history store is writing again"),
        _ => {}
    }
    *d = reason;
}
