//! Linked into every wasm32-wasip2 build by the Rust buildpack (with
//! `--wrap=fcntl`): makes `fcntl(fd, F_SETFL, flags)` work on sockets.
//!
//! The wasi-libc inside Rust's wasm32-wasip2 target before wasi-sdk 31
//! (Rust 1.95 ships one) implements `F_SETFL` for files only; on a socket it
//! answers `EINVAL` without calling the host. mio sets `O_NONBLOCK` on every
//! accepted connection that way, so a tokio server (axum, hyper, warp)
//! accepted each connection, failed with "Invalid argument (os error 28)"
//! and closed it unanswered. wasi-libc fixed this in wasi-sdk 31 (sockets
//! got `fcntl_setfl`); until the toolchain has it, this wrapper gives
//! `F_SETFL` the meaning that fix gives it on sockets: `O_NONBLOCK` set or
//! cleared, through `ioctl(FIONBIO)`, which this wasi-libc does implement.
//!
//! Every other call, and every `F_SETFL` that libc itself accepts, goes to
//! libc unchanged, so a toolchain with the fix never reaches the fallback.
#![no_std]

use core::ffi::{c_int, c_void};

// Values from wasi-libc's public headers (fcntl.h, sys/ioctl.h, errno.h).
const F_SETFL: c_int = 4;
const O_NONBLOCK: c_int = 1 << 2;
const FIONBIO: c_int = 2;
const EINVAL: c_int = 28;

unsafe extern "C" {
    /// libc's own `fcntl`, named so by `--wrap`. In the wasm C ABI a
    /// variadic call passes one pointer to its packed arguments, so this
    /// declaration has the same signature as `fcntl(int, int, ...)` and
    /// forwards the caller's arguments untouched.
    fn __real_fcntl(fd: c_int, cmd: c_int, args: *const c_void) -> c_int;
    fn ioctl(fd: c_int, request: c_int, ...) -> c_int;
    fn __errno_location() -> *mut c_int;
}

/// `fcntl` as the program sees it.
///
/// # Safety
/// The caller's contract of `fcntl(2)`: `args` points at the packed
/// variadic arguments the command takes.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn __wrap_fcntl(fd: c_int, cmd: c_int, args: *const c_void) -> c_int {
    let res = unsafe { __real_fcntl(fd, cmd, args) };
    if res != -1 || cmd != F_SETFL || unsafe { *__errno_location() } != EINVAL {
        return res;
    }
    let flags = unsafe { *(args as *const c_int) };
    let nonblocking: c_int = (flags & O_NONBLOCK != 0).into();
    unsafe { ioctl(fd, FIONBIO, &nonblocking as *const c_int) }
}
