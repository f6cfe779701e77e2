//! Single sends for the benchmark (`./dev bench-senders`): one task at a time, each its own
//! transaction, like `task.send()` from a Python request handler.
//!   DATABASE_URL=... bench_send N
use std::time::Instant;

use horsies::AppConfig;
use serde::Serialize;

#[derive(Serialize)]
struct NoopArgs {
    i: u64,
}

horsies::task!(noop: "bench.noop", NoopArgs => serde_json::Value);

#[tokio::main(flavor = "current_thread")]
async fn main() -> Result<(), Box<dyn std::error::Error>> {
    let n: u64 = std::env::args().nth(1).ok_or("usage: bench_send N")?.parse()?;
    horsies::init(AppConfig::for_database_url(std::env::var("DATABASE_URL")?)).await?;
    let start = Instant::now();
    for i in 0..n {
        noop::send(NoopArgs { i }).await?;
    }
    let elapsed = start.elapsed().as_secs_f64();
    println!("{{\"n\":{n},\"elapsed_s\":{elapsed},\"sends_per_s\":{}}}", n as f64 / elapsed);
    Ok(())
}
