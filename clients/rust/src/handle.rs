//! Task handles: waiting for a task's typed result and reading its metadata.

use std::marker::PhantomData;
use std::sync::{Arc, OnceLock};
use std::time::Duration;

use chrono::{DateTime, Utc};
use serde::de::DeserializeOwned;
use serde_json::Value;
use tokio::sync::broadcast::error::RecvError;
use tokio::time::Instant;

use crate::runtime::{Conn, Runtime};
use crate::types::{
    codes, BrokerResult, TaskAttempt, TaskError, TaskInfo, TaskResult, TaskStatus,
};

const RESULT_SQL: &str = "SELECT horsies_result($1::text::uuid)::text";

const INFO_SQL: &str = "SELECT id::text, task_name::text, status::text, queue_name::text, \
     priority::int4, retry_count::int4, max_retries::int4, sent_at, enqueued_at, next_retry_at, \
     good_until, claimed_at, started_at, finished_at, claimed_by::text, error_code::text, \
     CASE WHEN $2::bool THEN failed_reason::text END \
     FROM horsies_task WHERE id = $1::text::uuid";

const ATTEMPTS_SQL: &str = "SELECT attempt::int4, outcome::text, will_retry, error_code::text, \
     error_message::text, started_at, finished_at, worker_id::text, pid::int4 \
     FROM horsies_task_attempt WHERE task_id = $1::text::uuid ORDER BY attempt DESC";

/// A handle on a sent task: its id, its result (waited for), its metadata.
pub struct TaskHandle<T> {
    runtime: Runtime,
    task_id: String,
    valid_id: bool,
    finished: OnceLock<Value>,
    _types: PhantomData<fn() -> T>,
}

impl<T> Clone for TaskHandle<T> {
    fn clone(&self) -> Self {
        let finished = OnceLock::new();
        if let Some(value) = self.finished.get() {
            let _ = finished.set(value.clone());
        }
        TaskHandle {
            runtime: self.runtime.clone(),
            task_id: self.task_id.clone(),
            valid_id: self.valid_id,
            finished,
            _types: PhantomData,
        }
    }
}

impl<T> std::fmt::Debug for TaskHandle<T> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("TaskHandle").field("task_id", &self.task_id).finish()
    }
}

/// What `horsies_result` said about a task.
enum Reading {
    NotFound,
    Unfinished,
    Finished(Value),
}

fn parse_reading(text: Option<String>) -> Result<Reading, String> {
    let text = match text {
        None => return Ok(Reading::NotFound),
        Some(text) => text,
    };
    let value: Value = serde_json::from_str(&text).map_err(|e| format!("horsies_result: {e}"))?;
    let status = value.get("status").and_then(Value::as_str).unwrap_or("");
    match TaskStatus::parse(status) {
        Some(status) if status.is_terminal() => Ok(Reading::Finished(value)),
        Some(_) => Ok(Reading::Unfinished),
        None if value.get("ok").is_some() || value.get("err").is_some() => Ok(Reading::Finished(value)),
        None => Err(format!("horsies_result: unknown status {status:?}")),
    }
}

/// The typed outcome of a finished task's `horsies_result` object.
pub(crate) fn decode<T: DeserializeOwned>(value: &Value) -> TaskResult<T> {
    if value.get("status").and_then(Value::as_str) == Some("COMPLETED") {
        let ok = value.get("ok").cloned().unwrap_or(Value::Null);
        return serde_json::from_value::<T>(ok.clone()).map_err(|e| TaskError {
            error_code: codes::RESULT_DESERIALIZATION_ERROR.to_string(),
            message: Some(format!(
                "the result does not deserialize into {}: {e}",
                std::any::type_name::<T>()
            )),
            data: Some(ok),
        });
    }
    let status = value.get("status").and_then(Value::as_str).unwrap_or("FAILED");
    let problem = match value.get("err") {
        Some(err) => match serde_json::from_value::<TaskError>(err.clone()) {
            Ok(task_error) => return Err(task_error),
            Err(e) => e.to_string(),
        },
        None => format!("no \"err\" in a {status} result"),
    };
    Err(TaskError {
        error_code: codes::RESULT_DESERIALIZATION_ERROR.to_string(),
        message: Some(format!("the task's error cannot be read: {problem}")),
        data: Some(value.clone()),
    })
}

fn broker_error(message: impl Into<String>) -> TaskError {
    TaskError::new(codes::BROKER_ERROR, message)
}

impl<T: DeserializeOwned> TaskHandle<T> {
    /// A handle on an existing task (e.g. an id stored elsewhere).
    pub fn from_id(runtime: &Runtime, task_id: impl Into<String>) -> Self {
        let raw: String = task_id.into();
        let (task_id, valid_id) = match uuid::Uuid::parse_str(raw.trim()) {
            Ok(id) => (id.hyphenated().to_string(), true),
            Err(_) => (raw, false),
        };
        TaskHandle {
            runtime: runtime.clone(),
            task_id,
            valid_id,
            finished: OnceLock::new(),
            _types: PhantomData,
        }
    }

    /// The task id (lowercase hyphenated UUID).
    pub fn task_id(&self) -> &str {
        &self.task_id
    }

    /// Waits for the task to finish and returns its typed result.
    ///
    /// `timeout`: `Some(d)` waits at most `d` (then `Err(WAIT_TIMEOUT)`; the task may still
    /// finish later), `None` waits as long as it takes. Waiting reacts to the database's
    /// `horsies_task_done` notifications and re-reads at least every second besides.
    /// Errors: the task's own error (its `error_code`, e.g. `UNHANDLED_EXCEPTION`,
    /// `TASK_CANCELLED`, `TASK_EXPIRED`), `TASK_NOT_FOUND`, `RESULT_DESERIALIZATION_ERROR`
    /// (the value does not fit `T`), `BROKER_ERROR` (the database cannot be read, even after
    /// reconnecting once). A finished result is cached on the handle.
    pub async fn get(&self, timeout: Option<Duration>) -> TaskResult<T> {
        if let Some(value) = self.finished.get() {
            return decode(value);
        }
        if !self.valid_id {
            return Err(TaskError::new(
                codes::TASK_NOT_FOUND,
                format!("{:?} is not a task id (a UUID)", self.task_id),
            ));
        }
        let deadline = timeout.map(|t| Instant::now() + t);
        let poll = self.runtime.config().poll_interval.min(Duration::from_secs(1)).max(Duration::from_millis(10));
        let mut reconnected = false;
        'connection: loop {
            let conn = match self.runtime.conn().await {
                Ok(conn) => conn,
                Err(e) => return Err(broker_error(format!("cannot connect: {e}"))),
            };
            // Subscribe before reading, so a notification sent in between is not missed.
            let mut notifications = conn.subscribe();
            loop {
                match self.read_once(&conn).await {
                    Ok(Reading::Finished(value)) => {
                        let _ = self.finished.set(value.clone());
                        return decode(&value);
                    }
                    Ok(Reading::NotFound) => {
                        return Err(TaskError::new(
                            codes::TASK_NOT_FOUND,
                            format!("no task with id {}", self.task_id),
                        ))
                    }
                    Ok(Reading::Unfinished) => reconnected = false,
                    Err(ReadError::Broken(message)) => {
                        if reconnected {
                            return Err(broker_error(message));
                        }
                        reconnected = true;
                        continue 'connection;
                    }
                    Err(ReadError::Fatal(message)) => return Err(broker_error(message)),
                }
                // Wait for a notification naming this task, the poll interval, or the deadline.
                let now = Instant::now();
                if deadline.map_or(false, |d| now >= d) {
                    return Err(TaskError::new(
                        codes::WAIT_TIMEOUT,
                        format!(
                            "task {} did not finish within {} ms",
                            self.task_id,
                            timeout.unwrap_or_default().as_millis()
                        ),
                    ));
                }
                let wake = deadline.map_or(now + poll, |d| d.min(now + poll));
                loop {
                    tokio::select! {
                        _ = tokio::time::sleep_until(wake) => break,
                        message = notifications.recv() => match message {
                            Ok(Some(payload)) => {
                                if payload.split(',').any(|id| id.trim().eq_ignore_ascii_case(&self.task_id)) {
                                    break;
                                }
                            }
                            Err(RecvError::Lagged(_)) => break,
                            Ok(None) | Err(RecvError::Closed) => {
                                // The connection ended: reconnect and re-read.
                                self.runtime.discard(&conn);
                                continue 'connection;
                            }
                        }
                    }
                }
            }
        }
    }

    async fn read_once(&self, conn: &Arc<Conn>) -> Result<Reading, ReadError> {
        let result = async {
            conn.ensure_listening().await?;
            let statement = conn.statement(RESULT_SQL).await?;
            let row = conn.client.query_one(&statement, &[&self.task_id]).await?;
            row.try_get::<_, Option<String>>(0)
        }
        .await;
        match result {
            Ok(text) => parse_reading(text).map_err(ReadError::Fatal),
            Err(error) => {
                let message = error.to_string();
                let detail = error.as_db_error().map(|d| d.message().to_string()).unwrap_or(message);
                if self.runtime.note_error(conn, &error) {
                    Err(ReadError::Broken(detail))
                } else {
                    Err(ReadError::Fatal(detail))
                }
            }
        }
    }

    /// The task's metadata, or `Ok(None)` if there is no such task.
    ///
    /// `include_result` adds the (untyped) outcome of a finished task, `include_failed_reason`
    /// the stored failure description, `include_attempts` its attempts, newest first.
    pub async fn info(
        &self,
        include_result: bool,
        include_failed_reason: bool,
        include_attempts: bool,
    ) -> BrokerResult<Option<TaskInfo>> {
        if !self.valid_id {
            return Ok(None);
        }
        let id = self.task_id.clone();
        self.runtime
            .read(|conn| {
                let id = id.clone();
                async move {
                    read_info(&conn, &id, include_result, include_failed_reason, include_attempts).await
                }
            })
            .await
    }
}

enum ReadError {
    /// The connection is lost (reconnect and try again).
    Broken(String),
    /// The database answered with an error.
    Fatal(String),
}

async fn read_info(
    conn: &Conn,
    id: &String,
    include_result: bool,
    include_failed_reason: bool,
    include_attempts: bool,
) -> Result<Option<TaskInfo>, tokio_postgres::Error> {
    let statement = conn.statement(INFO_SQL).await?;
    let row = match conn.client.query_opt(&statement, &[id, &include_failed_reason]).await? {
        Some(row) => row,
        None => return Ok(None),
    };
    let status_text: String = row.try_get(2)?;
    let status = TaskStatus::parse(&status_text).unwrap_or(TaskStatus::Pending);
    let mut info = TaskInfo {
        task_id: row.try_get(0)?,
        task_name: row.try_get(1)?,
        status,
        queue_name: row.try_get(3)?,
        priority: row.try_get(4)?,
        retry_count: row.try_get(5)?,
        max_retries: row.try_get(6)?,
        sent_at: row.try_get::<_, DateTime<Utc>>(7)?,
        enqueued_at: row.try_get::<_, DateTime<Utc>>(8)?,
        next_retry_at: row.try_get(9)?,
        good_until: row.try_get(10)?,
        claimed_at: row.try_get(11)?,
        started_at: row.try_get(12)?,
        finished_at: row.try_get(13)?,
        worker_id: row.try_get(14)?,
        error_code: row.try_get(15)?,
        result: None,
        failed_reason: row.try_get(16)?,
        attempts: None,
    };
    if include_result && status.is_terminal() {
        let statement = conn.statement(RESULT_SQL).await?;
        let row = conn.client.query_one(&statement, &[id]).await?;
        let text: Option<String> = row.try_get(0)?;
        if let Ok(Reading::Finished(value)) = parse_reading(text) {
            info.result = Some(decode::<Value>(&value));
        }
    }
    if include_attempts {
        let statement = conn.statement(ATTEMPTS_SQL).await?;
        let rows = conn.client.query(&statement, &[id]).await?;
        let mut attempts = Vec::with_capacity(rows.len());
        for row in rows {
            attempts.push(TaskAttempt {
                attempt: row.try_get(0)?,
                outcome: row.try_get(1)?,
                will_retry: row.try_get(2)?,
                error_code: row.try_get(3)?,
                error_message: row.try_get(4)?,
                started_at: row.try_get(5)?,
                finished_at: row.try_get(6)?,
                worker_id: row.try_get(7)?,
                pid: row.try_get(8)?,
            });
        }
        info.attempts = Some(attempts);
    }
    Ok(Some(info))
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn decodes_completed_values() {
        let v = json!({"status": "COMPLETED", "ok": "order 123: 2 items"});
        assert_eq!(decode::<String>(&v), Ok("order 123: 2 items".to_string()));
        let unit = json!({"status": "COMPLETED", "ok": null});
        assert_eq!(decode::<()>(&unit), Ok(()));
    }

    #[test]
    fn a_value_of_the_wrong_type_is_a_deserialization_error() {
        let v = json!({"status": "COMPLETED", "ok": {"x": 1}});
        let err = decode::<String>(&v).unwrap_err();
        assert_eq!(err.error_code, codes::RESULT_DESERIALIZATION_ERROR);
        assert_eq!(err.data, Some(json!({"x": 1})));
    }

    #[test]
    fn decodes_task_errors() {
        let v = json!({"status": "FAILED", "err": {"error_code": "OUT_OF_STOCK", "message": null, "data": {"sku": "a"}}});
        let err = decode::<String>(&v).unwrap_err();
        assert_eq!(err.error_code, "OUT_OF_STOCK");
        assert_eq!(err.message, None);
        assert_eq!(err.data, Some(json!({"sku": "a"})));
        let v = json!({"status": "EXPIRED", "err": {"error_code": "TASK_EXPIRED", "message": "deadline passed", "data": null}});
        let err = decode::<String>(&v).unwrap_err();
        assert_eq!(err.error_code, codes::TASK_EXPIRED);
        assert_eq!(err.message.as_deref(), Some("deadline passed"));
        assert_eq!(err.data, None);
        let broken = json!({"status": "FAILED"});
        assert_eq!(decode::<String>(&broken).unwrap_err().error_code, codes::RESULT_DESERIALIZATION_ERROR);
    }

    #[test]
    fn readings() {
        assert!(matches!(parse_reading(None), Ok(Reading::NotFound)));
        for status in ["PENDING", "CLAIMED", "RUNNING"] {
            let text = format!("{{\"status\":\"{status}\"}}");
            assert!(matches!(parse_reading(Some(text)), Ok(Reading::Unfinished)));
        }
        for status in ["COMPLETED", "FAILED", "CANCELLED", "EXPIRED"] {
            let text = format!("{{\"status\":\"{status}\"}}");
            assert!(matches!(parse_reading(Some(text)), Ok(Reading::Finished(_))));
        }
        assert!(parse_reading(Some("{\"status\":\"WEIRD\"}".into())).is_err());
    }
}
