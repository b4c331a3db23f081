//! An axum app as it would run on Heroku, unchanged: tokio's runtime, a
//! `TcpListener` on `0.0.0.0:$PORT`, `axum::serve`.

use axum::{Router, extract::Path, routing::get};

/// A WebAssembly dyno has one thread: tokio runs on the current thread.
#[tokio::main(flavor = "current_thread")]
async fn main() {
    let port: u16 = std::env::var("PORT")
        .ok()
        .and_then(|p| p.parse().ok())
        .unwrap_or(3000);
    let dyno = std::env::var("DYNO").unwrap_or_else(|_| "local".into());
    let app = Router::new()
        .route(
            "/",
            get(move || async move { format!("Hello from rust-axum on {dyno}\n") }),
        )
        .route(
            "/hello/{name}",
            get(|Path(name): Path<String>| async move { format!("Hello, {name}!\n") }),
        );
    let listener = tokio::net::TcpListener::bind(("0.0.0.0", port))
        .await
        .expect("bind $PORT");
    println!("listening on port {port}");
    axum::serve(listener, app).await.expect("serve");
}
