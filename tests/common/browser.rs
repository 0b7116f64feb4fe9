//! A real browser for page tests: Debian's headless Chromium driven over
//! WebDriver by chromedriver, started per test; axe-core (from npm) injected
//! into each page checked; screenshots at 1280 and 375 px into
//! `target/screenshots/`.

use std::path::PathBuf;
use std::process::{Command, Stdio};
use std::time::Duration;

use fantoccini::{Client, ClientBuilder, Locator};
use serde_json::{Value, json};

use super::free_port;
use super::peers::{Peer, TempDir, listening};

const CHROMEDRIVER: &str = "/usr/bin/chromedriver";
const CHROMIUM: &str = "/usr/bin/chromium";

/// Where `axe.min.js` is: `TIDINGS_TEST_AXE_JS`, or where `.ci/run`'s npm
/// install puts it.
fn axe_source() -> Option<String> {
    let path = std::env::var_os("TIDINGS_TEST_AXE_JS").map(PathBuf::from).unwrap_or_else(|| {
        let target = std::env::var_os("CARGO_TARGET_DIR")
            .map(PathBuf::from)
            .unwrap_or_else(|| PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("target"));
        target.join("npm/node_modules/axe-core/axe.min.js")
    });
    std::fs::read_to_string(path).ok()
}

pub struct Browser {
    pub client: Client,
    axe: String,
    _driver: Peer,
    _profile: TempDir,
}

impl Browser {
    /// A browser, or `None` (the test skips) when Chromium, its driver or
    /// axe-core is missing and `TIDINGS_TEST_REQUIRE_PEERS` is unset.
    pub async fn start(javascript: bool) -> Option<Self> {
        let installed = std::path::Path::new(CHROMEDRIVER).exists() && std::path::Path::new(CHROMIUM).exists();
        let axe = axe_source();
        if !installed || axe.is_none() {
            assert!(
                std::env::var_os("TIDINGS_TEST_REQUIRE_PEERS").is_none(),
                "chromium, chromium-driver and axe-core (npm) are required but missing"
            );
            eprintln!("chromium, chromedriver or axe-core is not installed: browser test skipped");
            return None;
        }
        let port = free_port();
        let driver = Command::new(CHROMEDRIVER)
            .arg(format!("--port={port}"))
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("chromedriver starts");
        let driver = Peer(driver);
        listening(port).await;
        let profile = TempDir::new();
        let mut options = json!({
            "binary": CHROMIUM,
            "args": [
                "--headless=new", "--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage",
                "--disable-background-networking", "--disable-component-update", "--disable-sync",
                "--no-first-run", "--disable-quic", "--window-size=1280,900",
                format!("--user-data-dir={}", profile.path().display()),
            ],
        });
        if !javascript {
            options["prefs"] = json!({ "profile.managed_default_content_settings.javascript": 2 });
        }
        let mut caps = serde_json::Map::new();
        caps.insert("goog:chromeOptions".into(), options);
        let client = ClientBuilder::rustls()
            .expect("a WebDriver client")
            .capabilities(caps)
            .connect(&format!("http://127.0.0.1:{port}"))
            .await
            .expect("a Chromium session");
        Some(Self { client, axe: axe.unwrap_or_default(), _driver: driver, _profile: profile })
    }

    pub async fn goto(&self, url: &str) {
        self.client.goto(url).await.unwrap_or_else(|e| panic!("opening {url}: {e}"));
    }

    pub async fn source(&self) -> String {
        self.client.source().await.unwrap()
    }

    /// Waits until the page holds `text` (a page load after a click may
    /// still be under way).
    pub async fn wait_for_text(&self, text: &str) -> String {
        let deadline = std::time::Instant::now() + Duration::from_secs(10);
        loop {
            let source = self.source().await;
            if source.contains(text) {
                return source;
            }
            assert!(std::time::Instant::now() < deadline, "the page never showed {text:?}:\n{source}");
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }

    pub async fn fill(&self, css: &str, value: &str) {
        let field = self.client.find(Locator::Css(css)).await.unwrap_or_else(|e| panic!("no {css}: {e}"));
        field.clear().await.unwrap();
        field.send_keys(value).await.unwrap();
    }

    pub async fn click(&self, css: &str) {
        self.client.find(Locator::Css(css)).await.unwrap_or_else(|e| panic!("no {css}: {e}")).click().await.unwrap();
    }

    /// Clicks the button whose text is `label`.
    pub async fn press(&self, label: &str) {
        let xpath = format!("//button[normalize-space(.)='{label}']");
        let button =
            self.client.find(Locator::XPath(&xpath)).await.unwrap_or_else(|e| panic!("no button {label:?}: {e}"));
        button.click().await.unwrap();
    }

    /// Runs axe-core on the page: no serious or critical violation.
    pub async fn assert_accessible(&self, page: &str) {
        self.client.execute(&self.axe, vec![]).await.expect("axe-core loads");
        let script = r#"
            const done = arguments[arguments.length - 1];
            axe.run(document, { resultTypes: ['violations'] }).then(
                (r) => done(r.violations
                    .filter((v) => v.impact === 'serious' || v.impact === 'critical')
                    .map((v) => v.id + ' (' + v.impact + '): ' + v.nodes.map((n) => n.target.join(' ')).join(', '))),
                (e) => done(['axe failed: ' + e]));
        "#;
        let found = self.client.execute_async(script, vec![]).await.expect("axe-core runs");
        let violations: Vec<Value> = found.as_array().cloned().unwrap_or_default();
        assert!(violations.is_empty(), "{page}: accessibility violations: {violations:#?}");
    }

    /// Screenshots of the page at 1280 px and at 375 px wide.
    pub async fn screenshots(&self, page: &str) {
        let dir = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("target/screenshots");
        std::fs::create_dir_all(&dir).unwrap();
        for width in [1280, 375] {
            self.client.set_window_size(width, 900).await.unwrap();
            let png = self.client.screenshot().await.unwrap();
            std::fs::write(dir.join(format!("{page}-{width}.png")), png).unwrap();
        }
        self.client.set_window_size(1280, 900).await.unwrap();
    }

    /// Every check, for a page a reader or the author meets: accessible,
    /// whole at 375 px, screenshotted.
    pub async fn check(&self, page: &str) {
        self.assert_accessible(page).await;
        assert!(!self.overflows_at(375).await, "{page}: content is cut off at 375 px");
        self.screenshots(page).await;
    }

    /// Whether the page is wider than the window (content cut off at 375 px).
    pub async fn overflows_at(&self, width: u32) -> bool {
        self.client.set_window_size(width, 900).await.unwrap();
        let wide = self
            .client
            .execute("return document.documentElement.scrollWidth > window.innerWidth;", vec![])
            .await
            .unwrap();
        self.client.set_window_size(1280, 900).await.unwrap();
        wide == Value::Bool(true)
    }

    pub async fn close(self) {
        let _ = self.client.close().await;
    }
}
