//! Serde helper: store a `BTreeMap` as a sequence of `(key, value)` pairs.
//!
//! Why: maps whose keys are not strings (tuples) cannot be written as JSON objects, and the
//! JSON form is what tests and debugging tools use. In bincode a map and a sequence of pairs
//! have the same bytes (a length, then key, value, key, value...), so the stored snapshot
//! encoding is unchanged by this helper.

use std::collections::BTreeMap;

use serde::{Deserialize, Deserializer, Serialize, Serializer};

pub fn serialize<S, K, V>(map: &BTreeMap<K, V>, serializer: S) -> Result<S::Ok, S::Error>
where
    S: Serializer,
    K: Serialize,
    V: Serialize,
{
    serializer.collect_seq(map.iter())
}

pub fn deserialize<'de, D, K, V>(deserializer: D) -> Result<BTreeMap<K, V>, D::Error>
where
    D: Deserializer<'de>,
    K: Deserialize<'de> + Ord,
    V: Deserialize<'de>,
{
    let pairs: Vec<(K, V)> = Vec::deserialize(deserializer)?;
    let len = pairs.len();
    let map: BTreeMap<K, V> = pairs.into_iter().collect();
    if map.len() != len {
        return Err(serde::de::Error::custom("duplicate key in map stored as pairs"));
    }
    Ok(map)
}
