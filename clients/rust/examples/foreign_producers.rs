// clients/rust/examples/foreign_producers.rs
use std::collections::HashMap;
use std::time::Duration;

use horsies::{AppConfig, TaskSendOptions};
use serde::{Deserialize, Serialize};

/// The keyword arguments of the Python task, one field per parameter.
#[derive(Serialize, Deserialize)]
pub struct OrderInput {
    id: i64,
    items: Vec<String>,
    metadata: HashMap<String, serde_json::Value>,
}

// Declared once: the task's name, its arguments and its result type.
horsies::task!(pub process_order: "docs.foreign.process_order", OrderInput => String);

#[tokio::main]
async fn main() -> Result<(), Box<dyn std::error::Error>> {
    let rt = horsies::init(AppConfig {
        resend_on_transient_err: true, // ENQUEUE_FAILED is resent up to 3 times, with backoff
        ..AppConfig::for_database_url(std::env::var("DATABASE_URL")?)
    })
    .await?;
    let input = |id| OrderInput { id, items: vec!["a".into(), "b".into()], metadata: HashMap::new() };

    // Send, then wait for the typed result.
    match process_order::send(input(123)).await {
        Ok(handle) => match handle.get(Some(Duration::from_secs(30))).await {
            Ok(text) => println!("result: {text}"),
            Err(err) => println!("task failed: {} {:?}", err.error_code, err.message),
        },
        Err(err) => println!("send failed: {} - {}", err.code, err.message),
    }

    // A minute from now, if it can start within five minutes.
    let deadline = chrono::Utc::now() + chrono::Duration::minutes(5);
    let later = process_order::with_options(TaskSendOptions::new().good_until(deadline))
        .schedule(Duration::from_secs(60), input(124))
        .await?;
    println!("scheduled: {}", later.task_id());

    // A failed send replays its exact payload (same id, same enqueue_sha): never two tasks.
    let task_fn = process_order::handle(&rt)?;
    let handle = match task_fn.send(input(125)).await {
        Ok(handle) => handle,
        Err(err) if err.retryable => task_fn.retry_send(&err).await?,
        Err(err) => return Err(err.into()),
    };
    println!("queue: {}", task_fn.queue_name());

    // The task's metadata and attempts, once it has run.
    handle.get(Some(Duration::from_secs(30))).await.ok();
    if let Some(info) = handle.info(false, false, true).await? {
        println!("status: {} after {} attempt(s)", info.status, info.attempts.map_or(0, |a| a.len()));
    }
    Ok(())
}
// => result: order 123: 2 items
// => queue: default
// => status: COMPLETED after 1 attempt(s)
