//! The runtime: configuration, the database connection (reconnected after a loss), the task
//! catalogue cache and the enqueue call.

use std::collections::HashMap;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex, RwLock};
use std::time::Duration;

use serde::de::DeserializeOwned;
use serde::Serialize;
use serde_json::{Map, Value};
use tokio::sync::broadcast;
use tokio_postgres::{AsyncMessage, Client, NoTls, Statement};

use crate::handle::TaskHandle;
use crate::task::TaskFunction;
use crate::types::{
    BrokerError, BrokerResult, TaskSendError, TaskSendErrorCode, TaskSendPayload, TaskSendResult,
};

/// The channel the database notifies on when tasks finish (payload: comma-separated ids).
pub const TASK_DONE_CHANNEL: &str = "horsies_task_done";

/// The default priority of a send (1 runs first, 100 last).
pub const DEFAULT_PRIORITY: u32 = 50;

const SEND_SQL: &str = "SELECT horsies_send($1::text, $2::text::jsonb, $3::text::jsonb)::text";

/// How many times `resend_on_transient_err` resends after the first failed attempt.
const TRANSIENT_RESENDS: u32 = 3;

/// Configuration of a [`Runtime`].
///
/// ```
/// let config = horsies::AppConfig {
///     resend_on_transient_err: true,
///     ..horsies::AppConfig::for_database_url("postgresql://app@localhost/app")
/// };
/// assert_eq!(config.poll_interval, std::time::Duration::from_secs(1));
/// ```
#[derive(Debug, Clone)]
pub struct AppConfig {
    /// The PostgreSQL URL (`postgresql://user:password@host:port/dbname`) or key=value string.
    pub database_url: String,
    /// Resend automatically (up to 3 times, exponential backoff from 100 ms) when a send fails
    /// with `EnqueueFailed`; the resends carry the identical payload (same task id and sha).
    pub resend_on_transient_err: bool,
    /// How long to wait for a connection to open (when the URL does not say).
    pub connect_timeout: Duration,
    /// How often `get()` re-reads the result while waiting, besides reacting to notifications
    /// (at most 1 s; larger values are capped).
    pub poll_interval: Duration,
    /// The `application_name` of the connection (when the URL does not say).
    pub application_name: String,
    /// Where the sends come from, stored as the task's `sent_by` (the `sender` option of
    /// `horsies_send`; it is not part of the `enqueue_sha`). `None` leaves it to the server
    /// (the session's `application_name`).
    pub sender: Option<String>,
}

impl AppConfig {
    /// The default configuration for a database URL.
    pub fn for_database_url(url: impl Into<String>) -> Self {
        AppConfig { database_url: url.into(), ..AppConfig::default() }
    }
}

impl Default for AppConfig {
    fn default() -> Self {
        AppConfig {
            database_url: String::new(),
            resend_on_transient_err: false,
            connect_timeout: Duration::from_secs(10),
            poll_interval: Duration::from_secs(1),
            application_name: "horsies-rust".to_string(),
            sender: Some("rust".to_string()),
        }
    }
}

/// A task's entry in the server's catalogue (`horsies_task_catalogue`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CatalogueEntry {
    /// The registered task name.
    pub task_name: String,
    /// The queue its tasks go to.
    pub queue_name: String,
    /// Its parameter names.
    pub parameters: Vec<String>,
    /// The parameters without a default.
    pub required_parameters: Vec<String>,
}

/// One open connection and the task forwarding its notifications.
pub(crate) struct Conn {
    pub(crate) client: Client,
    /// `Some(payload)` per `horsies_task_done` notification; `None` once the connection ended.
    notifications: broadcast::Sender<Option<Arc<str>>>,
    listening: AtomicBool,
    statements: Mutex<HashMap<&'static str, Statement>>,
}

impl Conn {
    /// A receiver of this connection's notifications.
    pub(crate) fn subscribe(&self) -> broadcast::Receiver<Option<Arc<str>>> {
        self.notifications.subscribe()
    }

    /// `LISTEN horsies_task_done` on this connection (once).
    pub(crate) async fn ensure_listening(&self) -> Result<(), tokio_postgres::Error> {
        if !self.listening.load(Ordering::Acquire) {
            self.client.batch_execute(&format!("LISTEN {TASK_DONE_CHANNEL}")).await?;
            self.listening.store(true, Ordering::Release);
        }
        Ok(())
    }

    /// A statement prepared once per connection.
    pub(crate) async fn statement(&self, sql: &'static str) -> Result<Statement, tokio_postgres::Error> {
        if let Some(statement) = self.statements.lock().unwrap().get(sql) {
            return Ok(statement.clone());
        }
        let statement = self.client.prepare(sql).await?;
        self.statements.lock().unwrap().insert(sql, statement.clone());
        Ok(statement)
    }
}

struct Inner {
    config: AppConfig,
    pg: tokio_postgres::Config,
    current: Mutex<Option<Arc<Conn>>>,
    connecting: tokio::sync::Mutex<()>,
    catalogue: Mutex<HashMap<String, CatalogueEntry>>,
}

/// A connection to the horsies database: sends tasks and reads their results.
///
/// Cheap to clone (all clones share one connection). A lost connection (a terminated backend,
/// a restarted server) is detected by the operation that meets it — a send fails with the
/// retryable `EnqueueFailed` — and the next operation opens a new connection.
#[derive(Clone)]
pub struct Runtime {
    inner: Arc<Inner>,
}

impl std::fmt::Debug for Runtime {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Runtime").field("resend_on_transient_err", &self.inner.config.resend_on_transient_err).finish()
    }
}

static GLOBAL: RwLock<Option<Runtime>> = RwLock::new(None);

/// Connects a runtime and installs it as the global one used by `my_task::send(...)`
/// (replacing any earlier one). Returns it too, for `my_task::handle(&rt)`.
pub async fn init(config: AppConfig) -> BrokerResult<Runtime> {
    let runtime = Runtime::connect(config).await?;
    *GLOBAL.write().unwrap_or_else(|e| e.into_inner()) = Some(runtime.clone());
    Ok(runtime)
}

/// The global runtime installed by [`init`], if any.
pub fn runtime() -> Option<Runtime> {
    GLOBAL.read().unwrap_or_else(|e| e.into_inner()).clone()
}

/// The global runtime, or `Err(SEND_SUPPRESSED)` if [`init`] was not called.
#[doc(hidden)]
pub fn global_for_send(task_name: &str) -> TaskSendResult<Runtime> {
    runtime().ok_or_else(|| {
        TaskSendError::new(
            TaskSendErrorCode::SendSuppressed,
            format!("{task_name}: send suppressed: horsies::init(config) has not been called"),
        )
    })
}

/// True if an error means the connection is unusable (so the next call should reconnect).
pub(crate) fn is_connection_error(client: &Client, error: &tokio_postgres::Error) -> bool {
    if client.is_closed() {
        return true;
    }
    match error.code() {
        None => error.as_db_error().is_none(),
        Some(state) => {
            let code = state.code();
            code.starts_with("08") || code.starts_with("57")
        }
    }
}

fn describe(error: &tokio_postgres::Error) -> String {
    match error.as_db_error() {
        Some(db) => db.message().to_string(),
        None => {
            let mut text = error.to_string();
            let mut source = std::error::Error::source(error);
            while let Some(cause) = source {
                text.push_str(": ");
                text.push_str(&cause.to_string());
                source = cause.source();
            }
            text
        }
    }
}

impl Runtime {
    /// Opens the connection and loads the task catalogue.
    pub async fn connect(config: AppConfig) -> BrokerResult<Runtime> {
        let mut pg: tokio_postgres::Config = config
            .database_url
            .parse()
            .map_err(|e| BrokerError::broker(format!("invalid database URL: {e}")))?;
        if pg.get_connect_timeout().is_none() {
            pg.connect_timeout(config.connect_timeout);
        }
        if pg.get_application_name().is_none() && !config.application_name.is_empty() {
            pg.application_name(&config.application_name);
        }
        let runtime = Runtime {
            inner: Arc::new(Inner {
                config,
                pg,
                current: Mutex::new(None),
                connecting: tokio::sync::Mutex::new(()),
                catalogue: Mutex::new(HashMap::new()),
            }),
        };
        runtime.refresh_catalogue().await?;
        Ok(runtime)
    }

    /// The configuration.
    pub fn config(&self) -> &AppConfig {
        &self.inner.config
    }

    /// The current connection, opening one if there is none.
    pub(crate) async fn conn(&self) -> Result<Arc<Conn>, tokio_postgres::Error> {
        if let Some(conn) = self.inner.current.lock().unwrap().clone() {
            return Ok(conn);
        }
        let _guard = self.inner.connecting.lock().await;
        if let Some(conn) = self.inner.current.lock().unwrap().clone() {
            return Ok(conn);
        }
        let conn = self.open().await?;
        *self.inner.current.lock().unwrap() = Some(conn.clone());
        Ok(conn)
    }

    async fn open(&self) -> Result<Arc<Conn>, tokio_postgres::Error> {
        let (client, mut connection) = self.inner.pg.connect(NoTls).await?;
        let (sender, _) = broadcast::channel(1024);
        let forward = sender.clone();
        tokio::spawn(async move {
            loop {
                let message = futures_util::future::poll_fn(|cx| connection.poll_message(cx)).await;
                match message {
                    Some(Ok(AsyncMessage::Notification(n))) if n.channel() == TASK_DONE_CHANNEL => {
                        let _ = forward.send(Some(Arc::from(n.payload())));
                    }
                    Some(Ok(_)) => {}
                    Some(Err(_)) | None => break,
                }
            }
            drop(connection); // the client now reports itself closed
            let _ = forward.send(None);
        });
        Ok(Arc::new(Conn {
            client,
            notifications: sender,
            listening: AtomicBool::new(false),
            statements: Mutex::new(HashMap::new()),
        }))
    }

    /// Forgets a connection (if it is still the current one) so the next call reconnects.
    pub(crate) fn discard(&self, conn: &Arc<Conn>) {
        let mut current = self.inner.current.lock().unwrap();
        if current.as_ref().map_or(false, |c| Arc::ptr_eq(c, conn)) {
            *current = None;
        }
    }

    /// Discards the connection if the error says it is unusable; returns whether it did.
    pub(crate) fn note_error(&self, conn: &Arc<Conn>, error: &tokio_postgres::Error) -> bool {
        let broken = is_connection_error(&conn.client, error);
        if broken {
            self.discard(conn);
        }
        broken
    }

    /// Runs a read, reconnecting once if the connection turns out to be lost.
    pub(crate) async fn read<R, F, Fut>(&self, op: F) -> BrokerResult<R>
    where
        F: Fn(Arc<Conn>) -> Fut,
        Fut: std::future::Future<Output = Result<R, tokio_postgres::Error>>,
    {
        let mut tries = 0;
        loop {
            tries += 1;
            let conn = self
                .conn()
                .await
                .map_err(|e| BrokerError::broker(format!("cannot connect: {}", describe(&e))))?;
            match op(conn.clone()).await {
                Ok(value) => return Ok(value),
                Err(error) => {
                    let broken = self.note_error(&conn, &error);
                    if !broken || tries >= 2 {
                        return Err(BrokerError::broker(describe(&error)));
                    }
                }
            }
        }
    }

    /// The server process id of the current connection (`pg_backend_pid()`).
    pub async fn backend_pid(&self) -> BrokerResult<i32> {
        self.read(|conn| async move {
            let row = conn.client.query_one("SELECT pg_backend_pid()", &[]).await?;
            row.try_get::<_, i32>(0)
        })
        .await
    }

    /// Reloads the task catalogue (`horsies_task_catalogue`).
    pub async fn refresh_catalogue(&self) -> BrokerResult<()> {
        let entries = self.read(|conn| async move { load_catalogue(&conn.client, None).await }).await?;
        let mut catalogue = self.inner.catalogue.lock().unwrap();
        catalogue.clear();
        for entry in entries {
            catalogue.insert(entry.task_name.clone(), entry);
        }
        Ok(())
    }

    /// The cached catalogue entry of a task, if known.
    pub fn catalogue_entry(&self, task_name: &str) -> Option<CatalogueEntry> {
        self.inner.catalogue.lock().unwrap().get(task_name).cloned()
    }

    /// The catalogue entry of a task: from the cache, else looked up in the database.
    /// `Ok(None)` if the task is not registered.
    pub(crate) async fn lookup(&self, task_name: &str) -> Result<Option<CatalogueEntry>, TaskSendError> {
        if let Some(entry) = self.catalogue_entry(task_name) {
            return Ok(Some(entry));
        }
        self.lookup_fresh(task_name).await
    }

    /// The catalogue entry of a task read from the database (updating the cache).
    pub(crate) async fn lookup_fresh(&self, task_name: &str) -> Result<Option<CatalogueEntry>, TaskSendError> {
        let name = task_name.to_string();
        let found = self
            .read(|conn| {
                let name = name.clone();
                async move { load_catalogue(&conn.client, Some(&name)).await }
            })
            .await
            .map_err(|e| {
                TaskSendError::new(
                    TaskSendErrorCode::EnqueueFailed,
                    format!("{task_name}: cannot read the task catalogue: {}", e.message),
                )
            })?;
        let entry = found.into_iter().next();
        let mut catalogue = self.inner.catalogue.lock().unwrap();
        match &entry {
            Some(e) => {
                catalogue.insert(task_name.to_string(), e.clone());
            }
            None => {
                catalogue.remove(task_name);
            }
        }
        Ok(entry)
    }

    /// A typed reference to a registered task, from the cached catalogue (loaded at connect).
    /// Err(VALIDATION_FAILED) if the task is not in the cached catalogue; [`Runtime::task`]
    /// also looks it up in the database.
    pub fn task_cached<A, T>(&self, task_name: &str) -> TaskSendResult<TaskFunction<A, T>>
    where
        A: Serialize,
        T: DeserializeOwned,
    {
        match self.catalogue_entry(task_name) {
            Some(entry) => Ok(TaskFunction::new(self.clone(), entry)),
            None => Err(unknown_task(task_name)),
        }
    }

    /// A typed reference to a registered task (looked up in the database if not cached).
    pub async fn task<A, T>(&self, task_name: &str) -> TaskSendResult<TaskFunction<A, T>>
    where
        A: Serialize,
        T: DeserializeOwned,
    {
        match self.lookup(task_name).await? {
            Some(entry) => Ok(TaskFunction::new(self.clone(), entry)),
            None => Err(unknown_task(task_name)),
        }
    }

    /// A handle on an existing task, from its id (e.g. one stored elsewhere).
    pub fn handle<T: DeserializeOwned>(&self, task_id: impl Into<String>) -> TaskHandle<T> {
        TaskHandle::from_id(self, task_id)
    }

    /// Enqueues a payload (with `resend_on_transient_err`'s resends); returns the task id.
    pub(crate) async fn enqueue(&self, payload: &TaskSendPayload) -> TaskSendResult<String> {
        let resends = if self.inner.config.resend_on_transient_err { TRANSIENT_RESENDS } else { 0 };
        let mut backoff = Duration::from_millis(100);
        let mut attempt = 0;
        loop {
            match self.enqueue_once(payload).await {
                Err(error) if error.code == TaskSendErrorCode::EnqueueFailed && attempt < resends => {
                    attempt += 1;
                    tokio::time::sleep(backoff).await;
                    backoff *= 2;
                }
                other => return other,
            }
        }
    }

    async fn enqueue_once(&self, payload: &TaskSendPayload) -> TaskSendResult<String> {
        let failed = |message: String| {
            TaskSendError::new(TaskSendErrorCode::EnqueueFailed, message).with_payload(payload.clone())
        };
        let conn = self
            .conn()
            .await
            .map_err(|e| failed(format!("{}: cannot connect: {}", payload.task_name, describe(&e))))?;
        let kwargs = crate::canonical::canonical_json(&payload.kwargs);
        let mut options = send_options(payload);
        if let (Some(sender), Value::Object(map)) = (&self.inner.config.sender, &mut options) {
            map.insert("sender".into(), Value::String(sender.clone()));
        }
        let options = crate::canonical::canonical_json(&options);
        let result = async {
            let statement = conn.statement(SEND_SQL).await?;
            conn.client.query_one(&statement, &[&payload.task_name, &kwargs, &options]).await
        }
        .await;
        match result {
            Ok(row) => match row.try_get::<_, Option<String>>(0) {
                Ok(Some(id)) => Ok(id),
                Ok(None) => Err(failed(format!("{}: horsies_send returned NULL", payload.task_name))),
                Err(e) => Err(failed(format!("{}: unexpected reply: {e}", payload.task_name))),
            },
            Err(error) => {
                let code = error.code().map(|c| c.code().to_string());
                let message = describe(&error);
                let kind = match code.as_deref() {
                    Some("HZ001") | Some("HZ002") | Some("HZ003") => TaskSendErrorCode::ValidationFailed,
                    Some("HZ004") => TaskSendErrorCode::PayloadMismatch,
                    _ => {
                        self.note_error(&conn, &error);
                        return Err(failed(format!("{}: {message}", payload.task_name)));
                    }
                };
                Err(TaskSendError::new(kind, message).with_payload(payload.clone()))
            }
        }
    }
}

fn unknown_task(task_name: &str) -> TaskSendError {
    TaskSendError::validation(format!(
        "unknown task name {task_name:?}: it is not in horsies_task_catalogue (is the Python app \
         that defines it deployed and migrated?)"
    ))
}

/// The `options` argument of `horsies_send` for a payload.
pub(crate) fn send_options(payload: &TaskSendPayload) -> Value {
    let mut options = Map::new();
    options.insert("task_id".into(), Value::String(payload.task_id.clone()));
    options.insert("enqueue_sha".into(), Value::String(payload.enqueue_sha.clone()));
    options.insert("priority".into(), Value::from(payload.priority));
    if let Some(delay) = payload.delay_ms {
        options.insert("delay_ms".into(), Value::from(delay));
    }
    if let Some(deadline) = &payload.good_until {
        options.insert(
            "good_until".into(),
            Value::String(crate::canonical::format_good_until(deadline)),
        );
    }
    Value::Object(options)
}

async fn load_catalogue(
    client: &Client,
    task_name: Option<&str>,
) -> Result<Vec<CatalogueEntry>, tokio_postgres::Error> {
    const COLUMNS: &str = "SELECT task_name::text, queue_name::text, \
         COALESCE(parameters, '[]'::jsonb)::text, COALESCE(required_parameters, '[]'::jsonb)::text \
         FROM horsies_task_catalogue";
    let rows = match task_name {
        Some(name) => client.query(&format!("{COLUMNS} WHERE task_name = $1::text"), &[&name]).await?,
        None => client.query(COLUMNS, &[]).await?,
    };
    let names = |text: String| -> Vec<String> { serde_json::from_str(&text).unwrap_or_default() };
    let mut entries = Vec::with_capacity(rows.len());
    for row in rows {
        entries.push(CatalogueEntry {
            task_name: row.try_get(0)?,
            queue_name: row.try_get(1)?,
            parameters: names(row.try_get(2)?),
            required_parameters: names(row.try_get(3)?),
        });
    }
    Ok(entries)
}
