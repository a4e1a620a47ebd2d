//! The browser console between two real daemons, driven through headless Chromium over the
//! WebDriver HTTP protocol (chromedriver): sign-in, the demo training job submitted from the
//! form and followed on the live page, the model card, a score job, the audit page with a
//! transcript comparison; and the refusals: wrong token, missing CSRF token, another origin.
//! Saves the model card's screenshot in the temporary directory (tandem-console.png), or as
//! the README's docs/console.png with `TANDEM_UPDATE_SCREENSHOT=1`.
//!
//! Needs Debian's `chromium` and `chromium-driver` (`.ci/run` installs them); without them the
//! test prints a loud SKIPPED message and checks nothing.

mod common;

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use common::daemons::{OPERATOR, cert_fp, signing_pub, wait_at};
use common::jobs::*;
use node::jobs::record::JobState;
use serde_json::{Value, json};

const ELEMENT: &str = "element-6066-11e4-a52e-4f735466cecf";

fn agent() -> ureq::Agent {
    ureq::Agent::config_builder()
        .http_status_as_error(false)
        .max_redirects(0)
        .timeout_global(Some(Duration::from_secs(120)))
        .build()
        .into()
}

fn which(name: &str) -> Option<PathBuf> {
    std::env::var_os("PATH")?.to_str()?.split(':').map(|d| Path::new(d).join(name)).find(|p| p.is_file())
}

/// A chromedriver process and one headless Chromium session.
struct Browser {
    driver: Child,
    base: String,
    session: String,
    http: ureq::Agent,
    _profile: tempfile::TempDir,
}

impl Browser {
    /// Starts chromedriver and a headless Chromium; `None` (with a loud message) when they are
    /// not installed.
    fn start() -> Option<Browser> {
        let (Some(driver_bin), Some(chromium)) = (
            which("chromedriver"),
            Some(PathBuf::from("/usr/lib/chromium/chromium")).filter(|p| p.is_file()).or_else(|| which("chromium")),
        ) else {
            assert!(
                std::env::var_os("TANDEM_REQUIRE_BROWSER").is_none(),
                "TANDEM_REQUIRE_BROWSER is set (CI) but chromium or chromedriver is missing: \
                 apt-get install -y chromium chromium-driver"
            );
            eprintln!(
                "\n\n******** SKIPPED: the console browser test needs chromium and chromedriver \
                 (apt-get install -y chromium chromium-driver; .ci/run installs them) ********\n\n"
            );
            return None;
        };
        let port = std::net::TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port();
        let driver = Command::new(driver_bin)
            .arg(format!("--port={port}"))
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("start chromedriver");
        let base = format!("http://127.0.0.1:{port}");
        let http = agent();
        common::poll("chromedriver to answer", || {
            http.get(format!("{base}/status")).call().ok().filter(|r| r.status().is_success())
        });
        let profile = tempfile::tempdir().unwrap();
        let caps = json!({"capabilities": {"alwaysMatch": {"browserName": "chrome", "goog:chromeOptions": {
            "binary": chromium,
            "args": ["--headless=new", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
                     "--disable-background-networking", "--disable-component-update", "--disable-sync",
                     "--disable-dev-shm-usage", "--window-size=1280,1000",
                     format!("--user-data-dir={}", profile.path().display())]
        }}}});
        let mut b = Browser { driver, base, session: String::new(), http, _profile: profile };
        let answer = b.call("POST", "/session", Some(caps)).expect("new WebDriver session");
        b.session = answer["sessionId"].as_str().expect("sessionId").to_string();
        Some(b)
    }

    /// One WebDriver command; its `value`, or the WebDriver error as text.
    fn call(&self, method: &str, path: &str, body: Option<Value>) -> Result<Value, String> {
        let url = if path == "/session" {
            format!("{}/session", self.base)
        } else {
            format!("{}/session/{}{path}", self.base, self.session)
        };
        let r = match method {
            "GET" => self.http.get(&url).call(),
            "DELETE" => self.http.delete(&url).call(),
            _ => self.http.post(&url).send_json(body.unwrap_or(json!({}))),
        };
        let mut r = r.map_err(|e| e.to_string())?;
        let status = r.status();
        let v: Value = r.body_mut().read_json().map_err(|e| e.to_string())?;
        if status.is_success() { Ok(v["value"].clone()) } else { Err(format!("{status}: {}", v["value"])) }
    }

    fn goto(&self, url: &str) {
        self.call("POST", "/url", Some(json!({ "url": url }))).unwrap();
    }

    /// Waits until the page's address contains `part`; the address.
    fn wait_url(&self, part: &str) -> String {
        let deadline = Instant::now() + Duration::from_secs(60);
        loop {
            let url = self.url();
            if url.contains(part) {
                return url;
            }
            assert!(Instant::now() < deadline, "gave up waiting for an address with '{part}': {url}");
            std::thread::sleep(Duration::from_millis(100));
        }
    }

    fn url(&self) -> String {
        self.call("GET", "/url", None).unwrap().as_str().unwrap().to_string()
    }

    fn find(&self, css: &str) -> Option<String> {
        let v = self.call("POST", "/element", Some(json!({"using": "css selector", "value": css}))).ok()?;
        v[ELEMENT].as_str().map(str::to_string)
    }

    /// The element matching `css`, waiting up to 30 s for it (a click may still be loading the
    /// next page).
    fn element(&self, css: &str) -> String {
        let deadline = Instant::now() + Duration::from_secs(30);
        while Instant::now() < deadline {
            match self.find(css) {
                Some(e) => return e,
                None => std::thread::sleep(Duration::from_millis(100)),
            }
        }
        self.find(css).unwrap_or_else(|| {
            let source = self.call("GET", "/source", None).unwrap_or_default();
            panic!("no element '{css}' on {}:\n{}", self.url(), source.as_str().unwrap_or_default())
        })
    }

    fn text(&self, css: &str) -> String {
        let e = self.element(css);
        self.call("GET", &format!("/element/{e}/text"), None).unwrap().as_str().unwrap().to_string()
    }

    fn property(&self, css: &str, name: &str) -> Value {
        let e = self.element(css);
        self.call("GET", &format!("/element/{e}/property/{name}"), None).unwrap()
    }

    fn click(&self, css: &str) {
        let e = self.element(css);
        self.call("POST", &format!("/element/{e}/click"), None).unwrap();
    }

    fn type_into(&self, css: &str, text: &str) {
        let e = self.element(css);
        self.call("POST", &format!("/element/{e}/clear"), None).unwrap();
        self.call("POST", &format!("/element/{e}/value"), Some(json!({ "text": text }))).unwrap();
    }

    fn script(&self, script: &str) -> Value {
        self.call("POST", "/execute/sync", Some(json!({"script": script, "args": []}))).unwrap()
    }

    /// Waits (without navigating) until the text of `css` satisfies `done`; re-finds the element
    /// each time, since the page replaces it while it updates.
    fn wait_text(&self, css: &str, what: &str, done: impl Fn(&str) -> bool) -> String {
        let deadline = Instant::now() + Duration::from_secs(240);
        loop {
            let text = self
                .find(css)
                .and_then(|e| self.call("GET", &format!("/element/{e}/text"), None).ok())
                .and_then(|v| v.as_str().map(str::to_string));
            if let Some(t) = text.filter(|t| done(t)) {
                return t;
            }
            assert!(Instant::now() < deadline, "gave up waiting for {what} on {}", self.url());
            std::thread::sleep(Duration::from_millis(200));
        }
    }

    /// Waits until an element matches `css` (e.g. after the live page reloads itself).
    fn wait_for(&self, css: &str) {
        let deadline = Instant::now() + Duration::from_secs(60);
        while self.find(css).is_none() {
            assert!(Instant::now() < deadline, "gave up waiting for '{css}' on {}", self.url());
            std::thread::sleep(Duration::from_millis(200));
        }
    }

    fn cookie(&self, name: &str) -> String {
        let v = self.call("GET", &format!("/cookie/{name}"), None).unwrap();
        v["value"].as_str().unwrap().to_string()
    }

    fn screenshot(&self, path: &Path) {
        let b64 = self.call("GET", "/screenshot", None).unwrap();
        std::fs::write(path, base64_decode(b64.as_str().unwrap())).unwrap();
    }
}

impl Drop for Browser {
    fn drop(&mut self) {
        if !self.session.is_empty() {
            let _ = self.call("DELETE", "", None);
        }
        let _ = self.driver.kill();
        let _ = self.driver.wait();
    }
}

fn base64_decode(s: &str) -> Vec<u8> {
    let val = |c: u8| match c {
        b'A'..=b'Z' => c - b'A',
        b'a'..=b'z' => c - b'a' + 26,
        b'0'..=b'9' => c - b'0' + 52,
        b'+' => 62,
        b'/' => 63,
        _ => panic!("not base64: {c}"),
    };
    let bytes: Vec<u8> = s.bytes().filter(|&c| c != b'=' && !c.is_ascii_whitespace()).map(val).collect();
    let mut out = Vec::with_capacity(bytes.len() * 3 / 4);
    for chunk in bytes.chunks(4) {
        let n = chunk.iter().enumerate().fold(0u32, |acc, (i, &b)| acc | (b as u32) << (18 - 6 * i));
        out.extend_from_slice(&n.to_be_bytes()[1..chunk.len()]);
    }
    out
}

fn header(r: &ureq::http::Response<ureq::Body>, name: &str) -> Vec<String> {
    r.headers().get_all(name).iter().map(|v| v.to_str().unwrap().to_string()).collect()
}

#[test]
fn console_in_headless_chromium_against_two_daemons() {
    let Some(b) = Browser::start() else { return };
    let p = pair(&[], |_, _| {});
    let addr = p.gov.as_ref().unwrap().admin_addr();
    let console = format!("http://{addr}/console");
    let token = node::identity::load_token(&p.gov_config.admin.token_file).unwrap();
    let (gov_dir, bank_dir) = (p.dir.path().join("gov"), p.dir.path().join("bank"));

    // A job whose description and operator are markup, submitted through the JSON API: the
    // console must show them as text.
    let mut hostile = job("demo-job.toml", |_| {});
    hostile.description = "<script>window.__pwned=1</script><b>bold</b>".into();
    let hostile_operator = "O'Brien <i>ops</i>";
    let hostile_id = p.gov_api.submit(&hostile, hostile_operator).unwrap().id;
    p.gov_api.wait(&hostile_id, Duration::from_secs(120), |_| {}).unwrap();

    // Not signed in: every page leads to the sign-in form.
    b.goto(&format!("{console}/"));
    assert!(b.url().ends_with("/console/login"), "{}", b.url());
    b.goto(&format!("{console}/jobs"));
    assert!(b.url().ends_with("/console/login"), "{}", b.url());
    // A wrong token is refused and leaves no session.
    b.type_into("#operator-name", "Alice Auditor");
    b.type_into("#token", "0123456789abcdef");
    b.click("#sign-in");
    assert!(b.text("#error").contains("Wrong token"), "{}", b.text("main"));
    b.goto(&format!("{console}/jobs"));
    assert!(b.url().ends_with("/console/login"), "{}", b.url());

    // Sign in; the node page shows both nodes' identities as the test computes them.
    b.type_into("#operator-name", "Alice Auditor");
    b.type_into("#token", &token);
    b.click("#sign-in");
    assert_eq!(b.text("#operator"), "Alice Auditor");
    assert_eq!(b.text("#cert-fingerprint"), cert_fp(&gov_dir));
    assert_eq!(b.text("#peer-fingerprint"), cert_fp(&bank_dir));
    assert_eq!(b.text("#signing-key"), signing_pub(&gov_dir));
    assert_eq!(b.text("#peer-state"), "connected");
    assert!(b.text("#policy").contains("min_model_columns = 3"), "{}", b.text("#policy"));

    // The hostile job is listed as literal text; its script never ran, its markup made no element.
    b.goto(&format!("{console}/jobs"));
    let list = b.text("#jobs");
    assert!(list.contains("<script>window.__pwned=1</script><b>bold</b>"), "{list}");
    assert!(list.contains(hostile_operator), "{list}");
    assert_eq!(
        b.script("return [typeof window.__pwned, document.querySelectorAll('#jobs b, #jobs i, #jobs script').length]"),
        json!(["undefined", 0])
    );

    // The demo training job from the template: pre-check, then submit, then follow it live.
    b.goto(&format!("{console}/new?template=train"));
    let spec = b.property("#spec", "value");
    assert!(spec.as_str().unwrap().contains("kind = \"train\""), "{spec}");
    b.click("#check");
    assert!(b.text("#precheck").contains("allowed"), "{}", b.text("#precheck"));
    b.click("#submit");
    let job_url = b.wait_url("/console/jobs/");
    let train_id = job_url.rsplit('/').next().unwrap().to_string();
    assert!(job_url.ends_with(&format!("/console/jobs/{train_id}")), "{job_url}: {}", b.text("main"));
    b.wait_text("#state", "the train job to succeed", |s| s == "succeeded" || s == "failed" || s == "cancelled");
    assert_eq!(b.url(), job_url, "the page followed the job without the test navigating");
    let gov_train = p.gov_api.job(&train_id).unwrap();
    assert_eq!(gov_train.state, JobState::Succeeded, "{:?}", gov_train.error);
    assert_eq!(gov_train.operator, "Alice Auditor");
    let manifest = node::audit::verify(gov_train.transcript.as_ref().unwrap()).unwrap().transcript.manifest.unwrap();
    assert_eq!(manifest.operator, "Alice Auditor", "the console's operator is in the signed manifest");

    // The page reloads itself once the job ended, adding the transcript's report and the links.
    b.wait_for("section.report");
    // The model card: its metrics are the job's, with the ROC plot of the training transcript.
    b.click("#model-link");
    b.wait_url(&format!("/console/models/{train_id}"));
    let auc = gov_train.outcome["test_auc"].as_f64().unwrap();
    let card = b.text("#model-outcome");
    assert!(card.contains(&format!("{auc:.4}")), "AUC {auc} not in {card}");
    assert!(b.find("svg[aria-label='ROC curve']").is_some(), "no ROC curve on the model card");
    assert!(b.text("main").contains("Weights this node holds"));
    let shot = match std::env::var_os("TANDEM_UPDATE_SCREENSHOT") {
        Some(_) => repo_root().join("docs/console.png"),
        None => std::env::temp_dir().join("tandem-console.png"),
    };
    b.screenshot(&shot);

    // A score job from its template, which names the new model; the card then lists it.
    b.goto(&format!("{console}/new?template=score"));
    assert!(b.property("#spec", "value").as_str().unwrap().contains(&format!("model = \"{train_id}\"")));
    b.click("#submit");
    let score_id = b.wait_url("/console/jobs/").rsplit('/').next().unwrap().to_string();
    let state = b.wait_text("#state", "the score job to end", |s| s == "succeeded" || s == "failed");
    assert_eq!(state, "succeeded", "{:?}", p.gov_api.job(&score_id).unwrap().error);
    b.goto(&format!("{console}/models/{train_id}"));
    assert!(b.text("#score-jobs").contains(&score_id), "{}", b.text("#score-jobs"));

    // Audit: this node's transcript verifies; the bank's copy agrees, a tampered copy does not.
    b.goto(&format!("{console}/audit/{train_id}"));
    assert!(b.text("#verdict").starts_with("Verified"), "{}", b.text("#verdict"));
    let bank_train = wait_at(&p.bank_api, &train_id);
    let bank_transcript = bank_train.transcript.clone().unwrap();
    let e = b.element("#peer-transcript");
    b.call("POST", &format!("/element/{e}/value"), Some(json!({"text": bank_transcript.display().to_string()})))
        .unwrap();
    b.click("#compare");
    b.wait_text("#comparison-verdict", "the comparison", |t| !t.is_empty());
    assert!(b.text("#comparison-verdict").contains("agree on every frame"), "{}", b.text("#comparison"));
    let tampered = p.dir.path().join("tampered.jsonl");
    let text = std::fs::read_to_string(&bank_transcript).unwrap();
    let line = text.lines().nth(3).unwrap();
    let changed = line.replacen("\"len\":", "\"len\":1", 1);
    assert_ne!(changed, line, "the tamper changed a frame length");
    std::fs::write(&tampered, text.replacen(line, &changed, 1)).unwrap();
    b.goto(&format!("{console}/audit/{train_id}"));
    let e = b.element("#peer-transcript");
    b.call("POST", &format!("/element/{e}/value"), Some(json!({"text": tampered.display().to_string()}))).unwrap();
    b.click("#compare");
    let verdict = b.wait_text("#comparison-verdict", "the comparison", |t| !t.is_empty());
    assert!(verdict.contains("do not agree"), "{verdict}");

    // Outside the browser, with the browser's session cookie.
    let http = agent();
    let session = format!("tandem_session={}", b.cookie("tandem_session"));
    b.goto(&format!("{console}/new?template=psi"));
    let csrf = b.property("input[name=csrf]", "value").as_str().unwrap().to_string();
    let origin = format!("http://{addr}");
    let report = http.get(format!("{console}/audit/{train_id}/report.html")).header("Cookie", &session).call().unwrap();
    assert_eq!(report.status(), 200);
    assert!(header(&report, "content-disposition")[0].starts_with("attachment"));
    let psi_spec = std::fs::read_to_string(repo_root().join("configs/demo-job.toml")).unwrap();
    let post_new = |cookie: Option<&str>, csrf: Option<&str>, origin: &str, spec: &str| {
        let mut form = vec![("spec", spec), ("action", "submit")];
        if let Some(c) = csrf {
            form.push(("csrf", c));
        }
        let mut r = http.post(format!("{console}/new")).header("Origin", origin);
        if let Some(c) = cookie {
            r = r.header("Cookie", c);
        }
        let mut answer = r.send_form(form).unwrap();
        let status = answer.status().as_u16();
        (status, answer.body_mut().read_to_string().unwrap_or_default())
    };
    let jobs_before = p.gov_api.list().unwrap().len();
    assert_eq!(post_new(Some(&session), None, &origin, &psi_spec).0, 403, "missing CSRF token");
    assert_eq!(post_new(Some(&session), Some("00"), &origin, &psi_spec).0, 403, "wrong CSRF token");
    let (status, text) = post_new(Some(&session), Some(&csrf), "http://evil.example", &psi_spec);
    assert_eq!(status, 403, "another origin: {text}");
    assert!(text.contains("origin"), "{text}");
    assert_eq!(post_new(None, Some(&csrf), &origin, &psi_spec).0, 401, "no session");
    assert_eq!(p.gov_api.list().unwrap().len(), jobs_before, "no refused request submitted a job");
    // The same request with the token, origin and session is accepted (the refusals were theirs).
    assert_eq!(post_new(Some(&session), Some(&csrf), &origin, &psi_spec).0, 303);
    assert_eq!(p.gov_api.list().unwrap().len(), jobs_before + 1);

    // The pre-check names the rule of this node's policy that refuses a column.
    let bad = psi_spec.replacen("\"x9\"]", "\"x9\", \"x99\"]", 1);
    assert_ne!(bad, psi_spec);
    let mut r = http
        .post(format!("{console}/new"))
        .header("Origin", &origin)
        .header("Cookie", &session)
        .send_form([("spec", bad.as_str()), ("action", "check"), ("csrf", csrf.as_str())])
        .unwrap();
    let text = r.body_mut().read_to_string().unwrap();
    assert!(text.contains("refused") && text.contains("policy.datasets.gov_features.columns"), "{text}");

    // Headers: the policy on every page, the cookies' flags, a wrong token answered 401.
    let mut login = http.get(format!("{console}/login")).call().unwrap();
    assert_eq!(header(&login, "content-security-policy")[0], node::console::CONTENT_SECURITY_POLICY);
    let login_cookie = header(&login, "set-cookie")[0].clone();
    assert!(login_cookie.contains("HttpOnly") && login_cookie.contains("SameSite=Strict"), "{login_cookie}");
    let page = login.body_mut().read_to_string().unwrap();
    let login_csrf = page.split("name=\"login_csrf\" value=\"").nth(1).unwrap().split('"').next().unwrap();
    let pre = login_cookie.split(';').next().unwrap().to_string();
    let sign_in = |token: &str| {
        http.post(format!("{console}/login"))
            .header("Origin", &origin)
            .header("Cookie", &pre)
            .send_form([("operator", OPERATOR), ("token", token), ("login_csrf", login_csrf)])
            .unwrap()
    };
    assert_eq!(sign_in("wrong").status(), 401);
    let ok = sign_in(&token);
    assert_eq!(ok.status(), 303);
    let cookies = header(&ok, "set-cookie");
    let session_cookie = cookies.iter().find(|c| c.starts_with("tandem_session=")).unwrap();
    assert!(session_cookie.contains("HttpOnly") && session_cookie.contains("SameSite=Strict"), "{session_cookie}");
    // A sign-in without the pre-session cookie's token is refused even with the right admin token.
    let no_login_csrf = http
        .post(format!("{console}/login"))
        .header("Origin", &origin)
        .send_form([("operator", OPERATOR), ("token", token.as_str()), ("login_csrf", login_csrf)])
        .unwrap();
    assert_eq!(no_login_csrf.status(), 403);
}
