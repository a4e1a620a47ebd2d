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
    assert_eq!(b.text("#peer-connected-fingerprint"), cert_fp(&bank_dir), "the certificate the peer presented");
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
    // The outcome as tables, nested objects as nested tables, with the job's values; no JSON text.
    let outcome = b.text("#outcome");
    assert!(!outcome.contains("{\"") && !outcome.contains("\":"), "{outcome}");
    assert!(b.find("#outcome td > table").is_some(), "no nested table in the outcome");
    let calibration_a = gov_train.outcome["calibration"]["a"].as_f64().unwrap();
    assert_eq!(
        b.script("return document.evaluate(\"//div[@id='outcome']//th[.='calibration']/following-sibling::td//th[.='a']/following-sibling::td\", document, null, XPathResult.STRING_TYPE, null).stringValue"),
        json!(format!("{calibration_a:.4}"))
    );
    // The report: the verification verdict, every reveal of the transcript (its value and policy
    // rule) and every phase that carried frames, in the traffic table.
    let report = b.text("section.report");
    assert!(report.contains("Verification: OK"), "{report}");
    let reveals = transcript_records(&gov_train, "reveal");
    assert!(!reveals.is_empty());
    for r in &reveals {
        for field in ["name", "rule"] {
            let text = r["reveal"][field].as_str().unwrap();
            assert!(report.contains(text), "reveal {field} '{text}' not on the job page");
        }
    }
    let traffic = report.split("Traffic by phase").nth(1).expect("a traffic table");
    for f in transcript_records(&gov_train, "frame") {
        assert!(traffic.contains(f["phase"].as_str().unwrap()), "phase {} not in the traffic table", f["phase"]);
    }
    // The model card: its metrics are the job's, with the ROC plot of the training transcript.
    b.click("#model-link");
    b.wait_url(&format!("/console/models/{train_id}"));
    let auc = gov_train.outcome["test_auc"].as_f64().unwrap();
    let card = b.text("#model-outcome");
    assert!(card.contains(&format!("{auc:.4}")), "AUC {auc} not in {card}");
    assert!(b.find("svg[aria-label='ROC curve']").is_some(), "no ROC curve on the model card");
    assert!(b.text("main").contains("Weights this node holds"));
    // Information value per feature and the calibration, from the job's outcome, on the card.
    let first = &gov_train.outcome["scorecard_table"][0];
    let iv = first["iv"].as_f64().expect("the scorecard table carries each feature's IV");
    assert!(card.contains(first["feature"].as_str().unwrap()) && card.contains(&format!("{iv:.4}")), "IV {iv}: {card}");
    assert!(card.contains(&format!("{calibration_a:.4}")), "{card}");
    assert!(b.find("svg[aria-label='score distribution']").is_some(), "no score distribution on the model card");
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

    // The jobs list filtered by kind: the train job and not the PSI job, and back with "any".
    b.goto(&format!("{console}/jobs?kind=train"));
    let list = b.text("#jobs");
    assert!(list.contains(&train_id) && !list.contains(&hostile_id), "{list}");
    b.goto(&format!("{console}/jobs?state=succeeded&kind=psi"));
    let list = b.text("#jobs");
    assert!(list.contains(&hostile_id) && !list.contains(&train_id), "{list}");

    // Cancel from the job page: a train job stops as cancelled on both nodes.
    let long = p.gov_api.submit(&job("demo-train.toml", |_| {}), OPERATOR).unwrap().id;
    b.goto(&format!("{console}/jobs/{long}"));
    b.click("#cancel");
    let state =
        b.wait_text("#state", "the job to be cancelled", |s| s == "cancelled" || s == "succeeded" || s == "failed");
    assert_eq!(state, "cancelled");
    assert_eq!(p.gov_api.job(&long).unwrap().state, JobState::Cancelled);
    let bank_long = wait_at(&p.bank_api, &long);
    assert_ne!(bank_long.state, JobState::Succeeded, "the bank was told: {:?}", bank_long.error);

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

    // A per-operator token in the browser: the name is the token's (the typed one is ignored),
    // and revoking the token ends the session at once.
    let config_file = p.dir.path().join("gov.toml");
    std::fs::write(&config_file, toml::to_string(&p.gov_config).unwrap()).unwrap();
    let olga = add_operator(&config_file, "Olga Operator");
    b.call("DELETE", "/cookie", None).unwrap();
    b.goto(&format!("{console}/login"));
    b.type_into("#token", &olga);
    b.type_into("#operator-name", "Mallory");
    b.click("#sign-in");
    assert_eq!(b.text("#operator"), "Olga Operator");
    b.goto(&format!("{console}/jobs"));
    assert!(b.text("#jobs").contains(&train_id));
    operator_cli(&config_file, &["revoke", "Olga Operator"], true);
    b.goto(&format!("{console}/jobs"));
    assert!(b.url().ends_with("/console/login"), "{}", b.url());
}

// ---- the console's own TLS listener and per-operator tokens (no browser needed) ----

/// A self-signed certificate for the console's TLS listener (it names `localhost`), written to
/// `dir`: (certificate file, key file, certificate DER).
fn console_cert(dir: &Path) -> (PathBuf, PathBuf, Vec<u8>) {
    let (cert_pem, key_pem, der) = node::identity::self_signed_cert("console.test").unwrap();
    let (cert, key) = (dir.join("console.crt"), dir.join("console.key"));
    std::fs::write(&cert, cert_pem).unwrap();
    std::fs::write(&key, key_pem.as_bytes()).unwrap();
    (cert, key, der)
}

/// `[console] listen = "127.0.0.1:0"` over TLS with the given certificate and key.
fn console_tls(cert: &Path, key: &Path) -> node::config::ConsoleSection {
    node::config::ConsoleSection {
        listen: Some("127.0.0.1:0".parse().unwrap()),
        tls_cert: Some(cert.to_path_buf()),
        tls_key: Some(key.to_path_buf()),
    }
}

/// Runs `tandem operator ARGS --config FILE`; its standard output (the command must succeed,
/// unless `expect_ok` is false: then its standard error).
fn operator_cli(config: &Path, args: &[&str], expect_ok: bool) -> String {
    let out = Command::new(env!("CARGO_BIN_EXE_tandem"))
        .arg("operator")
        .args(args)
        .arg("--config")
        .arg(config)
        .output()
        .expect("run tandem");
    assert_eq!(out.status.success(), expect_ok, "tandem operator {args:?}: {}", String::from_utf8_lossy(&out.stderr));
    String::from_utf8(if expect_ok { out.stdout } else { out.stderr }).unwrap()
}

/// The token `tandem operator add NAME` printed (its last line).
fn add_operator(config: &Path, name: &str) -> String {
    let out = operator_cli(config, &["add", name], true);
    let token = out.lines().last().unwrap().trim().to_string();
    assert_eq!(token.len(), 64, "{out}");
    token
}

fn form_encode(pairs: &[(&str, &str)]) -> String {
    let enc = |s: &str| {
        s.bytes()
            .map(|b| match b {
                b'a'..=b'z' | b'A'..=b'Z' | b'0'..=b'9' | b'-' | b'_' | b'.' => (b as char).to_string(),
                b' ' => "+".into(),
                _ => format!("%{b:02X}"),
            })
            .collect::<String>()
    };
    pairs.iter().map(|(k, v)| format!("{}={}", enc(k), enc(v))).collect::<Vec<_>>().join("&")
}

/// An answer from the HTTPS client: status, headers (names lower-case), body.
struct Answer {
    status: u16,
    headers: Vec<(String, String)>,
    body: String,
}

impl Answer {
    fn header(&self, name: &str) -> Vec<&str> {
        self.headers.iter().filter(|(k, _)| k == name).map(|(_, v)| v.as_str()).collect()
    }

    /// The `name=value` of the cookie `name` this answer sets.
    fn cookie(&self, name: &str) -> String {
        let c = self.header("set-cookie").into_iter().find(|c| c.starts_with(&format!("{name}="))).unwrap();
        c.split(';').next().unwrap().to_string()
    }
}

/// One HTTP/1.1 request over TLS to `addr`, trusting only the certificate `trusted` and
/// expecting the name `localhost` in it (rustls verifies both).
fn https(
    addr: std::net::SocketAddr,
    trusted: &[u8],
    method: &str,
    path: &str,
    headers: &[(&str, &str)],
    body: &str,
) -> Result<Answer, String> {
    use std::io::{Read, Write};
    let mut roots = rustls::RootCertStore::empty();
    roots.add(rustls::pki_types::CertificateDer::from(trusted.to_vec())).unwrap();
    let config =
        rustls::ClientConfig::builder_with_provider(std::sync::Arc::new(rustls::crypto::ring::default_provider()))
            .with_safe_default_protocol_versions()
            .unwrap()
            .with_root_certificates(roots)
            .with_no_client_auth();
    let name = rustls::pki_types::ServerName::try_from("localhost").unwrap();
    let conn = rustls::ClientConnection::new(std::sync::Arc::new(config), name).unwrap();
    let mut tls = rustls::StreamOwned::new(conn, std::net::TcpStream::connect(addr).unwrap());
    let mut request = format!("{method} {path} HTTP/1.1\r\nHost: localhost:{}\r\nConnection: close\r\n", addr.port());
    for (k, v) in headers {
        request.push_str(&format!("{k}: {v}\r\n"));
    }
    if method == "POST" {
        request.push_str(&format!(
            "Content-Type: application/x-www-form-urlencoded\r\nContent-Length: {}\r\n",
            body.len()
        ));
    }
    request.push_str("\r\n");
    request.push_str(body);
    tls.write_all(request.as_bytes()).map_err(|e| e.to_string())?;
    let mut raw = Vec::new();
    if let Err(e) = tls.read_to_end(&mut raw)
        && (e.kind() != std::io::ErrorKind::UnexpectedEof || raw.is_empty())
    {
        return Err(e.to_string());
    }
    let text = String::from_utf8_lossy(&raw).to_string();
    let (head, body) = text.split_once("\r\n\r\n").ok_or_else(|| format!("no HTTP answer: {text}"))?;
    let mut lines = head.lines();
    let status = lines.next().and_then(|l| l.split(' ').nth(1)).and_then(|s| s.parse().ok()).ok_or(head.to_string())?;
    let headers = lines
        .filter_map(|l| l.split_once(':'))
        .map(|(k, v)| (k.trim().to_ascii_lowercase(), v.trim().to_string()))
        .collect();
    Ok(Answer { status, headers, body: body.to_string() })
}

/// Text of the element with id `id` in `html` (first occurrence; the console's ids are unique).
fn by_id<'a>(html: &'a str, id: &str) -> &'a str {
    let start = html.find(&format!("id=\"{id}\"")).unwrap_or_else(|| panic!("no #{id} in {html}"));
    let rest = &html[start..];
    let open = rest.find('>').unwrap() + 1;
    &rest[open..open + rest[open..].find('<').unwrap()]
}

#[test]
fn console_over_tls_with_operator_tokens() {
    let certs = tempfile::tempdir().unwrap();
    let (cert, key, der) = console_cert(certs.path());
    let p = pair(&[], |gov, _| gov.console = console_tls(&cert, &key));
    let gov = p.gov.as_ref().unwrap();
    let addr = gov.console_addr().expect("the console listener is up");
    let config_file = p.dir.path().join("gov.toml");
    std::fs::write(&config_file, toml::to_string(&p.gov_config).unwrap()).unwrap();
    let origin = format!("https://localhost:{}", addr.port());

    // It is TLS with the configured certificate: another trusted certificate fails the handshake,
    // and plain HTTP gets no page.
    let (_, _, other) = node::identity::self_signed_cert("other.test").unwrap();
    let refused = https(addr, &other, "GET", "/console/login", &[], "").err().expect("an untrusted certificate");
    assert!(refused.to_lowercase().contains("certificate"), "{refused}");
    {
        use std::io::{Read, Write};
        let mut tcp = std::net::TcpStream::connect(addr).unwrap();
        tcp.set_read_timeout(Some(Duration::from_secs(15))).unwrap();
        tcp.write_all(b"GET /console/login HTTP/1.1\r\nHost: localhost\r\nConnection: close\r\n\r\n").unwrap();
        let mut answer = Vec::new();
        let _ = tcp.read_to_end(&mut answer);
        assert!(!String::from_utf8_lossy(&answer).contains("Sign in"), "plain HTTP must get no page");
    }

    // `tandem operator add` prints a token once; the node keeps only its hash, owner-only.
    let olga = add_operator(&config_file, "Olga Operator");
    let file = node::console::operators::file(&p.gov_config);
    let stored = std::fs::read_to_string(&file).unwrap();
    assert!(stored.contains("Olga Operator") && !stored.contains(&olga), "{stored}");
    use std::os::unix::fs::PermissionsExt;
    assert_eq!(std::fs::metadata(&file).unwrap().permissions().mode() & 0o777, 0o600);
    assert!(operator_cli(&config_file, &["list"], true).contains("Olga Operator"));
    assert!(operator_cli(&config_file, &["add", "Olga Operator"], false).contains("revoke"));

    let get = |path: &str, cookie: &str| {
        let headers: Vec<(&str, &str)> = if cookie.is_empty() { vec![] } else { vec![("Cookie", cookie)] };
        https(addr, &der, "GET", path, &headers, "").unwrap()
    };
    let post = |path: &str, cookie: &str, form: &[(&str, &str)]| {
        https(addr, &der, "POST", path, &[("Cookie", cookie), ("Origin", &origin)], &form_encode(form)).unwrap()
    };
    let sign_in = |token: &str, name: &str| {
        let form = get("/console/login", "");
        assert_eq!(form.status, 200);
        let login_cookie = form.header("set-cookie")[0];
        assert!(login_cookie.contains("; Secure"), "cookies on the TLS listener are Secure: {login_cookie}");
        assert_eq!(form.header("strict-transport-security"), ["max-age=31536000"]);
        let csrf = form.body.split("name=\"login_csrf\" value=\"").nth(1).unwrap().split('"').next().unwrap();
        post(
            "/console/login",
            &form.cookie("tandem_login"),
            &[("token", token), ("operator", name), ("login_csrf", csrf)],
        )
    };

    // The operator token signs in under its own name, whatever name is typed.
    let answer = sign_in(&olga, "Mallory");
    assert_eq!(answer.status, 303, "{}", answer.body);
    let set = answer.header("set-cookie").into_iter().find(|c| c.starts_with("tandem_session=")).unwrap();
    assert!(set.contains("HttpOnly; Secure; SameSite=Strict"), "{set}");
    let session = answer.cookie("tandem_session");
    let node_page = get("/console", &session);
    assert_eq!(by_id(&node_page.body, "operator"), "Olga Operator");
    assert!(!node_page.body.contains("Mallory"));

    // A job submitted in that session records the token's operator, also in the signed manifest.
    let new = get("/console/new?template=psi", &session);
    let csrf = new.body.split("name=\"csrf\" value=\"").nth(1).unwrap().split('"').next().unwrap().to_string();
    let spec = std::fs::read_to_string(repo_root().join("configs/demo-job.toml")).unwrap();
    let submitted = post("/console/new", &session, &[("csrf", &csrf), ("action", "submit"), ("spec", &spec)]);
    assert_eq!(submitted.status, 303, "{}", submitted.body);
    let id = submitted.header("location")[0].rsplit('/').next().unwrap().to_string();
    let record = p.gov_api.wait(&id, Duration::from_secs(120), |_| {}).unwrap();
    assert_eq!(record.state, JobState::Succeeded, "{:?}", record.error);
    assert_eq!(record.operator, "Olga Operator");
    let manifest = node::audit::verify(record.transcript.as_ref().unwrap()).unwrap().transcript.manifest.unwrap();
    assert_eq!(manifest.operator, "Olga Operator");

    // This listener serves the console only, not the JSON admin API.
    let admin_token = node::identity::load_token(&p.gov_config.admin.token_file).unwrap();
    let api =
        https(addr, &der, "GET", "/v1/status", &[("Authorization", &format!("Bearer {admin_token}"))], "").unwrap();
    assert!(api.status != 200 && !api.body.contains("protocol_version"), "{}: {}", api.status, api.body);

    // Revoked: the open session ends at its next request, and the token no longer signs in.
    assert!(operator_cli(&config_file, &["revoke", "Olga Operator"], true).contains("revoked"));
    assert!(!operator_cli(&config_file, &["list"], true).contains("Olga Operator"));
    let after = get("/console", &session);
    assert_eq!((after.status, after.header("location")), (303, vec!["/console/login"]));
    assert_eq!(sign_in(&olga, "Olga Operator").status, 401);
    assert!(operator_cli(&config_file, &["revoke", "Olga Operator"], false).contains("no operator"));

    // The admin token keeps working, under the name typed (and needs one).
    assert_eq!(sign_in(&admin_token, "").status, 400);
    let admin = sign_in(&admin_token, "Root Admin");
    assert_eq!(admin.status, 303);
    assert_eq!(by_id(&get("/console", &admin.cookie("tandem_session")).body, "operator"), "Root Admin");

    // On the admin listener (plain HTTP, 127.0.0.1) the cookies carry no Secure flag.
    let plain = agent().get(format!("http://{}/console/login", gov.admin_addr())).call().unwrap();
    let login_cookie = header(&plain, "set-cookie")[0].clone();
    assert!(login_cookie.contains("HttpOnly") && !login_cookie.contains("Secure"), "{login_cookie}");

    // A console certificate the daemon cannot read stops it at start, naming the key.
    let mut broken = p.gov_config.clone();
    broken.console.tls_key = Some(certs.path().join("missing.key"));
    broken.admin.port = 0;
    let socket = std::net::UdpSocket::bind("127.0.0.1:0").unwrap();
    let err = match p.rt.block_on(node::daemon::Daemon::start_on(broken, socket)) {
        Ok(_) => panic!("started without its console key"),
        Err(e) => format!("{e:#}"),
    };
    assert!(err.contains("console.tls_key") && err.contains("missing.key"), "{err}");
}

#[test]
fn console_listener_config_mistakes_are_named() {
    let dir = tempfile::tempdir().unwrap();
    let template = std::fs::read_to_string(repo_root().join("configs/gov.toml")).unwrap();
    let load = |console: &str| {
        let path = dir.path().join("gov.toml");
        std::fs::write(&path, format!("{template}\n[console]\n{console}\n")).unwrap();
        node::config::Config::load(&path).map_err(|e| format!("{e:#}"))
    };
    let err = load("listen = \"0.0.0.0:8443\"").unwrap_err();
    assert!(err.contains("[console] listen = \"0.0.0.0:8443\""), "names the line: {err}");
    assert!(err.contains("plain HTTP") && err.contains("console.tls_cert") && err.contains("127.0.0.1:8443"), "{err}");
    let c = load("listen = \"127.0.0.1:8443\"").unwrap();
    assert_eq!(c.console.listen, Some("127.0.0.1:8443".parse().unwrap()), "plain HTTP on loopback is allowed");
    let c = load("listen = \"0.0.0.0:8443\"\ntls_cert = \"c.pem\"\ntls_key = \"k.pem\"").unwrap();
    assert_eq!(c.console.tls_cert, Some(dir.path().join("c.pem")), "relative to the config file");
    assert!(load("listen = \"0.0.0.0:8443\"\ntls_cert = \"c.pem\"").unwrap_err().contains("go together"));
    assert!(load("tls_cert = \"c.pem\"\ntls_key = \"k.pem\"").unwrap_err().contains("console.listen is not"));
}
