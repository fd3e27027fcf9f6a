//! The bound on following 421 answers. No real cluster answers 421 over and over (a leader
//! named by a 421 serves the partition), so a stand-in HTTP server on a real socket plays a
//! broker whose view of the leader is wrong: every request is answered 421 naming itself.
//! The client must stop after its bound with an error naming the topic, the partition and the
//! leader, instead of looping.

use std::io::{BufRead, BufReader, Read, Write};
use std::net::TcpListener;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;

use broker_client::{encode_batch, BrokerClient, ClientConfig, Error};

/// Serves every request with 421 naming `url` as the leader; counts produce requests.
fn always_misdirected() -> (String, Arc<AtomicUsize>) {
    let listener = TcpListener::bind("127.0.0.1:0").expect("bind");
    let url = format!("http://{}", listener.local_addr().expect("addr"));
    let produces = Arc::new(AtomicUsize::new(0));
    let (leader, counted) = (url.clone(), produces.clone());
    std::thread::spawn(move || {
        for stream in listener.incoming() {
            let Ok(mut stream) = stream else { continue };
            let mut reader = BufReader::new(stream.try_clone().expect("clone"));
            let mut request_line = String::new();
            if reader.read_line(&mut request_line).is_err() {
                continue;
            }
            let mut length = 0usize;
            loop {
                let mut header = String::new();
                if reader.read_line(&mut header).unwrap_or(0) == 0 || header == "\r\n" {
                    break;
                }
                if let Some((name, value)) = header.split_once(':') {
                    if name.eq_ignore_ascii_case("content-length") {
                        length = value.trim().parse().unwrap_or(0);
                    }
                }
            }
            let mut body = vec![0; length];
            let _ = reader.read_exact(&mut body);
            if request_line.starts_with("POST") {
                counted.fetch_add(1, Ordering::SeqCst);
            }
            let problem = serde_json::json!({
                "type": "about:blank", "title": "Misdirected Request", "status": 421,
                "detail": "not the leader", "leader_id": 7, "leader_url": leader,
            })
            .to_string();
            let _ = write!(
                stream,
                "HTTP/1.1 421 Misdirected Request\r\ncontent-type: application/problem+json\r\n\
                 content-length: {}\r\nconnection: close\r\n\r\n{problem}",
                problem.len()
            );
        }
    });
    (url, produces)
}

#[test]
fn a_421_loop_stops_after_the_bound_with_an_error_naming_the_partition_and_leader() {
    let (url, produces) = always_misdirected();
    let client = BrokerClient::new(ClientConfig::new(url.clone()));
    let batch = encode_batch([(&b"k"[..], &b"{\"n\":1}"[..])]);
    match client.produce_batch("t", 2, &batch, None) {
        Err(e @ Error::Misdirected { .. }) => {
            let Error::Misdirected {
                topic,
                partition,
                leader,
                hops,
            } = &e
            else {
                unreachable!()
            };
            assert_eq!(
                (topic.as_str(), *partition, leader.as_str()),
                ("t", 2, url.as_str())
            );
            assert_eq!(*hops, 4, "three 421s followed, the fourth ends it");
            let text = e.to_string();
            assert!(text.contains("t/2") && text.contains(&url), "{text}");
        }
        other => panic!("expected Misdirected, got {other:?}"),
    }
    // The first send and the three it followed: no more.
    assert_eq!(produces.load(Ordering::SeqCst), 4);
}
