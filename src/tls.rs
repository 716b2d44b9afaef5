//! TLS (rustls) for every listener, with optional client-certificate authentication.

use std::path::PathBuf;

use serde::{Deserialize, Serialize};

/// The `[tls]` config table. With `cert` and `key` set, the server speaks only TLS (`wss://`).
#[derive(Debug, Clone, Default, PartialEq, Eq, Deserialize, Serialize)]
#[serde(default, deny_unknown_fields)]
pub struct TlsSettings {
    /// PEM file: the server's certificate chain, leaf first.
    pub cert: Option<PathBuf>,
    /// PEM file: the server's private key (PKCS#8, PKCS#1 or SEC1).
    pub key: Option<PathBuf>,
    /// PEM file: the CAs that sign client certificates; needed by `client_auth`.
    pub client_ca: Option<PathBuf>,
    /// Whether clients present a certificate: `none`, `optional` or `required`. A client's
    /// certificate names the session's owner (its subject common name).
    pub client_auth: ClientAuth,
}

/// Whether clients present a certificate.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Deserialize, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum ClientAuth {
    #[default]
    None,
    Optional,
    Required,
}
