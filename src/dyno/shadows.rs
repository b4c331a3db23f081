//! The few WASI host calls wdyno wraps around wasmtime-wasi's own.
//!
//! `socket_addr_check` can only allow or refuse, and wasmtime-wasi's
//! filesystem never says why a write failed to anyone but the guest. Where
//! the platform must do more, the call is shadowed in the `Linker` (defined
//! again over wasmtime-wasi's definition) and delegates to wasmtime-wasi's
//! implementation:
//! - `wasi:sockets/tcp` `start-bind`: the address is moved to loopback
//!   ([`bind_address`]) before the bind, so `0.0.0.0:$PORT` never listens on
//!   the network.
//! - `wasi:filesystem/types` `descriptor.write` and `filesystem-error-code`
//!   (how wasi-libc turns a failed file stream write into `errno`): an
//!   `insufficient-space` answer is reported to the dyno's files, which log
//!   the disk quota line once.
//!
//! The names carry the WASI version wasmtime-wasi 48 defines; the linker
//! serves older 0.2 imports from the same definitions.

use wasmtime::StoreContextMut;
use wasmtime::component::{Linker, Resource};
use wasmtime_wasi::TrappableError;
use wasmtime_wasi::filesystem::{Descriptor, WasiFilesystemView};
use wasmtime_wasi::p2::bindings::filesystem::types::{self as fs, HostDescriptor};
use wasmtime_wasi::p2::bindings::sockets::network::IpSocketAddress;
use wasmtime_wasi::p2::bindings::sockets::tcp::HostTcpSocket;
use wasmtime_wasi::p2::{Network, TcpSocket};
use wasmtime_wasi::sockets::WasiSocketsView;

use super::sandbox::{DynoData, bind_address};

const TCP: &str = "wasi:sockets/tcp@0.2.12";
const FS_TYPES: &str = "wasi:filesystem/types@0.2.12";

/// Shadows the calls above; the linker must allow shadowing.
pub(crate) fn add_to_linker(linker: &mut Linker<DynoData>) -> wasmtime::Result<()> {
    linker.instance(TCP)?.func_wrap_async(
        "[method]tcp-socket.start-bind",
        |mut cx: StoreContextMut<'_, DynoData>,
         (sock, net, addr): (Resource<TcpSocket>, Resource<Network>, IpSocketAddress)| {
            Box::new(async move {
                let addr = IpSocketAddress::from(bind_address(addr.into()));
                let mut view = cx.data_mut().sockets();
                let res = HostTcpSocket::start_bind(&mut view, sock, net, addr).await;
                Ok((to_guest(res)?,))
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

/// What the guest gets from a call: its error code, or a trap.
fn to_guest<T, E>(res: Result<T, TrappableError<E>>) -> wasmtime::Result<Result<T, E>>
where
    E: std::error::Error + Send + Sync + 'static,
{
    match res {
        Ok(v) => Ok(Ok(v)),
        Err(e) => Ok(Err(e.downcast()?)),
    }
}
