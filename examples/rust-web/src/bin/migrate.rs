//! The release step: runs once before a release goes live; a non-zero exit
//! keeps the previous release running.

fn main() {
    let version = std::env::var("WDYNO_RELEASE_VERSION").unwrap_or_default();
    println!("migrating for release v{version}... done");
}
