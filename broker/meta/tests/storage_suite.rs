//! openraft's own storage conformance suite, run against the on-disk log store and state
//! machine (each test case in a fresh temporary directory).

use broker_meta::log_store::LogStore;
use broker_meta::state_machine::StateMachine;
use broker_meta::TypeConfig;
use openraft::testing::{StoreBuilder, Suite};
use openraft::{StorageError, StorageIOError};
use tempfile::TempDir;

struct OnDisk;

impl StoreBuilder<TypeConfig, LogStore, StateMachine, TempDir> for OnDisk {
    async fn build(&self) -> Result<(TempDir, LogStore, StateMachine), StorageError<u64>> {
        let err = |e: &dyn std::fmt::Display| {
            StorageError::from(StorageIOError::write(openraft::AnyError::error(e)))
        };
        let dir = tempfile::tempdir().map_err(|e| err(&e))?;
        let log = LogStore::open(dir.path()).map_err(|e| err(&e))?;
        let sm = StateMachine::open(dir.path()).map_err(|e| err(&e))?;
        Ok((dir, log, sm))
    }
}

#[test]
fn openraft_storage_suite() {
    Suite::test_all(OnDisk).expect("the storage suite passes");
}
