//! The few WASI host calls wdyno wraps around wasmtime-wasi's own.
//!
//! `socket_addr_check` can only allow or refuse, and wasmtime-wasi's
//! filesystem never says why a write failed to anyone but the guest. Where
//! the platform must do more, the call is shadowed in the `Linker` (defined
//! again over wasmtime-wasi's definition) and delegates to wasmtime-wasi's
//! implementation:
//! - (in [`super::fds`]) every call that makes a descriptor, counted.
//! - `wasi:sockets/tcp` `start-bind`: the address is moved to loopback
//!   ([`bind_address`]) before the bind, so `0.0.0.0:$PORT` never listens on
//!   the network.
//!   With `$PORT` in memory, a bind of it makes the socket virtual
//!   ([`super::vsock`]).
//! - `wasi:filesystem/preopens` `get-directories`: the dyno's files are
//!   copied into its `/app` on the blocking pool, never on a runtime
//!   thread, before wdyno's own preopen is handed out ([`super::files`]).
//! - `wasi:filesystem/types` `descriptor.write`, `write-via-stream`,
//!   `append-via-stream` and `filesystem-error-code`: a write refused for
//!   want of space is reported to the dyno's files, which log the disk
//!   quota line once. File streams (how wasi-libc's `write` works) are
//!   wrapped to see their errors; note that wasi-libc tells the guest `EIO`
//!   for any failed stream write, while `pwrite` (`descriptor.write`) gets
//!   `ENOSPC`.
//!
//! The names carry the WASI version wasmtime-wasi 48 defines; the linker
//! serves older 0.2 imports from the same definitions.

use std::sync::Arc;

use wasmtime::StoreContextMut;
use wasmtime::component::{Linker, Resource};
use wasmtime_wasi::TrappableError;
use wasmtime_wasi::filesystem::{Descriptor, WasiFilesystemView};
use wasmtime_wasi::p2::bindings::filesystem::preopens;
use wasmtime_wasi::p2::bindings::filesystem::types::{self as fs, HostDescriptor};
use wasmtime_wasi::p2::bindings::sockets::network::IpSocketAddress;
use wasmtime_wasi::p2::bindings::sockets::tcp::HostTcpSocket;
use wasmtime_wasi::p2::pipe::ClosedOutputStream;
use wasmtime_wasi::p2::{
    DynOutputStream, Network, OutputStream, Pollable, StreamError, StreamResult, TcpSocket,
};
use wasmtime_wasi::sockets::WasiSocketsView;

use super::fence::bind_address;
use super::files::DynoFiles;
use super::sandbox::DynoData;

/// The interfaces wasmtime-wasi 48 defines, as the Linker names them
/// (shadowed here and in [`super::fds`]).
pub(super) const TCP: &str = "wasi:sockets/tcp@0.2.12";
pub(super) const TCP_CREATE: &str = "wasi:sockets/tcp-create-socket@0.2.12";
pub(super) const UDP: &str = "wasi:sockets/udp@0.2.12";
pub(super) const UDP_CREATE: &str = "wasi:sockets/udp-create-socket@0.2.12";
pub(super) const FS_TYPES: &str = "wasi:filesystem/types@0.2.12";
pub(super) const PREOPENS: &str = "wasi:filesystem/preopens@0.2.12";

/// Shadows the calls above; the linker must allow shadowing.
pub(crate) fn add_to_linker(linker: &mut Linker<DynoData>) -> wasmtime::Result<()> {
    linker.instance(TCP)?.func_wrap_async(
        "[method]tcp-socket.start-bind",
        |mut cx: StoreContextMut<'_, DynoData>,
         (sock, net, addr): (Resource<TcpSocket>, Resource<Network>, IpSocketAddress)| {
            Box::new(async move {
                let at = bind_address(addr.into());
                let data = cx.data_mut();
                if super::vsock::is_virtual_bind(data, at) {
                    return Ok((super::vsock::bind(data, &sock, at)?,));
                }
                let addr = IpSocketAddress::from(at);
                let mut view = data.sockets();
                let res = HostTcpSocket::start_bind(&mut view, sock, net, addr).await;
                Ok((to_guest(res)?,))
            })
        },
    )?;

    linker.instance(PREOPENS)?.func_wrap_async(
        "get-directories",
        |mut cx: StoreContextMut<'_, DynoData>, (): ()| {
            Box::new(async move {
                let files = cx.data().files.clone();
                if !files.laid_out() {
                    // A failure is kept and reported by the call below.
                    let _ = tokio::task::spawn_blocking(move || files.lay_out()).await;
                }
                let dirs = preopens::Host::get_directories(cx.data_mut())?;
                Ok((dirs,))
            })
        },
    )?;

    let mut types = linker.instance(FS_TYPES)?;
    types.func_wrap_async(
        "[method]descriptor.write",
        |mut cx: StoreContextMut<'_, DynoData>,
         (fd, buf, offset): (Resource<Descriptor>, Vec<u8>, u64)| {
            Box::new(async move {
                let data = cx.data_mut();
                let res = HostDescriptor::write(&mut data.filesystem(), fd, buf, offset).await;
                let res = to_guest(res)?;
                if matches!(res, Err(fs::ErrorCode::InsufficientSpace)) {
                    data.files.out_of_space();
                }
                Ok((res,))
            })
        },
    )?;
    types.func_wrap(
        "[method]descriptor.write-via-stream",
        |mut cx: StoreContextMut<'_, DynoData>, (fd, offset): (Resource<Descriptor>, u64)| {
            let data = cx.data_mut();
            let res = HostDescriptor::write_via_stream(&mut data.filesystem(), fd, offset);
            Ok((watch_space(data, to_guest(res)?)?,))
        },
    )?;
    types.func_wrap(
        "[method]descriptor.append-via-stream",
        |mut cx: StoreContextMut<'_, DynoData>, (fd,): (Resource<Descriptor>,)| {
            let data = cx.data_mut();
            let res = HostDescriptor::append_via_stream(&mut data.filesystem(), fd);
            Ok((watch_space(data, to_guest(res)?)?,))
        },
    )?;
    types.func_wrap(
        "filesystem-error-code",
        |mut cx: StoreContextMut<'_, DynoData>, (err,): (Resource<wasmtime::Error>,)| {
            let data = cx.data_mut();
            let code = fs::Host::filesystem_error_code(&mut data.filesystem(), err)?;
            if code == Some(fs::ErrorCode::InsufficientSpace) {
                data.files.out_of_space();
            }
            Ok((code,))
        },
    )?;
    Ok(())
}

/// With a disk quota, wraps a new file output stream in [`SpaceWatched`].
fn watch_space<E>(
    data: &mut DynoData,
    res: Result<Resource<DynOutputStream>, E>,
) -> wasmtime::Result<Result<Resource<DynOutputStream>, E>> {
    if let (Ok(stream), true) = (&res, data.files.has_quota()) {
        let slot = data.table.get_mut(stream)?;
        let inner = std::mem::replace(slot, Box::new(ClosedOutputStream));
        *slot = Box::new(SpaceWatched {
            inner,
            files: data.files.clone(),
        });
    }
    Ok(res)
}

/// A file's output stream, watched for `ENOSPC` (reported as the quota
/// reached); everything else passes through.
struct SpaceWatched {
    inner: DynOutputStream,
    files: Arc<DynoFiles>,
}

impl SpaceWatched {
    fn seen<T>(&self, res: StreamResult<T>) -> StreamResult<T> {
        if let Err(StreamError::LastOperationFailed(e)) = &res
            && e.downcast_ref::<std::io::Error>()
                .and_then(std::io::Error::raw_os_error)
                == Some(libc::ENOSPC)
        {
            self.files.out_of_space();
        }
        res
    }
}

#[async_trait::async_trait]
impl Pollable for SpaceWatched {
    async fn ready(&mut self) {
        self.inner.ready().await
    }
}

#[async_trait::async_trait]
impl OutputStream for SpaceWatched {
    fn write(&mut self, bytes: bytes::Bytes) -> StreamResult<()> {
        let res = self.inner.write(bytes);
        self.seen(res)
    }
    fn flush(&mut self) -> StreamResult<()> {
        let res = self.inner.flush();
        self.seen(res)
    }
    fn check_write(&mut self) -> StreamResult<usize> {
        let res = self.inner.check_write();
        self.seen(res)
    }
    async fn blocking_write_and_flush(&mut self, bytes: bytes::Bytes) -> StreamResult<()> {
        let res = self.inner.blocking_write_and_flush(bytes).await;
        self.seen(res)
    }
    fn write_zeroes(&mut self, n: usize) -> StreamResult<()> {
        let res = self.inner.write_zeroes(n);
        self.seen(res)
    }
    async fn write_ready(&mut self) -> StreamResult<usize> {
        let res = self.inner.write_ready().await;
        self.seen(res)
    }
    async fn cancel(&mut self) {
        self.inner.cancel().await
    }
}

/// What the guest gets from a call: its error code, or a trap.
pub(super) fn to_guest<T, E>(res: Result<T, TrappableError<E>>) -> wasmtime::Result<Result<T, E>>
where
    E: std::error::Error + Send + Sync + 'static,
{
    match res {
        Ok(v) => Ok(Ok(v)),
        Err(e) => Ok(Err(e.downcast()?)),
    }
}
