//! Init time of a Lambda bootstrap: from process start to its first request for an event
//! (`GET /2018-06-01/runtime/invocation/next`), against a fake runtime API on loopback, with
//! no network: the time a cold start spends in our code before it can take work.

use std::io::Read;
use std::net::TcpListener;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

/// Median of `runs` starts, in milliseconds. `binary` may end in `:handler`: the function the one
/// `bootstrap` serves, as Lambda tells it in `_HANDLER`.
pub fn measure(binary: &str, runs: usize) -> Result<f64, String> {
    let (binary, handler) = binary.rsplit_once(':').unwrap_or((binary, ""));
    let mut times = Vec::with_capacity(runs);
    for _ in 0..runs {
        let listener = TcpListener::bind("127.0.0.1:0").map_err(|e| e.to_string())?;
        let addr = listener.local_addr().map_err(|e| e.to_string())?;
        let start = Instant::now();
        let mut child = Command::new(binary)
            .env_clear()
            .env("AWS_LAMBDA_RUNTIME_API", addr.to_string())
            .env("_HANDLER", handler)
            .env("AWS_LAMBDA_FUNCTION_NAME", "init-probe")
            .env("AWS_LAMBDA_FUNCTION_MEMORY_SIZE", "256")
            .env("AWS_LAMBDA_FUNCTION_VERSION", "$LATEST")
            .env("AWS_LAMBDA_LOG_STREAM_NAME", "probe")
            .env("AWS_LAMBDA_LOG_GROUP_NAME", "probe")
            .env("AWS_REGION", "us-east-1")
            .env("AWS_ACCESS_KEY_ID", "probe")
            .env("AWS_SECRET_ACCESS_KEY", "probe")
            .env("STATE_TABLE", "t")
            .env("DEDUP_TABLE", "d")
            .env("INTAKE_QUEUE_URL", "https://sqs.us-east-1.amazonaws.com/1/q")
            .env("POLL_JOBS_QUEUE_URL", "https://sqs.us-east-1.amazonaws.com/1/j")
            .env("OUTPUT_QUEUE_URL", "https://sqs.us-east-1.amazonaws.com/1/o")
            .env("EVIDENCE_QUEUE_URL", "https://sqs.us-east-1.amazonaws.com/1/e")
            .env("ARTIFACT_BUCKET", "b")
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .map_err(|e| format!("cannot start {binary}: {e}"))?;
        listener.set_nonblocking(false).map_err(|e| e.to_string())?;
        // Bounded: a binary that never asks for an event fails the measurement after 10 s.
        let (tx, rx) = std::sync::mpsc::channel();
        std::thread::spawn(move || {
            if let Ok((mut s, _)) = listener.accept() {
                let mut buf = [0u8; 256];
                let n = s.read(&mut buf).unwrap_or(0);
                tx.send((Instant::now(), String::from_utf8_lossy(&buf[..n]).into_owned())).ok();
            }
        });
        let got = rx.recv_timeout(Duration::from_secs(10));
        child.kill().ok();
        child.wait().ok();
        let (at, request) = got.map_err(|_| format!("{binary} did not ask for an event within 10 s"))?;
        if !request.starts_with("GET /2018-06-01/runtime/invocation/next") {
            return Err(format!("unexpected first request: {request}"));
        }
        times.push((at - start).as_secs_f64() * 1e3);
    }
    times.sort_by(f64::total_cmp);
    Ok(times[times.len() / 2])
}
