//! The broker cluster's metadata, replicated by Raft among the brokers themselves.
//!
//! # What is replicated here
//!
//! The cluster's *metadata*: its members (id and URL), its topics with each partition's
//! replicas, leader, leader epoch and in-sync replicas (ISR), and each consumer group's
//! coordinator ([`state::Metadata`]). Every change is a [`state::Command`] appended to a Raft
//! log, committed by a majority of the brokers and applied, in log order, by every broker to
//! its own copy — the design of Kafka's KRaft, with the brokers themselves as the quorum and no
//! separate coordination service.
//!
//! # What is not
//!
//! The messages. A partition's data is replicated by its followers fetching from its leader
//! (the broker's concern); this crate only records who leads at which epoch and who is in
//! sync, so that the leader can be fenced and a new one chosen among the in-sync replicas.
//!
//! # Consensus
//!
//! The consensus is openraft 0.9 (its stable line; 0.10 is still alpha): a maintained,
//! tokio-based Raft with leader election, log replication, membership, snapshots and a
//! storage conformance suite, leaving storage and transport to the application. This crate
//! supplies those two:
//! - [`log_store`]: the Raft log, vote and committed id on local disk (CRC-framed, fsynced);
//! - [`state_machine`]: the applied [`state::Metadata`] and its snapshots;
//! - [`network`]: the Raft RPCs as HTTP/1 POSTs under `/v1/raft/` (client side), and
//!   [`server`]: the handler answering them, which the broker's HTTP server mounts.
//!
//! [`node::MetaNode`] ties them together: start a node, initialize the cluster, propose
//! commands (forwarded to the leader), read and watch the applied metadata.

mod disk;
pub mod error;
pub mod log_store;
pub mod network;
pub mod node;
pub mod server;
pub mod state;
pub mod state_machine;

use std::io::Cursor;

pub use error::{MetaError, Result};
pub use node::{MetaConfig, MetaNode};
pub use state::{
    Applied, ApplyResult, Command, Member, Metadata, NodeId, PartitionMeta, Refusal, Topic,
};

openraft::declare_raft_types!(
    /// The openraft types of the metadata cluster: commands in, apply results out, nodes
    /// known by their URL.
    pub TypeConfig:
        D = Command,
        R = ApplyResult,
        NodeId = NodeId,
        Node = openraft::BasicNode,
        SnapshotData = Cursor<Vec<u8>>,
);

/// The Raft handle of this crate's types.
pub type Raft = openraft::Raft<TypeConfig>;
