//! End-to-end driver for the Python test suite.
//!
//! `DATABASE_URL=... cargo run --offline --example e2e -- <scenario> [args]` performs one
//! scenario against tasks defined by the Python test app and prints one JSON object per line
//! on stdout (the last line of a scenario is its outcome). Expected failures are printed as JSON
//! too; the exit status is 0 unless the driver itself cannot run (bad usage: 2, no database: 3).
//!
//! Scenarios: send_get, task_error, unhandled, schedule, expired, unknown_task, bad_args, info,
//! outage (waits for a line "go" on stdin), send_many_timing N.

use std::collections::HashMap;
use std::io::BufRead;
use std::time::{Duration, Instant};

use horsies::{TaskResult, TaskSendError, TaskSendOptions};
use serde::{Deserialize, Serialize};
use serde_json::{json, Value};

#[derive(Debug, Clone, Serialize, Deserialize)]
struct Order {
    id: i64,
    items: Vec<String>,
    metadata: HashMap<String, Value>,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
struct EchoArgs {
    order: Order,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
struct FailArgs {
    code: String,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
struct NoArgs {}

/// echo_order's arguments plus one the task does not declare.
#[derive(Debug, Clone, Serialize, Deserialize)]
struct EchoArgsWithExtra {
    order: Order,
    colour: String,
}

horsies::task!(echo_order: "rust.echo_order", EchoArgs => String);
horsies::task!(fail: "rust.fail", FailArgs => Value);
horsies::task!(boom: "rust.boom", NoArgs => Value);
horsies::task!(no_such_task: "rust.no_such_task", NoArgs => Value);
horsies::task!(echo_order_extra: "rust.echo_order", EchoArgsWithExtra => String);

const WAIT: Duration = Duration::from_secs(30);

fn emit(value: Value) {
    println!("{value}");
}

fn order(id: i64) -> EchoArgs {
    let mut metadata = HashMap::new();
    metadata.insert("source".to_string(), json!("rust"));
    metadata.insert("note".to_string(), json!("ünïcode \"quoted\" 😀"));
    EchoArgs { order: Order { id, items: vec!["a".into(), "b".into()], metadata } }
}

fn send_error(event: &str, err: &TaskSendError) -> Value {
    json!({
        "event": event,
        "code": err.code.as_str(),
        "retryable": err.retryable,
        "message": err.message,
        "task_id": err.task_id,
        "has_payload": err.payload.is_some(),
        "enqueue_sha": err.payload.as_ref().map(|p| p.enqueue_sha.clone()),
    })
}

fn result_line<T: Serialize>(task_id: &str, result: &TaskResult<T>) -> Value {
    match result {
        Ok(value) => json!({"event": "result", "task_id": task_id, "ok": value}),
        Err(err) => json!({"event": "result", "task_id": task_id, "err": err}),
    }
}

/// Sends with a send future, prints "sent" (or "send_error"), then waits and prints "result".
async fn send_and_get<T: serde::de::DeserializeOwned + Serialize>(
    sent: horsies::TaskSendResult<horsies::TaskHandle<T>>,
) {
    match sent {
        Ok(handle) => {
            emit(json!({"event": "sent", "task_id": handle.task_id()}));
            let result = handle.get(Some(WAIT)).await;
            emit(result_line(handle.task_id(), &result));
        }
        Err(err) => emit(send_error("send_error", &err)),
    }
}

async fn run(scenario: &str, args: &[String], rt: &horsies::Runtime) -> Result<(), String> {
    match scenario {
        "send_get" => send_and_get(echo_order::send(order(123)).await).await,
        "task_error" => {
            send_and_get(fail::send(FailArgs { code: "OUT_OF_STOCK".into() }).await).await
        }
        "unhandled" => send_and_get(boom::send(NoArgs {}).await).await,
        "schedule" => match echo_order::schedule(Duration::from_secs(1), order(7)).await {
            Ok(handle) => {
                emit(json!({"event": "scheduled", "task_id": handle.task_id(), "delay_ms": 1000}));
                let result = handle.get(Some(WAIT)).await;
                emit(result_line(handle.task_id(), &result));
            }
            Err(err) => emit(send_error("send_error", &err)),
        },
        "expired" => {
            let deadline = chrono::Utc::now() - chrono::Duration::minutes(1);
            let sent = echo_order::with_options(TaskSendOptions::new().good_until(deadline))
                .send(order(8))
                .await;
            send_and_get(sent).await
        }
        "unknown_task" => match no_such_task::send(NoArgs {}).await {
            Ok(handle) => emit(json!({"event": "sent", "task_id": handle.task_id()})),
            Err(err) => emit(send_error("send_error", &err)),
        },
        "bad_args" => {
            let args = EchoArgsWithExtra { order: order(9).order, colour: "red".into() };
            match echo_order_extra::send(args).await {
                Ok(handle) => emit(json!({"event": "sent", "task_id": handle.task_id()})),
                Err(err) => emit(send_error("send_error", &err)),
            }
        }
        "info" => match echo_order::send(order(10)).await {
            Ok(handle) => {
                emit(json!({"event": "sent", "task_id": handle.task_id()}));
                let result = handle.get(Some(WAIT)).await;
                emit(result_line(handle.task_id(), &result));
                match handle.info(true, true, true).await {
                    Ok(info) => emit(json!({"event": "info", "info": info})),
                    Err(err) => emit(json!({"event": "info_error", "error": err})),
                }
            }
            Err(err) => emit(send_error("send_error", &err)),
        },
        "outage" => outage(rt).await?,
        "send_many_timing" => {
            let n: usize = args
                .first()
                .and_then(|a| a.parse().ok())
                .ok_or("send_many_timing needs a count, e.g. send_many_timing 1000")?;
            let function = echo_order::handle(rt).map_err(|e| e.to_string())?;
            let started = Instant::now();
            let mut errors: HashMap<String, usize> = HashMap::new();
            for i in 0..n {
                if let Err(err) = function.send(order(i as i64)).await {
                    *errors.entry(err.code.as_str().to_string()).or_default() += 1;
                }
            }
            let elapsed = started.elapsed().as_secs_f64();
            emit(json!({
                "event": "timing",
                "n": n,
                "elapsed_s": elapsed,
                "sends_per_s": if elapsed > 0.0 { n as f64 / elapsed } else { 0.0 },
                "errors": errors,
            }));
        }
        other => return Err(format!("unknown scenario {other:?}")),
    }
    Ok(())
}

async fn outage(rt: &horsies::Runtime) -> Result<(), String> {
    let function = echo_order::handle(rt).map_err(|e| e.to_string())?;
    match function.send(order(1)).await {
        Ok(handle) => emit(json!({"event": "sent", "task_id": handle.task_id()})),
        Err(err) => {
            emit(send_error("send_error", &err));
            return Ok(());
        }
    }
    match rt.backend_pid().await {
        Ok(pid) => emit(json!({"event": "connected", "backend_pid": pid})),
        Err(err) => {
            emit(json!({"event": "broker_error", "error": err}));
            return Ok(());
        }
    }
    // The test terminates that backend, then writes "go".
    let line = tokio::task::spawn_blocking(|| {
        let mut line = String::new();
        std::io::stdin().lock().read_line(&mut line).map(|_| line)
    })
    .await
    .map_err(|e| e.to_string())?
    .map_err(|e| e.to_string())?;
    if line.trim() != "go" {
        return Err(format!("expected \"go\" on stdin, got {:?}", line.trim()));
    }
    let err = match function.send(order(2)).await {
        Ok(handle) => {
            emit(json!({"event": "sent", "task_id": handle.task_id(), "unexpected": true}));
            return Ok(());
        }
        Err(err) => err,
    };
    emit(send_error("send_error", &err));
    if !err.retryable {
        return Ok(());
    }
    for _ in 0..2 {
        match function.retry_send(&err).await {
            Ok(handle) => emit(json!({"event": "retry", "task_id": handle.task_id()})),
            Err(retry_err) => emit(send_error("retry_error", &retry_err)),
        }
    }
    Ok(())
}

#[tokio::main]
async fn main() {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let Some(scenario) = args.first().cloned() else {
        emit(json!({"event": "usage_error", "message": "usage: e2e <scenario> [args]"}));
        std::process::exit(2);
    };
    let url = match std::env::var("DATABASE_URL") {
        Ok(url) if !url.is_empty() => url,
        _ => {
            emit(json!({"event": "usage_error", "message": "DATABASE_URL is not set"}));
            std::process::exit(2);
        }
    };
    let rt = match horsies::init(horsies::AppConfig::for_database_url(url)).await {
        Ok(rt) => rt,
        Err(err) => {
            emit(json!({"event": "init_error", "error": err}));
            std::process::exit(3);
        }
    };
    if let Err(message) = run(&scenario, &args[1..], &rt).await {
        emit(json!({"event": "usage_error", "message": message}));
        std::process::exit(2);
    }
}
