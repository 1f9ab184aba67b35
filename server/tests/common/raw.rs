//! HTTP/1.1 by hand on a plain TCP connection, for what a client library would tidy away: bodies
//! that lie about their length, answers read while a body is still being sent, exact headers.

use std::io::{Read, Write};
use std::net::TcpStream;
use std::time::Duration;

use serde_json::Value;

use super::Sprig;

/// The server's peak resident set so far, in MiB.
pub fn peak_rss_mib(server: &Sprig) -> u64 {
    let status = std::fs::read_to_string(format!("/proc/{}/status", server.pid())).unwrap();
    let kib: u64 = status
        .lines()
        .find_map(|l| l.strip_prefix("VmHWM:"))
        .and_then(|v| v.trim().trim_end_matches("kB").trim().parse().ok())
        .expect("VmHWM in /proc/PID/status");
    kib / 1024
}

/// A connection to the server that gives up reading after 30 s.
pub fn connect(server: &Sprig) -> TcpStream {
    let stream = TcpStream::connect(server.address()).unwrap();
    stream
        .set_read_timeout(Some(Duration::from_secs(30)))
        .unwrap();
    stream
}

/// Sends `head` (and `body`, possibly only part of what the head declares) on a raw connection
/// and returns the status and body of the answer. Write errors after the head are expected when
/// the server answers early and closes.
pub fn raw_request(server: &Sprig, head: &str, body: &[u8]) -> (u16, String) {
    let mut stream = connect(server);
    stream.write_all(head.as_bytes()).unwrap();
    let _ = stream.write_all(body);
    read_response(&mut stream)
}

/// Reads one answer: up to the end of its `Content-Length` body, or to the close.
pub fn read_response(stream: &mut TcpStream) -> (u16, String) {
    let (status, _, body) = parse(&read_answer(stream, true));
    (status, String::from_utf8_lossy(&body).to_string())
}

/// One answer up to the end of its `Content-Length` body, with its headers (names lower-cased).
pub fn read_answer_with_headers(stream: &mut TcpStream) -> (u16, Vec<(String, String)>, Vec<u8>) {
    parse(&read_answer(stream, true))
}

/// An answer read to the close of the connection: status, headers (names lower-cased, in the
/// order sent) and every byte after the head, so that a body where none belongs shows.
pub fn response_to_close(stream: &mut TcpStream) -> (u16, Vec<(String, String)>, Vec<u8>) {
    parse(&read_answer(stream, false))
}

fn read_answer(stream: &mut TcpStream, stop_at_length: bool) -> Vec<u8> {
    let mut response = Vec::new();
    let mut buf = [0u8; 8192];
    loop {
        match stream.read(&mut buf) {
            Ok(0) => break,
            Ok(n) => {
                response.extend_from_slice(&buf[..n]);
                if !stop_at_length {
                    continue;
                }
                if let Some(end) = find(&response, b"\r\n\r\n") {
                    let head = String::from_utf8_lossy(&response[..end]).to_lowercase();
                    let length = head
                        .lines()
                        .find_map(|l| l.strip_prefix("content-length:"))
                        .and_then(|v| v.trim().parse::<usize>().ok());
                    if length.is_some_and(|len| response.len() >= end + 4 + len) {
                        break;
                    }
                }
            }
            Err(_) => break,
        }
    }
    response
}

fn parse(response: &[u8]) -> (u16, Vec<(String, String)>, Vec<u8>) {
    let end = find(response, b"\r\n\r\n")
        .unwrap_or_else(|| panic!("no HTTP head in {:?}", String::from_utf8_lossy(response)));
    let head = String::from_utf8_lossy(&response[..end]).to_string();
    let mut lines = head.lines();
    let status = lines
        .next()
        .and_then(|line| line.get(9..12))
        .and_then(|s| s.parse().ok())
        .unwrap_or_else(|| panic!("no HTTP status in {head:?}"));
    let headers = lines
        .filter_map(|line| line.split_once(':'))
        .map(|(name, value)| (name.trim().to_lowercase(), value.trim().to_string()))
        .collect();
    (status, headers, response[end + 4..].to_vec())
}

pub fn find(haystack: &[u8], needle: &[u8]) -> Option<usize> {
    haystack.windows(needle.len()).position(|w| w == needle)
}

/// The `error.code` of a JSON error body ("" when there is none).
pub fn code_of(body: &str) -> String {
    serde_json::from_str::<Value>(body).unwrap_or(Value::Null)["error"]["code"]
        .as_str()
        .unwrap_or_default()
        .to_string()
}
