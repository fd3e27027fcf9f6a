//! `streamer --scrape-targets-file PATH`: scrape targets from a Prometheus `file_sd` file, a
//! list of groups `{"targets": ["host:port", …], "labels": {…}}` in JSON or YAML, re-read
//! while the streamer runs.
//!
//! Each `host:port` becomes the URL `<__scheme__>://host:port<__metrics_path__>` (`http` and
//! `/metrics` when the group has no such label), as Prometheus builds it; every other label
//! of a group is ignored. The format is told by the extension (`.json`; `.yml` or `.yaml`),
//! and a file with another one is read as JSON, then as YAML.
//!
//! The file is read again every [`POLL`]: when its content changed, the new target set takes
//! the old one's place. A file that is missing or does not parse then is logged as a warning
//! (once per distinct failure) and the last good target set kept.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::time::Duration;

use serde::Deserialize;

use crate::scrape::target_host;

/// How often the file is read again.
pub const POLL: Duration = Duration::from_secs(2);

/// One `file_sd` group.
#[derive(Debug, Deserialize)]
struct Group {
    #[serde(default)]
    targets: Vec<String>,
    #[serde(default)]
    labels: BTreeMap<String, String>,
}

/// The file and its targets as read when the streamer started (the flag's value).
#[derive(Debug, Clone)]
pub struct TargetsFile {
    pub path: PathBuf,
    /// The file's content then.
    pub text: Vec<u8>,
    /// Its targets' URLs, in the file's order, each once.
    pub urls: Vec<String>,
}

impl TargetsFile {
    /// Reads and parses the file at `path`.
    pub fn load(path: &Path) -> Result<TargetsFile, String> {
        let text = std::fs::read(path).map_err(|e| format!("{}: {e}", path.display()))?;
        let urls = parse(path, &text).map_err(|e| format!("{}: {e}", path.display()))?;
        Ok(TargetsFile {
            path: path.to_path_buf(),
            text,
            urls,
        })
    }
}

/// The flag's value parser: a file that is missing or does not parse is a usage error.
pub fn parse_arg(raw: &str) -> Result<TargetsFile, String> {
    TargetsFile::load(Path::new(raw))
}

/// The targets' URLs of a `file_sd` file's content (`path` tells the format).
pub fn parse(path: &Path, text: &[u8]) -> Result<Vec<String>, String> {
    let text = std::str::from_utf8(text).map_err(|_| "not UTF-8".to_string())?;
    let extension = path
        .extension()
        .and_then(|e| e.to_str())
        .map(str::to_ascii_lowercase);
    let groups: Vec<Group> = match extension.as_deref() {
        Some("json") => serde_json::from_str(text).map_err(|e| format!("not file_sd JSON: {e}"))?,
        Some("yml" | "yaml") => {
            serde_norway::from_str(text).map_err(|e| format!("not file_sd YAML: {e}"))?
        }
        _ => match serde_json::from_str(text) {
            Ok(groups) => groups,
            Err(json) => serde_norway::from_str(text).map_err(|yaml| {
                format!("neither file_sd JSON ({json}) nor file_sd YAML ({yaml})")
            })?,
        },
    };
    let mut urls: Vec<String> = Vec::new();
    for group in &groups {
        let scheme = group
            .labels
            .get("__scheme__")
            .map_or("http", String::as_str);
        if !matches!(scheme, "http" | "https") {
            return Err(format!("__scheme__ {scheme:?}: not http or https"));
        }
        let path = group
            .labels
            .get("__metrics_path__")
            .map_or("/metrics", String::as_str);
        let slash = if path.starts_with('/') { "" } else { "/" };
        for target in &group.targets {
            let target = target.trim();
            if target.is_empty() || target.contains(['/', ' ', '?', '#']) {
                return Err(format!("target {target:?}: not host:port"));
            }
            let url = format!("{scheme}://{target}{slash}{path}");
            if target_host(&url).is_none() {
                return Err(format!("target {target:?}: no host"));
            }
            if !urls.contains(&url) {
                urls.push(url);
            }
        }
    }
    Ok(urls)
}

/// Reads the file again when asked, keeping the last good target set.
#[derive(Debug)]
pub struct Watcher {
    path: PathBuf,
    /// The content last read (good or not), to tell a change.
    last_text: Option<Vec<u8>>,
    /// The failure last logged, so that a file that stays broken is logged once.
    last_error: Option<String>,
    urls: Vec<String>,
}

impl Watcher {
    pub fn new(file: &TargetsFile) -> Watcher {
        Watcher {
            path: file.path.clone(),
            last_text: Some(file.text.clone()),
            last_error: None,
            urls: file.urls.clone(),
        }
    }

    /// The last good target set.
    pub fn urls(&self) -> &[String] {
        &self.urls
    }

    /// Reads the file; `true` when its content changed and parsed (the target set may be the
    /// same). A file that cannot be read or parsed is a warning; the last good set stays.
    pub fn poll(&mut self) -> bool {
        let text = match std::fs::read(&self.path) {
            Ok(text) => text,
            Err(e) => {
                self.last_text = None;
                self.warn(format!("{e}"));
                return false;
            }
        };
        if self.last_text.as_ref() == Some(&text) {
            return false;
        }
        let parsed = parse(&self.path, &text);
        self.last_text = Some(text);
        match parsed {
            Ok(urls) => {
                self.last_error = None;
                tracing::info!(file = %self.path.display(), targets = ?urls, "scrape targets file read");
                self.urls = urls;
                true
            }
            Err(e) => {
                self.warn(e);
                false
            }
        }
    }

    fn warn(&mut self, error: String) {
        if self.last_error.as_ref() != Some(&error) {
            tracing::warn!(file = %self.path.display(), %error,
                "cannot read the scrape targets file; keeping the last good targets");
            self.last_error = Some(error);
        }
    }
}

#[cfg(test)]
mod tests {
    use std::path::Path;

    use super::{parse, TargetsFile, Watcher};

    fn urls(name: &str, text: &str) -> Result<Vec<String>, String> {
        parse(Path::new(name), text.as_bytes())
    }

    #[test]
    fn json_groups() {
        let text = r#"[
            {"targets": ["node-1:9400", "node-2:9400"], "labels": {"job": "dcgm"}},
            {"targets": ["node-3:9400", "node-1:9400"]},
            {"labels": {"no": "targets"}}
        ]"#;
        let expected = [
            "http://node-1:9400/metrics",
            "http://node-2:9400/metrics",
            "http://node-3:9400/metrics",
        ];
        assert_eq!(urls("t.json", text).unwrap(), expected);
        // Another extension: JSON first.
        assert_eq!(urls("targets", text).unwrap(), expected);
        assert_eq!(urls("t.json", "[]").unwrap(), Vec::<String>::new());
    }

    #[test]
    fn yaml_groups() {
        let text = "\
- targets:
    - node-1:9400
    - '[::1]:9400'
  labels:
    job: dcgm
- targets: [node-2:9400]
";
        let expected = [
            "http://node-1:9400/metrics",
            "http://[::1]:9400/metrics",
            "http://node-2:9400/metrics",
        ];
        assert_eq!(urls("t.yml", text).unwrap(), expected);
        assert_eq!(urls("t.YAML", text).unwrap(), expected);
        // Another extension: not JSON, so YAML.
        assert_eq!(urls("targets.txt", text).unwrap(), expected);
    }

    #[test]
    fn scheme_and_metrics_path_labels() {
        let text = r#"[
            {"targets": ["a:9400"], "labels": {"__scheme__": "https"}},
            {"targets": ["b:9400"], "labels": {"__metrics_path__": "/dcgm/metrics"}},
            {"targets": ["c:9400"], "labels": {"__scheme__": "https", "__metrics_path__": "m"}}
        ]"#;
        assert_eq!(
            urls("t.json", text).unwrap(),
            [
                "https://a:9400/metrics",
                "http://b:9400/dcgm/metrics",
                "https://c:9400/m"
            ]
        );
        let ftp = r#"[{"targets": ["a:1"], "labels": {"__scheme__": "ftp"}}]"#;
        assert!(urls("t.json", ftp).unwrap_err().contains("__scheme__"));
    }

    #[test]
    fn bad_files() {
        for (name, text) in [
            ("t.json", "{\"targets\": [\"a:1\"]}"),
            ("t.json", "[{\"targets\": \"a:1\"}]"),
            ("t.json", "- targets: [a:1]"),
            ("t.yaml", "targets: [a:1]"),
            ("t.yaml", "- targets: [a:1\n"),
            ("t.json", r#"[{"targets": ["http://a:1"]}]"#),
            ("t.json", r#"[{"targets": [""]}]"#),
            ("t.json", r#"[{"targets": [":9400"]}]"#),
            ("t", "not: [a, list"),
        ] {
            assert!(urls(name, text).is_err(), "{name}: {text:?}");
        }
        assert!(parse(Path::new("t.json"), b"[\xff]").is_err());
        let missing = TargetsFile::load(Path::new("/nonexistent/targets.json")).unwrap_err();
        assert!(missing.contains("/nonexistent/targets.json"), "{missing}");
    }

    #[test]
    fn a_bad_rewrite_keeps_the_last_good_targets() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("targets.json");
        std::fs::write(&path, r#"[{"targets": ["a:1"]}]"#).unwrap();
        let file = TargetsFile::load(&path).unwrap();
        let mut watcher = Watcher::new(&file);
        assert_eq!(watcher.urls(), ["http://a:1/metrics"]);
        assert!(!watcher.poll(), "unchanged");
        std::fs::write(&path, r#"[{"targets": ["b:1"]}"#).unwrap();
        assert!(!watcher.poll(), "broken");
        assert_eq!(watcher.urls(), ["http://a:1/metrics"]);
        std::fs::remove_file(&path).unwrap();
        assert!(!watcher.poll(), "missing");
        assert_eq!(watcher.urls(), ["http://a:1/metrics"]);
        std::fs::write(&path, r#"[{"targets": ["b:1"]}]"#).unwrap();
        assert!(watcher.poll(), "fixed");
        assert_eq!(watcher.urls(), ["http://b:1/metrics"]);
    }
}
