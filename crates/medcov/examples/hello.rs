//! The load benchmark's baseline (bench/load.sh): a bare axum "Hello, World!" server, the
//! practical limit of the machine for an HTTP answer. `cargo run --release -p medcov --example
//! hello -- 127.0.0.1:3999`.

#[tokio::main]
async fn main() {
    let address = std::env::args().nth(1).unwrap_or_else(|| "127.0.0.1:3999".to_owned());
    let app = axum::Router::new().route("/", axum::routing::get(|| async { "Hello, World!" }));
    let listener = tokio::net::TcpListener::bind(&address).await.expect("the baseline's address is free");
    axum::serve(listener, app).await.expect("serves");
}
