//! What the API asks the broker: each partition's end offset, for the consumer lag that
//! `/api/v1/pipeline` shows (`GET /v1/topics/{t}`, see `broker/PROTOCOL.md`).
//!
//! Optional and best effort: without `--broker-url` the lag is null, and a broker that does
//! not answer within [`TIMEOUT`] makes the page say `unreachable` rather than fail. An
//! `https://` broker is verified against `--broker-ca-file` when given, else against the
//! Mozilla roots built into the binary (see `pipeline_common::trust`).

use std::collections::BTreeMap;
use std::time::Duration;

use pipeline_common::trust::CaFile;
use serde::Deserialize;

use crate::model::ConsumerProgress;

/// The most a pipeline page waits for the broker.
const TIMEOUT: Duration = Duration::from_secs(2);

/// How to reach the broker: `--broker-url`, `--broker-token`, `--broker-ca-file`.
#[derive(Debug, Clone)]
pub struct BrokerTarget {
    pub url: String,
    pub token: Option<String>,
    pub ca_file: Option<CaFile>,
}

/// A broker to ask, cheap to clone.
#[derive(Clone)]
pub struct Broker {
    base: String,
    token: Option<String>,
    agent: ureq::Agent,
}

#[derive(Deserialize)]
struct TopicInfo {
    partitions: Vec<PartitionInfo>,
}

#[derive(Deserialize)]
struct PartitionInfo {
    partition: i32,
    log_end_offset: i64,
}

impl Broker {
    pub fn new(target: &BrokerTarget) -> Broker {
        let mut agent = ureq::AgentBuilder::new().timeout(TIMEOUT);
        if let Some(ca) = &target.ca_file {
            agent = agent.tls_config(ca.client_config());
        }
        Broker {
            base: target.url.trim_end_matches('/').to_string(),
            token: target.token.clone(),
            agent: agent.build(),
        }
    }

    /// Fills `end_offset` and `lag` of each consumer from its topic's partitions; false when
    /// the broker could not be asked (the fields stay null).
    pub async fn fill_lag(&self, consumers: &mut [ConsumerProgress]) -> bool {
        let topics: Vec<String> = consumers
            .iter()
            .map(|c| c.topic.clone())
            .collect::<std::collections::BTreeSet<_>>()
            .into_iter()
            .collect();
        let broker = self.clone();
        let ends = tokio::task::spawn_blocking(move || broker.end_offsets(&topics)).await;
        let Ok(Ok(ends)) = ends else {
            return false;
        };
        for c in consumers.iter_mut() {
            if let Some(end) = ends.get(&(c.topic.clone(), c.partition)) {
                c.end_offset = Some(*end);
                c.lag = Some((end - c.next_offset).max(0));
            }
        }
        true
    }

    fn end_offsets(&self, topics: &[String]) -> Result<BTreeMap<(String, i32), i64>, String> {
        let mut ends = BTreeMap::new();
        for topic in topics {
            let url = format!(
                "{}/v1/topics/{}",
                self.base,
                percent_encoding::utf8_percent_encode(topic, percent_encoding::NON_ALPHANUMERIC)
            );
            let mut request = self.agent.get(&url);
            if let Some(token) = &self.token {
                request = request.set("Authorization", &format!("Bearer {token}"));
            }
            let info: TopicInfo = request
                .call()
                .map_err(|e| e.to_string())?
                .into_json()
                .map_err(|e| e.to_string())?;
            for p in info.partitions {
                ends.insert((topic.clone(), p.partition), p.log_end_offset);
            }
        }
        Ok(ends)
    }
}

#[cfg(test)]
mod tests {
    use testkit::https::HttpsStandIn;
    use testkit::tls::TestCa;

    use super::*;

    const TOPIC: &str = r#"{"topic":"telemetry","partitions":[
        {"partition":0,"log_start_offset":0,"log_end_offset":5},
        {"partition":1,"log_start_offset":0,"log_end_offset":0}]}"#;

    /// An https:// broker stand-in whose certificate `signer` signed, and the API's view of it
    /// trusting `trusted` (the CA file written to `dir`).
    fn broker(signer: &TestCa, trusted: &TestCa, dir: &std::path::Path) -> Broker {
        let (cert, key) = signer.server_cert(&["127.0.0.1"]);
        let server = HttpsStandIn::start(&cert, &key, "/v1/topics/telemetry", TOPIC);
        let ca_file = CaFile::load(&trusted.write(dir, "ca.pem")).expect("CA file");
        Broker::new(&BrokerTarget {
            url: format!("https://127.0.0.1:{}", server.port),
            token: None,
            ca_file: Some(ca_file),
        })
    }

    #[test]
    fn an_https_broker_the_ca_file_vouches_for_is_asked_for_end_offsets() {
        let dir = tempfile::tempdir().expect("tempdir");
        let ca = TestCa::new("broker CA");
        let ends = broker(&ca, &ca, dir.path())
            .end_offsets(&["telemetry".to_string()])
            .expect("end offsets over https");
        let expected: BTreeMap<(String, i32), i64> = [
            (("telemetry".to_string(), 0), 5),
            (("telemetry".to_string(), 1), 0),
        ]
        .into();
        assert_eq!(ends, expected);
    }

    #[test]
    fn an_https_broker_another_ca_signed_is_refused() {
        let dir = tempfile::tempdir().expect("tempdir");
        let trusted = TestCa::new("the CA the API trusts");
        let other = TestCa::new("another CA");
        let refused = broker(&other, &trusted, dir.path())
            .end_offsets(&["telemetry".to_string()])
            .expect_err("a certificate of another CA");
        assert!(refused.contains("UnknownIssuer"), "{refused}");
    }
}
