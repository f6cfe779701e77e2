//! Typed task references: sending, scheduling and replaying sends.

use std::marker::PhantomData;
use std::time::Duration;

use chrono::{DateTime, SubsecRound, Utc};
use serde::de::DeserializeOwned;
use serde::Serialize;
use serde_json::Value;

use crate::canonical;
use crate::handle::TaskHandle;
use crate::runtime::{CatalogueEntry, Runtime, DEFAULT_PRIORITY};
use crate::types::{TaskSendError, TaskSendErrorCode, TaskSendPayload, TaskSendResult};

/// Per-send options.
///
/// ```
/// use chrono::{Duration, Utc};
/// let options = horsies::TaskSendOptions::new()
///     .good_until(Utc::now() + Duration::minutes(5))
///     .priority(10);
/// assert_eq!(options.get_priority(), Some(10));
/// ```
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct TaskSendOptions {
    good_until: Option<DateTime<Utc>>,
    priority: Option<u32>,
}

impl TaskSendOptions {
    /// No options: no deadline, the default priority.
    pub fn new() -> Self {
        TaskSendOptions::default()
    }

    /// An absolute UTC deadline for the task to start (not relative to a schedule delay):
    /// a task still pending at that instant expires (`TASK_EXPIRED`) instead of running.
    /// Kept at microsecond precision.
    pub fn good_until(mut self, deadline: DateTime<Utc>) -> Self {
        self.good_until = Some(deadline);
        self
    }

    /// The priority, 1..=100 (1 runs first; default 50).
    pub fn priority(mut self, priority: u32) -> Self {
        self.priority = Some(priority);
        self
    }

    /// The deadline, if set.
    pub fn get_good_until(&self) -> Option<DateTime<Utc>> {
        self.good_until
    }

    /// The priority, if set.
    pub fn get_priority(&self) -> Option<u32> {
        self.priority
    }
}

/// A typed reference to a task registered by the Python app: `A` are its keyword arguments
/// (serializing to a JSON object), `T` its result type.
pub struct TaskFunction<A, T> {
    runtime: Runtime,
    task_name: String,
    queue_name: String,
    _types: PhantomData<fn(A) -> T>,
}

impl<A, T> Clone for TaskFunction<A, T> {
    fn clone(&self) -> Self {
        TaskFunction {
            runtime: self.runtime.clone(),
            task_name: self.task_name.clone(),
            queue_name: self.queue_name.clone(),
            _types: PhantomData,
        }
    }
}

impl<A, T> std::fmt::Debug for TaskFunction<A, T> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("TaskFunction")
            .field("task_name", &self.task_name)
            .field("queue_name", &self.queue_name)
            .finish()
    }
}

impl<A: Serialize, T: DeserializeOwned> TaskFunction<A, T> {
    pub(crate) fn new(runtime: Runtime, entry: CatalogueEntry) -> Self {
        TaskFunction {
            runtime,
            task_name: entry.task_name,
            queue_name: entry.queue_name,
            _types: PhantomData,
        }
    }

    /// The registered task name.
    pub fn task_name(&self) -> &str {
        &self.task_name
    }

    /// The task's queue (from the server's catalogue, cached).
    pub fn queue_name(&self) -> &str {
        &self.queue_name
    }

    /// The priority a send without options gets (50).
    pub fn priority(&self) -> u32 {
        DEFAULT_PRIORITY
    }

    /// The runtime this reference sends through.
    pub fn runtime(&self) -> &Runtime {
        &self.runtime
    }

    /// Enqueues the task for immediate execution.
    pub async fn send(&self, args: A) -> TaskSendResult<TaskHandle<T>> {
        send_new(&self.runtime, &self.task_name, &args, None, &TaskSendOptions::new()).await
    }

    /// Enqueues the task to become claimable after `delay`.
    pub async fn schedule(&self, delay: Duration, args: A) -> TaskSendResult<TaskHandle<T>> {
        send_new(&self.runtime, &self.task_name, &args, Some(delay), &TaskSendOptions::new()).await
    }

    /// Binds per-send options (`.send(args)` / `.schedule(delay, args)` on the result).
    pub fn with_options(&self, options: TaskSendOptions) -> TaskFunctionSendOptions<'_, A, T> {
        TaskFunctionSendOptions {
            target: Target::Function(self),
            options,
            _types: PhantomData,
        }
    }

    /// Resends the payload of a failed `send()` (an `EnqueueFailed` error) with the same task id
    /// and `enqueue_sha`; the server treats the repeat as idempotent. Err(PAYLOAD_MISMATCH) if
    /// the payload was altered since.
    pub async fn retry_send(&self, error: &TaskSendError) -> TaskSendResult<TaskHandle<T>> {
        self.replay(error, false).await
    }

    /// Like [`TaskFunction::retry_send`], for an error returned by `schedule()`.
    pub async fn retry_schedule(&self, error: &TaskSendError) -> TaskSendResult<TaskHandle<T>> {
        self.replay(error, true).await
    }

    async fn replay(&self, error: &TaskSendError, scheduled: bool) -> TaskSendResult<TaskHandle<T>> {
        let name = &self.task_name;
        if error.code != TaskSendErrorCode::EnqueueFailed {
            return Err(TaskSendError::validation(format!(
                "{name}: only ENQUEUE_FAILED errors can be resent, not {}",
                error.code
            )));
        }
        let payload = match &error.payload {
            Some(payload) => payload,
            None => {
                return Err(TaskSendError::validation(format!(
                    "{name}: the error carries no payload to resend; send anew with send()"
                )))
            }
        };
        if payload.task_name != *name {
            return Err(TaskSendError::validation(format!(
                "{name}: this error belongs to task {:?}; retry it with that task's reference",
                payload.task_name
            )));
        }
        if scheduled && payload.delay_ms.is_none() {
            return Err(TaskSendError::validation(format!(
                "{name}: retry_schedule needs an error from schedule()"
            )));
        }
        if !payload.sha_matches() {
            return Err(TaskSendError::new(
                TaskSendErrorCode::PayloadMismatch,
                format!(
                    "{name}: the payload of task {} was altered after the failed send (its \
                     enqueue_sha no longer matches); send it anew with send()",
                    payload.task_id
                ),
            )
            .with_payload(payload.clone()));
        }
        let task_id = self.runtime.enqueue(payload).await?;
        Ok(TaskHandle::from_id(&self.runtime, task_id))
    }
}

enum Target<'a, A, T> {
    Function(&'a TaskFunction<A, T>),
    Global(&'static str),
}

/// A task reference with per-send options bound (see [`TaskFunction::with_options`]).
pub struct TaskFunctionSendOptions<'a, A, T> {
    target: Target<'a, A, T>,
    options: TaskSendOptions,
    _types: PhantomData<fn(A) -> T>,
}

impl<'a, A: Serialize, T: DeserializeOwned> TaskFunctionSendOptions<'a, A, T> {
    /// Options bound to a task of the global runtime (used by the `task!` macro).
    #[doc(hidden)]
    pub fn global(task_name: &'static str, options: TaskSendOptions) -> Self {
        TaskFunctionSendOptions { target: Target::Global(task_name), options, _types: PhantomData }
    }

    /// Enqueues the task for immediate execution with the bound options.
    pub async fn send(&self, args: A) -> TaskSendResult<TaskHandle<T>> {
        self.dispatch(args, None).await
    }

    /// Enqueues the task to become claimable after `delay`, with the bound options.
    pub async fn schedule(&self, delay: Duration, args: A) -> TaskSendResult<TaskHandle<T>> {
        self.dispatch(args, Some(delay)).await
    }

    async fn dispatch(&self, args: A, delay: Option<Duration>) -> TaskSendResult<TaskHandle<T>> {
        match &self.target {
            Target::Function(function) => {
                send_new(&function.runtime, &function.task_name, &args, delay, &self.options).await
            }
            Target::Global(name) => {
                let runtime = crate::runtime::global_for_send(name)?;
                send_new(&runtime, name, &args, delay, &self.options).await
            }
        }
    }
}

/// Builds the payload of a new send (validating arguments and options).
pub(crate) fn build_payload<A: Serialize + ?Sized>(
    task_name: &str,
    queue_name: &str,
    task_id: String,
    args: &A,
    delay: Option<Duration>,
    options: &TaskSendOptions,
) -> TaskSendResult<TaskSendPayload> {
    let kwargs = serde_json::to_value(args).map_err(|e| {
        TaskSendError::validation(format!("{task_name}: the arguments do not serialize to JSON: {e}"))
    })?;
    if !kwargs.is_object() {
        return Err(TaskSendError::validation(format!(
            "{task_name}: the arguments must serialize to a JSON object (keyword arguments), got {}",
            json_kind(&kwargs)
        )));
    }
    if canonical::contains_nul(&kwargs) {
        return Err(TaskSendError::validation(format!(
            "{task_name}: the arguments contain a U+0000 character, which PostgreSQL cannot store"
        )));
    }
    let priority = options.priority.unwrap_or(DEFAULT_PRIORITY);
    if !(1..=100).contains(&priority) {
        return Err(TaskSendError::validation(format!(
            "{task_name}: priority must be 1..=100, got {priority}"
        )));
    }
    let delay_ms = match delay {
        None => None,
        Some(d) => Some(u64::try_from(d.as_millis()).map_err(|_| {
            TaskSendError::validation(format!("{task_name}: the delay is too long"))
        })?),
    };
    if delay_ms.map_or(false, |ms| ms > i64::MAX as u64) {
        return Err(TaskSendError::validation(format!("{task_name}: the delay is too long")));
    }
    let good_until = options.good_until.map(|g| g.trunc_subsecs(6));
    let enqueue_sha = canonical::enqueue_sha(
        &task_id,
        task_name,
        queue_name,
        priority,
        &kwargs,
        delay_ms,
        good_until.as_ref(),
    );
    Ok(TaskSendPayload {
        task_id,
        task_name: task_name.to_string(),
        queue_name: queue_name.to_string(),
        priority,
        kwargs,
        delay_ms,
        good_until,
        enqueue_sha,
    })
}

fn json_kind(value: &Value) -> &'static str {
    match value {
        Value::Null => "null",
        Value::Bool(_) => "a boolean",
        Value::Number(_) => "a number",
        Value::String(_) => "a string",
        Value::Array(_) => "an array",
        Value::Object(_) => "an object",
    }
}

/// A new send: resolves the queue, builds the payload, enqueues it. If the server says the
/// sha does not match (its catalogue moved the task to another queue), the queue is looked up
/// again and the send is made once more.
#[doc(hidden)]
pub async fn send_new<A: Serialize + ?Sized, T: DeserializeOwned>(
    runtime: &Runtime,
    task_name: &str,
    args: &A,
    delay: Option<Duration>,
    options: &TaskSendOptions,
) -> TaskSendResult<TaskHandle<T>> {
    let task_id = canonical::new_task_id();
    let entry = match runtime.lookup(task_name).await {
        Ok(Some(entry)) => entry,
        Ok(None) => {
            // The catalogue is the server's own list (horsies_send raises HZ001 for the same
            // names); arguments are still validated first, so their errors come first.
            let payload = build_payload(task_name, "", task_id.clone(), args, delay, options)?;
            let mut error = TaskSendError::validation(format!(
                "unknown task name {task_name:?}: it is not in horsies_task_catalogue"
            ));
            error.task_id = Some(payload.task_id);
            return Err(error);
        }
        Err(error) => {
            // The catalogue could not be read: validate what can be validated, then report
            // the transient failure (without a payload: the queue, part of the sha, is unknown).
            build_payload(task_name, "", task_id.clone(), args, delay, options)?;
            return Err(error);
        }
    };
    let payload = build_payload(task_name, &entry.queue_name, task_id, args, delay, options)?;
    match runtime.enqueue(&payload).await {
        Ok(id) => Ok(TaskHandle::from_id(runtime, id)),
        Err(error) if error.code == TaskSendErrorCode::PayloadMismatch => {
            match runtime.lookup_fresh(task_name).await {
                Ok(Some(fresh)) if fresh.queue_name != entry.queue_name => {
                    let payload = build_payload(
                        task_name,
                        &fresh.queue_name,
                        payload.task_id.clone(),
                        args,
                        delay,
                        options,
                    )?;
                    let id = runtime.enqueue(&payload).await?;
                    Ok(TaskHandle::from_id(runtime, id))
                }
                _ => Err(error),
            }
        }
        Err(error) => Err(error),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[derive(Serialize)]
    struct Args {
        n: i64,
        text: String,
    }

    fn build(args: &impl Serialize, delay: Option<Duration>, options: &TaskSendOptions) -> TaskSendResult<TaskSendPayload> {
        build_payload("orders.process_order", "default", canonical::new_task_id(), args, delay, options)
    }

    #[test]
    fn a_payload_carries_its_own_sha() {
        let payload = build(&Args { n: 1, text: "x".into() }, None, &TaskSendOptions::new()).unwrap();
        assert_eq!(payload.kwargs, json!({"n": 1, "text": "x"}));
        assert_eq!(payload.priority, DEFAULT_PRIORITY);
        assert_eq!(payload.delay_ms, None);
        assert!(payload.sha_matches());
        let mut altered = payload.clone();
        altered.kwargs = json!({"n": 2, "text": "x"});
        assert!(!altered.sha_matches());
    }

    #[test]
    fn the_shared_vector_scheduled_with_deadline() {
        let deadline = DateTime::parse_from_rfc3339("2026-12-04T17:00:00Z").unwrap().with_timezone(&Utc);
        let payload = build_payload(
            "orders.process_order",
            "default",
            "0193a1c2-7d4e-7f00-8a00-000000000000".into(),
            &json!({"text": "x"}),
            Some(Duration::from_millis(60000)),
            &TaskSendOptions::new().good_until(deadline).priority(100),
        )
        .unwrap();
        assert_eq!(payload.delay_ms, Some(60000));
        assert_eq!(payload.priority, 100);
        let canonical = canonical::enqueue_canonical(
            &payload.task_id, &payload.task_name, &payload.queue_name, payload.priority,
            &payload.kwargs, payload.delay_ms, payload.good_until.as_ref(),
        );
        assert!(canonical.starts_with("{\"delay_ms\":60000,\"good_until\":\"2026-12-04T17:00:00.000000Z\""));
    }

    #[test]
    fn arguments_must_be_an_object() {
        for bad in [json!([1, 2]), json!("x"), json!(3), json!(null)] {
            let err = build(&bad, None, &TaskSendOptions::new()).unwrap_err();
            assert_eq!(err.code, TaskSendErrorCode::ValidationFailed);
            assert!(!err.retryable);
            assert!(err.payload.is_none());
        }
        let err = build(&json!({"s": "a\u{0}b"}), None, &TaskSendOptions::new()).unwrap_err();
        assert_eq!(err.code, TaskSendErrorCode::ValidationFailed);
        let mut map = std::collections::HashMap::new();
        map.insert(vec![1u8], 1); // a map with non-string keys does not serialize to JSON
        let err = build(&map, None, &TaskSendOptions::new()).unwrap_err();
        assert_eq!(err.code, TaskSendErrorCode::ValidationFailed);
    }

    #[test]
    fn priority_is_checked() {
        for bad in [0, 101] {
            let err = build(&json!({}), None, &TaskSendOptions::new().priority(bad)).unwrap_err();
            assert_eq!(err.code, TaskSendErrorCode::ValidationFailed, "{bad}");
        }
        assert_eq!(build(&json!({}), None, &TaskSendOptions::new().priority(1)).unwrap().priority, 1);
    }

    #[test]
    fn good_until_keeps_microseconds_and_options_carry_everything() {
        let deadline = DateTime::parse_from_rfc3339("2030-01-02T03:04:05.006007891Z").unwrap().with_timezone(&Utc);
        let payload = build(&json!({"n": 1}), Some(Duration::from_millis(1500)), &TaskSendOptions::new().good_until(deadline)).unwrap();
        assert_eq!(canonical::format_good_until(&payload.good_until.unwrap()), "2030-01-02T03:04:05.006007Z");
        assert!(payload.sha_matches());
        let options = crate::runtime::send_options(&payload);
        assert_eq!(
            options,
            json!({
                "task_id": payload.task_id,
                "enqueue_sha": payload.enqueue_sha,
                "priority": 50,
                "delay_ms": 1500,
                "good_until": "2030-01-02T03:04:05.006007Z",
            })
        );
        let immediate = build(&json!({}), None, &TaskSendOptions::new()).unwrap();
        let options = crate::runtime::send_options(&immediate);
        assert!(options.get("delay_ms").is_none() && options.get("good_until").is_none());
    }

    #[test]
    fn error_codes_display_and_retryability() {
        let err = TaskSendError::new(TaskSendErrorCode::ValidationFailed, "VALIDATION_FAILED: no task x");
        assert_eq!(err.message, "no task x");
        assert_eq!(err.to_string(), "VALIDATION_FAILED: no task x");
        assert_eq!(TaskSendErrorCode::SendSuppressed.to_string(), "SEND_SUPPRESSED");
        assert_eq!(TaskSendErrorCode::PayloadMismatch.to_string(), "PAYLOAD_MISMATCH");
        assert!(TaskSendError::new(TaskSendErrorCode::EnqueueFailed, "x").retryable);
        assert!(!TaskSendError::new(TaskSendErrorCode::PayloadMismatch, "x").retryable);
        assert_eq!(serde_json::to_value(TaskSendErrorCode::EnqueueFailed).unwrap(), json!("ENQUEUE_FAILED"));
    }
}
