//! Does what its arguments say and prints what happened, for the isolation
//! and limit tests. Steps are separated by `,`:
//! `bin/probe write /app/x A , read /app/x , sleep 1000`.

use std::io::Write;
use std::net::{SocketAddr, TcpListener, TcpStream, ToSocketAddrs, UdpSocket};
use std::time::Duration;

fn main() {
    let args: Vec<String> = std::env::args().skip(1).collect();
    for step in args.split(|a| a == ",") {
        let Some((cmd, rest)) = step.split_first() else { continue };
        let rest: Vec<&str> = rest.iter().map(String::as_str).collect();
        run(cmd, &rest);
        let _ = std::io::stdout().flush();
    }
}

fn err(e: std::io::Error) {
    println!("error: {:?}", e.kind());
}

fn run(cmd: &str, args: &[&str]) {
    match (cmd, args) {
        ("write", [path, text]) => match std::fs::write(path, text) {
            Ok(()) => println!("ok"),
            Err(e) => err(e),
        },
        ("read", [path]) => match std::fs::read_to_string(path) {
            Ok(text) => println!("{}", text.trim_end()),
            Err(e) => err(e),
        },
        ("ls", [path]) => match std::fs::read_dir(path) {
            Ok(entries) => {
                let mut names: Vec<String> = entries
                    .filter_map(|e| e.ok())
                    .map(|e| e.file_name().to_string_lossy().into_owned())
                    .collect();
                names.sort();
                for n in names {
                    println!("{n}");
                }
            }
            Err(e) => err(e),
        },
        ("env", []) => {
            let mut vars: Vec<String> = std::env::vars().map(|(k, v)| format!("{k}={v}")).collect();
            vars.sort();
            for v in vars {
                println!("{v}");
            }
        }
        ("bind", [port]) => match TcpListener::bind(format!("0.0.0.0:{port}")) {
            Ok(_) => println!("ok"),
            Err(e) => err(e),
        },
        ("connect", [addr]) => {
            let addr = match addr.to_socket_addrs().map(|mut a| a.next()) {
                Ok(Some(a)) => a,
                Ok(None) => return println!("error: NotFound"),
                Err(e) => return err(e),
            };
            match TcpStream::connect_timeout(&addr, Duration::from_secs(5)) {
                Ok(_) => println!("ok"),
                Err(e) => err(e),
            }
        }
        ("udp", [addr]) => {
            // One datagram out, one back (the test's echo socket answers).
            let addr = match addr.to_socket_addrs().map(|mut a| a.next()) {
                Ok(Some(a)) => a,
                Ok(None) => return println!("error: NotFound"),
                Err(e) => return err(e),
            };
            match udp_ping(addr) {
                Ok(reply) => println!("ok {reply}"),
                Err(e) => err(e),
            }
        }
        ("fill", [how, path, mib]) => {
            // Writes 1 MiB at a time until an error or `mib` MiB: through
            // `write` (a stream, in wasi-libc) or `pwrite`.
            let max: u64 = mib.parse().unwrap_or(0);
            let chunk = vec![7u8; 1 << 20];
            let mut file = match std::fs::File::create(path) {
                Ok(f) => f,
                Err(e) => return err(e),
            };
            let mut written = 0;
            let res = loop {
                if written == max {
                    break Ok(());
                }
                let res = match *how {
                    "pwrite" => pwrite_all(&file, &chunk, written << 20),
                    _ => file.write_all(&chunk),
                };
                match res {
                    Ok(()) => written += 1,
                    Err(e) => break Err(e),
                }
            };
            println!("wrote {written} MiB");
            match res {
                Ok(()) => println!("no error"),
                Err(e) => println!("error: {:?} (errno {:?})", e.kind(), e.raw_os_error()),
            }
        }
        ("symlink", [target, link]) => match symlink(target, link) {
            Ok(()) => println!("ok"),
            Err(e) => err(e),
        },
        ("exit", [code]) => {
            println!("exiting {code}");
            eprintln!("err line");
            let _ = std::io::stdout().flush();
            // std::process::exit only carries ok/err on wasip2; the status
            // itself goes through wasi:cli/exit's exit-with-code.
            wasip2::cli::exit::exit_with_code(code.parse().unwrap_or(1));
            unreachable!("exit-with-code returned");
        }
        ("lines", [n]) => {
            for i in 1..=n.parse::<u32>().unwrap_or(0) {
                if i % 2 == 1 {
                    println!("out {i}");
                    let _ = std::io::stdout().flush();
                } else {
                    eprintln!("err {i}");
                }
            }
        }
        ("loop", []) => {
            println!("looping");
            let _ = std::io::stdout().flush();
            let mut x = 0u64;
            loop {
                x = std::hint::black_box(x.wrapping_add(1));
            }
        }
        ("membomb", []) => {
            println!("allocating");
            let _ = std::io::stdout().flush();
            let mut hoard: Vec<Vec<u8>> = Vec::new();
            loop {
                hoard.push(vec![1u8; 16 << 20]);
                std::hint::black_box(&hoard);
            }
        }
        ("cat", []) => {
            // Echoes stdin, line by line, until EOF.
            let mut line = String::new();
            while std::io::stdin().read_line(&mut line).is_ok_and(|n| n > 0) {
                print!("{line}");
                line.clear();
            }
        }
        ("sleep", [ms]) => {
            std::thread::sleep(Duration::from_millis(ms.parse().unwrap_or(0)));
            println!("slept");
        }
        ("random", []) => {
            use std::hash::BuildHasher;
            let a = std::collections::hash_map::RandomState::new().hash_one(0u64);
            println!("{a:016x}");
        }
        ("now", []) => {
            let now = std::time::SystemTime::now()
                .duration_since(std::time::UNIX_EPOCH)
                .unwrap_or_default();
            println!("{}", now.as_secs());
        }
        _ => {
            eprintln!("probe: unknown step {cmd} {args:?}");
            std::process::exit(2);
        }
    }
}

fn udp_ping(to: SocketAddr) -> std::io::Result<String> {
    let local = if to.is_ipv4() { "0.0.0.0:0" } else { "[::]:0" };
    let sock = UdpSocket::bind(local)?;
    sock.send_to(b"ping", to)?;
    let mut buf = [0u8; 64];
    let (n, _) = sock.recv_from(&mut buf)?;
    Ok(String::from_utf8_lossy(&buf[..n]).into_owned())
}

/// `pwrite(2)` from wasi-libc (positioned writes are still unstable in
/// std on wasi), until all of `buf` is written.
fn pwrite_all(file: &std::fs::File, mut buf: &[u8], mut at: u64) -> std::io::Result<()> {
    use std::os::fd::AsRawFd;
    unsafe extern "C" {
        fn pwrite(fd: i32, buf: *const u8, len: usize, offset: i64) -> isize;
    }
    while !buf.is_empty() {
        // SAFETY: `buf` is valid for `len` bytes; the fd is open.
        let n = unsafe { pwrite(file.as_raw_fd(), buf.as_ptr(), buf.len(), at as i64) };
        if n < 0 {
            return Err(std::io::Error::last_os_error());
        }
        buf = &buf[n as usize..];
        at += n as u64;
    }
    Ok(())
}

/// `symlink(2)` from wasi-libc (std's wrapper is still unstable).
fn symlink(target: &str, link: &str) -> std::io::Result<()> {
    unsafe extern "C" {
        fn symlink(target: *const std::ffi::c_char, link: *const std::ffi::c_char) -> i32;
    }
    let target = std::ffi::CString::new(target)?;
    let link = std::ffi::CString::new(link)?;
    // SAFETY: both are valid NUL-terminated strings for the call's duration.
    match unsafe { symlink(target.as_ptr(), link.as_ptr()) } {
        0 => Ok(()),
        _ => Err(std::io::Error::last_os_error()),
    }
}
