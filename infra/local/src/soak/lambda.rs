//! A function as Lambda runs it: the release `bootstrap` as its own process, fed events through
//! the Lambda Runtime API (served here on loopback), killed and replaced like a sandbox.
//! Protocol: https://docs.aws.amazon.com/lambda/latest/dg/runtimes-api.html

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::sync::Arc;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use axum::body::Bytes;
use axum::extract::{Path as UrlPath, State};
use axum::http::{HeaderMap, HeaderValue, StatusCode};
use axum::routing::{get, post};
use axum::Router;
use tokio::process::{Child, Command};
use tokio::sync::{mpsc, oneshot, Mutex};

/// What an invocation came to.
#[derive(Debug)]
pub enum Outcome {
    /// The handler's response (`/response`).
    Response(serde_json::Value),
    /// The handler's error (`/error`) or an init error.
    Error(String),
    /// We killed the process (SIGKILL) before it answered.
    Killed,
    /// The process ended on its own before answering.
    Crashed(String),
}

struct Invocation {
    event: Vec<u8>,
    deadline: SystemTime,
    reply: oneshot::Sender<Outcome>,
}

struct Api {
    next: Mutex<mpsc::Receiver<Invocation>>,
    pending: std::sync::Mutex<HashMap<String, oneshot::Sender<Outcome>>>,
    function: String,
    counter: std::sync::atomic::AtomicU64,
}

/// The variable Lambda sets from the function's `Handler`: it tells the one `bootstrap` which
/// function to serve (functions/bootstrap).
pub fn handler(function: &str) -> (String, String) {
    ("_HANDLER".to_owned(), function.to_owned())
}

/// What every instance of one function shares.
#[derive(Debug, Clone)]
pub struct Function {
    pub name: String,
    pub binary: PathBuf,
    pub env: Vec<(String, String)>,
    /// Each instance's stdout and stderr go to `<logs>/<name>-<n>.log`.
    pub logs: PathBuf,
}

/// One execution environment: a process and its Runtime API.
pub struct Instance {
    child: Child,
    invocations: mpsc::Sender<Invocation>,
    server: tokio::task::JoinHandle<()>,
}

impl Function {
    pub async fn start(&self, n: usize) -> Result<Instance, String> {
        let (tx, rx) = mpsc::channel(1);
        let api = Arc::new(Api {
            next: Mutex::new(rx),
            pending: std::sync::Mutex::new(HashMap::new()),
            function: self.name.clone(),
            counter: std::sync::atomic::AtomicU64::new(0),
        });
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.map_err(|e| format!("runtime API: {e}"))?;
        let addr = listener.local_addr().map_err(|e| format!("runtime API: {e}"))?;
        let app = Router::new()
            .route("/2018-06-01/runtime/invocation/next", get(next))
            .route("/2018-06-01/runtime/invocation/{id}/response", post(response))
            .route("/2018-06-01/runtime/invocation/{id}/error", post(error))
            .route("/2018-06-01/runtime/init/error", post(init_error))
            .with_state(api);
        let server = tokio::spawn(async move {
            if let Err(e) = axum::serve(listener, app).await {
                eprintln!("soak: runtime API stopped: {e}");
            }
        });
        let log = log_file(&self.logs, &self.name, n)?;
        let child = Command::new(&self.binary)
            .env_clear()
            .envs(self.env.iter().map(|(k, v)| (k.as_str(), v.as_str())))
            .env("AWS_LAMBDA_RUNTIME_API", addr.to_string())
            .env("AWS_LAMBDA_FUNCTION_NAME", &self.name)
            .env("AWS_LAMBDA_FUNCTION_MEMORY_SIZE", "256")
            .env("AWS_LAMBDA_FUNCTION_VERSION", "$LATEST")
            .env("AWS_LAMBDA_LOG_GROUP_NAME", format!("/aws/lambda/{}", self.name))
            .env("AWS_LAMBDA_LOG_STREAM_NAME", format!("soak/{}/{n}", self.name))
            .stdin(Stdio::null())
            .stdout(log.try_clone().map_err(|e| e.to_string())?)
            .stderr(log)
            .kill_on_drop(true)
            .spawn()
            .map_err(|e| format!("cannot start {}: {e}", self.binary.display()))?;
        Ok(Instance { child, invocations: tx, server })
    }
}

fn log_file(dir: &Path, name: &str, n: usize) -> Result<std::fs::File, String> {
    let path = dir.join(format!("{name}-{n}.log"));
    std::fs::File::create(&path).map_err(|e| format!("cannot create {}: {e}", path.display()))
}

impl Instance {
    /// Hands the process one event and waits for its answer until `timeout` (the function's
    /// timeout: Lambda kills it then) or until `kill_after`, when we kill it as a crash would.
    pub async fn invoke(&mut self, event: &serde_json::Value, timeout: Duration, kill_after: Option<Duration>) -> Outcome {
        let (reply, answer) = oneshot::channel();
        let deadline = SystemTime::now() + timeout;
        let invocation = Invocation { event: event.to_string().into_bytes(), deadline, reply };
        if self.invocations.send(invocation).await.is_err() {
            return Outcome::Crashed("the runtime API is gone".into());
        }
        let kill_at = kill_after.unwrap_or(timeout).min(timeout);
        tokio::select! {
            a = answer => a.unwrap_or_else(|_| Outcome::Crashed("no answer".into())),
            status = self.child.wait() => Outcome::Crashed(match status {
                Ok(s) => format!("exited: {s}"),
                Err(e) => format!("cannot wait: {e}"),
            }),
            () = tokio::time::sleep(kill_at) => {
                self.kill().await;
                Outcome::Killed
            }
        }
    }

    /// The process's id while it runs.
    pub fn pid(&self) -> Option<u32> {
        self.child.id()
    }

    pub async fn kill(&mut self) {
        // An error means it is already gone.
        self.child.start_kill().ok();
        self.child.wait().await.ok();
    }
}

impl Drop for Instance {
    fn drop(&mut self) {
        self.child.start_kill().ok();
        self.server.abort();
    }
}

async fn next(State(api): State<Arc<Api>>) -> (StatusCode, HeaderMap, Vec<u8>) {
    let Some(inv) = api.next.lock().await.recv().await else {
        return (StatusCode::GONE, HeaderMap::new(), Vec::new());
    };
    let n = api.counter.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
    let id = format!("{}-{}-{n}", api.function, std::process::id());
    let mut headers = HeaderMap::new();
    let ms = inv.deadline.duration_since(UNIX_EPOCH).map(|d| d.as_millis()).unwrap_or(0);
    let arn = format!("arn:aws:lambda:us-east-1:123456789012:function:{}", api.function);
    for (k, v) in [
        ("lambda-runtime-aws-request-id", id.clone()),
        ("lambda-runtime-deadline-ms", ms.to_string()),
        ("lambda-runtime-invoked-function-arn", arn),
        ("lambda-runtime-trace-id", format!("Root=1-00000000-{n:024x};Sampled=0")),
        ("content-type", "application/json".into()),
    ] {
        if let Ok(v) = HeaderValue::from_str(&v) {
            headers.insert(k, v);
        }
    }
    api.pending.lock().unwrap_or_else(|p| p.into_inner()).insert(id, inv.reply);
    (StatusCode::OK, headers, inv.event)
}

fn answer(api: &Api, id: &str, outcome: Outcome) -> StatusCode {
    match api.pending.lock().unwrap_or_else(|p| p.into_inner()).remove(id) {
        Some(reply) => {
            // The invoker may have stopped waiting (it killed the process): nothing to tell.
            reply.send(outcome).ok();
            StatusCode::ACCEPTED
        }
        None => StatusCode::BAD_REQUEST,
    }
}

async fn response(State(api): State<Arc<Api>>, UrlPath(id): UrlPath<String>, body: Bytes) -> StatusCode {
    let value = serde_json::from_slice(&body).unwrap_or_else(|_| serde_json::Value::String(String::from_utf8_lossy(&body).into()));
    answer(&api, &id, Outcome::Response(value))
}

async fn error(State(api): State<Arc<Api>>, UrlPath(id): UrlPath<String>, body: Bytes) -> StatusCode {
    answer(&api, &id, Outcome::Error(String::from_utf8_lossy(&body).into()))
}

async fn init_error(body: Bytes) -> StatusCode {
    eprintln!("soak: a function failed to start: {}", String::from_utf8_lossy(&body));
    StatusCode::ACCEPTED
}
