//! The HTTP executor against a real HTTP server on loopback, and against
//! loopback peers that never let a connect complete (a full accept queue,
//! a TLS peer that never answers).

use std::net::SocketAddr;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use chrono::Utc;
use driftcron::scheduler::Outcome;
use driftcron::scheduler::executor::{ExecRequest, ExecShared, HTTP_CONNECT_TIMEOUT, run};
use driftcron::snapshot::{Snapshot, SourceFile};
use driftcron::spec::{LoadOptions, load};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpSocket, TcpStream};

/// A minimal HTTP/1.1 server: answers by path, records each request's head
/// and body.
async fn server() -> (String, Arc<Mutex<Vec<String>>>) {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let seen = Arc::new(Mutex::new(Vec::new()));
    let log = seen.clone();
    tokio::spawn(async move {
        loop {
            let Ok((mut sock, _)) = listener.accept().await else {
                return;
            };
            let log = log.clone();
            tokio::spawn(async move {
                let mut buf = Vec::new();
                let mut chunk = [0u8; 4096];
                // Read the head, then the body by Content-Length.
                let head_end = loop {
                    let n = sock.read(&mut chunk).await.unwrap_or(0);
                    if n == 0 {
                        return;
                    }
                    buf.extend_from_slice(&chunk[..n]);
                    if let Some(p) = buf.windows(4).position(|w| w == b"\r\n\r\n") {
                        break p + 4;
                    }
                };
                let head = String::from_utf8_lossy(&buf[..head_end]).to_string();
                let len: usize = head
                    .lines()
                    .find_map(|l| {
                        l.to_ascii_lowercase()
                            .strip_prefix("content-length:")
                            .map(|v| v.trim().parse().unwrap())
                    })
                    .unwrap_or(0);
                while buf.len() < head_end + len {
                    let n = sock.read(&mut chunk).await.unwrap_or(0);
                    if n == 0 {
                        break;
                    }
                    buf.extend_from_slice(&chunk[..n]);
                }
                log.lock()
                    .unwrap()
                    .push(String::from_utf8_lossy(&buf).to_string());
                let path = head.split_whitespace().nth(1).unwrap_or("/").to_string();
                let (status, body) = match path.as_str() {
                    "/ok" => ("200 OK", "hello".to_string()),
                    "/created" => ("201 Created", "made".to_string()),
                    "/fail" => ("500 Internal Server Error", "boom".to_string()),
                    "/big" => ("200 OK", "x".repeat(10_000) + "END"),
                    "/slow" => {
                        tokio::time::sleep(Duration::from_secs(30)).await;
                        ("200 OK", String::new())
                    }
                    _ => ("404 Not Found", String::new()),
                };
                let resp = format!(
                    "HTTP/1.1 {status}\r\ncontent-length: {}\r\nconnection: close\r\n\r\n{body}",
                    body.len()
                );
                let _ = sock.write_all(resp.as_bytes()).await;
            });
        }
    });
    (format!("http://{addr}"), seen)
}

fn request(toml: &str) -> (ExecRequest, Arc<ExecShared>) {
    let snapshot = Snapshot {
        revision: "r".into(),
        files: vec![SourceFile {
            path: "ping.toml".into(),
            bytes: toml.as_bytes().to_vec(),
        }],
        problems: vec![],
    };
    let loaded = load(
        &snapshot,
        &LoadOptions {
            now: Utc::now(),
            max_jobs: None,
        },
    );
    assert!(loaded.is_valid(), "{:#?}", loaded.diagnostics);
    let spec = loaded.desired.jobs.into_values().next().unwrap();
    let shared = ExecShared::new(Duration::from_millis(1000));
    let req = ExecRequest {
        scheduled_at: "2026-01-01T00:00:00Z".parse().unwrap(),
        attempt: 1,
        revision: "r".into(),
        spec,
        shared: Arc::clone(&shared),
    };
    (req, shared)
}

fn job(url: &str, extra: &str) -> String {
    format!("schedule = \"@hourly\"\n{extra}\n[http]\nurl = \"{url}\"\n")
}

#[tokio::test]
async fn success_failure_and_expected_statuses() {
    let (base, _) = server().await;
    let r = run(request(&job(&format!("{base}/ok"), "")).0).await;
    assert_eq!(r.outcome, Outcome::Succeeded);
    assert_eq!(String::from_utf8_lossy(&r.output), "HTTP 200 OK\nhello");

    let r = run(request(&job(&format!("{base}/fail"), "")).0).await;
    assert_eq!(
        r.outcome,
        Outcome::Failed {
            code: Some(500),
            signal: None
        }
    );

    let r = run(request(&format!(
        "schedule = \"@hourly\"\n[http]\nurl = \"{base}/created\"\nexpect_status = [201]\n"
    ))
    .0)
    .await;
    assert_eq!(r.outcome, Outcome::Succeeded);
    let r = run(request(&format!(
        "schedule = \"@hourly\"\n[http]\nurl = \"{base}/ok\"\nexpect_status = [204]\n"
    ))
    .0)
    .await;
    assert_eq!(
        r.outcome,
        Outcome::Failed {
            code: Some(200),
            signal: None
        }
    );
}

#[tokio::test]
async fn method_headers_body_and_run_identity_are_sent() {
    let (base, seen) = server().await;
    let toml = format!(
        "schedule = \"@hourly\"\n[http]\nurl = \"{base}/ok\"\nmethod = \"POST\"\nbody = '{{\"sweep\": true}}'\nheaders = {{ Authorization = \"Bearer t0k\" }}\n"
    );
    let r = run(request(&toml).0).await;
    assert_eq!(r.outcome, Outcome::Succeeded);
    let reqs = seen.lock().unwrap().clone();
    let got = reqs[0].to_ascii_lowercase();
    assert!(reqs[0].starts_with("POST /ok HTTP/1.1\r\n"), "{}", reqs[0]);
    assert!(got.contains("authorization: bearer t0k"), "{got}");
    assert!(
        got.contains("x-driftcron-run-id: ping@2026-01-01t00:00:00z"),
        "{got}"
    );
    assert!(got.contains("x-driftcron-job: ping"), "{got}");
    assert!(reqs[0].ends_with("{\"sweep\": true}"), "{}", reqs[0]);
}

#[tokio::test]
async fn timeout_cancel_refused_and_output_cap() {
    let (base, _) = server().await;
    let r = run(request(&job(&format!("{base}/slow"), "timeout = \"300ms\"")).0).await;
    assert_eq!(r.outcome, Outcome::TimedOut);

    let (req, cancel) = request(&job(&format!("{base}/slow"), ""));
    let t = tokio::spawn(run(req));
    tokio::time::sleep(Duration::from_millis(100)).await;
    cancel.cancel();
    let r = tokio::time::timeout(Duration::from_secs(5), t)
        .await
        .unwrap()
        .unwrap();
    assert_eq!(r.outcome, Outcome::Cancelled);

    // A port nobody listens on: bind, note it, close.
    let port = TcpListener::bind("127.0.0.1:0")
        .await
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    // Bounded: a test running alongside may bind the freed port and
    // accept without answering.
    let r = tokio::time::timeout(
        Duration::from_secs(30),
        run(request(&job(&format!("http://127.0.0.1:{port}/"), "")).0),
    )
    .await
    .expect("a refused connect fails at once");
    assert_eq!(
        r.outcome,
        Outcome::Failed {
            code: None,
            signal: None
        }
    );
    assert!(
        String::from_utf8_lossy(&r.output)
            .to_lowercase()
            .contains("connect"),
        "{}",
        String::from_utf8_lossy(&r.output)
    );

    let r = run(request(&job(&format!("{base}/big"), "max_output = \"100B\"")).0).await;
    assert_eq!(r.output.len(), 100);
    assert!(r.output.ends_with(b"END"));
    assert_eq!(
        r.output_dropped,
        ("HTTP 200 OK\n".len() + 10_003 - 100) as u64
    );
}

/// A loopback address whose connects hang, as a blackholed one's do: a
/// listener that never accepts, its accept queue already full. Linux drops
/// the SYN of a connect to a full queue, whatever else is configured, so
/// the connecting side resends it and never hears back. Returns what must
/// be kept alive along with the address.
async fn blackhole() -> (SocketAddr, TcpListener, Vec<TcpStream>) {
    let socket = TcpSocket::new_v4().unwrap();
    socket.bind("127.0.0.1:0".parse().unwrap()).unwrap();
    // Linux counts a queue as full once it holds more than the backlog:
    // with 0, one connection fills it.
    let listener = socket.listen(0).unwrap();
    let addr = listener.local_addr().unwrap();
    let mut queued = Vec::new();
    // Connect until a connect does not complete: the queue is full then,
    // and stays so, since nothing accepts.
    // A loopback connect to a queue with room completes in well under a
    // millisecond; the probe is long so that a loaded machine's slow
    // connect is not taken for a full queue.
    while let Ok(connected) =
        tokio::time::timeout(Duration::from_secs(2), TcpStream::connect(addr)).await
    {
        queued.push(connected.expect("connecting to the listener"));
        assert!(queued.len() < 16, "the accept queue never filled");
    }
    // One queued connection is what fills a backlog of 0: none means the
    // first connect was merely slow, and the queue is not full.
    assert!(
        !queued.is_empty(),
        "the first connect to the listener timed out"
    );
    (addr, listener, queued)
}

/// A TLS server that accepts and then says nothing: the handshake never
/// completes. The accepted connections are kept open for the test's life.
async fn silent_tls_server() -> SocketAddr {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(async move {
        let mut held = Vec::new();
        while let Ok((sock, _)) = listener.accept().await {
            held.push(sock);
        }
    });
    addr
}

/// Runs `toml`'s request; the outcome, its output as text, and how long it
/// took. Panics if it is not over well after every bound it should meet.
async fn timed_run(toml: String) -> (Outcome, String, Duration) {
    let t0 = Instant::now();
    let r = tokio::time::timeout(
        HTTP_CONNECT_TIMEOUT + Duration::from_secs(10),
        run(request(&toml).0),
    )
    .await
    .unwrap_or_else(|_| panic!("the run is not bounded:\n{toml}"));
    (
        r.outcome,
        String::from_utf8_lossy(&r.output).into_owned(),
        t0.elapsed(),
    )
}

/// `timeout = "none"` leaves a request unbounded once connected, but never
/// the connect: a blackholed address, or a server that never completes the
/// TLS handshake, fails the run after HTTP_CONNECT_TIMEOUT (a failure, not
/// the job's own timeout). A job's shorter `timeout` still comes first.
/// The three run side by side: the test takes the bound once.
#[tokio::test]
async fn a_connect_that_never_completes_is_bounded_without_a_timeout() {
    let (hole, _listener, _queued) = blackhole().await;
    let tls = silent_tls_server().await;
    let ((blackholed, out, took), (stalled, tls_out, tls_took), (timed_out, _, short)) = tokio::join!(
        timed_run(job(&format!("http://{hole}/"), "timeout = \"none\"")),
        timed_run(job(&format!("https://{tls}/"), "timeout = \"none\"")),
        timed_run(job(&format!("http://{hole}/"), "timeout = \"1s\"")),
    );

    let failed = Outcome::Failed {
        code: None,
        signal: None,
    };
    for (what, outcome, out, took) in [
        ("blackholed connect", blackholed, out, took),
        ("stalled TLS handshake", stalled, tls_out, tls_took),
    ] {
        assert_eq!(outcome, failed, "{what}: {out}");
        assert!(out.contains("connect timed out"), "{what}: {out}");
        assert!(
            took >= HTTP_CONNECT_TIMEOUT,
            "{what}: over before the bound, in {took:?}: {out}"
        );
        assert!(
            took < HTTP_CONNECT_TIMEOUT + Duration::from_secs(3),
            "{what}: took {took:?}"
        );
    }
    assert_eq!(timed_out, Outcome::TimedOut);
    assert!(
        short >= Duration::from_secs(1) && short < HTTP_CONNECT_TIMEOUT,
        "the job's 1 s timeout took {short:?}"
    );
}
