//! What the tests that run `inkling serve` as a process share. Each test binary uses part of
//! it, hence the `dead_code` allowance.
#![allow(dead_code)]

use serde_json::Value;
use std::io::{BufRead, BufReader, Read, Write};
use std::net::TcpStream;
use std::process::{Child, Command, Stdio};
use std::time::Duration;

/// Spawns `serve` (an `inkling ... serve --port 0 ...` command), without a remote backend
/// from the environment, and waits for the line with its URL; stdout is read on so the
/// server never blocks on a full pipe. The child, and the URL without its trailing slash.
pub fn spawn_server(serve: &mut Command) -> (Child, String) {
    let mut child = serve.env_remove("INKLING_BACKEND").env_remove("INKLING_BASE_URL").stdout(Stdio::piped()).stderr(Stdio::inherit()).spawn().unwrap();
    let mut lines = BufReader::new(child.stdout.take().unwrap()).lines();
    let line = lines.next().expect("the server prints its URL").unwrap();
    let url = line.split_whitespace().find(|w| w.starts_with("http://")).expect("a URL on the first line").trim_end_matches('/').to_string();
    std::thread::spawn(move || for _ in lines {});
    (child, url)
}

/// One request to the server at `url`: the status and the JSON body (`Null` when there is
/// none). A few lines of HTTP/1.1: the server's JSON answers carry their length, and
/// `Connection: close` ends each exchange.
pub fn call(url: &str, method: &str, path: &str, body: Option<Value>) -> (u16, Value) {
    let addr = url.trim_start_matches("http://");
    let mut stream = TcpStream::connect(addr).unwrap();
    stream.set_read_timeout(Some(Duration::from_secs(300))).unwrap();
    let body = body.map(|b| b.to_string()).unwrap_or_default();
    write!(stream, "{method} {path} HTTP/1.1\r\nHost: {addr}\r\nConnection: close\r\nContent-Type: application/json\r\nContent-Length: {}\r\n\r\n{body}", body.len()).unwrap();
    let mut reply = String::new();
    stream.read_to_string(&mut reply).unwrap();
    let (head, text) = reply.split_once("\r\n\r\n").unwrap_or((&reply, ""));
    let status = head.split_whitespace().nth(1).and_then(|c| c.parse().ok()).unwrap_or(0);
    (status, serde_json::from_str(text).unwrap_or(Value::Null))
}

/// A server process, killed when dropped.
pub struct Server {
    pub child: Child,
    pub url: String,
}

impl Server {
    pub fn start(serve: &mut Command) -> Self {
        let (child, url) = spawn_server(serve);
        Self { child, url }
    }

    pub fn call(&self, method: &str, path: &str, body: Option<Value>) -> (u16, Value) {
        call(&self.url, method, path, body)
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}
