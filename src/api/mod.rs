//! The server HTTP API: what an application's backend asks of the broker, with Centrifugo's
//! server API conventions, so that its client libraries and habits carry over.
//!
//! `POST /api/<method>` with a JSON body and the key in `X-API-Key` (or Centrifugo's
//! `Authorization: apikey <key>`). `POST /session/create` is `session_create` at the original
//! RPC-Crypto gateway's path. An empty body is read as `{}`.
//!
//! Answers: `{"result":{...}}` with HTTP 200; a method's own refusal is HTTP 200 with
//! `{"error":{"code":..,"message":..}}` (as Centrifugo does); a request the API cannot take is an
//! HTTP error status with the same body shape, see [`ApiError`]. Checks run in this order: the
//! key (401, before anything about the request is looked at), the method (404), the body size
//! (413 past [`MAX_BODY_SIZE`]), the body's JSON (400).
//!
//! One file per method (as mini-redis's `cmd/`): each holds its request type, which decodes the
//! body strictly (unknown fields are refused), and its [`ApiMethod::apply`].
//!
//! Neither the key nor request bodies are ever logged.

mod broadcast;
mod channels;
mod disconnect;
mod error;
mod history;
mod history_remove;
mod info;
mod presence;
mod presence_stats;
mod publish;
mod session_create;
mod subscribe;
mod unsubscribe;

use std::sync::Arc;
use std::time::{Duration, Instant};

use actix::dev::ToEnvelope;
use actix::prelude::*;
use actix_web::{web, HttpRequest, HttpResponse};
use rpc_crypto_actors::channel::{ChannelOptions, ChannelRules};
use rpc_crypto_actors::metrics::metrics;
use rpc_crypto_actors::registry::Registry;
use rpc_crypto_actors::router::Router;
use serde::de::DeserializeOwned;
use serde::Serialize;

pub use error::{ApiError, ErrorBody};

/// The largest request body taken; a larger one gets HTTP 413 (code 107) unread.
pub const MAX_BODY_SIZE: usize = 64 * 1024;
/// How long a request waits for an actor's answer before it gets HTTP 500.
pub const CALL_TIMEOUT: Duration = Duration::from_secs(10);
/// The header that carries the API key.
pub const API_KEY_HEADER: &str = "x-api-key";
/// The original RPC-Crypto gateway's path of `session_create`.
pub const SESSION_CREATE_PATH: &str = "/session/create";

/// What the API handlers read (`web::Data<ApiState>`).
pub struct ApiState {
    /// The key requests must carry; empty turns the API off (every request gets 401).
    pub key: String,
    pub registry: Addr<Registry>,
    pub router: Addr<Router>,
    /// The channel rules the sessions use: the API refuses channels of unknown namespaces (102)
    /// and malformed names (107) itself, since the actors drop such orders without a word.
    pub rules: Arc<ChannelRules>,
    /// When the server started, for `info`'s uptime.
    pub started: Instant,
}

/// Mounts `POST /api/{method}` and `POST /session/create`. Other HTTP methods on these paths
/// get 405.
pub fn routes(cfg: &mut web::ServiceConfig) {
    cfg.service(web::resource("/api/{method}").route(web::post().to(api)))
        .service(web::resource(SESSION_CREATE_PATH).route(web::post().to(session_create_alias)));
}

async fn api(
    req: HttpRequest,
    method: web::Path<String>,
    payload: web::Payload,
    state: web::Data<ApiState>,
) -> Result<HttpResponse, ApiError> {
    serve(&req, &method, payload, &state).await
}

async fn session_create_alias(
    req: HttpRequest,
    payload: web::Payload,
    state: web::Data<ApiState>,
) -> Result<HttpResponse, ApiError> {
    serve(&req, "session_create", payload, &state).await
}

/// Serves one request and counts it in `rpc_crypto_api_requests_total` by method and status.
async fn serve(
    req: &HttpRequest,
    method: &str,
    payload: web::Payload,
    state: &ApiState,
) -> Result<HttpResponse, ApiError> {
    // The path's method name is the client's text: only a known name is a label.
    let known = Method::from_name(method);
    let answer = serve_known(req, known, payload, state).await;
    let status = match &answer {
        Ok(response) => response.status(),
        Err(error) => actix_web::ResponseError::status_code(error),
    };
    let label = match known {
        Some(method) if !matches!(answer, Err(ApiError::Unauthorized)) => method.name(),
        // Nothing about an unauthorized request is taken as said, its method included.
        _ => "unknown",
    };
    metrics().api_request(label, status.as_u16());
    answer
}

async fn serve_known(
    req: &HttpRequest,
    method: Option<Method>,
    payload: web::Payload,
    state: &ApiState,
) -> Result<HttpResponse, ApiError> {
    if let Err(error) = authorize(req, &state.key) {
        log::debug!("server API: unauthorized request");
        return Err(error);
    }
    // Only a known name reaches the log.
    let Some(method) = method else {
        log::debug!("server API: unknown method");
        return Err(ApiError::MethodNotFound);
    };
    let answer = match payload.to_bytes_limited(MAX_BODY_SIZE).await {
        Ok(Ok(body)) => method.run(state, &body).await,
        Ok(Err(_)) => Err(ApiError::BadRequest("cannot read the body".into())),
        Err(_) => Err(ApiError::TooLarge(MAX_BODY_SIZE)),
    };
    match &answer {
        Ok(_) => log::debug!("server API {}: ok", method.name()),
        Err(ApiError::Internal) => log::warn!("server API {}: internal error", method.name()),
        Err(error) => log::debug!("server API {}: error {}", method.name(), error.code()),
    }
    answer
}

/// Checks the request's key against `key` (an empty `key` lets nothing in).
fn authorize(req: &HttpRequest, key: &str) -> Result<(), ApiError> {
    if key.is_empty() {
        return Err(ApiError::Unauthorized);
    }
    let headers = req.headers();
    let presented = headers
        .get(API_KEY_HEADER)
        .map(|value| value.as_bytes())
        .or_else(|| {
            let value = headers
                .get(actix_web::http::header::AUTHORIZATION)?
                .as_bytes();
            let scheme = value.get(..7)?;
            scheme.eq_ignore_ascii_case(b"apikey ").then(|| &value[7..])
        });
    match presented {
        Some(presented) if same_key(presented, key.as_bytes()) => Ok(()),
        _ => Err(ApiError::Unauthorized),
    }
}

/// Compares a presented key with the configured one in time that depends on the presented
/// key's length only, so that timing tells an attacker nothing about the configured key.
fn same_key(presented: &[u8], key: &[u8]) -> bool {
    if key.is_empty() {
        return false;
    }
    // Every presented byte is compared (against the key, cycled), and a length mismatch is
    // folded in rather than returned early.
    let mut diff = u8::from(presented.len() != key.len());
    for (i, byte) in presented.iter().enumerate() {
        diff |= byte ^ key[i % key.len()];
    }
    std::hint::black_box(diff) == 0
}

/// One server API method: its request (the JSON body) and what it does.
trait ApiMethod: DeserializeOwned {
    /// What goes under `"result"`.
    type Output: Serialize;

    async fn apply(self, state: &ApiState) -> Result<Self::Output, ApiError>;
}

/// `{"result":{...}}`.
#[derive(Serialize)]
struct Success<T> {
    result: T,
}

/// An empty result: `{}`.
#[derive(Debug, Default, Serialize)]
pub struct Empty {}

/// Decodes the body as `M`, answers with its result.
async fn run<M: ApiMethod>(state: &ApiState, body: &[u8]) -> Result<HttpResponse, ApiError> {
    let request: M = decode(body)?;
    let result = request.apply(state).await?;
    Ok(HttpResponse::Ok().json(Success { result }))
}

/// Decodes a request body; an empty (or blank) body is `{}`. Errors carry serde's message
/// without its position (the body is small and the message names the field).
fn decode<M: DeserializeOwned>(body: &[u8]) -> Result<M, ApiError> {
    let body = if body.iter().all(u8::is_ascii_whitespace) {
        b"{}".as_slice()
    } else {
        body
    };
    serde_json::from_slice(body).map_err(|error| {
        let message = error.to_string();
        let position = format!(" at line {} column {}", error.line(), error.column());
        let message = message.strip_suffix(&position).unwrap_or(&message);
        ApiError::BadRequest(message.to_owned())
    })
}

/// Asks an actor, within [`CALL_TIMEOUT`]; no answer is an internal error.
async fn ask<A, M>(addr: &Addr<A>, message: M) -> Result<M::Result, ApiError>
where
    A: Actor + Handler<M>,
    A::Context: ToEnvelope<A, M>,
    M: Message + Send + 'static,
    M::Result: Send,
{
    addr.send(message)
        .timeout(CALL_TIMEOUT)
        .await
        .map_err(|error| {
            log::warn!("server API: an actor did not answer: {error}");
            ApiError::Internal
        })
}

/// The options of `channel`, or 102 (unknown namespace) / 107 (malformed name).
fn channel_options<'a>(state: &'a ApiState, channel: &str) -> Result<&'a ChannelOptions, ApiError> {
    Ok(state.rules.policy(channel)?.options)
}

/// A `user` field: empty is the same as absent (anonymous clients have no user to address).
fn non_empty(value: Option<String>) -> Option<String> {
    value.filter(|v| !v.is_empty())
}

macro_rules! methods {
    ($($variant:ident => $name:literal, $request:ty;)*) => {
        /// The server API's methods, by their names in the path.
        #[derive(Debug, Clone, Copy, PartialEq, Eq)]
        enum Method {
            $($variant,)*
        }

        impl Method {
            fn from_name(name: &str) -> Option<Method> {
                match name {
                    $($name => Some(Method::$variant),)*
                    _ => None,
                }
            }

            fn name(self) -> &'static str {
                match self {
                    $(Method::$variant => $name,)*
                }
            }

            async fn run(self, state: &ApiState, body: &[u8]) -> Result<HttpResponse, ApiError> {
                match self {
                    $(Method::$variant => run::<$request>(state, body).await,)*
                }
            }
        }
    };
}

methods! {
    Publish => "publish", publish::PublishRequest;
    Broadcast => "broadcast", broadcast::BroadcastRequest;
    Subscribe => "subscribe", subscribe::SubscribeRequest;
    Unsubscribe => "unsubscribe", unsubscribe::UnsubscribeRequest;
    Disconnect => "disconnect", disconnect::DisconnectRequest;
    Presence => "presence", presence::PresenceRequest;
    PresenceStats => "presence_stats", presence_stats::PresenceStatsRequest;
    History => "history", history::HistoryRequest;
    HistoryRemove => "history_remove", history_remove::HistoryRemoveRequest;
    Channels => "channels", channels::ChannelsRequest;
    Info => "info", info::InfoRequest;
    SessionCreate => "session_create", session_create::SessionCreateRequest;
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keys_compare_whole() {
        assert!(same_key(b"test-key", b"test-key"));
        assert!(!same_key(b"test-kez", b"test-key"));
        assert!(!same_key(b"test-key-and-more", b"test-key"));
        assert!(!same_key(b"test", b"test-key"));
        assert!(!same_key(b"", b"test-key"));
        assert!(!same_key(b"", b""));
    }

    #[test]
    fn decode_errors_are_short_and_blank_is_empty() {
        #[derive(Debug, serde::Deserialize)]
        #[serde(deny_unknown_fields)]
        struct Req {
            #[allow(dead_code)]
            channel: String,
        }
        let error = decode::<Req>(b"{\"channel\": 1}").unwrap_err();
        assert_eq!(
            error.to_string(),
            "bad request: invalid type: integer `1`, expected a string"
        );
        let error = decode::<Req>(b" \n").unwrap_err();
        assert_eq!(error.to_string(), "bad request: missing field `channel`");
        assert!(decode::<Req>(b"{\"channel\":\"a\",\"x\":1}").is_err());
    }
}
