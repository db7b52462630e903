//! A headless Chromium for the web tests: Debian's `chromium`, started by us with the flags
//! the closed network needs, driven over the DevTools protocol with `chromiumoxide`.
//!
//! We start the process ourselves (not `Browser::launch`) so that its flags are exactly ours,
//! its output goes to a log file (printed when a test fails) instead of a pipe nobody reads,
//! and its DevTools port is the one it wrote to `DevToolsActivePort` (port 0: no clashes).
//! Every page lives in its own browser context: its own `localStorage`, so its own
//! signed-in user. The process is killed when the [`Chrome`] drops.

#![allow(dead_code)]

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::Mutex;
use std::time::{Duration, Instant};

use chromiumoxide::cdp::browser_protocol::emulation::SetDeviceMetricsOverrideParams;
use chromiumoxide::cdp::browser_protocol::page::{
    AddScriptToEvaluateOnNewDocumentParams, CaptureScreenshotFormat,
};
use chromiumoxide::cdp::browser_protocol::target::{CreateBrowserContextParams, CreateTargetParams};
use chromiumoxide::cdp::js_protocol::runtime::EvaluateParams;
use chromiumoxide::handler::viewport::Viewport;
use chromiumoxide::handler::HandlerConfig;
use chromiumoxide::page::ScreenshotParams;
use chromiumoxide::{Browser, Page};
use futures::StreamExt;
use serde_json::Value;

/// Where Debian's package puts the browser; `BOXOFFICE_CHROMIUM` overrides it.
pub const CHROMIUM: &str = "/usr/bin/chromium";
/// The flags without which Chromium hangs or phones home on the machines' closed network.
pub const CHROMIUM_FLAGS: &[&str] = &[
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--disable-dev-shm-usage",
    "--disable-extensions",
    "--hide-scrollbars",
    "--mute-audio",
    "--remote-debugging-port=0",
];
/// How long Chromium may take to write its DevTools port.
pub const LAUNCH_TIMEOUT: Duration = Duration::from_secs(30);
/// How long one DevTools command (a navigation, an evaluation) may take.
pub const COMMAND_TIMEOUT: Duration = Duration::from_secs(30);
/// The desktop viewport of every page (screenshots change it per shot).
pub const DESKTOP: (u32, u32) = (1280, 900);
/// Pause between two looks at the page in [`Tab::wait_for`].
pub const POLL: Duration = Duration::from_millis(25);
/// Lines of Chromium's log printed when a launch fails.
const LOG_TAIL_LINES: usize = 40;

/// The browser to use, or `None` (with the reason printed) when this machine has none. Under
/// `CI=true` as root `scripts/test.sh` has installed it, so a missing browser is a failure.
pub fn chromium_or_skip(test: &str) -> Option<PathBuf> {
    let path = PathBuf::from(std::env::var("BOXOFFICE_CHROMIUM").unwrap_or_else(|_| CHROMIUM.into()));
    if path.exists() {
        return Some(path);
    }
    let ci = std::env::var("CI").is_ok_and(|v| v == "true");
    assert!(
        !(ci && is_root()),
        "{test}: {} is missing, under CI=true as root: scripts/test.sh should have installed \
         Debian's chromium (apt-get install chromium)",
        path.display()
    );
    eprintln!(
        "{test}: skipped: chromium not installed ({} missing); scripts/test.sh installs it when run as root",
        path.display()
    );
    None
}

fn is_root() -> bool {
    std::fs::read_to_string("/proc/self/status")
        .ok()
        .and_then(|s| {
            s.lines().find(|l| l.starts_with("Uid:")).map(|l| l.split_whitespace().nth(1) == Some("0"))
        })
        .unwrap_or(false)
}

/// A child process killed (and reaped) when dropped.
struct Killed(Option<Child>);

impl Drop for Killed {
    fn drop(&mut self) {
        if let Some(mut c) = self.0.take() {
            let _ = c.kill();
            let _ = c.wait();
        }
    }
}

pub struct Chrome {
    pub browser: Browser,
    handler: tokio::task::JoinHandle<()>,
    child: Killed,
    /// The profile directory and `chromium.log`.
    dir: tempfile::TempDir,
    /// Browser contexts opened since the last [`Chrome::close_tabs`].
    contexts: Mutex<Vec<chromiumoxide::cdp::browser_protocol::browser::BrowserContextId>>,
}

impl Chrome {
    /// Start `exe` headless on a fresh profile and connect to it.
    pub async fn launch(exe: &Path) -> Chrome {
        let dir = tempfile::tempdir().expect("tempdir for chromium");
        let profile = dir.path().join("profile");
        let log_path = dir.path().join("chromium.log");
        let log = std::fs::File::create(&log_path).expect("chromium log");
        let started = Instant::now();
        let mut child = Killed(Some(
            Command::new(exe)
                .args(CHROMIUM_FLAGS)
                .arg(format!("--user-data-dir={}", profile.display()))
                .arg(format!("--window-size={},{}", DESKTOP.0, DESKTOP.1))
                .arg("about:blank")
                .stdin(Stdio::null())
                .stdout(Stdio::from(log.try_clone().expect("clone log")))
                .stderr(Stdio::from(log))
                .spawn()
                .unwrap_or_else(|e| panic!("start {}: {e}", exe.display())),
        ));
        // Chromium writes "<port>\n<path>" once its DevTools endpoint listens.
        let ws = loop {
            if let Ok(text) = std::fs::read_to_string(profile.join("DevToolsActivePort")) {
                let mut lines = text.lines();
                if let (Some(port), Some(path)) = (lines.next(), lines.next()) {
                    break format!("ws://127.0.0.1:{port}{path}");
                }
            }
            if let Some(status) = child.0.as_mut().and_then(|c| c.try_wait().ok().flatten()) {
                panic!("chromium exited ({status}) before it listened; its log:\n{}", tail(&log_path));
            }
            assert!(
                started.elapsed() < LAUNCH_TIMEOUT,
                "chromium did not listen within {LAUNCH_TIMEOUT:?}; its log:\n{}",
                tail(&log_path)
            );
            tokio::time::sleep(Duration::from_millis(50)).await;
        };
        let config = HandlerConfig {
            viewport: Some(Viewport { width: DESKTOP.0, height: DESKTOP.1, ..Viewport::default() }),
            request_timeout: COMMAND_TIMEOUT,
            ..HandlerConfig::default()
        };
        let (browser, mut handler) =
            tokio::time::timeout(COMMAND_TIMEOUT, Browser::connect_with_config(ws.clone(), config))
                .await
                .unwrap_or_else(|_| panic!("connect to chromium at {ws}: timed out"))
                .unwrap_or_else(|e| {
                    panic!("connect to chromium at {ws}: {e}; its log:\n{}", tail(&log_path))
                });
        // The handler is the connection: it must be polled for any command to get an answer.
        // A message it cannot decode is an `Err` item, not the end; `None` is the end.
        let handler = tokio::spawn(async move { while handler.next().await.is_some() {} });
        eprintln!("chromium ready in {:?} ({ws})", started.elapsed());
        Chrome { browser, handler, child, dir, contexts: Mutex::new(Vec::new()) }
    }

    /// A new page in a new browser context (its own storage), on `base` (`http://host:port`).
    pub async fn tab(&self, base: &str) -> Tab {
        let context = within("create a browser context", async {
            self.browser.create_browser_context(CreateBrowserContextParams::default()).await
        })
        .await;
        self.contexts.lock().unwrap().push(context.clone());
        let params = CreateTargetParams::builder()
            .url("about:blank")
            .browser_context_id(context)
            .build()
            .expect("target params");
        let page = within("open a page", async { self.browser.new_page(params).await }).await;
        // Uncaught errors and rejections of the page's scripts, kept for failure messages.
        let catcher = "window.__errors = []; \
            addEventListener('error', e => window.__errors.push(String(e.message))); \
            addEventListener('unhandledrejection', e => window.__errors.push('unhandled: ' + String(e.reason)));";
        within("install the error catcher", async {
            page.execute(AddScriptToEvaluateOnNewDocumentParams::new(catcher)).await
        })
        .await;
        Tab { page, base: base.to_string() }
    }

    /// Close every page opened since the last call (by disposing of their contexts).
    pub async fn close_tabs(&self) {
        let contexts: Vec<_> = std::mem::take(&mut *self.contexts.lock().unwrap());
        for c in contexts {
            let _ =
                tokio::time::timeout(Duration::from_secs(5), self.browser.dispose_browser_context(c)).await;
        }
    }

    /// Close the browser: politely, then by force.
    pub async fn close(mut self) {
        self.close_tabs().await;
        let _ = tokio::time::timeout(Duration::from_secs(5), self.browser.close()).await;
        if let Some(child) = self.child.0.as_mut() {
            let deadline = Instant::now() + Duration::from_secs(5);
            while Instant::now() < deadline && child.try_wait().ok().flatten().is_none() {
                tokio::time::sleep(Duration::from_millis(50)).await;
            }
        }
        drop(self.child.0.take().map(|c| Killed(Some(c))));
        self.handler.abort();
    }

    /// The last lines of Chromium's own log.
    pub fn log_tail(&self) -> String {
        tail(&self.dir.path().join("chromium.log"))
    }
}

impl Drop for Chrome {
    fn drop(&mut self) {
        self.handler.abort();
    }
}

fn tail(path: &Path) -> String {
    let text = std::fs::read_to_string(path).unwrap_or_default();
    // Without a D-Bus (containers, CI) Chromium logs a failed bus call every few ms: noise.
    let lines: Vec<&str> = text.lines().filter(|l| !l.contains("dbus/")).collect();
    lines[lines.len().saturating_sub(LOG_TAIL_LINES)..].join("\n")
}

/// `fut` (a DevTools command) within [`COMMAND_TIMEOUT`], or a panic naming `what`.
async fn within<T, E: std::fmt::Display>(
    what: &str,
    fut: impl std::future::Future<Output = Result<T, E>>,
) -> T {
    match tokio::time::timeout(COMMAND_TIMEOUT, fut).await {
        Ok(Ok(v)) => v,
        Ok(Err(e)) => panic!("{what}: {e}"),
        Err(_) => panic!("{what}: no answer from chromium within {COMMAND_TIMEOUT:?}"),
    }
}

/// A JavaScript string literal of `s` (JSON's is one).
pub fn js(s: &str) -> String {
    serde_json::to_string(s).expect("a string encodes")
}

/// Whether a value the page gave counts as "there yet": not null, false, "", 0 or an error.
fn truthy(v: &Value) -> bool {
    match v {
        Value::Null => false,
        Value::Bool(b) => *b,
        Value::String(s) => !s.is_empty(),
        Value::Number(n) => n.as_f64() != Some(0.0),
        Value::Object(o) => !o.contains_key("__error"),
        Value::Array(_) => true,
    }
}

/// One page of one browser context.
pub struct Tab {
    pub page: Page,
    /// `http://127.0.0.1:PORT` of the node the page talks to.
    pub base: String,
}

impl Tab {
    /// Navigate to `path` on the node and wait for the load event.
    pub async fn goto(&self, path: &str) {
        let url = format!("{}{path}", self.base);
        within(&format!("navigate to {url}"), async { self.page.goto(url.clone()).await }).await;
    }

    /// The value of the JavaScript expression `expr` (promises awaited); `null` for undefined.
    pub async fn eval(&self, expr: &str) -> Value {
        self.try_eval(expr).await.unwrap_or_else(|e| panic!("{e}"))
    }

    /// [`Tab::eval`], with a failed evaluation (an exception, or a page between two
    /// documents: "Cannot find context with specified id") as an `Err`.
    pub async fn try_eval(&self, expr: &str) -> Result<Value, String> {
        let params = EvaluateParams::builder()
            .expression(expr)
            .await_promise(true)
            .return_by_value(true)
            .build()
            .expect("evaluate params");
        let short: String = expr.chars().take(200).collect();
        match tokio::time::timeout(COMMAND_TIMEOUT, self.page.evaluate_expression(params)).await {
            Ok(Ok(result)) => Ok(result.value().cloned().unwrap_or(Value::Null)),
            Ok(Err(e)) => Err(format!("evaluate `{short}`: {e}")),
            Err(_) => Err(format!("evaluate `{short}`: no answer from chromium within {COMMAND_TIMEOUT:?}")),
        }
    }

    /// Wait until the expression `expr` is truthy (not null, false, "", 0) and return its
    /// value; after `timeout`, panic naming `what`, with the last value, the page's `#error`
    /// and its uncaught script errors. An exception in `expr`, or a page in the middle of a
    /// navigation, counts as "not yet".
    pub async fn wait_for(&self, what: &str, expr: &str, timeout: Duration) -> Value {
        let guarded = format!(
            "(() => {{ try {{ return ({expr}); }} catch (e) {{ return {{__error: String(e)}}; }} }})()"
        );
        let started = Instant::now();
        loop {
            let last = match self.try_eval(&guarded).await {
                Ok(v) if truthy(&v) => return v,
                Ok(v) => v.to_string(),
                Err(e) => e,
            };
            if started.elapsed() >= timeout {
                panic!("{what}: not true within {timeout:?}; last: {last}; {}", self.state().await);
            }
            tokio::time::sleep(POLL).await;
        }
    }

    /// What a failure message should show of the page: its URL, `#error`, uncaught errors.
    pub async fn state(&self) -> String {
        let v = self
            .try_eval(
                "({url: location.href, error: (document.querySelector('#error') || {}).textContent || '', \
                  uncaught: window.__errors || []})",
            )
            .await;
        match v {
            Ok(v) => format!("page: {v}"),
            Err(e) => format!("page: unreadable ({e})"),
        }
    }

    /// The trimmed text of the first element matching `selector`, if any.
    pub async fn text(&self, selector: &str) -> Option<String> {
        let v = self.eval(&format!("(document.querySelector({}) || {{}}).textContent", js(selector))).await;
        v.as_str().map(|s| s.trim().to_string())
    }

    /// Whether an element matching `selector` is rendered (in the DOM, not hidden).
    pub async fn visible(&self, selector: &str) -> bool {
        self.eval(&visible_js(selector)).await == Value::Bool(true)
    }

    /// Wait until `selector` is visible and enabled, then click its middle with the mouse.
    pub async fn click(&self, selector: &str) {
        self.wait_for(
            &format!("{selector} is visible and enabled"),
            &format!("{} && !document.querySelector({}).disabled", visible_js(selector), js(selector)),
            Duration::from_secs(5),
        )
        .await;
        let el = within(&format!("find {selector}"), async { self.page.find_element(selector).await }).await;
        within(&format!("click {selector}"), async { el.click().await }).await;
    }

    /// Set a form control's value as a user's edit would (input and change events fire):
    /// text, number, date and datetime inputs, textareas, selects; "true"/"false" for a checkbox.
    pub async fn fill(&self, selector: &str, value: &str) {
        self.wait_for(
            &format!("{selector} exists"),
            &format!("document.querySelector({})", js(selector)),
            Duration::from_secs(5),
        )
        .await;
        let done = self
            .eval(&format!(
                "(() => {{ const el = document.querySelector({sel}); const v = {val}; \
                   if (el.type === 'checkbox') {{ el.checked = (v === 'true'); }} \
                   else {{ const proto = Object.getPrototypeOf(el); \
                     Object.getOwnPropertyDescriptor(proto, 'value').set.call(el, v); }} \
                   el.dispatchEvent(new Event('input', {{bubbles: true}})); \
                   el.dispatchEvent(new Event('change', {{bubbles: true}})); \
                   return el.type === 'checkbox' ? String(el.checked) : el.value; }})()",
                sel = js(selector),
                val = js(value)
            ))
            .await;
        assert_eq!(done, Value::String(value.to_string()), "{selector} took the value {value:?}");
    }

    /// Click into `selector` and type `text` key by key.
    pub async fn type_text(&self, selector: &str, text: &str) {
        self.click(selector).await;
        let el = within(&format!("find {selector}"), async { self.page.find_element(selector).await }).await;
        within(&format!("type into {selector}"), async { el.type_str(text).await }).await;
    }

    /// Press `key` (e.g. "ArrowRight", "Enter") on the element matching `selector`.
    pub async fn press(&self, selector: &str, key: &str) {
        let el = within(&format!("find {selector}"), async { self.page.find_element(selector).await }).await;
        within(&format!("press {key} on {selector}"), async { el.press_key(key).await }).await;
    }

    /// Put `token` in this context's `localStorage["boxoffice.token"]` (the pages' sign-in).
    pub async fn sign_in(&self, token: &str) {
        // Any page of the node's origin will do; /healthz is the cheapest.
        self.goto("/healthz").await;
        // Until the navigation has committed, an evaluation may still land in about:blank:
        // set it on the node's origin, and read it back.
        self.wait_for(
            "the token is stored on the node's origin",
            &format!(
                "location.origin === {origin} && (localStorage.setItem('boxoffice.token', {tok}), \
                 localStorage.getItem('boxoffice.token') === {tok})",
                origin = js(&self.base),
                tok = js(token)
            ),
            Duration::from_secs(5),
        )
        .await;
    }

    /// Resize the viewport (CSS pixels); `mobile` emulates a phone (touch, mobile viewport).
    pub async fn viewport(&self, width: u32, height: u32, mobile: bool) {
        let params = SetDeviceMetricsOverrideParams::builder()
            .width(width)
            .height(height)
            .device_scale_factor(1.0)
            .mobile(mobile)
            .build()
            .expect("metrics params");
        within("set the viewport", async { self.page.execute(params).await }).await;
    }

    /// A PNG of the viewport, written to `path`; its size in bytes.
    pub async fn screenshot(&self, path: &Path) -> usize {
        let params = ScreenshotParams::builder().format(CaptureScreenshotFormat::Png).build();
        let png = within("screenshot", async { self.page.screenshot(params).await }).await;
        std::fs::write(path, &png).unwrap_or_else(|e| panic!("write {}: {e}", path.display()));
        png.len()
    }
}

/// An expression: whether `selector` matches an element that is rendered and not hidden.
pub fn visible_js(selector: &str) -> String {
    format!(
        "(() => {{ const el = document.querySelector({}); \
           return !!el && !el.closest('[hidden]') && el.getClientRects().length > 0; }})()",
        js(selector)
    )
}
