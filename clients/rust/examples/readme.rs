use std::collections::HashMap;
use std::time::Duration;

use horsies::{AppConfig, TaskSendErrorCode, TaskSendOptions};
use serde::{Deserialize, Serialize};

// The Python side:
//   @app.task("orders.process_order")
//   def process_order(*, order: OrderInput) -> TaskResult[str, TaskError]: ...
#[derive(Serialize, Deserialize)]
pub struct OrderInput {
    id: i64,
    items: Vec<String>,
    metadata: HashMap<String, serde_json::Value>,
}

/// The keyword arguments: one field per Python parameter.
#[derive(Serialize, Deserialize)]
pub struct ProcessOrder {
    order: OrderInput,
}

// Declared once, at module level: a module `process_order` with send, schedule, with_options,
// handle(&rt) and from_id(&rt, id).
horsies::task!(pub process_order: "orders.process_order", ProcessOrder => String);

#[tokio::main]
async fn main() -> Result<(), Box<dyn std::error::Error>> {
    let rt = horsies::init(AppConfig {
        resend_on_transient_err: true, // up to 3 resends with backoff on ENQUEUE_FAILED
        ..AppConfig::for_database_url(std::env::var("DATABASE_URL")?)
    })
    .await?;

    let input = || ProcessOrder {
        order: OrderInput { id: 123, items: vec!["a".into(), "b".into()], metadata: HashMap::new() },
    };

    // Send, then wait for the typed result (at most 5 s).
    match process_order::send(input()).await {
        Ok(handle) => match handle.get(Some(Duration::from_secs(5))).await {
            Ok(text) => println!("{}: {text}", handle.task_id()),
            // The task's own error code (e.g. OUT_OF_STOCK), UNHANDLED_EXCEPTION, TASK_EXPIRED,
            // WAIT_TIMEOUT, TASK_NOT_FOUND, RESULT_DESERIALIZATION_ERROR, BROKER_ERROR...
            Err(err) => println!("{}: {} {:?}", handle.task_id(), err.error_code, err.message),
        },
        Err(send_err) => println!("send failed: {} - {}", send_err.code, send_err.message),
    }

    // Schedule it a minute ahead, with an absolute deadline to start.
    let deadline = chrono::Utc::now() + chrono::Duration::minutes(5);
    let handle = process_order::with_options(TaskSendOptions::new().good_until(deadline).priority(10))
        .schedule(Duration::from_secs(60), input())
        .await?;
    println!("scheduled {}", handle.task_id());

    // A typed task reference on a given runtime, and replaying a failed send by hand.
    let task_fn = process_order::handle(&rt)?;
    println!("{} goes to queue {}", task_fn.task_name(), task_fn.queue_name());
    match task_fn.send(input()).await {
        Ok(handle) => println!("sent {}", handle.task_id()),
        Err(err) if err.retryable => {
            // Same task id, same enqueue_sha: never two tasks, even if the first send did land.
            let handle = task_fn.retry_send(&err).await?;
            println!("resent {}", handle.task_id());
        }
        Err(err) if err.code == TaskSendErrorCode::ValidationFailed => println!("bad input: {err}"),
        Err(err) => println!("not sent: {err}"),
    }

    // A handle from an id stored elsewhere, and the task's metadata.
    let again = process_order::from_id(&rt, handle.task_id());
    if let Some(info) = again.info(false, false, true).await? {
        println!("{} is {} ({} attempts)", info.task_id, info.status, info.attempts.map_or(0, |a| a.len()));
    }
    Ok(())
}
