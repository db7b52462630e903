//! Whose data this is: the node's **store id** and its **cluster id**, and the check that keeps
//! Raft RPCs between the right incarnations of the right cluster.
//!
//! Raft is safe only while every node keeps what it stored (its vote above all). A node whose
//! data directory was wiped and that comes back under its old id has forgotten whom it voted
//! for, and could elect a second leader in a term; a node started with an empty directory and
//! a wrong `--peers` list forms a second cluster that must never talk to the first. Both are
//! operator mistakes that happen, so both are refused on the wire:
//!
//! - The **store id** is a random number made once, when a data directory is first opened,
//!   and kept in it. The application registers it with the node (in the catalog), tells every
//!   host which store id each peer is registered with ([`Identity::set_registered`]), and every
//!   RPC then names the store it is meant for ([`TO_STORE_HEADER`]). A node that receives an
//!   RPC addressed to another store id is not the node its peers know: its data was lost or
//!   replaced. It refuses the RPC, remembers why ([`Identity::refusal`]), and the application
//!   says so loudly.
//! - The **cluster id** is made by the node that initializes the cluster, kept in its data,
//!   and learnt by the others from the cluster's own replicated state
//!   ([`Identity::adopt_cluster`]). Every RPC carries it ([`CLUSTER_HEADER`]); a node of another
//!   cluster refuses it.
//!
//! An RPC without these headers (from a node that does not know them yet, or from a
//! transport that does not send them) is not checked: the checks stop impostors, they are not
//! needed for a node to join. Before it takes part, a pristine node asks its peers who they are
//! ([`crate::RpcRequest::Identify`]), so that it can refuse to start rather than be refused.

use std::collections::BTreeMap;
use std::sync::Arc;
use std::sync::Mutex;
use std::sync::RwLock;

use crate::errors::RaftError;
use crate::NodeId;

/// gRPC metadata entry: the sender's cluster id.
pub const CLUSTER_HEADER: &str = "x-boxoffice-cluster";
/// gRPC metadata entry: the store id the receiver is registered with, as the sender knows it
/// (lower-case hex).
pub const TO_STORE_HEADER: &str = "x-boxoffice-to-store";
/// gRPC metadata entry: the node id the sender means to reach. A new node on a removed node's
/// old address gets RPCs meant for the old one: those are refused as misaddressed, and say
/// nothing about this node's own data.
pub const TO_NODE_HEADER: &str = "x-boxoffice-to-node";

const TREE: &str = "meta:identity";
const STORE_KEY: &[u8] = b"store_id";
const CLUSTER_KEY: &[u8] = b"cluster_id";

/// This node's identity and what it knows of its peers'. One per host; see the module doc.
pub struct Identity {
    store_id: u64,
    tree: sled::Tree,
    /// sled's directory, fsynced after every write here; `None` for throwaway databases.
    sled_dir: Option<std::path::PathBuf>,
    cluster: RwLock<Option<String>>,
    /// The store id each node is registered with, from the application's replicated state.
    registered: RwLock<BTreeMap<NodeId, u64>>,
    /// Why this node refused its peers' RPCs, once it has (see [`Identity::refusal`]).
    refused: Mutex<Option<String>>,
}

impl std::fmt::Debug for Identity {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Identity")
            .field("store_id", &self.store_id)
            .field("cluster", &self.cluster())
            .finish()
    }
}

/// fsync sled's files when the database has a directory worth keeping.
fn sync(sled_dir: Option<&std::path::Path>) -> Result<(), RaftError> {
    match sled_dir {
        Some(dir) => crate::flusher::sync_sled_files(dir)
            .map_err(|e| RaftError::Storage(format!("fsync of {}: {e}", dir.display()))),
        None => Ok(()),
    }
}

impl Identity {
    /// Read this data directory's identity, making (and durably keeping) a store id the first
    /// time. `sled_dir`: the database's directory, fsynced after each write here (sled's own
    /// flush does not survive a power cut; see `flusher`).
    pub fn open(db: &sled::Db, sled_dir: Option<&std::path::Path>) -> Result<Arc<Identity>, RaftError> {
        let tree = db.open_tree(TREE)?;
        let store_id = match tree.get(STORE_KEY)? {
            Some(bytes) => u64::from_be_bytes(
                bytes.as_ref().try_into().map_err(|_| RaftError::Storage("malformed store id".into()))?,
            ),
            None => {
                // Never 0: 0 means "unknown" wherever a store id is carried.
                let id = rand::random::<u64>().max(1);
                tree.insert(STORE_KEY, &id.to_be_bytes())?;
                tree.flush()?;
                sync(sled_dir)?;
                id
            }
        };
        let cluster = tree.get(CLUSTER_KEY)?.map(|b| String::from_utf8_lossy(&b).into_owned());
        Ok(Arc::new(Identity {
            store_id,
            tree,
            sled_dir: sled_dir.map(std::path::Path::to_path_buf),
            cluster: RwLock::new(cluster),
            registered: RwLock::new(BTreeMap::new()),
            refused: Mutex::new(None),
        }))
    }

    /// This data directory's store id (never 0).
    pub fn store_id(&self) -> u64 {
        self.store_id
    }

    /// The cluster this node's data belongs to, once known.
    pub fn cluster(&self) -> Option<String> {
        self.cluster.read().unwrap_or_else(|p| p.into_inner()).clone()
    }

    /// Take `id` as this node's cluster id and keep it (durably). A node belongs to one
    /// cluster: a different id than the one kept is an error, and nothing is changed.
    pub fn adopt_cluster(&self, id: &str) -> Result<(), RaftError> {
        let mut cluster = self.cluster.write().unwrap_or_else(|p| p.into_inner());
        match cluster.as_deref() {
            Some(known) if known == id => Ok(()),
            Some(known) => Err(RaftError::Config(format!(
                "this node's data belongs to cluster {known}, not to cluster {id}"
            ))),
            None => {
                self.tree.insert(CLUSTER_KEY, id.as_bytes())?;
                self.tree.flush()?;
                sync(self.sled_dir.as_deref())?;
                *cluster = Some(id.to_string());
                Ok(())
            }
        }
    }

    /// The store id each node is registered with (replaces what was set before).
    pub fn set_registered(&self, registered: BTreeMap<NodeId, u64>) {
        *self.registered.write().unwrap_or_else(|p| p.into_inner()) = registered;
    }

    /// The store id `node` is registered with, if known.
    pub fn registered(&self, node: NodeId) -> Option<u64> {
        self.registered.read().unwrap_or_else(|p| p.into_inner()).get(&node).copied().filter(|s| *s != 0)
    }

    /// Why this node refused its peers' RPCs as not meant for it (its data directory is not
    /// the one it was registered with), if it ever did.
    pub fn refusal(&self) -> Option<String> {
        self.refused.lock().unwrap_or_else(|p| p.into_inner()).clone()
    }

    /// Whether an incoming RPC with these headers is for this node; `Err` says why not.
    /// `first` is true the first time a refusal of the "replaced" kind is made (to log it once).
    pub(crate) fn check(
        &self,
        node: NodeId,
        cluster: Option<&str>,
        to_node: Option<NodeId>,
        to_store: Option<u64>,
    ) -> Result<(), Refusal> {
        if let Some(meant) = to_node.filter(|n| *n != node) {
            return Err(Refusal {
                message: format!("this is node {node}, not node {meant}: the sender has an old address"),
                first: false,
            });
        }
        // The store first: a node that was wiped and formed a cluster of its own is told so,
        // not merely that the sender is of another cluster.
        if let Some(expected) = to_store.filter(|e| *e != 0 && *e != self.store_id) {
            let message = format!(
                "this is node {node} with store {:016x}, but its peers know node {node} as store \
                 {expected:016x}: this data directory is not the one node {node} was registered with \
                 (it was wiped or replaced), and Raft cannot trust a node that forgot its votes; \
                 remove node {node} from the cluster and start this machine with --join and a new id \
                 (docs/operations.md)",
                self.store_id
            );
            let mut refused = self.refused.lock().unwrap_or_else(|p| p.into_inner());
            let first = refused.is_none();
            *refused = Some(message.clone());
            return Err(Refusal { message, first });
        }
        if let (Some(theirs), Some(ours)) = (cluster, self.cluster()) {
            if theirs != ours {
                return Err(Refusal {
                    message: format!(
                        "node {node} belongs to cluster {ours}, not to the sender's cluster {theirs}"
                    ),
                    first: false,
                });
            }
        }
        Ok(())
    }
}

/// Why [`Identity::check`] refused an RPC.
pub(crate) struct Refusal {
    pub message: String,
    /// The first refusal of this node as a replaced store: log it loudly.
    pub first: bool,
}

#[cfg(test)]
mod tests {
    use super::*;

    fn db() -> (tempfile::TempDir, sled::Db) {
        let dir = tempfile::tempdir().unwrap();
        let db = sled::open(dir.path().join("db")).unwrap();
        (dir, db)
    }

    #[test]
    fn the_store_id_is_made_once_and_kept() {
        let (_dir, db) = db();
        let first = Identity::open(&db, None).unwrap().store_id();
        assert_ne!(first, 0);
        assert_eq!(Identity::open(&db, None).unwrap().store_id(), first);
        let (_other_dir, other) = self::db();
        assert_ne!(Identity::open(&other, None).unwrap().store_id(), first, "a new directory, a new store");
    }

    #[test]
    fn a_node_adopts_one_cluster_only() {
        let (_dir, db) = db();
        let id = Identity::open(&db, None).unwrap();
        assert_eq!(id.cluster(), None);
        id.adopt_cluster("c1").unwrap();
        id.adopt_cluster("c1").unwrap();
        assert!(id.adopt_cluster("c2").is_err());
        assert_eq!(
            Identity::open(&db, None).unwrap().cluster().as_deref(),
            Some("c1"),
            "kept across restarts"
        );
    }

    #[test]
    fn rpcs_for_another_cluster_or_store_are_refused() {
        let (_dir, db) = db();
        let id = Identity::open(&db, None).unwrap();
        let me = id.store_id();
        assert!(id.check(3, Some("c1"), Some(3), Some(me)).is_ok(), "no cluster yet: anything goes");
        id.adopt_cluster("c1").unwrap();
        assert!(id.check(3, Some("c1"), Some(3), Some(me)).is_ok());
        assert!(id.check(3, None, None, None).is_ok(), "no headers: not checked");
        assert!(id.check(3, Some("c2"), None, None).is_err());
        assert!(id.refusal().is_none(), "another cluster is the sender's problem");
        assert!(id.check(3, Some("c1"), Some(2), Some(me ^ 1)).is_err(), "meant for node 2");
        assert!(id.refusal().is_none(), "an RPC for another node says nothing of this one's data");
        let wrong = id.check(3, Some("c1"), Some(3), Some(me ^ 1)).err().unwrap();
        assert!(wrong.first && wrong.message.contains("--join"), "{}", wrong.message);
        assert!(!id.check(3, Some("c1"), None, Some(me ^ 1)).err().unwrap().first, "logged once");
        assert!(id.refusal().is_some());
    }
}
