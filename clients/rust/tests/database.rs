//! Against a migrated horsies database (no worker needed). Runs only when
//! HORSIES_RUST_TEST_DATABASE_URL is set, e.g. inside
//! `python -m horsies_django.embedded_pg run -- ...` after `django migrate` of tests.settings.

use std::collections::HashMap;
use std::time::Duration;

use horsies::{canonical, codes, AppConfig, Runtime, TaskSendError, TaskSendErrorCode, TaskSendPayload, TaskStatus};
use serde::Serialize;
use serde_json::{json, Value};

#[derive(Serialize)]
struct Order {
    id: i64,
    items: Vec<String>,
    metadata: HashMap<String, Value>,
}

#[derive(Serialize)]
struct EchoArgs {
    order: Order,
}

fn args(id: i64) -> EchoArgs {
    EchoArgs { order: Order { id, items: vec!["a".into()], metadata: HashMap::new() } }
}

async fn runtime() -> Option<(Runtime, tokio_postgres::Client)> {
    let url = std::env::var("HORSIES_RUST_TEST_DATABASE_URL").ok().filter(|u| !u.is_empty())?;
    let rt = Runtime::connect(AppConfig::for_database_url(url.clone())).await.expect("connect");
    rt.catalogue_entry("rust.echo_order").expect("the test app's catalogue (migrate tests.settings)");
    let (client, connection) = tokio_postgres::connect(&url, tokio_postgres::NoTls).await.unwrap();
    tokio::spawn(connection);
    Some((rt, client))
}

async fn row_sha(client: &tokio_postgres::Client, id: &str) -> Vec<(String, String)> {
    client
        .query("SELECT enqueue_sha::text, sent_by::text FROM horsies_task WHERE id = $1::text::uuid", &[&id])
        .await
        .unwrap()
        .iter()
        .map(|r| (r.get(0), r.get(1)))
        .collect()
}

#[tokio::test]
async fn send_stores_the_same_sha_and_waits_time_out() {
    let Some((rt, client)) = runtime().await else { return };
    let f = rt.task::<EchoArgs, String>("rust.echo_order").await.unwrap();
    let handle = f.send(args(1)).await.unwrap();
    let rows = row_sha(&client, handle.task_id()).await;
    assert_eq!(rows.len(), 1);
    assert_eq!(rows[0].1, "rust");
    let err = handle.get(Some(Duration::from_millis(300))).await.unwrap_err();
    assert_eq!(err.error_code, codes::WAIT_TIMEOUT); // no worker runs in this test
    let info = handle.info(true, true, true).await.unwrap().unwrap();
    assert_eq!(info.task_name, "rust.echo_order");
    assert_eq!(info.status, TaskStatus::Pending);
    assert_eq!(info.result, None);
    assert_eq!(info.attempts, Some(vec![]));
    let missing = rt.handle::<String>(canonical::new_task_id());
    assert_eq!(missing.get(Some(Duration::from_millis(100))).await.unwrap_err().error_code, codes::TASK_NOT_FOUND);
    assert!(missing.info(false, false, false).await.unwrap().is_none());
}

#[tokio::test]
async fn replays_are_idempotent_and_altered_payloads_refused() {
    let Some((rt, client)) = runtime().await else { return };
    let f = rt.task::<EchoArgs, String>("rust.echo_order").await.unwrap();
    let kwargs = serde_json::to_value(args(2)).unwrap();
    let task_id = canonical::new_task_id();
    let mut payload = TaskSendPayload {
        task_id: task_id.clone(),
        task_name: "rust.echo_order".into(),
        queue_name: f.queue_name().into(),
        priority: 50,
        kwargs,
        delay_ms: Some(60_000),
        good_until: None,
        enqueue_sha: String::new(),
    };
    payload.enqueue_sha = payload.compute_sha();
    let err = TaskSendError::new(TaskSendErrorCode::EnqueueFailed, "simulated").with_payload(payload.clone());
    let first = f.retry_schedule(&err).await.unwrap();
    let second = f.retry_send(&err).await.unwrap();
    assert_eq!(first.task_id(), task_id);
    assert_eq!(second.task_id(), task_id);
    assert_eq!(row_sha(&client, &task_id).await, vec![(payload.enqueue_sha.clone(), "rust".to_string())]);

    let mut altered = payload.clone();
    altered.kwargs = json!({"order": {"id": 3, "items": [], "metadata": {}}});
    let err = TaskSendError::new(TaskSendErrorCode::EnqueueFailed, "x").with_payload(altered.clone());
    assert_eq!(f.retry_send(&err).await.unwrap_err().code, TaskSendErrorCode::PayloadMismatch);
    // Altered but re-hashed: the server refuses a different payload under the same id.
    altered.enqueue_sha = altered.compute_sha();
    let err = TaskSendError::new(TaskSendErrorCode::EnqueueFailed, "x").with_payload(altered);
    assert_eq!(f.retry_send(&err).await.unwrap_err().code, TaskSendErrorCode::PayloadMismatch);
}

#[tokio::test]
async fn a_terminated_backend_fails_one_send_and_the_retry_reconnects() {
    let Some((rt, client)) = runtime().await else { return };
    let f = rt.task::<EchoArgs, String>("rust.echo_order").await.unwrap();
    f.send(args(4)).await.unwrap();
    let pid = rt.backend_pid().await.unwrap();
    client.query_one("SELECT pg_terminate_backend($1)", &[&pid]).await.unwrap();
    tokio::time::sleep(Duration::from_millis(200)).await;
    let err = f.send(args(5)).await.unwrap_err();
    assert_eq!(err.code, TaskSendErrorCode::EnqueueFailed);
    assert!(err.retryable && err.payload.is_some());
    let handle = f.retry_send(&err).await.unwrap();
    assert_eq!(Some(handle.task_id()), err.task_id.as_deref());
    assert_ne!(rt.backend_pid().await.unwrap(), pid);
    let after = f.with_options(horsies::TaskSendOptions::new().priority(1)).send(args(6)).await.unwrap();
    assert_eq!(row_sha(&client, after.task_id()).await.len(), 1);
}
