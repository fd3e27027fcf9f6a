//! The body of every error answer of the broker: `application/problem+json` (RFC 9457) with
//! the extension fields some statuses carry, as typed fields both sides read and write.
//!
//! The broker fills a [`Problem`] from its error (which status an error gets is the broker's
//! `http::error` module's decision); a client parses it back and reads the fields, never the
//! `detail` text. Extension members are absent from the JSON when `None`.

use serde::{Deserialize, Serialize};

/// The `Content-Type` of a problem body.
pub const MEDIA_TYPE: &str = "application/problem+json";

/// An error answer's body.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Problem {
    /// A URI naming the kind of problem; `about:blank` when the status says it all.
    #[serde(rename = "type", default = "about_blank")]
    pub kind: String,
    /// The status's reason phrase.
    #[serde(default)]
    pub title: String,
    #[serde(default)]
    pub status: u16,
    /// What went wrong with this request, for a human.
    #[serde(default)]
    pub detail: String,
    /// A 416 (fetch offset out of range): the partition's first offset.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub log_start_offset: Option<u64>,
    /// A 416: the partition's log end offset (the offset the next message will get).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub log_end_offset: Option<u64>,
    /// A 421 (this broker does not lead the partition): the leader's node id, when known.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub leader_id: Option<u64>,
    /// A 421: the URL of the partition's leader, where to send the request instead (absent
    /// while the partition has no leader).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub leader_url: Option<String>,
}

fn about_blank() -> String {
    "about:blank".to_string()
}

impl Problem {
    /// A problem with no extension fields; `title` is the status's reason phrase.
    pub fn new(status: u16, title: impl Into<String>, detail: impl Into<String>) -> Self {
        Problem {
            kind: about_blank(),
            title: title.into(),
            status,
            detail: detail.into(),
            log_start_offset: None,
            log_end_offset: None,
            leader_id: None,
            leader_url: None,
        }
    }

    /// Adds the bounds of the partition's log, for a 416.
    pub fn with_log_bounds(mut self, log_start_offset: u64, log_end_offset: u64) -> Self {
        self.log_start_offset = Some(log_start_offset);
        self.log_end_offset = Some(log_end_offset);
        self
    }

    /// Names the partition's leader, for a 421.
    pub fn with_leader(mut self, leader_id: Option<u64>, leader_url: Option<String>) -> Self {
        self.leader_id = leader_id;
        self.leader_url = leader_url;
        self
    }

    /// `(log_start_offset, log_end_offset)` when the problem carries both.
    pub fn log_bounds(&self) -> Option<(u64, u64)> {
        self.log_start_offset.zip(self.log_end_offset)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn log_bounds_are_json_fields_and_absent_otherwise() {
        let p = Problem::new(416, "Range Not Satisfiable", "gone").with_log_bounds(100, 250);
        let json: serde_json::Value = serde_json::to_value(&p).unwrap();
        assert_eq!(json["type"], "about:blank");
        assert_eq!(json["status"], 416);
        assert_eq!(json["log_start_offset"], 100);
        assert_eq!(json["log_end_offset"], 250);
        let back: Problem = serde_json::from_value(json).unwrap();
        assert_eq!(back.log_bounds(), Some((100, 250)));

        let plain = serde_json::to_value(Problem::new(400, "Bad Request", "x")).unwrap();
        assert!(plain.get("log_start_offset").is_none(), "{plain}");
    }

    #[test]
    fn the_leader_of_a_421_is_two_json_fields() {
        let p = Problem::new(421, "Misdirected Request", "elsewhere")
            .with_leader(Some(2), Some("http://b2:9090".into()));
        let json: serde_json::Value = serde_json::to_value(&p).unwrap();
        assert_eq!(json["leader_id"], 2);
        assert_eq!(json["leader_url"], "http://b2:9090");
        let back: Problem = serde_json::from_value(json).unwrap();
        assert_eq!(back, p);
        let plain = serde_json::to_value(Problem::new(400, "Bad Request", "x")).unwrap();
        assert!(plain.get("leader_url").is_none(), "{plain}");
    }

    #[test]
    fn a_problem_missing_fields_still_parses() {
        let p: Problem = serde_json::from_str(r#"{"detail":"d"}"#).unwrap();
        assert_eq!((p.detail.as_str(), p.log_bounds()), ("d", None));
    }
}
