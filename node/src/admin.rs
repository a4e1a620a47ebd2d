//! Local admin API (HTTP/JSON on 127.0.0.1, bearer token from the node directory) and the
//! client the CLI uses.
//!
//! | method | path                   | body / answer                   |
//! |--------|------------------------|---------------------------------|
//! | GET    | `/v1/status`           | [`Status`]                      |
//! | GET    | `/v1/jobs`             | `[JobRecord]`, oldest first     |
//! | POST   | `/v1/jobs`             | [`Submission`] → `JobRecord`    |
//! | GET    | `/v1/jobs/{id}`        | `JobRecord`                     |
//! | POST   | `/v1/jobs/{id}/cancel` | `JobRecord`                     |
//! | GET    | `/v1/sessions`         | `[SessionInfo]` (open scoring sessions) |
//! | POST   | `/v1/sessions/score`   | [`ScoreRequest`] → `[QueryResult]` (bank) |
//! | POST   | `/v1/sessions/{id}/close` | `SessionInfo`                |
//!
//! The same listener serves the browser console under `/console/` ([`crate::console`]).
//!
//! A `JobRecord` names the job's transcript file (`transcript`) once it exists.
//!
//! Every error answers `{"error": "..."}` with a 4xx/5xx status: also unknown paths, wrong
//! methods, malformed or oversized bodies (over [`MAX_BODY`]) and a missing token.

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use anyhow::{Result, anyhow, bail};
use axum::extract::{Path, Request, State};
use axum::http::{Method, StatusCode, Uri};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::{Json, Router};
use serde::{Deserialize, Serialize};

use crate::config::Config;
use crate::daemon::Node;
use crate::jobs::record::{JobRecord, check_operator};
use crate::jobs::spec::JobSpec;
use crate::sessions::{Query, QueryResult, SessionInfo};

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Status {
    pub name: String,
    pub role: protocol::Role,
    pub peer: String,
    pub peer_connected: bool,
    pub protocol_version: u32,
}

/// A job submission: the job and who submits it (recorded in the job's manifest).
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Submission {
    pub spec: JobSpec,
    /// Person or service account submitting the job (1..=200 printable characters).
    pub operator: String,
}

/// Ids to score in an open scoring session ([`crate::sessions`]); `session` may be left out
/// when only one is open.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ScoreRequest {
    #[serde(default)]
    pub session: Option<String>,
    pub queries: Vec<Query>,
}

/// Largest request body the admin API accepts (a job submission as JSON).
pub const MAX_BODY: usize = 1 << 20;

#[derive(Serialize, Deserialize)]
struct ErrorBody {
    error: String,
}

struct ApiError(StatusCode, String);

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        (self.0, Json(ErrorBody { error: self.1 })).into_response()
    }
}

fn internal(e: anyhow::Error) -> ApiError {
    ApiError(StatusCode::INTERNAL_SERVER_ERROR, format!("{e:#}"))
}

#[derive(Clone)]
struct AppState {
    node: Arc<Node>,
    token: Arc<String>,
}

/// Constant-time comparison of the presented token with ours.
pub(crate) fn token_matches(presented: &[u8], expected: &[u8]) -> bool {
    presented.len() == expected.len() && presented.iter().zip(expected).fold(0u8, |acc, (a, b)| acc | (a ^ b)) == 0
}

async fn auth(State(state): State<AppState>, request: Request, next: Next) -> Response {
    let presented = request
        .headers()
        .get(axum::http::header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.strip_prefix("Bearer "))
        .unwrap_or("");
    if !token_matches(presented.as_bytes(), state.token.as_bytes()) {
        return ApiError(StatusCode::UNAUTHORIZED, "missing or wrong bearer token (admin.token_file)".into())
            .into_response();
    }
    next.run(request).await
}

async fn status(State(s): State<AppState>) -> Json<Status> {
    let c = &s.node.config;
    Json(Status {
        name: c.node.name.clone(),
        role: c.node.role,
        peer: c.peer.name.clone(),
        peer_connected: s.node.peer_connected().await,
        protocol_version: crate::transport::PROTOCOL_VERSION,
    })
}

async fn list(State(s): State<AppState>) -> Result<Json<Vec<JobRecord>>, ApiError> {
    s.node.store.list().map(Json).map_err(internal)
}

async fn job(State(s): State<AppState>, Path(id): Path<String>) -> Result<Json<JobRecord>, ApiError> {
    match s.node.store.get(&id).map_err(internal)? {
        Some(r) => Ok(Json(r)),
        None => Err(ApiError(StatusCode::NOT_FOUND, format!("no job '{id}' on this node"))),
    }
}

async fn submit(State(s): State<AppState>, Json(sub): Json<Submission>) -> Result<Json<JobRecord>, ApiError> {
    check_operator(&sub.operator)
        .map_err(|e| anyhow!(e))
        .and_then(|()| s.node.submit(sub.spec, &sub.operator))
        .map(Json)
        .map_err(|e| ApiError(StatusCode::BAD_REQUEST, format!("{e:#}")))
}

async fn cancel(State(s): State<AppState>, Path(id): Path<String>) -> Result<Json<JobRecord>, ApiError> {
    s.node.cancel(&id).map(Json).map_err(|e| ApiError(StatusCode::CONFLICT, format!("{e:#}")))
}

async fn sessions(State(s): State<AppState>) -> Json<Vec<SessionInfo>> {
    Json(s.node.sessions.list())
}

async fn score(State(s): State<AppState>, Json(req): Json<ScoreRequest>) -> Result<Json<Vec<QueryResult>>, ApiError> {
    let (sessions, timeout) = (s.node.sessions.clone(), s.node.config.timeouts.read());
    tokio::task::spawn_blocking(move || sessions.score(req.session.as_deref(), req.queries, timeout))
        .await
        .map_err(|e| internal(e.into()))?
        .map(Json)
        .map_err(|e| ApiError(StatusCode::BAD_REQUEST, format!("{e:#}")))
}

async fn close_session(State(s): State<AppState>, Path(id): Path<String>) -> Result<Json<SessionInfo>, ApiError> {
    s.node.sessions.close(&id).map(Json).map_err(|e| ApiError(StatusCode::NOT_FOUND, format!("{e:#}")))
}

/// Answers requests no route takes: unknown path (404) or method (405).
async fn no_route(method: Method, uri: Uri) -> ApiError {
    ApiError(StatusCode::NOT_FOUND, format!("no endpoint {method} {}; endpoints: {ENDPOINTS}", uri.path()))
}

async fn wrong_method(method: Method, uri: Uri) -> ApiError {
    ApiError(StatusCode::METHOD_NOT_ALLOWED, format!("{} does not take {method}; endpoints: {ENDPOINTS}", uri.path()))
}

const ENDPOINTS: &str = "GET /v1/status, GET /v1/jobs, POST /v1/jobs, GET /v1/jobs/{id}, POST /v1/jobs/{id}/cancel, \
                         GET /v1/sessions, POST /v1/sessions/score, POST /v1/sessions/{id}/close";

/// Makes every error answer JSON: axum's own rejections (malformed JSON, oversized body, bad
/// path) answer plain text, which becomes the `error` text.
async fn json_errors(response: Response) -> Response {
    let status = response.status();
    let is_json = response
        .headers()
        .get(axum::http::header::CONTENT_TYPE)
        .is_some_and(|v| v.as_bytes().starts_with(b"application/json"));
    if !(status.is_client_error() || status.is_server_error()) || is_json {
        return response;
    }
    let text = match axum::body::to_bytes(response.into_body(), 64 << 10).await {
        Ok(b) => String::from_utf8_lossy(&b).trim().to_string(),
        Err(_) => String::new(),
    };
    let error = if status == StatusCode::PAYLOAD_TOO_LARGE {
        format!("the request body is larger than the admin API's limit of {MAX_BODY} bytes; submit a smaller job file")
    } else if text.is_empty() {
        status.canonical_reason().unwrap_or("error").to_string()
    } else {
        text
    };
    ApiError(status, error).into_response()
}

/// Serves the admin API on `listener` until `shutdown` completes.
pub async fn serve(
    node: Arc<Node>,
    token: String,
    listener: tokio::net::TcpListener,
    shutdown: impl Future<Output = ()> + Send + 'static,
) {
    let token = Arc::new(token);
    let state = AppState { node: node.clone(), token: token.clone() };
    let api = Router::new()
        .route("/v1/status", get(status))
        .route("/v1/jobs", get(list).post(submit))
        .route("/v1/jobs/{id}", get(job))
        .route("/v1/jobs/{id}/cancel", post(cancel))
        .route("/v1/sessions", get(sessions))
        .route("/v1/sessions/score", post(score))
        .route("/v1/sessions/{id}/close", post(close_session))
        .fallback(no_route)
        .method_not_allowed_fallback(wrong_method)
        .layer(axum::extract::DefaultBodyLimit::max(MAX_BODY))
        .layer(axum::middleware::from_fn_with_state(state.clone(), auth))
        .layer(axum::middleware::map_response(json_errors))
        .with_state(state);
    // The browser console (`/console/...`) has its own session sign-in, CSRF and origin checks.
    let app = crate::console::router(node, token, false).merge(api);
    if let Err(e) = axum::serve(listener, app).with_graceful_shutdown(shutdown).await {
        tracing::error!("admin API stopped: {e}");
    }
}

/// Blocking client of the admin API (used by the CLI and tests).
pub struct AdminClient {
    base: String,
    token: String,
    agent: ureq::Agent,
}

impl AdminClient {
    pub fn new(addr: SocketAddr, token: String) -> AdminClient {
        let agent = ureq::Agent::config_builder()
            .http_status_as_error(false)
            .timeout_global(Some(Duration::from_secs(30)))
            .build()
            .into();
        AdminClient { base: format!("http://{addr}"), token, agent }
    }

    /// Client for the node described by `config` (its admin port and token file).
    pub fn from_config(config: &Config) -> Result<AdminClient> {
        let token = crate::identity::load_token(&config.admin.token_file)?;
        Ok(AdminClient::new(SocketAddr::from(([127, 0, 0, 1], config.admin.port)), token))
    }

    fn answer<T: serde::de::DeserializeOwned>(
        &self,
        r: Result<ureq::http::Response<ureq::Body>, ureq::Error>,
    ) -> Result<T> {
        let mut r = r.map_err(|e| {
            anyhow!("cannot reach the node's admin API at {}: {e}; is `tandem serve` running?", self.base)
        })?;
        if r.status().is_success() {
            return Ok(r.body_mut().read_json()?);
        }
        let status = r.status();
        match r.body_mut().read_json::<ErrorBody>() {
            Ok(b) => bail!("{}", b.error),
            Err(_) => bail!("admin API answered {status}"),
        }
    }

    fn bearer(&self) -> String {
        format!("Bearer {}", self.token)
    }

    /// `GET path` (e.g. `/v1/jobs`), its JSON answer.
    fn get<T: serde::de::DeserializeOwned>(&self, path: &str) -> Result<T> {
        self.answer(self.agent.get(format!("{}{path}", self.base)).header("Authorization", self.bearer()).call())
    }

    /// `POST path` with `body` as JSON (or no body when `None`), its JSON answer.
    fn post<T: serde::de::DeserializeOwned>(&self, path: &str, body: Option<&[u8]>) -> Result<T> {
        let request = self.agent.post(format!("{}{path}", self.base)).header("Authorization", self.bearer());
        self.answer(match body {
            Some(body) => request.header("Content-Type", "application/json").send(body),
            None => request.send_empty(),
        })
    }

    pub fn status(&self) -> Result<Status> {
        self.get("/v1/status")
    }

    pub fn list(&self) -> Result<Vec<JobRecord>> {
        self.get("/v1/jobs")
    }

    pub fn job(&self, id: &str) -> Result<JobRecord> {
        self.get(&format!("/v1/jobs/{id}"))
    }

    /// Submits `spec` on behalf of `operator`. A job over [`MAX_BODY`] bytes as JSON is refused
    /// here, naming the limit (the node would drop the connection mid-upload).
    pub fn submit(&self, spec: &JobSpec, operator: &str) -> Result<JobRecord> {
        let body = serde_json::to_vec(&Submission { spec: spec.clone(), operator: operator.to_string() })?;
        if body.len() > MAX_BODY {
            bail!(
                "the job is {} bytes as JSON, over the admin API's limit of {MAX_BODY} bytes (1 MiB); \
                 shorten the job file (its description or params)",
                body.len()
            );
        }
        self.post("/v1/jobs", Some(&body))
    }

    pub fn cancel(&self, id: &str) -> Result<JobRecord> {
        self.post(&format!("/v1/jobs/{id}/cancel"), None)
    }

    pub fn sessions(&self) -> Result<Vec<SessionInfo>> {
        self.get("/v1/sessions")
    }

    /// Scores `queries` in an open session (the only one when `session` is `None`). Bank only.
    pub fn score(&self, session: Option<&str>, queries: Vec<Query>) -> Result<Vec<QueryResult>> {
        let body = serde_json::to_vec(&ScoreRequest { session: session.map(str::to_string), queries })?;
        self.post("/v1/sessions/score", Some(&body))
    }

    pub fn close_session(&self, id: &str) -> Result<SessionInfo> {
        self.post(&format!("/v1/sessions/{id}/close"), None)
    }

    /// Polls job `id` until it ends, calling `on_update` with every new state.
    pub fn wait(&self, id: &str, timeout: Duration, mut on_update: impl FnMut(&JobRecord)) -> Result<JobRecord> {
        let start = std::time::Instant::now();
        let mut last: Option<JobRecord> = None;
        loop {
            let r = self.job(id)?;
            if last.as_ref() != Some(&r) {
                on_update(&r);
                last = Some(r.clone());
            }
            if r.state.is_final() {
                return Ok(r);
            }
            if start.elapsed() > timeout {
                bail!("job '{id}' did not end within {} s", timeout.as_secs());
            }
            std::thread::sleep(Duration::from_millis(100));
        }
    }
}
