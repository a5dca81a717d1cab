//! A tiny W3C WebDriver client over `ureq`, for driving headless Chromium through
//! chromedriver: just the commands the browser test uses.
//!
//! A driver has a time budget: every call's timeout is the time left (at most 20 s), and
//! calls past it fail at once, so a hung browser fails the test within the budget instead
//! of stalling it. Child processes are killed when their guards drop, and a session is
//! closed (which quits its Chromium) when it drops.

use std::cell::Cell;
use std::io::{BufRead, BufReader};
use std::net::TcpListener;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicU32, Ordering};
use std::time::{Duration, Instant};

use serde_json::{Value, json};

/// Errors are plain messages: the test prints them and saves a screenshot.
pub type Result<T> = std::result::Result<T, String>;

/// The key of an element reference in W3C WebDriver JSON.
const ELEMENT_KEY: &str = "element-6066-11e4-a52e-4f735466cecf";

/// A child process killed (and reaped) on drop, so a failing test leaves nothing running.
pub struct ChildGuard {
    child: Child,
}

impl ChildGuard {
    pub fn spawn(command: &mut Command) -> Result<Self> {
        let child = command
            .spawn()
            .map_err(|e| format!("cannot start {:?}: {e}", command.get_program()))?;
        Ok(Self { child })
    }

    pub fn child(&mut self) -> &mut Child {
        &mut self.child
    }
}

impl Drop for ChildGuard {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// A free TCP port on 127.0.0.1 (bind to port 0, read it, release it).
pub fn free_port() -> Result<u16> {
    let listener = TcpListener::bind("127.0.0.1:0").map_err(|e| format!("no free port: {e}"))?;
    listener
        .local_addr()
        .map(|a| a.port())
        .map_err(|e| e.to_string())
}

/// An HTTP agent for loopback: no proxy (a proxy from the environment must not see
/// requests to 127.0.0.1), no redirects, error statuses returned as responses.
pub fn agent(timeout: Duration) -> ureq::Agent {
    ureq::Agent::config_builder()
        .timeout_global(Some(timeout))
        .proxy(None)
        .max_redirects(0)
        .http_status_as_error(false)
        .build()
        .new_agent()
}

/// Reads the first line a child prints on stdout within `timeout`, then keeps draining its
/// stdout on a thread (a full pipe would block the child).
pub fn first_stdout_line(child: &mut Child, timeout: Duration) -> Result<String> {
    let stdout = child.stdout.take().ok_or("child stdout is not piped")?;
    let (tx, rx) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        let mut lines = BufReader::new(stdout).lines();
        let first = lines.next();
        let _ = tx.send(first);
        for _ in lines {}
    });
    match rx.recv_timeout(timeout) {
        Ok(Some(Ok(line))) => Ok(line),
        Ok(Some(Err(e))) => Err(format!("reading the child's stdout: {e}")),
        Ok(None) => Err("the child exited without printing anything".into()),
        Err(_) => Err(format!("the child printed nothing within {timeout:?}")),
    }
}

/// A running chromedriver.
pub struct Driver {
    /// Killed on drop, after every session (they borrow the driver) has been closed.
    _process: ChildGuard,
    base: String,
    agent: ureq::Agent,
    /// When calls stop being made (see [`Driver::grace`]).
    deadline: Cell<Instant>,
}

/// Longest single WebDriver call (starting Chromium is the slowest).
const CALL_TIMEOUT: Duration = Duration::from_secs(20);

impl Driver {
    /// Starts `chromedriver` on a free port, logging to `log`, and waits until it is ready.
    /// Every call through this driver must be done within `budget` from now.
    pub fn start(chromedriver: &Path, log: &Path, budget: Duration) -> Result<Self> {
        let port = free_port()?;
        let log_file = std::fs::File::create(log).map_err(|e| format!("{}: {e}", log.display()))?;
        let process = ChildGuard::spawn(
            Command::new(chromedriver)
                .arg(format!("--port={port}"))
                .arg("--allowed-ips=127.0.0.1")
                .stdin(Stdio::null())
                .stdout(Stdio::null())
                .stderr(log_file),
        )?;
        let driver = Self {
            _process: process,
            base: format!("http://127.0.0.1:{port}"),
            agent: agent(CALL_TIMEOUT),
            deadline: Cell::new(Instant::now() + budget),
        };
        let deadline = Instant::now() + Duration::from_secs(15);
        loop {
            if let Ok(status) = driver.call("GET", "/status", None)
                && status["ready"] == json!(true)
            {
                return Ok(driver);
            }
            if Instant::now() > deadline {
                return Err(format!(
                    "chromedriver not ready within 15 s (log: {})",
                    log.display()
                ));
            }
            std::thread::sleep(Duration::from_millis(50));
        }
    }

    /// Opens a headless Chromium session with a fresh profile directory.
    pub fn session(&self, chromium: &Path, window: (u32, u32)) -> Result<Session<'_>> {
        static PROFILES: AtomicU32 = AtomicU32::new(0);
        let profile = std::env::temp_dir().join(format!(
            "checkout-browser-test-{}-{}",
            std::process::id(),
            PROFILES.fetch_add(1, Ordering::Relaxed)
        ));
        let _ = std::fs::remove_dir_all(&profile);
        std::fs::create_dir_all(&profile).map_err(|e| format!("{}: {e}", profile.display()))?;
        let args = [
            "--headless=new".to_owned(),
            "--no-sandbox".to_owned(),
            "--disable-gpu".to_owned(),
            "--disable-dev-shm-usage".to_owned(),
            "--disable-quic".to_owned(),
            "--no-first-run".to_owned(),
            "--disable-background-networking".to_owned(),
            "--disable-component-update".to_owned(),
            "--disable-sync".to_owned(),
            // Straight to 127.0.0.1 even when the environment names a proxy.
            "--no-proxy-server".to_owned(),
            format!("--window-size={},{}", window.0, window.1),
            format!("--user-data-dir={}", profile.display()),
        ];
        let capabilities = json!({
            "capabilities": {
                "alwaysMatch": {
                    "browserName": "chrome",
                    "pageLoadStrategy": "normal",
                    "timeouts": { "implicit": 0, "pageLoad": 15_000, "script": 10_000 },
                    "goog:chromeOptions": { "binary": chromium, "args": args }
                }
            }
        });
        let value = self
            .call("POST", "/session", Some(&capabilities))
            .map_err(|e| {
                let _ = std::fs::remove_dir_all(&profile);
                format!("cannot start Chromium: {e}")
            })?;
        let id = value["sessionId"]
            .as_str()
            .ok_or_else(|| format!("no sessionId in {value}"))?
            .to_owned();
        Ok(Session {
            driver: self,
            id,
            profile,
        })
    }

    /// Allows calls for `extra` more from now, even past the budget: for saving a
    /// screenshot after a failure, and for closing the browser.
    pub fn grace(&self, extra: Duration) {
        self.deadline
            .set(self.deadline.get().max(Instant::now() + extra));
    }

    /// One WebDriver command: returns the response's `value`, or its error as a message.
    fn call(&self, method: &str, path: &str, body: Option<&Value>) -> Result<Value> {
        let left = self
            .deadline
            .get()
            .saturating_duration_since(Instant::now());
        if left.is_zero() {
            return Err(format!(
                "{method} {path}: the test's time budget is used up"
            ));
        }
        let timeout = Some(left.min(CALL_TIMEOUT));
        let url = format!("{}{path}", self.base);
        let response = match method {
            "GET" => self
                .agent
                .get(&url)
                .config()
                .timeout_global(timeout)
                .build()
                .call(),
            "DELETE" => self
                .agent
                .delete(&url)
                .config()
                .timeout_global(timeout)
                .build()
                .call(),
            _ => self
                .agent
                .post(&url)
                .config()
                .timeout_global(timeout)
                .build()
                .header("content-type", "application/json")
                .send(body.unwrap_or(&json!({})).to_string()),
        };
        let mut response = response.map_err(|e| format!("{method} {path}: {e}"))?;
        let status = response.status();
        let text = response
            .body_mut()
            .with_config()
            .limit(64 * 1024 * 1024)
            .read_to_string()
            .map_err(|e| format!("{method} {path}: reading the response: {e}"))?;
        let json: Value = serde_json::from_str(&text)
            .map_err(|e| format!("{method} {path}: not JSON ({e}): {text}"))?;
        let value = json.get("value").cloned().unwrap_or(Value::Null);
        if !status.is_success() || value.get("error").is_some() {
            return Err(format!(
                "{method} {path}: {} {}: {}",
                status.as_u16(),
                value["error"].as_str().unwrap_or("error"),
                value["message"]
                    .as_str()
                    .unwrap_or(&text)
                    .lines()
                    .next()
                    .unwrap_or("")
            ));
        }
        Ok(value)
    }
}

/// A browser session; dropping it closes the browser and deletes its profile.
pub struct Session<'d> {
    driver: &'d Driver,
    id: String,
    profile: PathBuf,
}

/// An element reference.
#[derive(Debug, Clone)]
pub struct Element(String);

impl Session<'_> {
    /// See [`Driver::grace`].
    pub fn grace(&self, extra: Duration) {
        self.driver.grace(extra);
    }

    fn call(&self, method: &str, path: &str, body: Option<&Value>) -> Result<Value> {
        self.driver
            .call(method, &format!("/session/{}{path}", self.id), body)
    }

    pub fn goto(&self, url: &str) -> Result<()> {
        self.call("POST", "/url", Some(&json!({ "url": url })))
            .map(drop)
    }

    pub fn current_url(&self) -> Result<String> {
        let v = self.call("GET", "/url", None)?;
        v.as_str()
            .map(str::to_owned)
            .ok_or_else(|| format!("url is not a string: {v}"))
    }

    /// The first element matching a CSS selector.
    pub fn find(&self, css: &str) -> Result<Element> {
        let v = self.call(
            "POST",
            "/element",
            Some(&json!({ "using": "css selector", "value": css })),
        )?;
        element(&v).ok_or_else(|| format!("{css}: no element reference in {v}"))
    }

    /// Every element matching a CSS selector (none is not an error).
    pub fn find_all(&self, css: &str) -> Result<Vec<Element>> {
        let v = self.call(
            "POST",
            "/elements",
            Some(&json!({ "using": "css selector", "value": css })),
        )?;
        Ok(v.as_array()
            .map(|a| a.iter().filter_map(element).collect())
            .unwrap_or_default())
    }

    pub fn click(&self, el: &Element) -> Result<()> {
        self.call(
            "POST",
            &format!("/element/{}/click", el.0),
            Some(&json!({})),
        )
        .map(drop)
    }

    /// The rendered text (empty for hidden elements, as a user would see it).
    pub fn text(&self, el: &Element) -> Result<String> {
        let v = self.call("GET", &format!("/element/{}/text", el.0), None)?;
        Ok(v.as_str().unwrap_or_default().to_owned())
    }

    /// A DOM property, such as an input's `value`.
    pub fn property(&self, el: &Element, name: &str) -> Result<Value> {
        self.call("GET", &format!("/element/{}/property/{name}", el.0), None)
    }

    pub fn is_displayed(&self, el: &Element) -> Result<bool> {
        let v = self.call("GET", &format!("/element/{}/displayed", el.0), None)?;
        Ok(v.as_bool().unwrap_or(false))
    }

    /// Runs a synchronous script (`return …;`) with arguments, returning its result.
    pub fn execute(&self, script: &str, args: &[Value]) -> Result<Value> {
        self.call(
            "POST",
            "/execute/sync",
            Some(&json!({ "script": script, "args": args })),
        )
    }

    /// Runs an asynchronous script with arguments: it ends by calling its last argument
    /// with the result.
    pub fn execute_async(&self, script: &str, args: &[Value]) -> Result<Value> {
        self.call(
            "POST",
            "/execute/async",
            Some(&json!({ "script": script, "args": args })),
        )
    }

    /// Resizes the browser window (CSS pixels of the outer window).
    pub fn set_window_size(&self, width: u32, height: u32) -> Result<()> {
        self.call(
            "POST",
            "/window/rect",
            Some(&json!({ "width": width, "height": height })),
        )?;
        Ok(())
    }

    pub fn source(&self) -> Result<String> {
        let v = self.call("GET", "/source", None)?;
        Ok(v.as_str().unwrap_or_default().to_owned())
    }

    /// A PNG of the viewport.
    pub fn screenshot(&self) -> Result<Vec<u8>> {
        let v = self.call("GET", "/screenshot", None)?;
        base64_decode(v.as_str().ok_or("screenshot is not a string")?)
    }
}

impl Drop for Session<'_> {
    fn drop(&mut self) {
        self.driver.grace(Duration::from_secs(5));
        let _ = self
            .driver
            .call("DELETE", &format!("/session/{}", self.id), None);
        let _ = std::fs::remove_dir_all(&self.profile);
    }
}

fn element(v: &Value) -> Option<Element> {
    v.get(ELEMENT_KEY)
        .and_then(Value::as_str)
        .map(|id| Element(id.to_owned()))
}

/// Standard base64 (with padding), as WebDriver sends screenshots.
fn base64_decode(text: &str) -> Result<Vec<u8>> {
    let value = |c: u8| -> Result<u32> {
        Ok(match c {
            b'A'..=b'Z' => c - b'A',
            b'a'..=b'z' => c - b'a' + 26,
            b'0'..=b'9' => c - b'0' + 52,
            b'+' => 62,
            b'/' => 63,
            _ => return Err(format!("invalid base64 byte {c:#x}")),
        }
        .into())
    };
    let clean: Vec<u8> = text
        .bytes()
        .filter(|b| !b.is_ascii_whitespace() && *b != b'=')
        .collect();
    let mut out = Vec::with_capacity(clean.len() * 3 / 4);
    for chunk in clean.chunks(4) {
        let mut n = 0u32;
        for (i, &c) in chunk.iter().enumerate() {
            n |= value(c)? << (18 - 6 * i);
        }
        let bytes = n.to_be_bytes();
        out.extend_from_slice(&bytes[1..chunk.len()]);
    }
    Ok(out)
}
