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
