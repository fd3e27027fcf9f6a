//! The crate's one error type.

use crate::state::NodeId;

/// What can go wrong starting, driving or asking the metadata node.
#[derive(Debug, thiserror::Error)]
pub enum MetaError {
    #[error("metadata storage at {path}: {source}")]
    Io {
        path: String,
        source: std::io::Error,
    },
    #[error("metadata storage at {path} is corrupt: {why}")]
    Corrupt { path: String, why: String },
    #[error("invalid peer list {0:?}: expected id=url,…")]
    Peers(String),
    #[error("raft: {0}")]
    Raft(String),
    #[error("no metadata leader is known (election under way?)")]
    NoLeader,
    /// This node is not the leader; `url` is the leader's, when known.
    #[error("not the metadata leader; the leader is node {leader:?} at {url:?}")]
    NotLeader {
        leader: Option<NodeId>,
        url: Option<String>,
    },
    #[error("forwarding to the metadata leader at {url}: {why}")]
    Forward { url: String, why: String },
    #[error("no answer from the metadata cluster within {0:?}")]
    Timeout(std::time::Duration),
    #[error("the metadata node is shut down")]
    ShutDown,
}

impl MetaError {
    pub(crate) fn io(path: &std::path::Path, source: std::io::Error) -> Self {
        MetaError::Io {
            path: path.display().to_string(),
            source,
        }
    }
}

pub type Result<T, E = MetaError> = std::result::Result<T, E>;
