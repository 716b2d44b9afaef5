//! Version negotiation (seed 001), carried in the `data` of connect and of its result.
//!
//! The client lists the RPC-Crypto protocol versions it supports:
//! `{"connect":{"data":{"protocol_versions":[2,1]}},"id":1}`. The server accepts the first of its
//! own versions, in its order of preference, that the client lists, and says so in the result:
//! `{"data":{"protocol_version":1}}`. A client that lists nothing (every official Centrifuge SDK)
//! gets [`CURRENT_VERSION`].
//!
//! The same `data` asks for a session that outlives its connection (`"resumable": true`) or
//! resumes one (`"resume": {"session": ID, "key": KEY, "last_received": N}`); the result's data
//! then carries the session key and the grace period.

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

/// Connect `data` whose resume members cannot be read.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum BadSessionRequest {
    #[error(transparent)]
    Versions(#[from] BadVersionList),
    #[error("connect data: `resumable` must be true or false")]
    Resumable,
    #[error(
        "connect data: `resume` must be {{\"session\": ID, \"key\": KEY, \"last_received\": N}}"
    )]
    Resume,
}

/// What a client asks of its session in connect `data`.
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub struct SessionRequest {
    /// The versions it speaks; `None` when it lists none.
    pub versions: Option<Vec<u32>>,
    /// Keep the session (subscriptions, queued messages) for the grace period after the
    /// connection ends, so that the client can resume it.
    pub resumable: bool,
    /// Resume this session instead of creating one.
    pub resume: Option<ResumeRequest>,
}

/// A resume: the session, its key (from the result that created it), and the id of the last
/// message the client received on it (0 if none).
#[derive(Debug, Clone, PartialEq, Eq, serde::Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ResumeRequest {
    pub session: String,
    pub key: String,
    pub last_received: u64,
}

/// Reads the session request of connect `data`.
pub fn session_request(connect_data: &[u8]) -> Result<SessionRequest, BadSessionRequest> {
    let versions = requested_versions(connect_data)?;
    let resumable = match crate::rpc::member(connect_data, "resumable") {
        None | Some(serde_json::Value::Null) => false,
        Some(serde_json::Value::Bool(b)) => b,
        Some(_) => return Err(BadSessionRequest::Resumable),
    };
    let resume = match crate::rpc::member(connect_data, "resume") {
        None | Some(serde_json::Value::Null) => None,
        Some(value) => Some(serde_json::from_value(value).map_err(|_| BadSessionRequest::Resume)?),
    };
    Ok(SessionRequest {
        versions,
        resumable,
        resume,
    })
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

/// The `data` of the connect result of a resumable session: the version, the key that resumes
/// it, the grace period in seconds, and whether this connect resumed it.
pub fn resumable_data(version: u32, key: &str, grace_secs: u64, resumed: bool) -> Bytes {
    let value = serde_json::json!({
        "protocol_version": version,
        "resume_grace": grace_secs,
        "resumed": resumed,
        "session_key": key,
    });
    Bytes::from(serde_json::to_vec(&value).expect("JSON values encode"))
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
    fn resume_requests_are_read_from_connect_data() {
        assert_eq!(session_request(b""), Ok(SessionRequest::default()));
        let r = session_request(b"{\"resumable\":true,\"protocol_versions\":[1]}").unwrap();
        assert!(r.resumable && r.resume.is_none() && r.versions == Some(vec![1]));
        let r = session_request(
            b"{\"resume\":{\"session\":\"ab\",\"key\":\"cd\",\"last_received\":7}}",
        )
        .unwrap();
        assert_eq!(
            r.resume,
            Some(ResumeRequest {
                session: "ab".into(),
                key: "cd".into(),
                last_received: 7
            })
        );
        assert_eq!(
            session_request(b"{\"resumable\":1}"),
            Err(BadSessionRequest::Resumable)
        );
        for bad in [
            &b"{\"resume\":{\"session\":\"ab\",\"key\":\"cd\"}}"[..],
            b"{\"resume\":{\"session\":\"ab\",\"key\":\"cd\",\"last_received\":-1}}",
            b"{\"resume\":\"ab\"}",
        ] {
            assert_eq!(session_request(bad), Err(BadSessionRequest::Resume));
        }
    }

    #[test]
    fn negotiation_accepts_a_common_version_or_rejects() {
        assert_eq!(negotiate(None), Ok(CURRENT_VERSION));
        assert_eq!(negotiate(Some(&[9, 1])), Ok(1));
        assert_eq!(negotiate(Some(&[9])), Err(RejectReason::UnsupportedVersion));
        assert_eq!(negotiate(Some(&[])), Err(RejectReason::UnsupportedVersion));
    }
}
