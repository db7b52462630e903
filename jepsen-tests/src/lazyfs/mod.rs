//! LazyFS: a FUSE pass-through file system that loses, on command, what was not made
//! durable (a power cut). This commit brings its pure bookkeeping, [`model`]; the mount
//! follows.

pub mod model;
