//! Times `linkage_demo::load` into a fresh database: `cargo run --release -p linkage-demo
//! --example demo_timing -- <small|default> [months] [seed]`. Prints the summary as JSON.

use linkage_demo::{DemoOptions, Scale};
use linkage_store::testing::TestDatabase;

#[tokio::main]
async fn main() {
    let mut args = std::env::args().skip(1);
    let scale: Scale = args
        .next()
        .unwrap_or_else(|| "default".into())
        .parse()
        .expect("scale");
    let months = args.next().map_or(6, |m| m.parse().expect("months"));
    let seed = args.next().map_or(2026, |s| s.parse().expect("seed"));
    let db = TestDatabase::new().await.expect("test database");
    let options = DemoOptions {
        seed,
        months,
        until: chrono::Utc::now(),
        scale,
        force: false,
    };
    let summary = linkage_demo::load(&db.pool, &options, |_, _| {})
        .await
        .expect("demo data");
    println!("{}", serde_json::to_string_pretty(&summary).expect("json"));
}
