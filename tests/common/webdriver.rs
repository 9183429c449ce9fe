//! A small WebDriver client (the W3C protocol, over ChromeDriver's HTTP port): enough to open
//! pages in headless Chromium, click, type, press keys, read text, take screenshots and read
//! the browser's network log.
#![allow(dead_code)]

use std::io::{BufRead, BufReader};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use serde_json::{json, Value};

use super::GUARD;

/// The key WebDriver names an element reference by.
const ELEMENT: &str = "element-6066-11e4-a52e-4f735466cecf";

/// Why the browser tests cannot run here, if they cannot: they need Debian's Chromium and
/// ChromeDriver (`.ci/run` installs them; so does `apt-get install chromium chromium-driver`).
pub fn chromium_unavailable() -> Option<String> {
    let present = |p: &str| std::path::Path::new(p).exists();
    let missing: Vec<&str> = [
        ("/usr/bin/chromium", "chromium"),
        ("/usr/bin/chromedriver", "chromium-driver"),
    ]
    .into_iter()
    .filter(|(path, _)| !present(path))
    .map(|(_, package)| package)
    .collect();
    (!missing.is_empty()).then(|| {
        format!(
            "needs Debian's {} (apt-get install {}; .ci/run installs them)",
            missing.join(" and "),
            missing.join(" ")
        )
    })
}

/// ChromeDriver on a port of its own choosing; killed when dropped.
pub struct Driver {
    child: Child,
    pub base: String,
    agent: ureq::Agent,
}

impl Driver {
    pub fn start() -> Driver {
        // A chromedriver that exits before it says its port (it happens on a loaded machine,
        // rarely) is started again; what it said instead is kept for the failure.
        let mut said = String::new();
        for _ in 0..3 {
            let mut child = Command::new("/usr/bin/chromedriver")
                .arg("--port=0")
                .stdout(Stdio::piped())
                .stderr(Stdio::null())
                .spawn()
                .expect("cannot start chromedriver");
            let stdout = child.stdout.take().unwrap();
            let mut port = None;
            for line in BufReader::new(stdout).lines() {
                let line = line.expect("chromedriver's output");
                if let Some(rest) = line.split("started successfully on port ").nth(1) {
                    port = rest.trim_end_matches('.').parse::<u16>().ok();
                    break;
                }
                said.push_str(&line);
                said.push('\n');
            }
            match port {
                Some(port) => return Driver::on(child, port),
                None => {
                    let _ = child.kill();
                    let _ = child.wait();
                }
            }
        }
        panic!("chromedriver did not say its port: {said}");
    }

    fn on(child: Child, port: u16) -> Driver {
        let agent: ureq::Agent = ureq::Agent::config_builder()
            .timeout_global(Some(Duration::from_secs(60)))
            .http_status_as_error(false)
            .build()
            .into();
        Driver {
            child,
            base: format!("http://127.0.0.1:{port}"),
            agent,
        }
    }

    fn call(&self, method: &str, path: &str, body: Option<Value>) -> Value {
        let url = format!("{}{path}", self.base);
        let response = match (method, body) {
            ("GET", _) => self.agent.get(&url).call(),
            ("DELETE", _) => self.agent.delete(&url).call(),
            (_, body) => self.agent.post(&url).send_json(body.unwrap_or(json!({}))),
        };
        let mut response = response.unwrap_or_else(|e| panic!("WebDriver {path}: {e}"));
        let status = response.status();
        let value: Value = response
            .body_mut()
            .read_json()
            .unwrap_or_else(|e| panic!("WebDriver {path}: not JSON: {e}"));
        assert!(
            status.is_success(),
            "WebDriver {method} {path}: {status}: {}",
            value["value"]["message"]
        );
        value["value"].clone()
    }

    /// A new headless browser window of `width` x `height` CSS pixels.
    pub fn browser(&self, width: u32, height: u32) -> Browser<'_> {
        let caps = json!({
            "capabilities": { "alwaysMatch": {
                "browserName": "chrome",
                "goog:chromeOptions": {
                    "binary": "/usr/bin/chromium",
                    "args": ["--headless=new", "--no-sandbox", "--disable-dev-shm-usage",
                             "--disable-gpu", "--no-first-run", "--disable-extensions",
                             "--disable-background-networking", "--disable-sync",
                             "--disable-component-update", "--disable-default-apps",
                             "--hide-scrollbars",
                             format!("--window-size={width},{height}")],
                    // The page's viewport is exactly `width` x `height` (a window's size would
                    // include the browser's own bars); a phone-sized one is a touch phone.
                    "mobileEmulation": {"deviceMetrics": {
                        "width": width, "height": height,
                        "pixelRatio": if width < 500 { 2.0 } else { 1.0 },
                        "touch": width < 500,
                        "mobile": width < 500,
                    }},
                },
                "goog:loggingPrefs": { "performance": "ALL" },
                // The TLS test's server presents a certificate the test made.
                "acceptInsecureCerts": true,
            }}
        });
        let session = self.call("POST", "/session", Some(caps));
        let id = session["sessionId"].as_str().unwrap().to_owned();
        Browser { driver: self, id }
    }
}

impl Drop for Driver {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// One browser (a WebDriver session); closed when dropped.
pub struct Browser<'a> {
    driver: &'a Driver,
    id: String,
}

impl Browser<'_> {
    fn call(&self, method: &str, path: &str, body: Option<Value>) -> Value {
        self.driver
            .call(method, &format!("/session/{}{path}", self.id), body)
    }

    pub fn open(&self, url: &str) {
        self.call("POST", "/url", Some(json!({ "url": url })));
    }

    /// Reloads the page, as a player pulling down on a phone does.
    pub fn refresh(&self) {
        self.call("POST", "/refresh", Some(json!({})));
    }

    /// Closes the tab and opens `url` in a new one, in the same browser (its storage kept), as
    /// a player closing the quiz's tab and opening its link again does.
    pub fn reopen(&self, url: &str) {
        let old = self.call("GET", "/window", None);
        let new = self.call("POST", "/window/new", Some(json!({"type": "tab"})));
        let handle = new["handle"].as_str().unwrap().to_owned();
        self.call("POST", "/window", Some(json!({ "handle": old })));
        self.call("DELETE", "/window", None);
        self.call("POST", "/window", Some(json!({ "handle": handle })));
        self.open(url);
    }

    fn element(&self, css: &str) -> String {
        let found = self.call(
            "POST",
            "/element",
            Some(json!({"using": "css selector", "value": css})),
        );
        found[ELEMENT]
            .as_str()
            .unwrap_or_else(|| panic!("{css}: {found}"))
            .to_owned()
    }

    pub fn click(&self, css: &str) {
        let e = self.element(css);
        self.call("POST", &format!("/element/{e}/click"), Some(json!({})));
    }

    pub fn type_into(&self, css: &str, text: &str) {
        let e = self.element(css);
        self.call("POST", &format!("/element/{e}/clear"), Some(json!({})));
        self.call(
            "POST",
            &format!("/element/{e}/value"),
            Some(json!({ "text": text })),
        );
    }

    /// Presses and releases `key` (a character, or a WebDriver key code such as "\u{E007}").
    pub fn press_key(&self, key: &str) {
        let actions = json!({"actions": [{"type": "key", "id": "keyboard", "actions": [
            {"type": "keyDown", "value": key}, {"type": "keyUp", "value": key}]}]});
        self.call("POST", "/actions", Some(actions));
    }

    pub fn text(&self, css: &str) -> String {
        let e = self.element(css);
        self.call("GET", &format!("/element/{e}/text"), None)
            .as_str()
            .unwrap_or_default()
            .to_owned()
    }

    pub fn attribute(&self, css: &str, name: &str) -> String {
        let e = self.element(css);
        self.call("GET", &format!("/element/{e}/attribute/{name}"), None)
            .as_str()
            .unwrap_or_default()
            .to_owned()
    }

    /// Runs `script` in the page; its return value.
    pub fn run(&self, script: &str) -> Value {
        self.call(
            "POST",
            "/execute/sync",
            Some(json!({"script": script, "args": []})),
        )
    }

    /// Polls `check` (the page's state, not a clock) until it returns `Some`, within the guard.
    pub fn wait_for<T>(&self, what: &str, mut check: impl FnMut(&Self) -> Option<T>) -> T {
        let until = Instant::now() + GUARD;
        loop {
            if let Some(found) = check(self) {
                return found;
            }
            assert!(
                Instant::now() < until,
                "{what}: not seen; the page says {:?}",
                self.text("body")
            );
            std::thread::sleep(Duration::from_millis(20));
        }
    }

    /// Waits until `css`'s text satisfies `pred`; returns that text.
    pub fn wait_text(&self, css: &str, pred: impl Fn(&str) -> bool) -> String {
        self.wait_for(css, |b| Some(b.text(css)).filter(|t| pred(t)))
    }

    /// The rows of a table body (`#id tr`), each row's cells joined by a tab.
    pub fn rows(&self, tbody: &str) -> Vec<String> {
        let script = format!(
            "return [...document.querySelectorAll('#{tbody} tr')].map(tr => \
             [...tr.children].map(td => td.textContent).join('\\t'))"
        );
        self.run(&script)
            .as_array()
            .cloned()
            .unwrap_or_default()
            .into_iter()
            .map(|v| v.as_str().unwrap_or_default().to_owned())
            .collect()
    }

    /// `css`'s text content, shown or not (`text` gives only what is displayed).
    pub fn content(&self, css: &str) -> String {
        let script = format!("return document.querySelector({css:?}).textContent");
        self.run(&script).as_str().unwrap_or_default().to_owned()
    }

    /// A PNG of the window.
    pub fn screenshot(&self) -> Vec<u8> {
        use base64::Engine;
        let png = self.call("GET", "/screenshot", None);
        base64::engine::general_purpose::STANDARD
            .decode(png.as_str().unwrap())
            .unwrap()
    }

    /// Every address the page asked for since the last call: requests and WebSockets, from
    /// Chromium's performance (DevTools) log.
    pub fn requested_urls(&self) -> Vec<String> {
        let entries = self.call("POST", "/se/log", Some(json!({"type": "performance"})));
        let mut urls = Vec::new();
        for entry in entries.as_array().cloned().unwrap_or_default() {
            let Some(message) = entry["message"].as_str() else {
                continue;
            };
            let Ok(message) = serde_json::from_str::<Value>(message) else {
                continue;
            };
            let message = &message["message"];
            let url = match message["method"].as_str() {
                Some("Network.requestWillBeSent") => &message["params"]["request"]["url"],
                Some("Network.webSocketCreated") => &message["params"]["url"],
                _ => continue,
            };
            if let Some(url) = url.as_str() {
                urls.push(url.to_owned());
            }
        }
        urls
    }
}

impl Drop for Browser<'_> {
    fn drop(&mut self) {
        let url = format!("{}/session/{}", self.driver.base, self.id);
        let _ = self.driver.agent.delete(&url).call();
    }
}

/// Saves a screenshot under the target directory, and in `$ARRIVAL_SCREENSHOTS` if set (the
/// README's come from there).
pub fn save(name: &str, png: &[u8]) {
    let dir = std::path::Path::new(env!("CARGO_TARGET_TMPDIR")).join("screenshots");
    std::fs::create_dir_all(&dir).unwrap();
    std::fs::write(dir.join(name), png).unwrap();
    if let Ok(extra) = std::env::var("ARRIVAL_SCREENSHOTS") {
        std::fs::create_dir_all(&extra).unwrap();
        std::fs::write(std::path::Path::new(&extra).join(name), png).unwrap();
    }
}
