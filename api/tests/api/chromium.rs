//! Headless Chromium (Debian package `chromium`) for the browser tests: find it, or skip with
//! a message when it is missing and may be (CI sets REQUIRE_TOOLS, and there it fails); load a
//! page with no network beyond the loopback API and return its DOM or a screenshot, with the
//! console messages.

use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

pub fn chromium() -> Option<PathBuf> {
    ["chromium", "chromium-browser", "google-chrome"]
        .iter()
        .flat_map(|name| {
            ["/usr/bin", "/usr/local/bin", "/snap/bin"].map(|dir| PathBuf::from(dir).join(name))
        })
        .find(|path| path.exists())
}

/// Chromium, or `None` (after saying so) when it is missing and may be.
pub fn browser_or_skip(test: &str) -> Option<PathBuf> {
    let browser = chromium();
    if browser.is_none() {
        // CI installs Chromium and sets REQUIRE_TOOLS, so there a missing browser fails.
        assert!(
            std::env::var_os("REQUIRE_TOOLS").is_none(),
            "no Chromium found (apt-get install -y chromium)"
        );
        eprintln!("SKIPPED {test}: no Chromium found (apt-get install -y chromium)");
    }
    browser
}

/// What one headless run produced.
pub struct Page {
    /// The DOM after the virtual time budget (`--dump-dom`), or empty for a screenshot run.
    pub dom: String,
    /// The PNG (`--screenshot`), or empty for a DOM run.
    pub png: Vec<u8>,
    /// The console messages (`CONSOLE` lines of Chromium's log).
    pub console: Vec<String>,
}

pub enum Output {
    Dom,
    Screenshot,
}

/// Loads `url` in headless Chromium with no network beyond the loopback API, lets the page
/// run for `budget_ms` of virtual time (timers and fetches included), and returns the DOM or
/// a screenshot, with the console messages.
pub fn load(browser: &Path, url: &str, budget_ms: u32, output: Output) -> Page {
    let profile = tempfile::tempdir().expect("profile dir");
    let out_dir = tempfile::tempdir().expect("out dir");
    let stdout_path = out_dir.path().join("stdout");
    let stderr_path = out_dir.path().join("stderr");
    let shot_path = out_dir.path().join("shot.png");
    let mut command = Command::new(browser);
    command
        .args([
            "--headless",
            "--no-sandbox",
            "--disable-gpu",
            "--disable-quic",
            "--no-first-run",
            "--no-default-browser-check",
            "--disable-background-networking",
            "--disable-component-update",
            "--disable-sync",
            "--disable-extensions",
            "--disable-dev-shm-usage",
            // No proxy: only what the page asks of the API's loopback address can answer.
            "--no-proxy-server",
            "--hide-scrollbars",
            "--force-device-scale-factor=1",
            "--window-size=1280,1100",
            "--enable-logging=stderr",
            "--v=0",
        ])
        .arg(format!("--virtual-time-budget={budget_ms}"))
        .arg(format!("--user-data-dir={}", profile.path().display()))
        .current_dir(out_dir.path());
    match output {
        Output::Dom => command.arg("--dump-dom"),
        Output::Screenshot => command.arg(format!("--screenshot={}", shot_path.display())),
    };
    let mut child = command
        .arg(url)
        .stdin(Stdio::null())
        .stdout(std::fs::File::create(&stdout_path).expect("stdout file"))
        .stderr(std::fs::File::create(&stderr_path).expect("stderr file"))
        .spawn()
        .expect("start chromium");
    let deadline = Instant::now() + Duration::from_secs(120);
    loop {
        if let Ok(Some(status)) = child.try_wait() {
            let log = std::fs::read_to_string(&stderr_path).unwrap_or_default();
            assert!(status.success(), "chromium exited with {status}:\n{log}");
            break;
        }
        if Instant::now() > deadline {
            let _ = child.kill();
            let _ = child.wait();
            panic!("chromium did not finish within 120 s");
        }
        std::thread::sleep(Duration::from_millis(100));
    }
    let log = std::fs::read_to_string(&stderr_path).unwrap_or_default();
    Page {
        dom: std::fs::read_to_string(&stdout_path).unwrap_or_default(),
        png: match output {
            Output::Dom => Vec::new(),
            Output::Screenshot => std::fs::read(&shot_path).expect("the screenshot"),
        },
        console: log
            .lines()
            .filter(|line| line.contains(":CONSOLE"))
            .map(str::to_string)
            .collect(),
    }
}

impl Page {
    /// Nothing reached the console and the page's own error hook did not fire.
    pub fn assert_no_errors(&self) {
        assert!(
            self.console.is_empty(),
            "console messages:\n{}",
            self.console.join("\n")
        );
        assert!(
            !self.dom.contains("data-js-error"),
            "the page caught a script error:\n{}",
            self.dom
        );
    }

    /// No failed API call is shown either.
    pub fn assert_no_api_errors(&self) {
        assert!(
            !self.dom.contains("class=\"error"),
            "the page shows an error:\n{}",
            error_lines(&self.dom)
        );
    }

    /// Every absolute URL in the DOM is on the API's origin (the scripts, styles and data all
    /// came from it: `src`/`href` are relative or same-origin paths).
    pub fn assert_same_origin(&self, base: &str) {
        for scheme in ["http://", "https://"] {
            for (at, _) in self.dom.match_indices(scheme) {
                assert!(
                    self.dom[at..].starts_with(&format!("{base}/")),
                    "the page refers to another origin: {}",
                    &self.dom[at..(at + 80).min(self.dom.len())]
                );
            }
        }
        for attr in ["src=\"", "href=\""] {
            for rest in self.dom.split(attr).skip(1) {
                let target = &rest[..rest.find('"').unwrap_or(rest.len())];
                assert!(
                    target.starts_with('/')
                        || target.starts_with('#')
                        || target.starts_with("data:")
                        || target.starts_with(base),
                    "{attr}{target}\" is not on the API's origin"
                );
                assert!(!target.starts_with("//"), "{target} is protocol-relative");
            }
        }
    }

    /// The element that starts at the first `needle` up to the end of that element (`</tag>`).
    pub fn element(&self, needle: &str, tag: &str) -> &str {
        let start = self
            .dom
            .find(needle)
            .unwrap_or_else(|| panic!("{needle} is not in the page:\n{}", self.dom));
        let start = self.dom[..start].rfind('<').expect("an opening tag");
        let end = self.dom[start..]
            .find(&format!("</{tag}>"))
            .expect("a closing tag");
        &self.dom[start..start + end]
    }
}

/// The error banners of a DOM, for failure messages.
pub fn error_lines(dom: &str) -> String {
    dom.split("class=\"error")
        .skip(1)
        .map(|rest| rest[..rest.find("</div>").unwrap_or(rest.len())].to_string())
        .collect::<Vec<_>>()
        .join("\n")
}
