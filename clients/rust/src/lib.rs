//! # horsies — Rust client of horsies-django
//!
//! Sends tasks defined by a Python [horsies-django] app (a PostgreSQL-backed Django task queue)
//! and reads their typed results. Everything goes through the database: sends call the SQL
//! function `horsies_send(task_name, kwargs, options)`, results are read with
//! `horsies_result(task_id)`, and waiting listens on the `horsies_task_done` channel with a
//! polling fallback.
//!
//! ```no_run
//! use std::collections::HashMap;
//! use std::time::Duration;
//! use serde::{Deserialize, Serialize};
//!
//! #[derive(Serialize, Deserialize)]
//! pub struct OrderInput {
//!     id: i64,
//!     items: Vec<String>,
//!     metadata: HashMap<String, serde_json::Value>,
//! }
//!
//! // Declared once: `process_order::send(...)`, `::schedule(...)`, `::with_options(...)`, `::handle(&rt)`.
//! horsies::task!(pub process_order: "orders.process_order", OrderInput => String);
//!
//! # async fn run() -> Result<(), Box<dyn std::error::Error>> {
//! let rt = horsies::init(horsies::AppConfig {
//!     resend_on_transient_err: true,
//!     ..horsies::AppConfig::for_database_url("postgresql://app@localhost/app")
//! })
//! .await?;
//! let input = OrderInput { id: 123, items: vec!["a".into(), "b".into()], metadata: HashMap::new() };
//! match process_order::send(input).await {
//!     Ok(handle) => match handle.get(Some(Duration::from_secs(30))).await {
//!         Ok(text) => println!("done: {text}"),
//!         Err(task_error) => println!("task failed: {task_error}"),
//!     },
//!     Err(send_err) => println!("send failed: {} - {}", send_err.code, send_err.message),
//! }
//! # let _ = rt;
//! # Ok(())
//! # }
//! # fn main() {}
//! ```
//!
//! [horsies-django]: https://example.invalid/horsies-django

#![warn(missing_docs)]

pub mod canonical;
mod handle;
mod runtime;
mod task;
mod types;

pub use handle::TaskHandle;
pub use runtime::{init, runtime, AppConfig, CatalogueEntry, Runtime, DEFAULT_PRIORITY, TASK_DONE_CHANNEL};
pub use task::{TaskFunction, TaskFunctionSendOptions, TaskSendOptions};
pub use types::{
    codes, BrokerError, BrokerErrorCode, BrokerResult, TaskAttempt, TaskError, TaskInfo, TaskResult,
    TaskSendError, TaskSendErrorCode, TaskSendPayload, TaskSendResult, TaskStatus,
};

#[doc(hidden)]
pub mod __private {
    //! Support for the `task!` macro; not a public API.
    pub use crate::runtime::global_for_send;
    pub use crate::task::send_new;
}

/// Declares a typed reference to a task registered by the Python app, as a module.
///
/// `horsies::task!(pub process_order: "orders.process_order", OrderInput => String);` gives:
///
/// - `process_order::send(args).await` and `process_order::schedule(delay, args).await`
///   through the global runtime (see [`init`]; without it they return `SEND_SUPPRESSED`);
/// - `process_order::with_options(TaskSendOptions::new().good_until(deadline)).send(args)`
///   (or `.schedule(delay, args)`);
/// - `process_order::handle(&rt)` -> a [`TaskFunction`] on a given runtime (from its cached
///   catalogue), with `send`, `schedule`, `with_options`, `retry_send`, `retry_schedule`,
///   `task_name`, `queue_name`, `priority`;
/// - `process_order::from_id(&rt, id)` -> a [`TaskHandle`] for an existing task;
/// - `process_order::NAME`, the task name.
///
/// The argument and result types are named from inside the generated module (it imports
/// `super::*`), so declare them at module level, not inside a function.
#[macro_export]
macro_rules! task {
    ($(#[$meta:meta])* $vis:vis $name:ident : $task_name:expr, $args:ty => $output:ty $(;)?) => {
        $(#[$meta])*
        #[allow(non_snake_case, dead_code, unused_imports)]
        $vis mod $name {
            use super::*;

            /// The registered task name.
            pub const NAME: &str = $task_name;

            /// Enqueues the task for immediate execution (global runtime).
            pub async fn send(args: $args) -> $crate::TaskSendResult<$crate::TaskHandle<$output>> {
                let runtime = $crate::__private::global_for_send(NAME)?;
                $crate::__private::send_new(&runtime, NAME, &args, None, &$crate::TaskSendOptions::new()).await
            }

            /// Enqueues the task to become claimable after `delay` (global runtime).
            pub async fn schedule(
                delay: ::std::time::Duration,
                args: $args,
            ) -> $crate::TaskSendResult<$crate::TaskHandle<$output>> {
                let runtime = $crate::__private::global_for_send(NAME)?;
                $crate::__private::send_new(&runtime, NAME, &args, Some(delay), &$crate::TaskSendOptions::new()).await
            }

            /// Binds per-send options (global runtime).
            pub fn with_options(
                options: $crate::TaskSendOptions,
            ) -> $crate::TaskFunctionSendOptions<'static, $args, $output> {
                $crate::TaskFunctionSendOptions::global(NAME, options)
            }

            /// The task on a given runtime (from its cached catalogue).
            pub fn handle(
                runtime: &$crate::Runtime,
            ) -> $crate::TaskSendResult<$crate::TaskFunction<$args, $output>> {
                runtime.task_cached::<$args, $output>(NAME)
            }

            /// A handle on an existing task of this kind, from its id.
            pub fn from_id(runtime: &$crate::Runtime, task_id: impl Into<String>) -> $crate::TaskHandle<$output> {
                $crate::TaskHandle::from_id(runtime, task_id)
            }
        }
    };
}
