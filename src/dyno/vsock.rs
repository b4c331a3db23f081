//! `$PORT` in memory, as the guest sees it: the `wasi:sockets/tcp` calls
//! on a socket bound to `$PORT` are answered from the dyno's
//! [`MemPort`](super::door::MemPort) instead of the kernel; every other
//! socket (the dyno's egress, its binds of port 0) is wasmtime-wasi's.
//!
//! The guest's socket stays a real, unbound wasmtime-wasi socket (its
//! descriptor is counted against the dyno's budget like any); what it
//! became is kept beside it in [`DynoData`]'s `virt`, by resource index:
//! bound, listening, or one accepted connection. An accepted connection is
//! such a socket too, made as `create-tcp-socket` makes one, so option
//! calls (keep-alive, buffer sizes) reach a real socket and the fd budget
//! counts it as a real accept would. Its streams are the two pipes of the
//! connection. Entries go when the resource is dropped ([`forget`]).

use std::net::SocketAddr;
use std::sync::Arc;

use wasmtime::StoreContextMut;
use wasmtime::component::{Linker, Resource};
use wasmtime_wasi::p2::bindings::sockets::network::{ErrorCode, IpAddressFamily, IpSocketAddress};
use wasmtime_wasi::p2::bindings::sockets::tcp::{HostTcpSocket, ShutdownType};
use wasmtime_wasi::p2::bindings::sockets::tcp_create_socket;
use wasmtime_wasi::p2::{DynInputStream, DynOutputStream, DynPollable, TcpSocket, subscribe};
use wasmtime_wasi::sockets::WasiSocketsView;

use super::door::{Acceptable, DEFAULT_BACKLOG, MemPort};
use super::pipe::{Pipe, PipeReader, PipeWriter};
use super::sandbox::DynoData;
use super::shadows::{TCP, to_guest};

/// What a guest's socket on `$PORT` is.
pub(crate) enum VSock {
    Bound {
        addr: SocketAddr,
        /// `start-bind` done, `finish-bind` not yet.
        binding: bool,
        backlog: usize,
    },
    Listening {
        addr: SocketAddr,
        listening: bool,
    },
    Connected {
        local: SocketAddr,
        peer: SocketAddr,
        rx: Arc<Pipe>,
        tx: Arc<Pipe>,
    },
}

type Accepted = (
    Resource<TcpSocket>,
    Resource<DynInputStream>,
    Resource<DynOutputStream>,
);

/// Whether a bind of `addr` lands on the dyno's in-memory `$PORT`.
pub(crate) fn is_virtual_bind(data: &DynoData, addr: SocketAddr) -> bool {
    data.door.as_ref().is_some_and(|d| d.port() == addr.port())
}

/// The virtual half of `start-bind` (after [`is_virtual_bind`]).
pub(crate) fn bind(
    data: &mut DynoData,
    sock: &Resource<TcpSocket>,
    addr: SocketAddr,
) -> wasmtime::Result<Result<(), ErrorCode>> {
    let rep = sock.rep();
    if data.virt.contains_key(&rep) {
        return Ok(Err(ErrorCode::InvalidState));
    }
    let family = HostTcpSocket::address_family(&mut data.sockets(), Resource::new_borrow(rep))?;
    if matches!(family, IpAddressFamily::Ipv4) != addr.is_ipv4() {
        return Ok(Err(ErrorCode::InvalidArgument));
    }
    let taken = data
        .virt
        .values()
        .any(|v| matches!(v, VSock::Bound { .. } | VSock::Listening { .. }));
    if taken {
        return Ok(Err(ErrorCode::AddressInUse));
    }
    data.virt.insert(
        rep,
        VSock::Bound {
            addr,
            binding: true,
            backlog: DEFAULT_BACKLOG,
        },
    );
    Ok(Ok(()))
}

/// The door, when the store has one (it does whenever `virt` holds a
/// socket).
fn door(data: &DynoData) -> Arc<MemPort> {
    data.door.clone().expect("a virtual socket implies a door")
}

/// Shadows the calls that must know a socket is virtual; the linker must
/// allow shadowing, and `start-bind` and `accept` route here from
/// [`super::shadows`] and [`super::fds`].
pub(crate) fn add_to_linker(linker: &mut Linker<DynoData>) -> wasmtime::Result<()> {
    let mut tcp = linker.instance(TCP)?;
    tcp.func_wrap(
        "[method]tcp-socket.finish-bind",
        |mut cx: StoreContextMut<'_, DynoData>, (sock,): (Resource<TcpSocket>,)| {
            let data = cx.data_mut();
            match data.virt.get_mut(&sock.rep()) {
                Some(VSock::Bound { binding, .. }) if *binding => {
                    *binding = false;
                    Ok((Ok(()),))
                }
                Some(_) => Ok((Err(ErrorCode::NotInProgress),)),
                None => Ok((to_guest(HostTcpSocket::finish_bind(
                    &mut data.sockets(),
                    sock,
                ))?,)),
            }
        },
    )?;
    tcp.func_wrap_async(
        "[method]tcp-socket.start-listen",
        |mut cx: StoreContextMut<'_, DynoData>, (sock,): (Resource<TcpSocket>,)| {
            Box::new(async move {
                let data = cx.data_mut();
                let rep = sock.rep();
                let res = match data.virt.get(&rep) {
                    Some(VSock::Bound {
                        addr,
                        binding: false,
                        backlog,
                    }) => {
                        let (addr, backlog) = (*addr, *backlog);
                        door(data).listen(backlog);
                        data.virt.insert(
                            rep,
                            VSock::Listening {
                                addr,
                                listening: true,
                            },
                        );
                        // The dyno is `up` from here, as a real listen
                        // makes it.
                        data.signals.listening.send_replace(true);
                        Ok(())
                    }
                    Some(VSock::Bound { .. }) => Err(ErrorCode::ConcurrencyConflict),
                    Some(_) => Err(ErrorCode::InvalidState),
                    None => {
                        return Ok((to_guest(
                            HostTcpSocket::start_listen(&mut data.sockets(), sock).await,
                        )?,));
                    }
                };
                Ok((res,))
            })
        },
    )?;
    tcp.func_wrap(
        "[method]tcp-socket.finish-listen",
        |mut cx: StoreContextMut<'_, DynoData>, (sock,): (Resource<TcpSocket>,)| {
            let data = cx.data_mut();
            match data.virt.get_mut(&sock.rep()) {
                Some(VSock::Listening { listening, .. }) if *listening => {
                    *listening = false;
                    Ok((Ok(()),))
                }
                Some(_) => Ok((Err(ErrorCode::NotInProgress),)),
                None => Ok((to_guest(HostTcpSocket::finish_listen(
                    &mut data.sockets(),
                    sock,
                ))?,)),
            }
        },
    )?;
    tcp.func_wrap(
        "[method]tcp-socket.local-address",
        |mut cx: StoreContextMut<'_, DynoData>, (sock,): (Resource<TcpSocket>,)| {
            let data = cx.data_mut();
            let addr = match data.virt.get(&sock.rep()) {
                Some(VSock::Bound { addr, .. } | VSock::Listening { addr, .. }) => *addr,
                Some(VSock::Connected { local, .. }) => *local,
                None => {
                    return Ok((to_guest(HostTcpSocket::local_address(
                        &mut data.sockets(),
                        sock,
                    ))?,));
                }
            };
            Ok((Ok(IpSocketAddress::from(addr)),))
        },
    )?;
    tcp.func_wrap(
        "[method]tcp-socket.remote-address",
        |mut cx: StoreContextMut<'_, DynoData>, (sock,): (Resource<TcpSocket>,)| {
            let data = cx.data_mut();
            match data.virt.get(&sock.rep()) {
                Some(VSock::Connected { peer, .. }) => Ok((Ok(IpSocketAddress::from(*peer)),)),
                Some(_) => Ok((Err(ErrorCode::InvalidState),)),
                None => Ok((to_guest(HostTcpSocket::remote_address(
                    &mut data.sockets(),
                    sock,
                ))?,)),
            }
        },
    )?;
    tcp.func_wrap(
        "[method]tcp-socket.is-listening",
        |mut cx: StoreContextMut<'_, DynoData>, (sock,): (Resource<TcpSocket>,)| {
            let data = cx.data_mut();
            match data.virt.get(&sock.rep()) {
                Some(v) => Ok((matches!(v, VSock::Listening { .. }),)),
                None => Ok((HostTcpSocket::is_listening(&mut data.sockets(), sock)?,)),
            }
        },
    )?;
    tcp.func_wrap(
        "[method]tcp-socket.set-listen-backlog-size",
        |mut cx: StoreContextMut<'_, DynoData>, (sock, size): (Resource<TcpSocket>, u64)| {
            let data = cx.data_mut();
            if size == 0 && data.virt.contains_key(&sock.rep()) {
                return Ok((Err(ErrorCode::InvalidArgument),));
            }
            let size = usize::try_from(size).unwrap_or(usize::MAX).min(4096);
            match data.virt.get_mut(&sock.rep()) {
                Some(VSock::Bound { backlog, .. }) => {
                    *backlog = size;
                    Ok((Ok(()),))
                }
                Some(VSock::Listening { .. }) => {
                    door(data).set_backlog(size);
                    Ok((Ok(()),))
                }
                Some(VSock::Connected { .. }) => Ok((Err(ErrorCode::InvalidState),)),
                None => Ok((to_guest(HostTcpSocket::set_listen_backlog_size(
                    &mut data.sockets(),
                    sock,
                    size as u64,
                ))?,)),
            }
        },
    )?;
    tcp.func_wrap(
        "[method]tcp-socket.subscribe",
        |mut cx: StoreContextMut<'_, DynoData>, (sock,): (Resource<TcpSocket>,)| {
            let data = cx.data_mut();
            let pollable: Resource<DynPollable> = match data.virt.get(&sock.rep()) {
                // One pollable serves the bind, the listen and every
                // accept (wstd subscribes once, after `start-bind`): ready
                // at once until the socket listens, then when a
                // connection waits.
                Some(VSock::Bound { .. } | VSock::Listening { .. }) => {
                    let ready = data.table.push(Acceptable(door(data)))?;
                    subscribe(&mut data.table, ready)?
                }
                // Connected sockets are ready at once, as wasmtime-wasi's
                // are outside a connect or listen.
                _ => HostTcpSocket::subscribe(&mut data.sockets(), sock)?,
            };
            Ok((pollable,))
        },
    )?;
    tcp.func_wrap(
        "[method]tcp-socket.shutdown",
        |mut cx: StoreContextMut<'_, DynoData>,
         (sock, how): (Resource<TcpSocket>, ShutdownType)| {
            let data = cx.data_mut();
            match data.virt.get(&sock.rep()) {
                Some(VSock::Connected { rx, tx, .. }) => {
                    if matches!(how, ShutdownType::Receive | ShutdownType::Both) {
                        rx.close_read();
                    }
                    if matches!(how, ShutdownType::Send | ShutdownType::Both) {
                        tx.close_write();
                    }
                    Ok((Ok(()),))
                }
                Some(_) => Ok((Err(ErrorCode::InvalidState),)),
                None => Ok((to_guest(HostTcpSocket::shutdown(
                    &mut data.sockets(),
                    sock,
                    how,
                ))?,)),
            }
        },
    )?;
    tcp.func_wrap(
        "[method]tcp-socket.start-connect",
        |mut cx: StoreContextMut<'_, DynoData>,
         (sock, net, addr): (
            Resource<TcpSocket>,
            Resource<wasmtime_wasi::p2::Network>,
            IpSocketAddress,
        )| {
            let data = cx.data_mut();
            if data.virt.contains_key(&sock.rep()) {
                return Ok((Err(ErrorCode::InvalidState),));
            }
            Ok((to_guest(HostTcpSocket::start_connect(
                &mut data.sockets(),
                sock,
                net,
                addr,
            ))?,))
        },
    )?;
    Ok(())
}

/// The virtual half of `accept`: `None` when `listener` is not virtual.
/// The caller has taken a descriptor from the budget for the new socket.
pub(crate) fn accept(
    data: &mut DynoData,
    listener: &Resource<TcpSocket>,
) -> Option<wasmtime::Result<Result<Accepted, ErrorCode>>> {
    let addr = match data.virt.get(&listener.rep())? {
        VSock::Listening { addr, .. } => *addr,
        _ => return Some(Ok(Err(ErrorCode::InvalidState))),
    };
    let Some(conn) = door(data).try_accept() else {
        return Some(Ok(Err(ErrorCode::WouldBlock)));
    };
    Some(accepted(data, addr, conn))
}

fn accepted(
    data: &mut DynoData,
    local: SocketAddr,
    conn: super::door::Accepted,
) -> wasmtime::Result<Result<Accepted, ErrorCode>> {
    let family = match local {
        SocketAddr::V4(_) => IpAddressFamily::Ipv4,
        SocketAddr::V6(_) => IpAddressFamily::Ipv6,
    };
    let sock = match to_guest(tcp_create_socket::Host::create_tcp_socket(
        &mut data.sockets(),
        family,
    ))? {
        Ok(s) => s,
        Err(e) => return Ok(Err(e)),
    };
    let peer = match local {
        SocketAddr::V4(_) => conn.peer,
        SocketAddr::V6(_) => SocketAddr::from((std::net::Ipv6Addr::LOCALHOST, conn.peer.port())),
    };
    let input: DynInputStream = Box::new(PipeReader(conn.rx.clone()));
    let output: DynOutputStream = Box::new(PipeWriter(conn.tx.clone()));
    let input = data.table.push_child(input, &sock)?;
    let output = data.table.push_child(output, &sock)?;
    data.virt.insert(
        sock.rep(),
        VSock::Connected {
            local,
            peer,
            rx: conn.rx,
            tx: conn.tx,
        },
    );
    Ok(Ok((sock, input, output)))
}

/// A socket resource is dropped: a virtual listener closes its door.
pub(crate) fn forget(data: &mut DynoData, rep: u32) {
    if let Some(VSock::Listening { .. }) = data.virt.remove(&rep)
        && let Some(door) = &data.door
    {
        door.close();
    }
}
