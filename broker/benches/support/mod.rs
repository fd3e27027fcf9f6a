//! What the broker's benches share (a module of each bench that uses it, not a bench of its
//! own): a minimal HTTP/1.1 keep-alive client on a std `TcpStream`, so the load generator costs
//! little of the CPU the brokers share.

// Each bench is its own crate and uses only part of this module.
#![allow(dead_code)]

use std::io::{self, Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::time::Duration;

use broker_log::record::encode;
use broker_log::Record;
use serde_json::Value;

/// The ~400-byte telemetry value of message `i`, its JSON object opened by `prefix` (empty, or
/// fields followed by a comma).
pub fn telemetry(i: usize, prefix: &str) -> (String, String) {
    let gpu = format!("GPU-{:08x}-4a1b-9c2d-{:012x}", i % 247, i * 7919);
    let value = format!(
        r#"{{{prefix}"ts":"2025-07-18T13:42:33.{i:06}Z","source_ts":"2025-07-18T13:42:33Z","metric":"DCGM_FI_DEV_GPU_UTIL","gpu_uuid":"{gpu}","gpu_index":{},"device":"nvidia{}","model":"NVIDIA H100 80GB HBM3","hostname":"mtv5-dgx1-hgpu-{:03}","container":"","pod":"","namespace":null,"value":{}.5,"labels":{{"DCGM_FI_DRIVER_VERSION":"535.129.03","pci_bus_id":"00000000:1A:00.0"}}}}"#,
        i % 8,
        i % 8,
        i % 31,
        i % 100
    );
    (gpu, value)
}

/// One record batch (`segments-format.md`) of `(key, value)` messages, as a producer sends it.
pub fn encode_batch(messages: &[(String, String)]) -> Vec<u8> {
    let records: Vec<Record<'_>> = messages
        .iter()
        .map(|(k, v)| Record {
            timestamp_ms: 0,
            key: Some(k.as_bytes()),
            value: v.as_bytes(),
        })
        .collect();
    encode(0, &records, None)
}

/// One HTTP answer.
pub struct Resp {
    pub status: u16,
    pub head: String,
    pub body: Vec<u8>,
}

impl Resp {
    pub fn text(&self) -> String {
        String::from_utf8_lossy(&self.body).into_owned()
    }

    pub fn json(&self) -> Value {
        serde_json::from_slice(&self.body).unwrap_or(Value::Null)
    }

    pub fn header(&self, name: &str) -> Option<&str> {
        self.head.lines().find_map(|l| {
            let (n, v) = l.split_once(':')?;
            n.trim().eq_ignore_ascii_case(name).then_some(v.trim())
        })
    }

    pub fn header_u64(&self, name: &str) -> Option<u64> {
        self.header(name)?.parse().ok()
    }
}

pub fn shown(r: &io::Result<Resp>) -> String {
    match r {
        Ok(r) => format!("{} {}", r.status, r.text()),
        Err(e) => e.to_string(),
    }
}

/// One request on a new connection.
pub fn request(
    addr: SocketAddr,
    method: &str,
    path: &str,
    headers: &[(&str, &str)],
    body: &[u8],
) -> io::Result<Resp> {
    Conn::open(addr)?.request(method, path, headers, body)
}

/// A minimal HTTP/1.1 keep-alive client connection (answers with a Content-Length).
pub struct Conn {
    stream: TcpStream,
    host: String,
    buf: Vec<u8>,
    chunk: Vec<u8>,
}

impl Conn {
    pub fn open(addr: SocketAddr) -> io::Result<Conn> {
        let stream = TcpStream::connect_timeout(&addr, Duration::from_secs(2))?;
        stream.set_nodelay(true)?;
        // Longer than any answer takes: a produce waits at most 2 × --replica-lag-ms (10 s).
        stream.set_read_timeout(Some(Duration::from_secs(30)))?;
        Ok(Conn {
            stream,
            host: addr.to_string(),
            buf: Vec::with_capacity(1 << 20),
            chunk: vec![0; 256 * 1024],
        })
    }

    /// Sends one request; returns status, header block and body.
    pub fn request(
        &mut self,
        method: &str,
        path: &str,
        headers: &[(&str, &str)],
        body: &[u8],
    ) -> io::Result<Resp> {
        let mut head = format!(
            "{method} {path} HTTP/1.1\r\nHost: {}\r\nContent-Length: {}\r\n",
            self.host,
            body.len()
        );
        for (k, v) in headers {
            head.push_str(&format!("{k}: {v}\r\n"));
        }
        head.push_str("\r\n");
        self.stream.write_all(head.as_bytes())?;
        self.stream.write_all(body)?;
        self.read_response()
    }

    fn read_response(&mut self) -> io::Result<Resp> {
        let head_end = loop {
            if let Some(i) = find(&self.buf, b"\r\n\r\n") {
                break i + 4;
            }
            self.fill()?;
        };
        let head = String::from_utf8_lossy(&self.buf[..head_end]).into_owned();
        let bad = |what: &str| io::Error::new(io::ErrorKind::InvalidData, what.to_string());
        let status = head
            .split(' ')
            .nth(1)
            .and_then(|s| s.parse().ok())
            .ok_or_else(|| bad("no status"))?;
        let mut resp = Resp {
            status,
            head,
            body: Vec::new(),
        };
        let len = resp.header_u64("content-length").unwrap_or(0) as usize;
        while self.buf.len() < head_end + len {
            self.fill()?;
        }
        resp.body = self.buf[head_end..head_end + len].to_vec();
        self.buf.drain(..head_end + len);
        Ok(resp)
    }

    fn fill(&mut self) -> io::Result<()> {
        let n = self.stream.read(&mut self.chunk)?;
        if n == 0 {
            return Err(io::ErrorKind::UnexpectedEof.into());
        }
        self.buf.extend_from_slice(&self.chunk[..n]);
        Ok(())
    }
}

pub fn find(hay: &[u8], needle: &[u8]) -> Option<usize> {
    hay.windows(needle.len()).position(|w| w == needle)
}

impl Conn {
    /// [`Conn::open`], panicking: for benches whose every failure is fatal.
    pub fn connect(addr: SocketAddr) -> Conn {
        Conn::open(addr).expect("connect")
    }

    /// [`Conn::request`] as `(status, head, body)`, panicking on a transport failure.
    pub fn call(
        &mut self,
        method: &str,
        path: &str,
        headers: &[(&str, &str)],
        body: &[u8],
    ) -> (u16, String, Vec<u8>) {
        let r = self.request(method, path, headers, body).expect("request");
        (r.status, r.head, r.body)
    }
}
