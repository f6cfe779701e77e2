//! Error, result and record types shared by sending and result retrieval.

use std::fmt;

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use serde_json::Value;

/// Why a send failed (`TaskSendError::code`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "SCREAMING_SNAKE_CASE")]
pub enum TaskSendErrorCode {
    /// The send was refused before anything was enqueued because no runtime is ready
    /// (`horsies::init()` was not called for the `my_task::send(...)` style). Not retryable.
    SendSuppressed,
    /// The arguments or options are invalid, or the task name is unknown. Not retryable.
    ValidationFailed,
    /// The database could not be reached or failed during the enqueue. Retryable: the error
    /// carries the payload; `retry_send(&err)` replays it with the same task id.
    EnqueueFailed,
    /// A replayed payload no longer matches its `enqueue_sha` (it was altered), or the server
    /// already holds a different payload under that task id. Not retryable.
    PayloadMismatch,
}

impl TaskSendErrorCode {
    /// The code's wire name, e.g. `ENQUEUE_FAILED`.
    pub fn as_str(&self) -> &'static str {
        match self {
            TaskSendErrorCode::SendSuppressed => "SEND_SUPPRESSED",
            TaskSendErrorCode::ValidationFailed => "VALIDATION_FAILED",
            TaskSendErrorCode::EnqueueFailed => "ENQUEUE_FAILED",
            TaskSendErrorCode::PayloadMismatch => "PAYLOAD_MISMATCH",
        }
    }
}

impl fmt::Display for TaskSendErrorCode {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// Everything a send put on the wire, kept on an `EnqueueFailed` error so that
/// `retry_send(&err)` can replay exactly the same task (same id, same `enqueue_sha`).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct TaskSendPayload {
    /// The task id chosen by this client (a UUIDv7, lowercase hyphenated).
    pub task_id: String,
    /// The registered task name, e.g. `orders.process_order`.
    pub task_name: String,
    /// The task's queue, from the server's catalogue.
    pub queue_name: String,
    /// Priority 1..=100 (1 runs first).
    pub priority: u32,
    /// The keyword arguments (a JSON object).
    pub kwargs: Value,
    /// The delay of a scheduled send in milliseconds; `None` for an immediate send.
    pub delay_ms: Option<u64>,
    /// The deadline for the task to start (microsecond precision).
    pub good_until: Option<DateTime<Utc>>,
    /// Lowercase hex SHA-256 of the payload's canonical JSON (see [`crate::canonical`]).
    pub enqueue_sha: String,
}

impl TaskSendPayload {
    /// Recomputes the `enqueue_sha` of the payload's current fields.
    pub fn compute_sha(&self) -> String {
        crate::canonical::enqueue_sha(
            &self.task_id,
            &self.task_name,
            &self.queue_name,
            self.priority,
            &self.kwargs,
            self.delay_ms,
            self.good_until.as_ref(),
        )
    }

    /// True if the stored `enqueue_sha` still matches the payload's fields.
    pub fn sha_matches(&self) -> bool {
        self.compute_sha() == self.enqueue_sha
    }
}

/// A failed send.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct TaskSendError {
    /// The failure category.
    pub code: TaskSendErrorCode,
    /// A human-readable description (without the leading code).
    pub message: String,
    /// Whether the same payload may be sent again (`EnqueueFailed` only).
    pub retryable: bool,
    /// The task id of the attempted send, when one was chosen.
    pub task_id: Option<String>,
    /// The payload of the attempted send, for `retry_send(&err)`.
    pub payload: Option<TaskSendPayload>,
}

impl TaskSendError {
    /// A new error; `retryable` is true exactly for `EnqueueFailed`.
    pub fn new(code: TaskSendErrorCode, message: impl Into<String>) -> Self {
        let mut message: String = message.into();
        let prefix = format!("{}: ", code.as_str());
        if let Some(rest) = message.strip_prefix(&prefix) {
            message = rest.to_string();
        }
        TaskSendError {
            code,
            message,
            retryable: code == TaskSendErrorCode::EnqueueFailed,
            task_id: None,
            payload: None,
        }
    }

    /// The same error carrying a payload (and its task id).
    pub fn with_payload(mut self, payload: TaskSendPayload) -> Self {
        self.task_id = Some(payload.task_id.clone());
        self.payload = Some(payload);
        self
    }

    pub(crate) fn validation(message: impl Into<String>) -> Self {
        TaskSendError::new(TaskSendErrorCode::ValidationFailed, message)
    }
}

impl fmt::Display for TaskSendError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}: {}", self.code, self.message)
    }
}

impl std::error::Error for TaskSendError {}

/// The result of a send: a handle on the task, or why it was not sent.
pub type TaskSendResult<T> = Result<T, TaskSendError>;

/// Well-known `TaskError::error_code` values.
pub mod codes {
    /// `get()` timed out before the task finished (the task may still finish later).
    pub const WAIT_TIMEOUT: &str = "WAIT_TIMEOUT";
    /// No task with this id exists.
    pub const TASK_NOT_FOUND: &str = "TASK_NOT_FOUND";
    /// The task's code raised an exception no mapper handled.
    pub const UNHANDLED_EXCEPTION: &str = "UNHANDLED_EXCEPTION";
    /// The task was cancelled before it ran.
    pub const TASK_CANCELLED: &str = "TASK_CANCELLED";
    /// The task's `good_until` passed before it started.
    pub const TASK_EXPIRED: &str = "TASK_EXPIRED";
    /// The task ran past its timeout.
    pub const TASK_TIMEOUT: &str = "TASK_TIMEOUT";
    /// The worker running the task died.
    pub const WORKER_CRASHED: &str = "WORKER_CRASHED";
    /// The stored result does not deserialize into the declared result type.
    pub const RESULT_DESERIALIZATION_ERROR: &str = "RESULT_DESERIALIZATION_ERROR";
    /// The database could not be read.
    pub const BROKER_ERROR: &str = "BROKER_ERROR";
}

/// A task's error, or why its result could not be obtained.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct TaskError {
    /// The code, e.g. `OUT_OF_STOCK`, `UNHANDLED_EXCEPTION`, `WAIT_TIMEOUT` (see [`codes`]).
    pub error_code: String,
    /// A human-readable message, if any.
    #[serde(default)]
    pub message: Option<String>,
    /// Structured data attached to the error, if any.
    #[serde(default)]
    pub data: Option<Value>,
}

impl TaskError {
    /// A new error with a code and message.
    pub fn new(error_code: impl Into<String>, message: impl Into<String>) -> Self {
        TaskError { error_code: error_code.into(), message: Some(message.into()), data: None }
    }
}

impl fmt::Display for TaskError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match &self.message {
            Some(m) => write!(f, "{}: {}", self.error_code, m),
            None => f.write_str(&self.error_code),
        }
    }
}

impl std::error::Error for TaskError {}

/// A task's outcome: its typed value, or a [`TaskError`].
pub type TaskResult<T> = Result<T, TaskError>;

/// Why a broker read (`info()`) failed.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "SCREAMING_SNAKE_CASE")]
pub enum BrokerErrorCode {
    /// The database could not be reached or read.
    BrokerError,
    /// No such task.
    TaskNotFound,
    /// The task is in a state that does not allow the operation.
    InvalidState,
}

impl fmt::Display for BrokerErrorCode {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            BrokerErrorCode::BrokerError => "BROKER_ERROR",
            BrokerErrorCode::TaskNotFound => "TASK_NOT_FOUND",
            BrokerErrorCode::InvalidState => "INVALID_STATE",
        })
    }
}

/// A failed broker operation.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct BrokerError {
    /// The failure category.
    pub code: BrokerErrorCode,
    /// A human-readable description.
    pub message: String,
}

impl BrokerError {
    pub(crate) fn broker(message: impl Into<String>) -> Self {
        BrokerError { code: BrokerErrorCode::BrokerError, message: message.into() }
    }
}

impl fmt::Display for BrokerError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}: {}", self.code, self.message)
    }
}

impl std::error::Error for BrokerError {}

/// The result of a broker operation.
pub type BrokerResult<T> = Result<T, BrokerError>;

/// A task's lifecycle state.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "SCREAMING_SNAKE_CASE")]
pub enum TaskStatus {
    /// Waiting to be claimed (possibly scheduled or waiting for a retry).
    Pending,
    /// Claimed by a worker, not yet started.
    Claimed,
    /// Running.
    Running,
    /// Finished with a value.
    Completed,
    /// Finished with an error.
    Failed,
    /// Cancelled before it ran.
    Cancelled,
    /// Its `good_until` passed before it started.
    Expired,
}

impl TaskStatus {
    /// Parses a stored status (`PENDING`, ...).
    pub fn parse(text: &str) -> Option<TaskStatus> {
        Some(match text {
            "PENDING" => TaskStatus::Pending,
            "CLAIMED" => TaskStatus::Claimed,
            "RUNNING" => TaskStatus::Running,
            "COMPLETED" => TaskStatus::Completed,
            "FAILED" => TaskStatus::Failed,
            "CANCELLED" => TaskStatus::Cancelled,
            "EXPIRED" => TaskStatus::Expired,
            _ => return None,
        })
    }

    /// The stored name, e.g. `COMPLETED`.
    pub fn as_str(&self) -> &'static str {
        match self {
            TaskStatus::Pending => "PENDING",
            TaskStatus::Claimed => "CLAIMED",
            TaskStatus::Running => "RUNNING",
            TaskStatus::Completed => "COMPLETED",
            TaskStatus::Failed => "FAILED",
            TaskStatus::Cancelled => "CANCELLED",
            TaskStatus::Expired => "EXPIRED",
        }
    }

    /// True for the states a task never leaves (COMPLETED, FAILED, CANCELLED, EXPIRED).
    pub fn is_terminal(&self) -> bool {
        matches!(
            self,
            TaskStatus::Completed | TaskStatus::Failed | TaskStatus::Cancelled | TaskStatus::Expired
        )
    }
}

impl fmt::Display for TaskStatus {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// One execution of a task (a row of `horsies_task_attempt`).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct TaskAttempt {
    /// The attempt number (1 for the first run).
    pub attempt: i32,
    /// How the attempt ended, e.g. `COMPLETED`, `FAILED`.
    pub outcome: String,
    /// Whether a retry was scheduled after it.
    pub will_retry: bool,
    /// The attempt's error code, if it failed.
    pub error_code: Option<String>,
    /// The attempt's error message, if any.
    pub error_message: Option<String>,
    /// When it started.
    pub started_at: Option<DateTime<Utc>>,
    /// When it ended.
    pub finished_at: Option<DateTime<Utc>>,
    /// The worker that ran it.
    pub worker_id: Option<String>,
    /// The OS process that ran it.
    pub pid: Option<i32>,
}

/// A task's metadata (a row of `horsies_task`), returned by `TaskHandle::info()`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct TaskInfo {
    /// The task id.
    pub task_id: String,
    /// The registered task name.
    pub task_name: String,
    /// The current state.
    pub status: TaskStatus,
    /// The task's queue.
    pub queue_name: String,
    /// Priority 1..=100 (1 runs first).
    pub priority: i32,
    /// How many retries were made.
    pub retry_count: i32,
    /// How many retries are allowed.
    pub max_retries: i32,
    /// When it was sent.
    pub sent_at: DateTime<Utc>,
    /// When it became (or becomes) claimable.
    pub enqueued_at: DateTime<Utc>,
    /// When its next retry is due.
    pub next_retry_at: Option<DateTime<Utc>>,
    /// Its deadline to start.
    pub good_until: Option<DateTime<Utc>>,
    /// When a worker claimed it.
    pub claimed_at: Option<DateTime<Utc>>,
    /// When it started.
    pub started_at: Option<DateTime<Utc>>,
    /// When it finished.
    pub finished_at: Option<DateTime<Utc>>,
    /// The worker that claimed it.
    pub worker_id: Option<String>,
    /// The error code of a failed task.
    pub error_code: Option<String>,
    /// The outcome (untyped), when asked for and the task is finished.
    pub result: Option<TaskResult<Value>>,
    /// Why the task failed (a traceback or description), when asked for.
    pub failed_reason: Option<String>,
    /// Its attempts, newest first, when asked for.
    pub attempts: Option<Vec<TaskAttempt>>,
}
