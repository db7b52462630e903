//! The etcd adapter: a hold is one transaction, "if the seat's key was never created, put
//! it with my lease" — `Txn(compare: create_revision(key) == 0, success: put(key, holder,
//! lease))` — with one 600 s lease granted per client up front (etcd's idiom for a hold
//! that expires). Each client has its own gRPC channel to one member (round-robin).
//!
//! Why no `etcd-client` crate: every release of it generates its code at build time with
//! `protoc`, which these machines do not have. This module speaks etcd's v3 gRPC API
//! directly with `tonic` + `prost` (already the workspace's gRPC stack for Raft): the few
//! messages it needs are written out below with `prost` derives, field numbers as in etcd's
//! `api/etcdserverpb/rpc.proto`. Unknown response fields are skipped by prost.

use std::time::Duration;

use anyhow::{bail, Context};
use tonic::codegen::http::uri::PathAndQuery;
use tonic::transport::{Channel, Endpoint};

/// A hold's lease, as in boxoffice's default `hold_seconds`.
pub const LEASE_TTL_S: i64 = 600;
const CONNECT_TIMEOUT: Duration = Duration::from_secs(5);
const REQUEST_TIMEOUT: Duration = Duration::from_secs(30);

#[derive(Clone, PartialEq, prost::Message)]
pub struct LeaseGrantRequest {
    #[prost(int64, tag = "1")]
    pub ttl: i64,
    #[prost(int64, tag = "2")]
    pub id: i64,
}

#[derive(Clone, PartialEq, prost::Message)]
pub struct LeaseGrantResponse {
    #[prost(int64, tag = "2")]
    pub id: i64,
    #[prost(int64, tag = "3")]
    pub ttl: i64,
    #[prost(string, tag = "4")]
    pub error: String,
}

#[derive(Clone, PartialEq, prost::Message)]
pub struct PutRequest {
    #[prost(bytes = "vec", tag = "1")]
    pub key: Vec<u8>,
    #[prost(bytes = "vec", tag = "2")]
    pub value: Vec<u8>,
    #[prost(int64, tag = "3")]
    pub lease: i64,
}

#[derive(Clone, PartialEq, prost::Message)]
pub struct RangeRequest {
    #[prost(bytes = "vec", tag = "1")]
    pub key: Vec<u8>,
    #[prost(bytes = "vec", tag = "2")]
    pub range_end: Vec<u8>,
    #[prost(bool, tag = "9")]
    pub count_only: bool,
}

#[derive(Clone, PartialEq, prost::Message)]
pub struct RangeResponse {
    #[prost(int64, tag = "4")]
    pub count: i64,
}

#[derive(Clone, PartialEq, prost::Oneof)]
pub enum Request {
    #[prost(message, tag = "2")]
    RequestPut(PutRequest),
}

#[derive(Clone, PartialEq, prost::Message)]
pub struct RequestOp {
    #[prost(oneof = "Request", tags = "2")]
    pub request: Option<Request>,
}

/// `Compare.CompareResult.EQUAL`.
const COMPARE_EQUAL: i32 = 0;
/// `Compare.CompareTarget.CREATE`.
const TARGET_CREATE: i32 = 1;

#[derive(Clone, PartialEq, prost::Oneof)]
pub enum TargetUnion {
    #[prost(int64, tag = "5")]
    CreateRevision(i64),
}

#[derive(Clone, PartialEq, prost::Message)]
pub struct Compare {
    #[prost(int32, tag = "1")]
    pub result: i32,
    #[prost(int32, tag = "2")]
    pub target: i32,
    #[prost(bytes = "vec", tag = "3")]
    pub key: Vec<u8>,
    #[prost(oneof = "TargetUnion", tags = "5")]
    pub target_union: Option<TargetUnion>,
}

#[derive(Clone, PartialEq, prost::Message)]
pub struct TxnRequest {
    #[prost(message, repeated, tag = "1")]
    pub compare: Vec<Compare>,
    #[prost(message, repeated, tag = "2")]
    pub success: Vec<RequestOp>,
    #[prost(message, repeated, tag = "3")]
    pub failure: Vec<RequestOp>,
}

#[derive(Clone, PartialEq, prost::Message)]
pub struct TxnResponse {
    #[prost(bool, tag = "2")]
    pub succeeded: bool,
}

/// One client's connection to one member, and its lease.
pub struct Conn {
    grpc: tonic::client::Grpc<Channel>,
    lease: i64,
}

async fn unary<Req, Resp>(
    grpc: &mut tonic::client::Grpc<Channel>,
    path: &'static str,
    req: Req,
) -> anyhow::Result<Resp>
where
    Req: prost::Message + Send + Sync + 'static,
    Resp: prost::Message + Default + Send + Sync + 'static,
{
    grpc.ready().await.context("etcd channel not ready")?;
    let codec = tonic_prost::ProstCodec::<Req, Resp>::default();
    let r = grpc.unary(tonic::Request::new(req), PathAndQuery::from_static(path), codec).await?;
    Ok(r.into_inner())
}

impl Conn {
    pub async fn connect(url: &str) -> anyhow::Result<Conn> {
        let channel = Endpoint::from_shared(url.to_string())?
            .connect_timeout(CONNECT_TIMEOUT)
            .timeout(REQUEST_TIMEOUT)
            .connect()
            .await
            .with_context(|| format!("connecting to etcd at {url}"))?;
        let mut grpc = tonic::client::Grpc::new(channel);
        let lease: LeaseGrantResponse =
            unary(&mut grpc, "/etcdserverpb.Lease/LeaseGrant", LeaseGrantRequest { ttl: LEASE_TTL_S, id: 0 })
                .await?;
        if !lease.error.is_empty() || lease.id == 0 {
            bail!("etcd refused a lease: {:?}", lease.error);
        }
        Ok(Conn { grpc, lease: lease.id })
    }

    /// Hold `key` for `holder`; `Ok(false)` when someone holds it already.
    pub async fn hold(&mut self, key: &str, holder: &str) -> anyhow::Result<bool> {
        let txn = TxnRequest {
            compare: vec![Compare {
                result: COMPARE_EQUAL,
                target: TARGET_CREATE,
                key: key.as_bytes().to_vec(),
                target_union: Some(TargetUnion::CreateRevision(0)),
            }],
            success: vec![RequestOp {
                request: Some(Request::RequestPut(PutRequest {
                    key: key.as_bytes().to_vec(),
                    value: holder.as_bytes().to_vec(),
                    lease: self.lease,
                })),
            }],
            failure: vec![],
        };
        let r: TxnResponse = unary(&mut self.grpc, "/etcdserverpb.KV/Txn", txn).await?;
        Ok(r.succeeded)
    }

    /// Keys under `prefix`.
    pub async fn count(&mut self, prefix: &str) -> anyhow::Result<u64> {
        let mut end = prefix.as_bytes().to_vec();
        *end.last_mut().context("empty prefix")? += 1;
        let req = RangeRequest { key: prefix.as_bytes().to_vec(), range_end: end, count_only: true };
        let r: RangeResponse = unary(&mut self.grpc, "/etcdserverpb.KV/Range", req).await?;
        Ok(r.count as u64)
    }
}
