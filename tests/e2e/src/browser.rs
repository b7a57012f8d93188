//! Headless Chromium driven over the Chrome DevTools Protocol, for the dashboard's browser test:
//! start Debian's `chromium` with a throw-away profile, open a page, evaluate JavaScript, wait
//! for conditions, collect console errors and uncaught exceptions, receive downloads into a
//! temporary directory and take screenshots. One WebSocket to the browser; page commands go
//! through a flattened session. Dropping the [`Browser`] kills Chromium and deletes its
//! directories.

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use anyhow::{Context, anyhow, bail};
use base64::Engine as _;
use futures::{SinkExt, StreamExt};
use serde_json::{Value, json};
use tokio::sync::{mpsc, oneshot};
use tokio::task::JoinHandle;
use tokio_websockets::{ClientBuilder, Limits, Message};

/// How long a wait for a page condition may take before the test fails (liveness only: the
/// assertions are on what the page shows, never on how fast).
pub const WAIT: Duration = Duration::from_secs(60);

/// Debian's Chromium, or `LINKAGE_CHROMIUM`.
pub fn chromium_path() -> PathBuf {
    std::env::var_os("LINKAGE_CHROMIUM")
        .map(PathBuf::from)
        .unwrap_or_else(|| PathBuf::from("/usr/bin/chromium"))
}

type Reply = oneshot::Sender<Result<Value, String>>;

/// A running headless Chromium.
#[derive(Debug)]
pub struct Browser {
    child: Child,
    // Kept for their Drop: the profile and the downloads are deleted with the browser.
    profile: tempfile::TempDir,
    downloads: tempfile::TempDir,
    commands: mpsc::UnboundedSender<(Value, Reply)>,
    events: Arc<Mutex<Vec<Value>>>,
    next_id: Arc<AtomicU64>,
    socket: JoinHandle<()>,
}

/// One tab, attached through a flattened session.
#[derive(Debug)]
pub struct Page<'b> {
    browser: &'b Browser,
    session: String,
}

/// A finished download: the name the page gave it and where it is.
#[derive(Debug, Clone)]
pub struct Download {
    pub suggested_filename: String,
    pub path: PathBuf,
}

impl Browser {
    /// Starts Chromium headless on a free port with a fresh profile; downloads go to a temporary
    /// directory. Fails with the Debian package names when Chromium is not installed.
    pub async fn launch() -> anyhow::Result<Self> {
        let chromium = chromium_path();
        if !chromium.exists() {
            bail!(
                "Chromium is not installed at {}: the dashboard's browser test needs the Debian \
                 packages chromium and chromium-driver (apt-get install -y chromium \
                 chromium-driver; .ci/run installs them), or LINKAGE_CHROMIUM pointing at a \
                 Chromium binary",
                chromium.display()
            );
        }
        let profile = tempfile::Builder::new()
            .prefix("linkage-chromium-")
            .tempdir()
            .context("creating Chromium's profile directory")?;
        let downloads = tempfile::Builder::new()
            .prefix("linkage-downloads-")
            .tempdir()
            .context("creating the download directory")?;
        let log_path = profile.path().join("chromium.log");
        let log = std::fs::File::create(&log_path).context("creating Chromium's log file")?;
        let child = Command::new(&chromium)
            .args([
                "--headless",
                // Tests run as root in CI, where Chromium's sandbox cannot start.
                "--no-sandbox",
                "--disable-gpu",
                "--disable-dev-shm-usage",
                "--no-first-run",
                "--no-default-browser-check",
                "--disable-extensions",
                "--disable-background-networking",
                "--disable-component-update",
                "--disable-sync",
                "--mute-audio",
                "--hide-scrollbars",
                "--window-size=1440,1000",
                "--remote-debugging-address=127.0.0.1",
                "--remote-debugging-port=0",
            ])
            .arg(format!("--user-data-dir={}", profile.path().display()))
            .arg("about:blank")
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(log)
            .spawn()
            .with_context(|| format!("starting {}", chromium.display()))?;
        let mut browser = Self {
            child,
            profile,
            downloads,
            commands: mpsc::unbounded_channel().0,
            events: Arc::default(),
            next_id: Arc::new(AtomicU64::new(1)),
            socket: tokio::spawn(async {}),
        };
        let ws_url = browser.devtools_url(&log_path).await?;
        browser.connect(&ws_url).await?;
        browser
            .call(
                None,
                "Browser.setDownloadBehavior",
                json!({
                    // Saved under the download's guid; the suggested name comes in an event.
                    "behavior": "allowAndName",
                    "downloadPath": browser.downloads.path(),
                    "eventsEnabled": true,
                }),
            )
            .await?;
        Ok(browser)
    }

    /// Chromium writes its DevTools port and browser path to `DevToolsActivePort` in the
    /// profile once it listens.
    async fn devtools_url(&mut self, log_path: &Path) -> anyhow::Result<String> {
        let file = self.profile.path().join("DevToolsActivePort");
        let started = Instant::now();
        loop {
            if let Ok(text) = std::fs::read_to_string(&file) {
                let mut lines = text.lines();
                if let (Some(port), Some(path)) = (lines.next(), lines.next()) {
                    return Ok(format!("ws://127.0.0.1:{}{}", port.trim(), path.trim()));
                }
            }
            if let Some(status) = self.child.try_wait().context("polling Chromium")? {
                let log = std::fs::read_to_string(log_path).unwrap_or_default();
                bail!("Chromium exited ({status}) before listening:\n{log}");
            }
            if started.elapsed() > WAIT {
                let log = std::fs::read_to_string(log_path).unwrap_or_default();
                bail!("Chromium did not open its DevTools port:\n{log}");
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }

    /// Opens the WebSocket and starts the task that sends commands, routes answers to their
    /// callers and keeps every event.
    async fn connect(&mut self, url: &str) -> anyhow::Result<()> {
        let uri: http::Uri = url.parse().context("the DevTools URL")?;
        let (ws, _) = ClientBuilder::from_uri(uri)
            // Screenshots arrive as one base64 message.
            .limits(Limits::default().max_payload_len(Some(256 << 20)))
            .connect()
            .await
            .context("connecting to Chromium's DevTools socket")?;
        let (mut sink, mut stream) = ws.split();
        let (tx, mut rx) = mpsc::unbounded_channel::<(Value, Reply)>();
        let events = self.events.clone();
        self.commands = tx;
        self.socket = tokio::spawn(async move {
            let mut pending: HashMap<u64, Reply> = HashMap::new();
            loop {
                tokio::select! {
                    command = rx.recv() => {
                        let Some((message, reply)) = command else { break };
                        let id = message["id"].as_u64().unwrap_or_default();
                        if let Err(e) = sink.send(Message::text(message.to_string())).await {
                            let _ = reply.send(Err(format!("sending to Chromium: {e}")));
                            break;
                        }
                        pending.insert(id, reply);
                    }
                    incoming = stream.next() => {
                        let Some(Ok(message)) = incoming else { break };
                        let Some(text) = message.as_text() else { continue };
                        let Ok(value) = serde_json::from_str::<Value>(text) else { continue };
                        match value["id"].as_u64() {
                            Some(id) => {
                                if let Some(reply) = pending.remove(&id) {
                                    let answer = match value.get("error") {
                                        Some(error) => Err(error.to_string()),
                                        None => Ok(value["result"].clone()),
                                    };
                                    let _ = reply.send(answer);
                                }
                            }
                            None => events.lock().expect("events").push(value),
                        }
                    }
                }
            }
            for (_, reply) in pending {
                let _ = reply.send(Err("the DevTools connection closed".into()));
            }
        });
        Ok(())
    }

    /// Sends a DevTools command (to the browser, or to a page's session) and awaits its result.
    pub async fn call(
        &self,
        session: Option<&str>,
        method: &str,
        params: Value,
    ) -> anyhow::Result<Value> {
        let id = self.next_id.fetch_add(1, Ordering::Relaxed);
        let mut message = json!({"id": id, "method": method, "params": params});
        if let Some(session) = session {
            message["sessionId"] = json!(session);
        }
        let (reply, answer) = oneshot::channel();
        self.commands
            .send((message, reply))
            .map_err(|_| anyhow!("{method}: the DevTools connection is closed"))?;
        answer
            .await
            .map_err(|_| anyhow!("{method}: the DevTools connection closed"))?
            .map_err(|e| anyhow!("{method}: {e}"))
    }

    /// A new tab with the Runtime, Log and Page domains on, so their events are kept.
    pub async fn new_page(&self) -> anyhow::Result<Page<'_>> {
        let target = self
            .call(None, "Target.createTarget", json!({"url": "about:blank"}))
            .await?;
        let attached = self
            .call(
                None,
                "Target.attachToTarget",
                json!({"targetId": target["targetId"], "flatten": true}),
            )
            .await?;
        let session = attached["sessionId"]
            .as_str()
            .context("attachToTarget answered no session")?
            .to_owned();
        for domain in ["Runtime.enable", "Log.enable", "Page.enable"] {
            self.call(Some(&session), domain, json!({})).await?;
        }
        Ok(Page {
            browser: self,
            session,
        })
    }

    /// Every event received so far.
    pub fn events(&self) -> Vec<Value> {
        self.events.lock().expect("events").clone()
    }

    /// Waits for a download to finish (an error if it was cancelled).
    pub async fn download(&self) -> anyhow::Result<Download> {
        let started = Instant::now();
        loop {
            let events = self.events();
            let done = events.iter().find(|e| {
                e["method"] == "Browser.downloadProgress"
                    && matches!(
                        e["params"]["state"].as_str(),
                        Some("completed" | "canceled")
                    )
            });
            if let Some(done) = done {
                let guid = done["params"]["guid"].as_str().unwrap_or_default();
                if done["params"]["state"] == "canceled" {
                    bail!("the download {guid} was cancelled");
                }
                let suggested_filename = events
                    .iter()
                    .find(|e| {
                        e["method"] == "Browser.downloadWillBegin" && e["params"]["guid"] == guid
                    })
                    .and_then(|e| e["params"]["suggestedFilename"].as_str())
                    .unwrap_or_default()
                    .to_owned();
                return Ok(Download {
                    suggested_filename,
                    path: self.downloads.path().join(guid),
                });
            }
            if started.elapsed() > WAIT {
                bail!("no download finished; events: {events:#?}");
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }

    /// Console errors (`console.error`, failed `console.assert`), uncaught exceptions and the
    /// browser's own error log entries (failed loads, CSP violations), as text.
    pub fn errors(&self) -> Vec<String> {
        self.events()
            .iter()
            .filter_map(|e| {
                let p = &e["params"];
                match e["method"].as_str()? {
                    "Runtime.consoleAPICalled"
                        if matches!(p["type"].as_str(), Some("error" | "assert")) =>
                    {
                        let args: Vec<String> = p["args"]
                            .as_array()
                            .into_iter()
                            .flatten()
                            .map(|a| {
                                a["value"]
                                    .as_str()
                                    .map(str::to_owned)
                                    .or_else(|| a["description"].as_str().map(str::to_owned))
                                    .unwrap_or_else(|| a.to_string())
                            })
                            .collect();
                        Some(format!("console.{}: {}", p["type"], args.join(" ")))
                    }
                    "Runtime.exceptionThrown" => {
                        let d = &p["exceptionDetails"];
                        Some(format!(
                            "uncaught: {} {}",
                            d["text"].as_str().unwrap_or_default(),
                            d["exception"]["description"].as_str().unwrap_or_default()
                        ))
                    }
                    "Log.entryAdded" if p["entry"]["level"] == "error" => Some(format!(
                        "log: {} {}",
                        p["entry"]["text"].as_str().unwrap_or_default(),
                        p["entry"]["url"].as_str().unwrap_or_default()
                    )),
                    _ => None,
                }
            })
            .collect()
    }
}

impl Browser {
    /// Asks Chromium to quit (all its processes, profile flushed) and waits for it; dropping
    /// then only deletes the directories.
    pub async fn close(mut self) {
        let _ = self.call(None, "Browser.close", json!({})).await;
        let started = Instant::now();
        while started.elapsed() < Duration::from_secs(10) {
            if !matches!(self.child.try_wait(), Ok(None)) {
                break;
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }
}

impl Drop for Browser {
    fn drop(&mut self) {
        self.socket.abort();
        let _ = self.child.kill();
        let _ = self.child.wait();
        // Chromium's helper processes may still write into the profile for a moment after the
        // main process is gone (a test that panicked never called `close`): delete until it
        // stays deleted.
        for _ in 0..40 {
            match std::fs::remove_dir_all(self.profile.path()) {
                Err(e) if e.kind() == std::io::ErrorKind::NotFound => break,
                _ => std::thread::sleep(Duration::from_millis(50)),
            }
        }
    }
}

impl Page<'_> {
    pub async fn call(&self, method: &str, params: Value) -> anyhow::Result<Value> {
        self.browser.call(Some(&self.session), method, params).await
    }

    /// Loads `url` and waits until the document has loaded.
    pub async fn goto(&self, url: &str) -> anyhow::Result<()> {
        let answer = self.call("Page.navigate", json!({"url": url})).await?;
        if let Some(error) = answer["errorText"].as_str() {
            bail!("navigating to {url}: {error}");
        }
        self.wait_for("document.readyState === 'complete'", "the page to load")
            .await?;
        Ok(())
    }

    /// Evaluates a JavaScript expression (promises awaited) and returns its value as JSON.
    pub async fn eval(&self, expression: &str) -> anyhow::Result<Value> {
        let answer = self
            .call(
                "Runtime.evaluate",
                json!({"expression": expression, "returnByValue": true, "awaitPromise": true}),
            )
            .await?;
        if let Some(details) = answer.get("exceptionDetails") {
            bail!(
                "{expression}: {}",
                details["exception"]["description"]
                    .as_str()
                    .or(details["text"].as_str())
                    .unwrap_or("exception")
            );
        }
        Ok(answer["result"]["value"].clone())
    }

    /// Polls `expression` until it is truthy and returns its value; fails after [`WAIT`] with
    /// `what` and the page's errors so far.
    pub async fn wait_for(&self, expression: &str, what: &str) -> anyhow::Result<Value> {
        let started = Instant::now();
        loop {
            // While a navigation replaces the document an evaluation may fail; try again.
            let value = match self.eval(expression).await {
                Ok(value) => value,
                Err(e) if started.elapsed() > WAIT => {
                    return Err(e.context(format!("waiting for {what}")));
                }
                Err(_) => Value::Null,
            };
            let truthy = match &value {
                Value::Null => false,
                Value::Bool(b) => *b,
                Value::Number(n) => n.as_f64() != Some(0.0),
                Value::String(s) => !s.is_empty(),
                _ => true,
            };
            if truthy {
                return Ok(value);
            }
            if started.elapsed() > WAIT {
                bail!(
                    "timed out waiting for {what} ({expression}); errors: {:?}",
                    self.browser.errors()
                );
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }

    /// A PNG of the whole page (not only the window) at `width` CSS pixels.
    pub async fn screenshot(&self, width: u32, path: &Path) -> anyhow::Result<()> {
        let height = self
            .eval("Math.ceil(document.documentElement.scrollHeight)")
            .await?
            .as_u64()
            .unwrap_or(1000);
        self.call(
            "Emulation.setDeviceMetricsOverride",
            json!({"width": width, "height": height, "deviceScaleFactor": 1, "mobile": false}),
        )
        .await?;
        // Charts follow the new width.
        self.eval("window.dispatchEvent(new Event('resize')); new Promise(r => requestAnimationFrame(() => requestAnimationFrame(r)))")
            .await?;
        let shot = self
            .call(
                "Page.captureScreenshot",
                json!({"format": "png", "captureBeyondViewport": true}),
            )
            .await?;
        let png = base64::engine::general_purpose::STANDARD
            .decode(shot["data"].as_str().context("no screenshot data")?)
            .context("decoding the screenshot")?;
        std::fs::write(path, png).with_context(|| format!("writing {}", path.display()))?;
        Ok(())
    }
}
