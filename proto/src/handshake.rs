//! Version negotiation (seed 001), carried in the `data` of connect and of its result.
//!
//! The client lists the RPC-Crypto protocol versions it supports:
//! `{"connect":{"data":{"protocol_versions":[2,1]}},"id":1}`. The server accepts the first of its
//! own versions, in its order of preference, that the client lists, and says so in the result:
//! `{"data":{"protocol_version":1}}`. A client that lists nothing (every official Centrifuge SDK)
//! gets [`CURRENT_VERSION`].

use bytes::Bytes;

use crate::codes::Disconnect;

/// The RPC-Crypto protocol versions this server speaks, most preferred first.
pub const SUPPORTED_VERSIONS: &[u32] = &[1];
/// The version a client that lists none is given.
pub const CURRENT_VERSION: u32 = 1;

/// Seed 001's handshake reject reasons, each sent as its own disconnect code.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RejectReason {
    UnsupportedVersion = 1,
    NoServerSessionsAvailable = 2,
    ProtocolNotSupported = 4,
}

impl RejectReason {
    pub fn disconnect(self) -> Disconnect {
        match self {
            RejectReason::UnsupportedVersion => Disconnect::UNSUPPORTED_VERSION,
            RejectReason::NoServerSessionsAvailable => Disconnect::NO_SERVER_SESSIONS_AVAILABLE,
            RejectReason::ProtocolNotSupported => Disconnect::PROTOCOL_NOT_SUPPORTED,
        }
    }
}

/// Connect `data` that cannot be read as a version list.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
#[error("connect data: `protocol_versions` must be an array of unsigned integers")]
pub struct BadVersionList;

/// The versions a client lists in its connect `data`; `None` when it lists none (no data, data
/// that is not an object, or an object without `protocol_versions`).
pub fn requested_versions(connect_data: &[u8]) -> Result<Option<Vec<u32>>, BadVersionList> {
    let list = match crate::rpc::member(connect_data, "protocol_versions") {
        None | Some(serde_json::Value::Null) => return Ok(None),
        Some(list) => list,
    };
    serde_json::from_value::<Vec<u32>>(list)
        .map(Some)
        .map_err(|_| BadVersionList)
}

/// Picks the version for a session, or the reason to reject it.
pub fn negotiate(requested: Option<&[u32]>) -> Result<u32, RejectReason> {
    match requested {
        None => Ok(CURRENT_VERSION),
        Some(list) => SUPPORTED_VERSIONS
            .iter()
            .copied()
            .find(|v| list.contains(v))
            .ok_or(RejectReason::UnsupportedVersion),
    }
}

/// The `data` of the connect result that tells the client its accepted version.
pub fn accepted_data(version: u32) -> Bytes {
    Bytes::from(format!("{{\"protocol_version\":{version}}}"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn lists_are_read_from_connect_data() {
        assert_eq!(requested_versions(b""), Ok(None));
        assert_eq!(requested_versions(b"{\"user\":1}"), Ok(None));
        assert_eq!(requested_versions(b"\"text\""), Ok(None));
        assert_eq!(requested_versions(b"[[1]]"), Ok(None));
        assert_eq!(
            requested_versions(b"{\"protocol_versions\":null}"),
            Ok(None)
        );
        assert_eq!(
            requested_versions(b"{\"protocol_versions\":[3,1]}"),
            Ok(Some(vec![3, 1]))
        );
        assert_eq!(
            requested_versions(b"{\"protocol_versions\":\"1\"}"),
            Err(BadVersionList)
        );
        assert_eq!(
            requested_versions(b"{\"protocol_versions\":[-1]}"),
            Err(BadVersionList)
        );
    }

    #[test]
    fn negotiation_accepts_a_common_version_or_rejects() {
        assert_eq!(negotiate(None), Ok(CURRENT_VERSION));
        assert_eq!(negotiate(Some(&[9, 1])), Ok(1));
        assert_eq!(negotiate(Some(&[9])), Err(RejectReason::UnsupportedVersion));
        assert_eq!(negotiate(Some(&[])), Err(RejectReason::UnsupportedVersion));
    }
}
