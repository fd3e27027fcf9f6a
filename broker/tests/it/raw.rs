//! HTTP/1.1 by hand over a socket (plain or TLS), for the tests that need what a client
//! library hides: a head without its body, a half-close, a byte at a time, timing the answer.

use std::io::{ErrorKind, Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::time::{Duration, Instant};

/// The address of a base URL `http://127.0.0.1:1234`.
pub fn addr(url: &str) -> SocketAddr {
    url.split("://")
        .nth(1)
        .and_then(|hostport| hostport.parse().ok())
        .unwrap_or_else(|| panic!("no address in {url}"))
}

pub fn connect(url: &str) -> TcpStream {
    let s = TcpStream::connect(addr(url)).expect("connect");
    s.set_read_timeout(Some(Duration::from_secs(20)))
        .expect("read timeout");
    s
}

/// Everything the peer sends until it closes (or resets, or the read timeout passes).
pub fn read_until_closed(stream: &mut impl Read) -> Vec<u8> {
    let mut out = Vec::new();
    let mut buf = [0u8; 16 * 1024];
    loop {
        match stream.read(&mut buf) {
            Ok(0) => return out,
            Ok(n) => out.extend_from_slice(&buf[..n]),
            Err(e) if e.kind() == ErrorKind::Interrupted => continue,
            Err(_) => return out,
        }
    }
}

/// Reads one response head (up to the blank line) as text.
pub fn read_head(stream: &mut impl Read) -> String {
    let mut head = Vec::new();
    let mut byte = [0u8; 1];
    while !head.ends_with(b"\r\n\r\n") {
        match stream.read(&mut byte) {
            Ok(1) => head.push(byte[0]),
            _ => break,
        }
    }
    String::from_utf8_lossy(&head).into_owned()
}

/// Reads one whole response with a `Content-Length` body: its head and its body.
pub fn read_response(stream: &mut impl Read) -> (String, Vec<u8>) {
    let head = read_head(stream);
    let len = header(&head, "content-length")
        .and_then(|v| v.parse::<usize>().ok())
        .unwrap_or(0);
    let mut body = vec![0u8; len];
    stream.read_exact(&mut body).expect("read the body");
    (head, body)
}

/// The status code of a response head (0 when there is none).
pub fn status(head: &str) -> u16 {
    head.strip_prefix("HTTP/1.1 ")
        .and_then(|rest| rest.get(..3))
        .and_then(|code| code.parse().ok())
        .unwrap_or(0)
}

/// A header's value in a response head, by case-insensitive name.
pub fn header<'a>(head: &'a str, name: &str) -> Option<&'a str> {
    head.lines().find_map(|line| {
        let (n, v) = line.split_once(':')?;
        n.trim().eq_ignore_ascii_case(name).then(|| v.trim())
    })
}

/// Sends `request` and times until the peer closes, which a test of a cut expects.
pub fn time_until_closed(stream: &mut TcpStream) -> Duration {
    let started = Instant::now();
    let _ = read_until_closed(stream);
    started.elapsed()
}

/// A whole request with `Connection: close`, and everything answered.
pub fn exchange(
    stream: &mut (impl Read + Write),
    method: &str,
    path: &str,
    extra: &str,
    body: &[u8],
) -> Vec<u8> {
    let head = format!(
        "{method} {path} HTTP/1.1\r\nHost: localhost\r\nConnection: close\r\nContent-Length: {}\r\n{extra}\r\n",
        body.len()
    );
    stream.write_all(head.as_bytes()).expect("write the head");
    stream.write_all(body).expect("write the body");
    stream.flush().expect("flush");
    read_until_closed(stream)
}
