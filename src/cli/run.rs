//! One-off dynos: `wdyno run CMD` runs a command in the app's current
//! release, outside its formation — attached to this terminal (stdin in,
//! output and exit status back), or with `--detach` into the app's log.

use anyhow::{Result, bail};
use http::Method;
use serde_json::{Value, json};
use wdyno::api::Client;
use wdyno::api::schema::event;
use wdyno::names::AppName;

/// `wdyno run`: the one-off dyno's output here, this terminal's stdin to
/// it, and its exit status as ours.
pub async fn attached(client: &Client, app: &AppName, command: &str) -> Result<i32> {
    use std::io::Read;
    let (tx, rx) = tokio::sync::mpsc::channel::<hyper::body::Bytes>(16);
    std::thread::spawn(move || {
        let mut stdin = std::io::stdin();
        let mut buf = vec![0u8; 16 * 1024];
        while let Ok(n @ 1..) = stdin.read(&mut buf) {
            if tx
                .blocking_send(hyper::body::Bytes::copy_from_slice(&buf[..n]))
                .is_err()
            {
                break;
            }
        }
    });
    let mut status: Option<i32> = None;
    client
        .events(
            Method::POST,
            &format!("/apps/{app}/dynos/attach"),
            wdyno::api::client::ReqBody::channel(rx),
            &[("x-wdyno-command", hex::encode(command))],
            &mut |name, data| match name {
                Some(event::EXIT) => status = data.trim().parse().ok(),
                _ => println!("{data}"),
            },
        )
        .await?;
    match status {
        Some(code) => Ok(code),
        None => bail!("the daemon ended the session without the dyno's exit status"),
    }
}

/// `wdyno run --detach`: starts the dyno and says where its output goes.
pub async fn detached(client: &Client, app: &AppName, command: &str) -> Result<()> {
    let v: Value = client
        .json(
            Method::POST,
            &format!("/apps/{app}/dynos"),
            json!({"command": command, "attach": false}),
        )
        .await?;
    let name = v["name"].as_str().unwrap_or("");
    println!("Running {command} on {app}... up, {name}");
    println!("Run `wdyno logs -a {app} --dyno {name}` to view the output.");
    Ok(())
}
