//! Loopback ports for the harnesses: the range 18800–18899 only. The search starts at a random
//! port of the range and takes the first free one, so tests running side by side rarely race.

use std::net::{Ipv4Addr, SocketAddr, TcpListener};

/// First port of the range.
pub const FIRST: u16 = 18800;
/// Last port of the range.
pub const LAST: u16 = 18899;

/// A listener on the first free port of the range, on 127.0.0.1.
pub fn listen() -> std::io::Result<TcpListener> {
    let mut last = None;
    let span = u32::from(LAST - FIRST) + 1;
    let start = rand::random::<u32>() % span;
    for i in 0..span {
        let port = FIRST + ((start + i) % span) as u16;
        match TcpListener::bind(SocketAddr::from((Ipv4Addr::LOCALHOST, port))) {
            Ok(l) => return Ok(l),
            Err(e) => last = Some(e),
        }
    }
    Err(last.unwrap_or_else(|| std::io::Error::other("empty port range")))
}

/// A port of the range that was free a moment ago, for a child process to bind (`ember dev
/// --listen`). Two callers can race for it; the child then fails to start and says so.
pub fn free() -> std::io::Result<u16> {
    Ok(listen()?.local_addr()?.port())
}
