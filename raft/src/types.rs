//! The openraft type configuration shared by every group, and the bincode codec.
//!
//! The configuration is deliberately *not* generic over the [`StateMachine`](crate::StateMachine):
//! commands and replies travel through openraft as opaque bincode bytes ([`CommandBytes`],
//! [`ReplyBytes`]). That keeps log entries, RPC messages and the [`Transport`](crate::Transport)
//! trait free of type parameters, so one transport (one gRPC service) carries the RPCs of every
//! group, whatever machine it hosts.
//!
//! A normal entry is a [`Batch`]: the commands proposed together and the leader's time, so the
//! cost of consensus and fsync is paid per batch. Each command is encoded once, where it was
//! submitted (possibly a follower that forwards it), copied once into its entry (the leader
//! writes a [`BatchRef`] over the commands' bytes), and decoded once, in apply; the entry is
//! stamped once, by the leader that proposes it.

use serde::de::DeserializeOwned;
use serde::Deserialize;
use serde::Serialize;

use crate::NodeAddr;

/// A bincode-encoded `StateMachine::Command`: the application data of a normal log entry.
#[derive(Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct CommandBytes(pub Vec<u8>);

/// A bincode-encoded `StateMachine::Reply`, or empty for blank and membership entries.
#[derive(Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct ReplyBytes(pub Vec<u8>);

impl std::fmt::Debug for CommandBytes {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "CommandBytes(len={})", self.0.len())
    }
}

impl std::fmt::Display for CommandBytes {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "command({} bytes)", self.0.len())
    }
}

impl std::fmt::Debug for ReplyBytes {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "ReplyBytes(len={})", self.0.len())
    }
}

/// The payload of a normal entry: commands proposed together, stamped with the proposing
/// leader's wall-clock time (ms since the Unix epoch), applied in order.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub(crate) struct Batch {
    pub(crate) now_ms: u64,
    pub(crate) commands: Vec<CommandBytes>,
}

/// How the leader writes a [`Batch`]: the same bytes, made from the commands' encodings where
/// they are, so a command's bytes are copied once, into the entry, and never cloned first.
#[derive(Serialize)]
pub(crate) struct BatchRef<'a> {
    pub(crate) now_ms: u64,
    pub(crate) commands: Vec<&'a [u8]>,
}

/// What applying an entry answers its proposer: one reply per command of the batch, in
/// order (empty for blank and membership entries).
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct BatchReply(pub Vec<ReplyBytes>);

openraft::declare_raft_types!(
    /// The openraft type configuration of every boxoffice group.
    pub TypeConfig:
        D = CommandBytes,
        R = BatchReply,
        NodeId = crate::NodeId,
        Node = NodeAddr,
);

pub(crate) type LogId = openraft::alias::LogIdOf<TypeConfig>;
pub(crate) type Entry = openraft::alias::EntryOf<TypeConfig>;
pub(crate) type Vote = openraft::alias::VoteOf<TypeConfig>;
pub(crate) type StoredMembership = openraft::alias::StoredMembershipOf<TypeConfig>;
pub(crate) type SnapshotMeta = openraft::alias::SnapshotMetaOf<TypeConfig>;
/// A snapshot as openraft hands it around: metadata plus the machine's serialized state.
pub(crate) type Snapshot = openraft::alias::SnapshotOf<TypeConfig, Vec<u8>>;

/// The one bincode configuration used for everything this crate stores or sends.
fn bincode_config() -> bincode::config::Configuration {
    bincode::config::standard()
}

/// Encode a value with bincode (serde). Encoding our own types cannot fail except on a bug,
/// so failures are reported as strings for the caller to wrap.
pub(crate) fn encode<T: Serialize>(value: &T) -> Result<Vec<u8>, String> {
    bincode::serde::encode_to_vec(value, bincode_config()).map_err(|e| e.to_string())
}

/// Decode a value encoded by [`encode`]; trailing bytes are an error.
pub(crate) fn decode<T: DeserializeOwned>(bytes: &[u8]) -> Result<T, String> {
    let (value, read) =
        bincode::serde::decode_from_slice(bytes, bincode_config()).map_err(|e| e.to_string())?;
    if read != bytes.len() {
        return Err(format!("{} trailing bytes after value", bytes.len() - read));
    }
    Ok(value)
}

/// `encode` as an `io::Error` (what openraft's storage traits return).
pub(crate) fn encode_io<T: Serialize>(value: &T) -> std::io::Result<Vec<u8>> {
    encode(value).map_err(std::io::Error::other)
}

/// `decode` as an `io::Error`; `what` names the record for the message.
pub(crate) fn decode_io<T: DeserializeOwned>(bytes: &[u8], what: &str) -> std::io::Result<T> {
    decode(bytes).map_err(|e| std::io::Error::new(std::io::ErrorKind::InvalidData, format!("{what}: {e}")))
}

#[cfg(test)]
mod batch_tests {
    use super::*;

    /// The leader writes a `BatchRef`, apply reads a `Batch`: the bytes must be the same.
    #[test]
    fn a_batch_written_from_references_reads_back_as_a_batch() {
        let commands = [vec![], vec![1u8, 2, 3], vec![7u8; 300]];
        let by_ref =
            BatchRef { now_ms: 1_733_000_000_123, commands: commands.iter().map(|c| c.as_slice()).collect() };
        let owned = Batch {
            now_ms: 1_733_000_000_123,
            commands: commands.iter().cloned().map(CommandBytes).collect(),
        };
        let bytes = encode(&by_ref).unwrap();
        assert_eq!(bytes, encode(&owned).unwrap());
        assert_eq!(decode::<Batch>(&bytes).unwrap(), owned);
    }
}
