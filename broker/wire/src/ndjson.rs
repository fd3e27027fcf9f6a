//! The NDJSON line shapes (`broker/PROTOCOL.md`): a produce line a producer writes and a fetch
//! line a consumer reads, as plain serde types.
//!
//! The broker keeps its own hand-tuned codecs for its hot paths (its produce parser borrows
//! and routes, its fetch encoder copies stored values into lines without re-encoding them);
//! the tests of its `ndjson` module and of this crate pin that both agree with these types.
//! Clients encode and decode with these types directly.

use std::borrow::Cow;

use serde::{Deserialize, Serialize};
use serde_json::value::RawValue;

/// One line of a produce body: `{"key":"…","value":…}` (the broker hashes the key) or
/// `{"partition":3,"value":…}`; with neither, the broker picks the partition.
#[derive(Debug, Serialize)]
pub struct ProduceLine<'a, V: Serialize> {
    #[serde(skip_serializing_if = "Option::is_none")]
    pub key: Option<&'a str>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub partition: Option<u32>,
    pub value: &'a V,
}

/// One line of a fetch answer:
/// `{"partition":p,"offset":o,"timestamp":ms,"key":"…"|null,"value":<stored JSON>}`.
/// Borrows the key (when unescaped) and the value's JSON text from the answer.
#[derive(Debug, Deserialize)]
pub struct FetchLine<'a> {
    #[serde(default)]
    pub partition: Option<u32>,
    pub offset: u64,
    /// Milliseconds since the epoch, set by the broker at append.
    #[serde(default)]
    pub timestamp: i64,
    #[serde(borrow, default)]
    pub key: Option<Cow<'a, str>>,
    /// The stored value: JSON text as the producer sent it.
    #[serde(borrow)]
    pub value: &'a RawValue,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn produce_lines_omit_what_is_not_set() {
        let v = serde_json::json!({"v": 1});
        let keyed = ProduceLine {
            key: Some("GPU-1"),
            partition: None,
            value: &v,
        };
        assert_eq!(
            serde_json::to_string(&keyed).unwrap(),
            r#"{"key":"GPU-1","value":{"v":1}}"#
        );
        let placed = ProduceLine {
            key: None,
            partition: Some(3),
            value: &v,
        };
        assert_eq!(
            serde_json::to_string(&placed).unwrap(),
            r#"{"partition":3,"value":{"v":1}}"#
        );
    }

    #[test]
    fn fetch_lines_borrow_the_value_text() {
        let line =
            r#"{"partition":2,"offset":7,"timestamp":1,"key":"GPU-1","value":{ "a" : 1.50 }}"#;
        let got: FetchLine<'_> = serde_json::from_str(line).unwrap();
        assert_eq!((got.partition, got.offset, got.timestamp), (Some(2), 7, 1));
        assert_eq!(got.key.as_deref(), Some("GPU-1"));
        assert_eq!(got.value.get(), r#"{ "a" : 1.50 }"#);
        let keyless: FetchLine<'_> = serde_json::from_str(
            r#"{"partition":0,"offset":1,"timestamp":1,"key":null,"value":2}"#,
        )
        .unwrap();
        assert_eq!(keyless.key, None);
    }
}
