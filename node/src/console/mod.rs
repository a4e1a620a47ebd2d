//! Operator and auditor console: server-rendered HTML under `/console/` on the admin listener
//! (127.0.0.1; reach it through an SSH tunnel), and on its own listener if `[console] listen` is
//! set (HTTPS for an intranet, [`listener`]).
//!
//! It renders the same records the JSON admin API serves (the job store, the node's config) and
//! calls the same code: [`Node::submit`], [`Node::cancel`], [`Node::policy_check`] for the
//! pre-check, [`crate::audit::verify`] / [`crate::audit::compare`] and the report HTML of
//! [`crate::audit::report`] for the reveal ledger, traffic, ROC and score plots.
//!
//! Security:
//! - Sign-in with an operator token ([`operators`]; the session is under the token's name, and
//!   ends when the token is revoked) or with the node's admin token and a typed operator name;
//!   both compared in constant time. The operator is recorded in every job submitted from the
//!   session. The session cookie is random (256 bits), `HttpOnly; SameSite=Strict;
//!   Path=/console` (and `Secure` on the TLS listener), and lives 12 hours; the server keeps only
//!   its BLAKE3 hash.
//! - Every POST must come from this origin (`Origin`, or `Referer` when the browser sends no
//!   `Origin`, naming the `Host` it was sent to) and carry the session's CSRF token (form field
//!   `csrf` or header `X-CSRF-Token`); the sign-in form carries its own token, bound to a
//!   pre-session cookie.
//! - Every page sets a Content-Security-Policy allowing only this origin's script and style
//!   (no inline script), `no-store`, `nosniff` and no framing; every value from a record, the
//!   config or the peer is HTML-escaped ([`page::esc`]).

pub mod listener;
pub mod operators;
mod page;

use std::collections::HashMap;
use std::fmt::Write;
use std::path::PathBuf;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use axum::body::Body;
use axum::extract::{Path, Query, Request, State};
use axum::http::{HeaderMap, HeaderValue, Method, StatusCode, header};
use axum::middleware::Next;
use axum::response::{Html, IntoResponse, Redirect, Response};
use axum::routing::{get, post};
use axum::{Extension, Form, Router};
use serde::Deserialize;

use crate::daemon::Node;
use crate::jobs::record::{JobRecord, JobState, check_operator};
use crate::jobs::spec::{JobKind, JobSpec, Params};
use page::{Viewer, esc};

/// How long a session lasts after sign-in.
const SESSION_LIFETIME: Duration = Duration::from_secs(12 * 3600);
/// Largest form body (a job spec) and largest uploaded transcript for a comparison.
const MAX_FORM: usize = 1 << 20;
const MAX_UPLOAD: usize = 256 << 20;
const SESSION_COOKIE: &str = "tandem_session";
const LOGIN_COOKIE: &str = "tandem_login";

/// The policy every console response carries: only this origin's script and style, no inline
/// script, no framing, forms post only here.
pub const CONTENT_SECURITY_POLICY: &str = "default-src 'none'; script-src 'self'; style-src 'self'; \
     img-src 'self' data:; connect-src 'self'; form-action 'self'; frame-ancestors 'none'; base-uri 'none'";

/// Job templates offered by "New job": the bundled demo job files.
const TEMPLATES: &[(&str, &str)] = &[
    ("psi", include_str!("../../../configs/demo-job.toml")),
    ("train", include_str!("../../../configs/demo-train.toml")),
    ("score", include_str!("../../../configs/demo-score.toml")),
    ("score_ids", include_str!("../../../configs/demo-score-ids.toml")),
];

struct Session {
    operator: String,
    csrf: String,
    expires: Instant,
    /// Hash of the operator token it was opened with (`None`: the admin token). The session
    /// ends as soon as that token is revoked.
    operator_token: Option<[u8; 32]>,
}

#[derive(Clone)]
struct Console {
    node: Arc<Node>,
    token: Arc<String>,
    /// Sessions by the BLAKE3 hash of their cookie value.
    sessions: Arc<Mutex<HashMap<[u8; 32], Session>>>,
    /// This node's certificate fingerprint and signing public key, read once at start.
    identity: Arc<(String, String)>,
    /// Served over TLS: cookies get `Secure`, answers `Strict-Transport-Security`.
    tls: bool,
}

fn random_hex() -> String {
    use rand::Rng;
    let mut r = [0u8; 32];
    rand::rng().fill_bytes(&mut r);
    hex::encode(r)
}

fn cookie<'a>(headers: &'a HeaderMap, name: &str) -> Option<&'a str> {
    headers
        .get_all(header::COOKIE)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(';'))
        .filter_map(|c| c.trim().split_once('='))
        .find(|(k, _)| *k == name)
        .map(|(_, v)| v)
}

fn eq_ct(a: &str, b: &str) -> bool {
    crate::admin::token_matches(a.as_bytes(), b.as_bytes())
}

/// Whether a POST comes from the origin it was sent to: its `Origin` (or, without one, its
/// `Referer`) names the `Host` of the request, over http or https.
fn same_origin(h: &HeaderMap) -> bool {
    let text = |name| h.get(name).and_then(|v: &HeaderValue| v.to_str().ok());
    let Some(host) = text(header::HOST) else { return false };
    let Some(source) = text(header::ORIGIN).or_else(|| text(header::REFERER)) else { return false };
    let rest = source.strip_prefix("https://").or_else(|| source.strip_prefix("http://"));
    rest.is_some_and(|r| r.split('/').next() == Some(host))
}

impl Console {
    fn session(&self, headers: &HeaderMap) -> Option<Viewer> {
        let id = cookie(headers, SESSION_COOKIE)?;
        let key = *blake3::hash(id.as_bytes()).as_bytes();
        let mut sessions = self.sessions.lock().expect("sessions lock");
        let now = Instant::now();
        sessions.retain(|_, s| s.expires > now);
        let s = sessions.get(&key)?;
        if let Some(hash) = &s.operator_token {
            // Revoked (or the file unreadable): the session ends now.
            let still_issued = self.operators().is_ok_and(|ops| operators::find_by_hash(&ops, hash).is_some());
            if !still_issued {
                tracing::info!("console: session of operator '{}' ended: its token was revoked", s.operator);
                sessions.remove(&key);
                return None;
            }
        }
        Some(Viewer { operator: s.operator.clone(), csrf: s.csrf.clone() })
    }

    fn operators(&self) -> anyhow::Result<Vec<operators::Operator>> {
        operators::load(&operators::file(&self.node.config))
    }

    /// The attributes every cookie of this listener carries.
    fn cookie_flags(&self) -> &'static str {
        if self.tls { "HttpOnly; Secure; SameSite=Strict" } else { "HttpOnly; SameSite=Strict" }
    }

    fn set_cookie(&self, response: &mut Response, name: &str, value: &str, path: &str, max_age: u64) {
        let cookie = format!("{name}={value}; {}; Path={path}; Max-Age={max_age}", self.cookie_flags());
        response.headers_mut().append(header::SET_COOKIE, HeaderValue::from_str(&cookie).expect("ascii cookie"));
    }

    fn page(&self, title: &str, viewer: Option<&Viewer>, body: &str) -> Html<String> {
        Html(page::frame(&self.node.config.node.name, title, viewer, body))
    }

    fn error(&self, status: StatusCode, viewer: Option<&Viewer>, message: &str) -> Response {
        let title = status.canonical_reason().unwrap_or("Error");
        (status, self.page(title, viewer, &format!("<p class=\"bad\" id=\"error\">{}</p>", esc(message))))
            .into_response()
    }

    fn record(&self, id: &str, viewer: &Viewer) -> Result<JobRecord, Box<Response>> {
        match self.node.store.get(id) {
            Ok(Some(r)) => Ok(r),
            Ok(None) => {
                Err(Box::new(self.error(StatusCode::NOT_FOUND, Some(viewer), &format!("no job '{id}' on this node"))))
            }
            Err(e) => Err(Box::new(self.error(StatusCode::INTERNAL_SERVER_ERROR, Some(viewer), &format!("{e:#}")))),
        }
    }

    fn records(&self, viewer: &Viewer) -> Result<Vec<JobRecord>, Box<Response>> {
        self.node
            .store
            .list()
            .map_err(|e| Box::new(self.error(StatusCode::INTERNAL_SERVER_ERROR, Some(viewer), &format!("{e:#}"))))
    }
}

/// Plain refusal (no page frame: the request may not come from the console at all).
fn refuse(status: StatusCode, message: &str) -> Response {
    (status, [(header::CONTENT_TYPE, "text/plain; charset=utf-8")], message.to_string()).into_response()
}

/// Every console request: origin check of POSTs, session of every page but sign-in and static
/// files, CSRF token of every POST, then the security headers on the answer.
async fn guard(State(c): State<Console>, request: Request, next: Next) -> Response {
    let mut response = check(&c, request, next).await;
    let h = response.headers_mut();
    if c.tls {
        h.insert(header::STRICT_TRANSPORT_SECURITY, HeaderValue::from_static("max-age=31536000"));
    }
    h.insert(header::CONTENT_SECURITY_POLICY, HeaderValue::from_static(CONTENT_SECURITY_POLICY));
    h.insert(header::X_CONTENT_TYPE_OPTIONS, HeaderValue::from_static("nosniff"));
    h.insert(header::X_FRAME_OPTIONS, HeaderValue::from_static("DENY"));
    h.insert(header::REFERRER_POLICY, HeaderValue::from_static("same-origin"));
    h.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
    response
}

async fn check(c: &Console, mut request: Request, next: Next) -> Response {
    let post = request.method() == Method::POST;
    if post && !same_origin(request.headers()) {
        return refuse(StatusCode::FORBIDDEN, "refused: the request does not come from this console's origin");
    }
    let path = request.uri().path();
    if path == "/console/login" || path.starts_with("/console/static/") {
        return next.run(request).await;
    }
    let Some(viewer) = c.session(request.headers()) else {
        return if post {
            refuse(StatusCode::UNAUTHORIZED, "refused: not signed in (or the session has expired)")
        } else {
            Redirect::to("/console/login").into_response()
        };
    };
    if post {
        request = match csrf_checked(request, &viewer.csrf).await {
            Ok(r) => r,
            Err(response) => return response,
        };
    }
    request.extensions_mut().insert(viewer);
    next.run(request).await
}

/// The request if it carries the session's CSRF token: header `X-CSRF-Token`, or form field
/// `csrf` of a url-encoded body (the body is read, bounded, and handed on unchanged).
async fn csrf_checked(request: Request, expected: &str) -> Result<Request, Response> {
    let missing = || refuse(StatusCode::FORBIDDEN, "refused: missing or wrong CSRF token; reload the page and retry");
    if let Some(v) = request.headers().get("x-csrf-token") {
        return if eq_ct(v.to_str().unwrap_or(""), expected) { Ok(request) } else { Err(missing()) };
    }
    let (parts, body) = request.into_parts();
    let bytes = axum::body::to_bytes(body, MAX_FORM)
        .await
        .map_err(|_| refuse(StatusCode::PAYLOAD_TOO_LARGE, "refused: the form is larger than 1 MiB"))?;
    // A valid token is hex, so it appears unencoded; anything else does not match.
    let presented = std::str::from_utf8(&bytes)
        .ok()
        .and_then(|text| text.split('&').find_map(|pair| pair.strip_prefix("csrf=")))
        .unwrap_or("");
    if !eq_ct(presented, expected) {
        return Err(missing());
    }
    Ok(Request::from_parts(parts, Body::from(bytes)))
}

/// The console's routes (all under `/console`), to merge into the admin listener's router
/// (`tls` false) or to serve on the console's own TLS listener (`tls` true).
pub fn router(node: Arc<Node>, token: Arc<String>, tls: bool) -> Router {
    let config = &node.config;
    let cert_fp = crate::identity::load_cert(&config.node.tls_cert)
        .map(|c| crate::config::format_fingerprint(&crate::config::cert_fingerprint(&c)))
        .unwrap_or_else(|e| format!("unreadable: {e:#}"));
    let signing_pub = crate::identity::load_signing_key(&config.node.signing_key)
        .map(|k| hex::encode(k.verifying_key().as_bytes()))
        .unwrap_or_else(|e| format!("unreadable: {e:#}"));
    let state = Console { node, token, sessions: Default::default(), identity: Arc::new((cert_fp, signing_pub)), tls };
    Router::new()
        .route("/console/static/console.css", get(css))
        .route("/console/static/console.js", get(js))
        .route("/console/login", get(login_form).post(login))
        .route("/console/logout", post(logout))
        .route("/console", get(node_page))
        .route("/console/", get(|| async { Redirect::to("/console") }))
        .route("/console/jobs", get(jobs_page))
        .route("/console/jobs/{id}", get(job_page))
        .route("/console/jobs/{id}/cancel", post(cancel))
        .route("/console/new", get(new_form).post(new_job))
        .route("/console/models", get(models_page))
        .route("/console/models/{id}", get(model_card))
        .route("/console/audit", get(audit_page))
        .route("/console/audit/{id}", get(audit_job))
        .route("/console/audit/{id}/report.html", get(audit_download))
        .route("/console/audit/{id}/compare", post(audit_compare))
        .layer(axum::extract::DefaultBodyLimit::max(MAX_UPLOAD))
        .layer(axum::middleware::from_fn_with_state(state.clone(), guard))
        .with_state(state)
}

async fn css() -> impl IntoResponse {
    ([(header::CONTENT_TYPE, "text/css; charset=utf-8")], include_str!("console.css"))
}

async fn js() -> impl IntoResponse {
    ([(header::CONTENT_TYPE, "text/javascript; charset=utf-8")], include_str!("console.js"))
}

// ---- sign-in ----

fn login_page(c: &Console, status: StatusCode, message: Option<&str>) -> Response {
    let token = random_hex();
    let note = message.map(|m| format!("<p class=\"bad\" id=\"error\">{}</p>", esc(m))).unwrap_or_default();
    let body = format!(
        "{note}<form method=\"post\" action=\"/console/login\" class=\"login\">\
         <input type=\"hidden\" name=\"login_csrf\" value=\"{token}\">\
         <label>Token <input name=\"token\" id=\"token\" type=\"password\" required \
         autocomplete=\"current-password\"></label>\
         <label>Operator name (with the admin token only) <input name=\"operator\" id=\"operator-name\" \
         maxlength=\"200\" autocomplete=\"username\"></label><button id=\"sign-in\">Sign in</button></form>\
         <p class=\"note\">Your operator token (from <code>tandem operator add NAME</code>) signs you in under its \
         name. The node's admin token (<code>admin.token_file</code>) signs in under the name you type. Jobs you \
         submit are recorded under that operator name.</p>"
    );
    let mut r = (status, c.page("Sign in", None, &body)).into_response();
    c.set_cookie(&mut r, LOGIN_COOKIE, &token, "/console/login", 3600);
    r
}

async fn login_form(State(c): State<Console>) -> Response {
    login_page(&c, StatusCode::OK, None)
}

#[derive(Deserialize)]
struct LoginForm {
    token: String,
    #[serde(default)]
    operator: String,
    login_csrf: String,
}

async fn login(State(c): State<Console>, headers: HeaderMap, Form(f): Form<LoginForm>) -> Response {
    if !cookie(&headers, LOGIN_COOKIE).is_some_and(|v| eq_ct(v, &f.login_csrf)) {
        return refuse(StatusCode::FORBIDDEN, "refused: missing or wrong CSRF token; reload the sign-in page");
    }
    let hash = operators::token_hash(&f.token);
    let issued = match c.operators() {
        Ok(ops) => operators::find_by_hash(&ops, &hash).map(|o| o.name.clone()),
        Err(e) => {
            tracing::error!("console: {e:#}");
            None
        }
    };
    let (operator, operator_token) = if let Some(name) = issued {
        (name, Some(hash))
    } else if eq_ct(&f.token, &c.token) {
        let operator = f.operator.trim().to_string();
        if let Err(e) = check_operator(&operator) {
            return login_page(&c, StatusCode::BAD_REQUEST, Some(&format!("With the admin token, name yourself: {e}")));
        }
        (operator, None)
    } else {
        tracing::warn!("console: sign-in with a wrong token");
        return login_page(
            &c,
            StatusCode::UNAUTHORIZED,
            Some("Wrong token: use your operator token or the node's admin token."),
        );
    };
    let id = random_hex();
    let session = Session {
        operator: operator.clone(),
        csrf: random_hex(),
        expires: Instant::now() + SESSION_LIFETIME,
        operator_token,
    };
    c.sessions.lock().expect("sessions lock").insert(*blake3::hash(id.as_bytes()).as_bytes(), session);
    tracing::info!("console: operator '{operator}' signed in");
    let mut r = Redirect::to("/console").into_response();
    c.set_cookie(&mut r, SESSION_COOKIE, &id, "/console", SESSION_LIFETIME.as_secs());
    c.set_cookie(&mut r, LOGIN_COOKIE, "", "/console/login", 0);
    r
}

async fn logout(State(c): State<Console>, headers: HeaderMap) -> Response {
    if let Some(id) = cookie(&headers, SESSION_COOKIE) {
        c.sessions.lock().expect("sessions lock").remove(blake3::hash(id.as_bytes()).as_bytes());
    }
    let mut r = Redirect::to("/console/login").into_response();
    c.set_cookie(&mut r, SESSION_COOKIE, "", "/console", 0);
    r
}

// ---- node ----

async fn node_page(State(c): State<Console>, Extension(v): Extension<Viewer>) -> Response {
    let cfg = &c.node.config;
    let (cert_fp, signing_pub) = &*c.identity;
    let connected = c.node.peer_connected().await;
    let peer_trust = match (&cfg.peer.fingerprint, &cfg.peer.ca) {
        (Some(fp), _) => format!("pinned certificate <code id=\"peer-fingerprint\">{}</code>", esc(fp)),
        (None, Some(ca)) => format!("certificate from the CA in <code>{}</code>", esc(&ca.display().to_string())),
        (None, None) => "none".into(),
    };
    let mut o = format!(
        "<table class=\"kv\"><tr><th>this node</th><td>{} ({})</td></tr>\
         <tr><th>certificate</th><td><code id=\"cert-fingerprint\">{}</code></td></tr>\
         <tr><th>signing key</th><td><code id=\"signing-key\">{}</code></td></tr>\
         <tr><th>protocol version</th><td>{}</td></tr>\
         <tr><th>peer</th><td>{} ({}) at {}</td></tr>\
         <tr><th>peer connection</th><td id=\"peer-state\" class=\"{}\">{}</td></tr>\
         <tr><th>peer certificate</th><td>{peer_trust}</td></tr>\
         <tr><th>peer certificate on this connection</th><td><code id=\"peer-connected-fingerprint\">{}</code></td></tr>\
         <tr><th>peer signing key</th><td><code>{}</code></td></tr></table>",
        esc(&cfg.node.name),
        cfg.node.role,
        esc(cert_fp),
        esc(signing_pub),
        crate::transport::PROTOCOL_VERSION,
        esc(&cfg.peer.name),
        cfg.peer.role,
        esc(&cfg.peer.addr),
        if connected { "ok" } else { "bad" },
        if connected { "connected" } else { "not connected (dialled at the next job)" },
        esc(&c.node.connected_peer_fingerprint().unwrap_or_else(|| "— (not connected)".into())),
        esc(&cfg.peer.signing_key)
    );
    o.push_str("<h2>Datasets</h2><table><tr><th>name</th><th>file</th><th>id column</th><th>label</th><th>columns the policy allows</th></tr>");
    for (name, d) in &cfg.datasets {
        let allowed = cfg.policy.datasets.get(name).map(|p| p.columns.join(", "));
        let _ = write!(
            o,
            "<tr><td>{}</td><td><code>{}</code></td><td>{}</td><td>{}</td><td>{}</td></tr>",
            esc(name),
            esc(&d.path.display().to_string()),
            esc(&d.id_column),
            esc(d.label.as_deref().unwrap_or("")),
            esc(&allowed.unwrap_or_else(|| "none: not allowed for joint use".into()))
        );
    }
    let policy = toml::to_string(&cfg.policy).unwrap_or_else(|e| format!("cannot show the policy: {e}"));
    let _ = write!(o, "</table><h2>Policy</h2><pre id=\"policy\">{}</pre>", esc(&policy));
    c.page(&format!("Node {}", cfg.node.name), Some(&v), &o).into_response()
}

// ---- jobs ----

#[derive(Deserialize, Default)]
struct ListQuery {
    kind: Option<String>,
    state: Option<String>,
    fragment: Option<String>,
}

async fn jobs_page(State(c): State<Console>, Extension(v): Extension<Viewer>, Query(q): Query<ListQuery>) -> Response {
    let records = match c.records(&v) {
        Ok(r) => r,
        Err(e) => return *e,
    };
    let kind = q.kind.as_deref().filter(|k| !k.is_empty());
    let state = q.state.as_deref().filter(|s| !s.is_empty());
    let shown: Vec<&JobRecord> = records
        .iter()
        .filter(|r| kind.is_none_or(|k| r.spec.kind().as_str() == k))
        .filter(|r| state.is_none_or(|s| r.state.as_str() == s))
        .collect();
    let table = page::jobs_table(&shown);
    if q.fragment.is_some() {
        return Html(table).into_response();
    }
    let mut kinds: Vec<&str> = records.iter().map(|r| r.spec.kind().as_str()).collect();
    kinds.extend(c.node.config.policy.job_kinds.iter().map(|k| k.as_str()));
    kinds.sort();
    kinds.dedup();
    let options = |values: &[&str], selected: Option<&str>| {
        let mut o = String::from("<option value=\"\">any</option>");
        for x in values {
            let sel = if Some(*x) == selected { " selected" } else { "" };
            let _ = write!(o, "<option{sel}>{}</option>", esc(x));
        }
        o
    };
    let states = ["pending", "running", "succeeded", "failed", "cancelled"];
    let live = format!("/console/jobs?kind={}&state={}&fragment=1", esc(kind.unwrap_or("")), esc(state.unwrap_or("")));
    let body = format!(
        "<form method=\"get\" action=\"/console/jobs\" class=\"filter\"><label>kind <select name=\"kind\">{}</select></label> \
         <label>state <select name=\"state\">{}</select></label> <button>Filter</button></form>\
         <div id=\"jobs\" data-live=\"{live}\">{table}</div>",
        options(&kinds, kind),
        options(&states, state)
    );
    c.page("Jobs", Some(&v), &body).into_response()
}

#[derive(Deserialize, Default)]
struct FragmentQuery {
    fragment: Option<String>,
}

/// The HTML report of a verified transcript, without its document frame, to embed in a page.
fn report_body(html: &str) -> &str {
    let start = html.find("<body>").map_or(0, |i| i + "<body>".len());
    let end = html.rfind("</body>").unwrap_or(html.len());
    html.get(start..end.max(start)).unwrap_or("")
}

/// Verifies `path` off the async runtime and renders the report's body.
async fn verified_report(path: PathBuf) -> Result<(crate::audit::Verification, String), String> {
    tokio::task::spawn_blocking(move || {
        let v = crate::audit::verify(&path).map_err(|e| format!("{e:#}"))?;
        let html = crate::audit::report::html(&v);
        Ok((v, report_body(&html).to_string()))
    })
    .await
    .map_err(|e| format!("verification failed: {e}"))?
}

async fn job_page(
    State(c): State<Console>,
    Extension(v): Extension<Viewer>,
    Path(id): Path<String>,
    Query(q): Query<FragmentQuery>,
) -> Response {
    let r = match c.record(&id, &v) {
        Ok(r) => r,
        Err(e) => return *e,
    };
    let live = page::job_live(&r);
    let final_attr = if r.state.is_final() { " data-final=\"1\"" } else { "" };
    if q.fragment.is_some() {
        return Html(format!("<div{final_attr}>{live}</div>")).into_response();
    }
    let mut o = format!(
        "<table class=\"kv\"><tr><th>kind</th><td>{}</td></tr><tr><th>description</th><td id=\"description\">{}</td></tr>\
         <tr><th>operator</th><td id=\"job-operator\">{}</td></tr><tr><th>proposed by</th><td>{}</td></tr>\
         <tr><th>peer</th><td>{}</td></tr><tr><th>created</th><td>{}</td></tr>\
         <tr><th>reveals</th><td>{}</td></tr></table>",
        esc(r.spec.kind().as_str()),
        esc(&r.spec.description),
        esc(&r.operator),
        esc(&r.submitted_by),
        esc(&r.peer),
        page::time(r.created_ms),
        esc(&r.spec.reveal.iter().map(|x| x.as_str()).collect::<Vec<_>>().join(", "))
    );
    let _ = write!(
        o,
        "<div id=\"live\" data-live=\"/console/jobs/{}?fragment=1\"><div{final_attr}>{live}</div></div>",
        esc(&r.id)
    );
    if !r.state.is_final() {
        let _ = write!(
            o,
            "<form method=\"post\" action=\"/console/jobs/{}/cancel\">{}<button id=\"cancel\">Cancel job</button></form>",
            esc(&r.id),
            v.csrf_field()
        );
    }
    let mut links = vec![format!("<a href=\"/console/audit/{}\">Audit</a>", esc(&r.id))];
    if r.spec.kind() == JobKind::Train && r.state == JobState::Succeeded {
        links.push(format!("<a id=\"model-link\" href=\"/console/models/{}\">Model card</a>", esc(&r.id)));
    }
    let _ = write!(o, "<p class=\"links\">{}</p>", links.join(" · "));
    let _ = write!(o, "<h2>Job spec</h2><pre>{}</pre>", esc(&toml::to_string(&r.spec).unwrap_or_default()));
    match (&r.transcript, r.state.is_final()) {
        (Some(path), true) => match verified_report(path.clone()).await {
            Ok((_, report)) => {
                let _ = write!(o, "<section class=\"report\">{report}</section>");
            }
            Err(e) => {
                let _ = write!(o, "<p class=\"bad\">Transcript: {}</p>", esc(&e));
            }
        },
        (Some(_), false) => {
            o.push_str("<p>The transcript's report (reveals, traffic, verification) is shown once the job ends.</p>")
        }
        (None, _) => o.push_str("<p>No transcript: the job ended before the proposal was answered.</p>"),
    }
    c.page(&format!("Job {}", r.id), Some(&v), &o).into_response()
}

async fn cancel(State(c): State<Console>, Extension(v): Extension<Viewer>, Path(id): Path<String>) -> Response {
    match c.node.cancel(&id) {
        Ok(_) => {
            tracing::info!("console: operator '{}' cancelled job {id}", v.operator);
            Redirect::to(&format!("/console/jobs/{id}")).into_response()
        }
        Err(e) => c.error(StatusCode::CONFLICT, Some(&v), &format!("{e:#}")),
    }
}

// ---- new job ----

#[derive(Deserialize, Default)]
struct TemplateQuery {
    template: Option<String>,
}

/// A template's text; a score template names the newest successful train job as its model.
fn template_text(c: &Console, name: &str) -> Option<String> {
    let text = TEMPLATES.iter().find(|(n, _)| *n == name)?.1;
    let newest_model = c.node.store.list().ok().and_then(|rs| {
        rs.into_iter().rev().find(|r| r.spec.kind() == JobKind::Train && r.state == JobState::Succeeded)
    });
    Some(match newest_model {
        Some(m) => text.replace("TRAIN_JOB_ID", &m.id),
        None => text.to_string(),
    })
}

fn new_page(c: &Console, v: &Viewer, spec_text: &str, result: &str) -> Html<String> {
    let templates: Vec<String> = TEMPLATES
        .iter()
        .map(|(n, _)| format!("<a href=\"/console/new?template={n}\" id=\"template-{n}\">{n}</a>"))
        .collect();
    let body = format!(
        "<p>Templates: {}</p>{result}<form method=\"post\" action=\"/console/new\" id=\"new-job\">{}\
         <textarea name=\"spec\" id=\"spec\" rows=\"28\" spellcheck=\"false\">{}</textarea>\
         <p>Submitted as <b>{}</b>. <button name=\"action\" value=\"check\" id=\"check\">Check policy</button> \
         <button name=\"action\" value=\"submit\" id=\"submit\">Submit job</button></p></form>",
        templates.join(" · "),
        v.csrf_field(),
        esc(spec_text),
        esc(&v.operator)
    );
    c.page("New job", Some(v), &body)
}

async fn new_form(
    State(c): State<Console>,
    Extension(v): Extension<Viewer>,
    Query(q): Query<TemplateQuery>,
) -> Response {
    let name = q.template.as_deref().unwrap_or("psi");
    match template_text(&c, name) {
        Some(text) => new_page(&c, &v, &text, "").into_response(),
        None => c.error(StatusCode::NOT_FOUND, Some(&v), &format!("no template '{name}'")),
    }
}

#[derive(Deserialize)]
struct NewJobForm {
    spec: String,
    action: String,
}

fn parse_spec(text: &str) -> anyhow::Result<JobSpec> {
    let spec: JobSpec = toml::from_str(text).map_err(|e| anyhow::anyhow!("job spec: {e}"))?;
    spec.validate()?;
    Ok(spec)
}

/// The pre-check: this node's policy by the daemon's own check, and the peer's policy as its
/// last transcript recorded it (the peer checks the proposal itself when it arrives).
fn precheck(c: &Console, spec: &JobSpec) -> String {
    let cfg = &c.node.config;
    let mut o = String::from("<section id=\"precheck\"><h2>Policy pre-check</h2><table>");
    let mine = match c.node.policy_check(spec) {
        Ok(()) => format!(
            "<td class=\"ok\">allowed</td><td>peer '{}' is in policy.allowed_peers; kind '{}' in policy.job_kinds; \
             reveals {} in policy.reveals; min_intersection {} ≥ policy.min_intersection {}; dataset '{}' and its \
             columns in policy.datasets; the files the job names are readable</td>",
            esc(&cfg.peer.name),
            esc(spec.kind().as_str()),
            esc(&spec.reveal.iter().map(|r| r.as_str()).collect::<Vec<_>>().join(", ")),
            spec.min_intersection,
            cfg.policy.min_intersection,
            esc(&spec.side(cfg.node.role).dataset)
        ),
        Err(refusal) => format!("<td class=\"bad\">refused</td><td>{}</td>", esc(&refusal.local)),
    };
    let _ = write!(o, "<tr><th>this node ({})</th>{mine}</tr>", esc(&cfg.node.name));
    let last = c.node.store.list().ok().and_then(|rs| {
        rs.into_iter().rev().filter_map(|r| r.transcript).find_map(|path| recorded_policy(&path, cfg.peer.role))
    });
    let peer = match last {
        Some((job, p)) => format!(
            "checked by the peer when the job is proposed; its policy as recorded in this node's transcript of job {} (verify it on the Audit page): <code>{}</code>",
            esc(&job),
            esc(&p.to_string())
        ),
        None => "checked by the peer when the job is proposed (no transcript here records its policy yet)".into(),
    };
    let _ = write!(o, "<tr><th>peer ({})</th><td>—</td><td>{peer}</td></tr></table></section>", esc(&cfg.peer.name));
    o
}

/// The policy of `role` and the job id in the manifest, the first line of a transcript (read
/// bounded, not verified here).
fn recorded_policy(path: &std::path::Path, role: protocol::Role) -> Option<(String, serde_json::Value)> {
    use std::io::{BufRead, Read};
    let file = std::fs::File::open(path).ok()?;
    let mut line = String::new();
    std::io::BufReader::new(file.take(crate::audit::record::MAX_LINE as u64)).read_line(&mut line).ok()?;
    let record: serde_json::Value = serde_json::from_str(&line).ok()?;
    let manifest = record.get("manifest")?;
    let policy = manifest.get("policies")?.get(role.as_str())?.clone();
    if policy.is_null() {
        return None;
    }
    Some((manifest.get("job_id")?.as_str()?.to_string(), policy))
}

async fn new_job(State(c): State<Console>, Extension(v): Extension<Viewer>, Form(f): Form<NewJobForm>) -> Response {
    let spec = match parse_spec(&f.spec) {
        Ok(s) => s,
        Err(e) => {
            let msg = format!("<p class=\"bad\" id=\"error\">{}</p>", esc(&format!("{e:#}")));
            return (StatusCode::BAD_REQUEST, new_page(&c, &v, &f.spec, &msg)).into_response();
        }
    };
    if f.action != "submit" {
        let check = precheck(&c, &spec);
        return new_page(&c, &v, &f.spec, &check).into_response();
    }
    match c.node.submit(spec, &v.operator) {
        Ok(r) => {
            tracing::info!("console: operator '{}' submitted job {}", v.operator, r.id);
            Redirect::to(&format!("/console/jobs/{}", r.id)).into_response()
        }
        Err(e) => {
            let msg = format!("<p class=\"bad\" id=\"error\">{}</p>", esc(&format!("{e:#}")));
            (StatusCode::BAD_REQUEST, new_page(&c, &v, &f.spec, &msg)).into_response()
        }
    }
}

// ---- models ----

fn is_model(r: &JobRecord) -> bool {
    r.spec.kind() == JobKind::Train && r.state == JobState::Succeeded
}

/// Score jobs whose `params.model` names train job `id`.
fn score_jobs<'a>(records: &'a [JobRecord], id: &str) -> Vec<&'a JobRecord> {
    records.iter().filter(|r| r.spec.kind() == JobKind::Score && r.spec.params.model_id() == Some(id)).collect()
}

async fn models_page(State(c): State<Console>, Extension(v): Extension<Viewer>) -> Response {
    let records = match c.records(&v) {
        Ok(r) => r,
        Err(e) => return *e,
    };
    let mut o = String::from(
        "<table><tr><th>model (train job)</th><th>description</th><th>test AUC</th><th>approved for scoring</th>\
         <th>score jobs</th><th>created (UTC)</th></tr>",
    );
    for r in records.iter().rev().filter(|r| is_model(r)) {
        let _ = write!(
            o,
            "<tr><td><a href=\"/console/models/{id}\">{id}</a></td><td>{}</td><td>{}</td><td>{}</td><td>{}</td><td>{}</td></tr>",
            esc(&r.spec.description),
            r.outcome.get("test_auc").map(page::value).unwrap_or_default(),
            matches!(&r.spec.params, Params::Train(p) if p.for_scoring()),
            score_jobs(&records, &r.id).len(),
            page::time(r.created_ms),
            id = esc(&r.id)
        );
    }
    o.push_str("</table>");
    c.page("Models", Some(&v), &o).into_response()
}

async fn model_card(State(c): State<Console>, Extension(v): Extension<Viewer>, Path(id): Path<String>) -> Response {
    let records = match c.records(&v) {
        Ok(r) => r,
        Err(e) => return *e,
    };
    let Some(r) = records.iter().find(|r| r.id == id && is_model(r)) else {
        return c.error(StatusCode::NOT_FOUND, Some(&v), &format!("no trained model '{id}' on this node"));
    };
    let mut o = format!("<p id=\"model-description\">{}</p><h2>Data</h2><table>", esc(&r.spec.description));
    o.push_str("<tr><th>party</th><th>dataset</th><th>feature columns</th><th>label</th></tr>");
    for (role, side) in [("gov", &r.spec.gov), ("bank", &r.spec.bank)] {
        let _ = write!(
            o,
            "<tr><td>{role}</td><td>{}</td><td>{}</td><td>{}</td></tr>",
            esc(&side.dataset),
            esc(&side.columns.join(", ")),
            esc(side.label.as_deref().unwrap_or(""))
        );
    }
    o.push_str("</table><h2>Parameters</h2>");
    o.push_str(&page::map_table(&r.spec.params_map().unwrap_or_default(), "defaults"));
    let _ = write!(
        o,
        "<p>Reveals: {}</p><h2>Metrics and outcome</h2><div id=\"model-outcome\">{}</div>",
        esc(&r.spec.reveal.iter().map(|x| x.as_str()).collect::<Vec<_>>().join(", ")),
        page::map_table(&r.outcome, "none")
    );
    match crate::jobs::phases::train::load_model(&c.node.config, &id) {
        Ok(saved) => {
            let a = &saved.artifact;
            o.push_str("<h2>Weights this node holds</h2><table><tr><th>block</th><th>feature</th><th>weight</th></tr>");
            for (role, block) in [("gov", &a.gov), ("bank", &a.bank)] {
                for (i, f) in block.features.iter().enumerate() {
                    let w = block
                        .weights
                        .as_ref()
                        .and_then(|w| w.get(i))
                        .map_or("not revealed to this node".to_string(), |w| format!("{w:.4}"));
                    let _ = write!(o, "<tr><td>{role}</td><td>{}</td><td>{w}</td></tr>", esc(f));
                }
            }
            let bias = a.bias.map_or("not revealed to this node".to_string(), |b| format!("{b:.4}"));
            let _ = write!(o, "<tr><td colspan=\"2\">bias</td><td>{bias}</td></tr></table>");
            let sc = &a.scorecard;
            let grades: Vec<String> = sc.grades.iter().map(|g| format!("{} ≥ {}", g.grade, g.min_points)).collect();
            let _ = write!(
                o,
                "<p>Scorecard: {} points at {}:1 good:bad odds, {} points to double the odds; grades {}, {} below.</p>",
                sc.base_points,
                sc.base_odds,
                sc.pdo,
                esc(&grades.join(", ")),
                esc(&sc.lowest_grade)
            );
        }
        Err(e) => {
            let _ = write!(o, "<p class=\"bad\">Model file: {}</p>", esc(&format!("{e:#}")));
        }
    }
    let used = score_jobs(&records, &id);
    o.push_str("<h2>Score jobs that used it</h2><div id=\"score-jobs\">");
    o.push_str(&page::jobs_table(&used));
    o.push_str("</div><h2>Evaluation (from the training transcript)</h2>");
    match &r.transcript {
        Some(path) => match verified_report(path.clone()).await {
            Ok((_, report)) => {
                let _ = write!(o, "<section class=\"report\">{report}</section>");
            }
            Err(e) => {
                let _ = write!(o, "<p class=\"bad\">{}</p>", esc(&e));
            }
        },
        None => o.push_str("<p>No transcript.</p>"),
    }
    c.page(&format!("Model {id}"), Some(&v), &o).into_response()
}

// ---- audit ----

async fn audit_page(State(c): State<Console>, Extension(v): Extension<Viewer>) -> Response {
    let records = match c.records(&v) {
        Ok(r) => r,
        Err(e) => return *e,
    };
    let with_transcript: Vec<&JobRecord> = records.iter().filter(|r| r.transcript.is_some()).collect();
    let mut o = String::from(
        "<p>Verify this node's signed transcript of a job, compare it with the peer's, download the report.</p>\
         <table><tr><th>job</th><th>kind</th><th>state</th><th>description</th><th></th></tr>",
    );
    for r in with_transcript.iter().rev() {
        let _ = write!(
            o,
            "<tr><td>{id}</td><td>{}</td><td>{}</td><td>{}</td><td><a href=\"/console/audit/{id}\">verify</a> · \
             <a href=\"/console/audit/{id}/report.html\">report</a></td></tr>",
            esc(r.spec.kind().as_str()),
            r.state.as_str(),
            esc(&r.spec.description),
            id = esc(&r.id)
        );
    }
    o.push_str("</table>");
    c.page("Audit", Some(&v), &o).into_response()
}

fn transcript_of(c: &Console, v: &Viewer, id: &str) -> Result<PathBuf, Box<Response>> {
    let r = c.record(id, v)?;
    r.transcript
        .ok_or_else(|| Box::new(c.error(StatusCode::NOT_FOUND, Some(v), &format!("job '{id}' has no transcript"))))
}

async fn audit_job(State(c): State<Console>, Extension(v): Extension<Viewer>, Path(id): Path<String>) -> Response {
    let path = match transcript_of(&c, &v, &id) {
        Ok(p) => p,
        Err(e) => return *e,
    };
    let (verification, report) = match verified_report(path.clone()).await {
        Ok(x) => x,
        Err(e) => return c.error(StatusCode::UNPROCESSABLE_ENTITY, Some(&v), &e),
    };
    let verdict = if verification.ok() {
        format!(
            "<p class=\"ok\" id=\"verdict\">Verified: {} records, chain and signatures intact.</p>",
            verification.transcript.records.len()
        )
    } else {
        format!(
            "<p class=\"bad\" id=\"verdict\">FAILED: {} problem(s), listed in the report.</p>",
            verification.failures.len()
        )
    };
    let o = format!(
        "{verdict}<p><a id=\"download\" href=\"/console/audit/{id}/report.html\">Download the report (HTML)</a></p>\
         <h2>Compare with the peer's transcript</h2><p>Choose the {peer} node's <code>transcript.jsonl</code> of this job \
         (its operator exports it from <code>data_dir/jobs/{id}/</code>).</p>\
         <p><input type=\"file\" id=\"peer-transcript\"> <button id=\"compare\" data-url=\"/console/audit/{id}/compare\" \
         data-csrf=\"{csrf}\">Compare</button></p><div id=\"comparison\"></div><section class=\"report\">{report}</section>",
        id = esc(&id),
        peer = esc(&c.node.config.peer.name),
        csrf = esc(&v.csrf)
    );
    c.page(&format!("Audit of job {id}"), Some(&v), &o).into_response()
}

async fn audit_download(State(c): State<Console>, Extension(v): Extension<Viewer>, Path(id): Path<String>) -> Response {
    let path = match transcript_of(&c, &v, &id) {
        Ok(p) => p,
        Err(e) => return *e,
    };
    let html =
        tokio::task::spawn_blocking(move || crate::audit::verify(&path).map(|v| crate::audit::report::html(&v))).await;
    match html {
        Ok(Ok(html)) => (
            [
                (header::CONTENT_TYPE, "text/html; charset=utf-8".to_string()),
                (header::CONTENT_DISPOSITION, format!("attachment; filename=\"tandem-report-{id}.html\"")),
            ],
            html,
        )
            .into_response(),
        Ok(Err(e)) => c.error(StatusCode::UNPROCESSABLE_ENTITY, Some(&v), &format!("{e:#}")),
        Err(e) => c.error(StatusCode::INTERNAL_SERVER_ERROR, Some(&v), &e.to_string()),
    }
}

/// Compares this node's transcript of job `id` with the peer's, uploaded as the request body;
/// answers an HTML fragment. The upload is kept only while comparing.
async fn audit_compare(
    State(c): State<Console>,
    Extension(v): Extension<Viewer>,
    Path(id): Path<String>,
    body: axum::body::Bytes,
) -> Response {
    let ours = match transcript_of(&c, &v, &id) {
        Ok(p) => p,
        Err(e) => return *e,
    };
    let me = c.node.config.node.role;
    let upload_dir = c.node.config.node.data_dir.join("console-uploads");
    let result = tokio::task::spawn_blocking(move || -> anyhow::Result<crate::audit::Comparison> {
        crate::identity::create_private_dir(&upload_dir)?;
        let theirs = upload_dir.join(format!("{}.jsonl", random_hex()));
        crate::identity::write_private(&theirs, &body)?;
        let (gov, bank) = match me {
            protocol::Role::Gov => (ours.as_path(), theirs.as_path()),
            protocol::Role::Bank => (theirs.as_path(), ours.as_path()),
        };
        let result = crate::audit::compare(gov, bank);
        let _ = std::fs::remove_file(&theirs);
        result
    })
    .await;
    let html = match result {
        Ok(Ok(cmp)) if cmp.ok() => {
            let mut o = String::from(
                "<p class=\"ok\" id=\"comparison-verdict\">Both transcripts verify and agree on every frame, phase end and reveal.</p>",
            );
            for n in &cmp.notes {
                let _ = write!(o, "<p>note: {}</p>", esc(n));
            }
            o
        }
        Ok(Ok(cmp)) => {
            let mut o = format!(
                "<p class=\"bad\" id=\"comparison-verdict\">The transcripts do not agree: {} problem(s).</p><ul>",
                cmp.failures.len()
            );
            for f in &cmp.failures {
                let _ = write!(o, "<li>{}</li>", esc(&f.to_string()));
            }
            o.push_str("</ul>");
            o
        }
        Ok(Err(e)) => {
            format!("<p class=\"bad\" id=\"comparison-verdict\">Cannot compare: {}</p>", esc(&format!("{e:#}")))
        }
        Err(e) => format!("<p class=\"bad\" id=\"comparison-verdict\">Cannot compare: {}</p>", esc(&e.to_string())),
    };
    Html(html).into_response()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn headers(pairs: &[(header::HeaderName, &str)]) -> HeaderMap {
        let mut h = HeaderMap::new();
        for (k, v) in pairs {
            h.append(k.clone(), HeaderValue::from_str(v).unwrap());
        }
        h
    }

    #[test]
    fn only_posts_naming_their_host_count_as_same_origin() {
        let host = (header::HOST, "127.0.0.1:7411");
        assert!(same_origin(&headers(&[host.clone(), (header::ORIGIN, "http://127.0.0.1:7411")])));
        assert!(same_origin(&headers(&[host.clone(), (header::REFERER, "https://127.0.0.1:7411/console/new")])));
        assert!(!same_origin(&headers(&[host.clone(), (header::ORIGIN, "http://evil.example")])));
        assert!(!same_origin(&headers(&[host.clone(), (header::ORIGIN, "http://127.0.0.1:7411.evil.example")])));
        assert!(!same_origin(&headers(&[host.clone(), (header::ORIGIN, "null")])));
        // An Origin that disagrees wins over a matching Referer; neither header: refused.
        assert!(!same_origin(&headers(&[
            host.clone(),
            (header::ORIGIN, "http://evil.example"),
            (header::REFERER, "http://127.0.0.1:7411/console")
        ])));
        assert!(!same_origin(&headers(&[host])));
    }

    #[test]
    fn cookies_are_found_by_exact_name() {
        let h = headers(&[(header::COOKIE, "a=1; tandem_session_x=2; tandem_session=3")]);
        assert_eq!(cookie(&h, SESSION_COOKIE), Some("3"));
        assert_eq!(cookie(&h, "b"), None);
    }

    #[test]
    fn report_body_strips_the_document_frame() {
        assert_eq!(report_body("<html><head><style>x</style></head><body><h1>T</h1></body></html>"), "<h1>T</h1>");
    }
}
