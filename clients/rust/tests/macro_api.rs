//! The `task!` macro from outside the crate, without a database.

use std::collections::HashMap;

use horsies::{TaskSendErrorCode, TaskSendOptions};
use serde::{Deserialize, Serialize};

#[derive(Serialize, Deserialize)]
pub struct OrderInput {
    id: i64,
    items: Vec<String>,
    metadata: HashMap<String, serde_json::Value>,
}

horsies::task!(
    /// The Python task `orders.process_order`.
    pub process_order: "orders.process_order", OrderInput => String
);

fn input() -> OrderInput {
    OrderInput { id: 123, items: vec!["a".into(), "b".into()], metadata: HashMap::new() }
}

#[tokio::test]
async fn sends_before_init_are_suppressed() {
    assert_eq!(process_order::NAME, "orders.process_order");
    assert!(horsies::runtime().is_none());
    let err = process_order::send(input()).await.unwrap_err();
    assert_eq!(err.code, TaskSendErrorCode::SendSuppressed);
    assert!(!err.retryable);
    assert!(err.payload.is_none());
    let err = process_order::schedule(std::time::Duration::from_secs(60), input()).await.unwrap_err();
    assert_eq!(err.code, TaskSendErrorCode::SendSuppressed);
    let deadline = chrono::Utc::now() + chrono::Duration::minutes(5);
    let err = process_order::with_options(TaskSendOptions::new().good_until(deadline))
        .send(input())
        .await
        .unwrap_err();
    assert_eq!(err.code, TaskSendErrorCode::SendSuppressed);
}

#[tokio::test]
async fn connecting_to_nothing_is_a_broker_error() {
    let config = horsies::AppConfig {
        connect_timeout: std::time::Duration::from_secs(2),
        ..horsies::AppConfig::for_database_url("postgresql://nobody@127.0.0.1:1/none")
    };
    let err = horsies::Runtime::connect(config).await.unwrap_err();
    assert_eq!(err.code, horsies::BrokerErrorCode::BrokerError);
    let err = horsies::Runtime::connect(horsies::AppConfig::for_database_url("not a url ::")).await.unwrap_err();
    assert_eq!(err.code, horsies::BrokerErrorCode::BrokerError);
}
