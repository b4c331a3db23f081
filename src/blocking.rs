//! Work that blocks (disk syncs, file copies, compiles, child processes)
//! goes to tokio's blocking pool, never a runtime thread: a dyno or a
//! request on the same thread would wait for it.

/// Runs `f` on the blocking pool. `lost` makes the error for a task that
/// died before returning (a panic), with what the pool said.
pub(crate) async fn run<T, E>(
    f: impl FnOnce() -> Result<T, E> + Send + 'static,
    lost: impl FnOnce(String) -> E,
) -> Result<T, E>
where
    T: Send + 'static,
    E: Send + 'static,
{
    match tokio::task::spawn_blocking(f).await {
        Ok(r) => r,
        Err(e) => Err(lost(e.to_string())),
    }
}
