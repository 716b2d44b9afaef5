//! TLS (rustls) for every listener, with optional client-certificate authentication.
//!
//! With `tls.cert` and `tls.key` set, [`server_config`] builds the rustls config the listener is
//! bound with (`wss://` only: a plain client on that port fails its handshake). rustls runs on
//! the ring provider alone, chosen explicitly, so the build needs no C toolchain for aws-lc and
//! no process-wide provider has to be installed. `tls.client_auth` makes clients present a
//! certificate signed by a `tls.client_ca` CA (`required`), or verifies one only when presented
//! (`optional`). The subject common name of a verified client certificate is the connection's
//! [`CertificateUser`]: `on_connect` reads it from the TLS stream ([`certificate_user`]) once,
//! before any request, and the WebSocket handler hands it to the session as its owner.
//!
//! Config errors name the setting and the file at fault but never quote a file: a key must not
//! end up in a log.

use std::any::Any;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use rustls_pki_types::pem::{self, PemObject as _};
use rustls_pki_types::{CertificateDer, PrivateKeyDer};
use serde::{Deserialize, Serialize};
use x509_cert::der::asn1::ObjectIdentifier;
use x509_cert::der::{Decode as _, Tag, Tagged as _};

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

/// Why the `[tls]` settings cannot make a TLS server. Messages name the file and the setting at
/// fault; they never quote a file's contents, so a key never reaches a log.
#[derive(Debug, thiserror::Error)]
pub enum TlsError {
    /// Only one of `cert` and `key` is set.
    #[error("tls.cert and tls.key go together: set both or neither")]
    Incomplete,
    /// `client_auth` asks for client certificates but no CA is given to check them against.
    #[error(
        "tls.client_auth = \"{0}\" needs tls.client_ca, the CAs that sign client certificates"
    )]
    MissingClientCa(&'static str),
    /// `client_auth` asks for client certificates on a server without TLS.
    #[error("tls.client_auth = \"{0}\" needs tls.cert and tls.key")]
    ClientAuthWithoutTls(&'static str),
    /// A file cannot be read, is not PEM, or holds nothing of the kind expected.
    #[error("tls.{setting} {}: {reason}", path.display())]
    File {
        setting: &'static str,
        path: PathBuf,
        reason: String,
    },
    /// rustls refuses the certificates or keys (e.g. the key does not match the certificate).
    #[error("tls.cert {} with tls.key {}: {source}", cert.display(), key.display())]
    Rustls {
        cert: PathBuf,
        key: PathBuf,
        source: rustls::Error,
    },
}

/// The user a verified client certificate names, stored in the connection's extensions by
/// `on_connect` (`req.conn_data::<CertificateUser>()`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CertificateUser(pub String);

/// The TLS stream of a connection accepted by `bind_rustls_0_23`.
type TlsStream = actix_tls::accept::rustls_0_23::TlsStream<actix_web::rt::net::TcpStream>;

/// The rustls server config for `settings`; `None` when neither `cert` nor `key` is set (plain
/// `ws://`).
pub fn server_config(settings: &TlsSettings) -> Result<Option<rustls::ServerConfig>, TlsError> {
    let auth_name = match settings.client_auth {
        ClientAuth::None => None,
        ClientAuth::Optional => Some("optional"),
        ClientAuth::Required => Some("required"),
    };
    let (cert_path, key_path) = match (&settings.cert, &settings.key) {
        (Some(cert), Some(key)) => (cert, key),
        (None, None) => {
            // Serving plain text when client certificates were asked for would silently drop
            // the authentication the operator configured.
            return match auth_name {
                Some(name) => Err(TlsError::ClientAuthWithoutTls(name)),
                None => Ok(None),
            };
        }
        _ => return Err(TlsError::Incomplete),
    };
    // Explicitly ring: the process-wide default provider would be ambiguous (and panic) if
    // another dependency ever enabled aws-lc-rs too.
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let builder = rustls::ServerConfig::builder_with_provider(provider.clone())
        .with_safe_default_protocol_versions()
        .map_err(|source| TlsError::Rustls {
            cert: cert_path.clone(),
            key: key_path.clone(),
            source,
        })?;
    let builder = match (auth_name, &settings.client_ca) {
        (None, ca) => {
            if let Some(ca) = ca {
                log::warn!(
                    "tls.client_ca {} is unused: tls.client_auth is \"none\"",
                    ca.display()
                );
            }
            builder.with_no_client_auth()
        }
        (Some(name), None) => return Err(TlsError::MissingClientCa(name)),
        (Some(_), Some(ca_path)) => {
            let roots = load_roots(ca_path)?;
            let mut verifier =
                rustls::server::WebPkiClientVerifier::builder_with_provider(roots, provider);
            if settings.client_auth == ClientAuth::Optional {
                verifier = verifier.allow_unauthenticated();
            }
            let verifier = verifier.build().map_err(|error| TlsError::File {
                setting: "client_ca",
                path: ca_path.clone(),
                reason: error.to_string(),
            })?;
            builder.with_client_cert_verifier(verifier)
        }
    };
    let chain = load_certs("cert", cert_path)?;
    let key = load_key(key_path)?;
    let mut config = builder
        .with_single_cert(chain, key)
        .map_err(|source| TlsError::Rustls {
            cert: cert_path.clone(),
            key: key_path.clone(),
            source,
        })?;
    // WebSocket upgrades are HTTP/1.1 only (no RFC 8441); actix-web adds it as well, but the
    // config should be right on its own.
    config.alpn_protocols = vec![b"http/1.1".to_vec()];
    Ok(Some(config))
}

/// The certificates of the PEM file `path`, the value of `tls.{setting}`; at least one.
fn load_certs(
    setting: &'static str,
    path: &Path,
) -> Result<Vec<CertificateDer<'static>>, TlsError> {
    let file_error = |reason: String| TlsError::File {
        setting,
        path: path.to_owned(),
        reason,
    };
    let certs = CertificateDer::pem_file_iter(path)
        .map_err(|e| file_error(pem_reason(e)))?
        .collect::<Result<Vec<_>, _>>()
        .map_err(|e| file_error(pem_reason(e)))?;
    if certs.is_empty() {
        return Err(file_error("no certificate in the file".to_owned()));
    }
    Ok(certs)
}

/// The private key of the PEM file `path` (`tls.key`).
fn load_key(path: &Path) -> Result<PrivateKeyDer<'static>, TlsError> {
    PrivateKeyDer::from_pem_file(path).map_err(|e| TlsError::File {
        setting: "key",
        path: path.to_owned(),
        reason: match e {
            pem::Error::NoItemsFound => "no private key in the file".to_owned(),
            e => pem_reason(e),
        },
    })
}

/// The CAs of the PEM file `path` (`tls.client_ca`), as trust anchors for client certificates.
fn load_roots(path: &Path) -> Result<Arc<rustls::RootCertStore>, TlsError> {
    let file_error = |reason: String| TlsError::File {
        setting: "client_ca",
        path: path.to_owned(),
        reason,
    };
    let mut roots = rustls::RootCertStore::empty();
    for cert in load_certs("client_ca", path)? {
        roots
            .add(cert)
            .map_err(|e| file_error(format!("not a usable CA certificate: {e}")))?;
    }
    Ok(Arc::new(roots))
}

/// What went wrong reading a PEM file, without quoting the file: pem's own messages can show a
/// line of it, which for a key file would be key material.
fn pem_reason(error: pem::Error) -> String {
    match error {
        pem::Error::Io(e) => e.to_string(),
        pem::Error::NoItemsFound => "nothing of the expected kind in the file".to_owned(),
        pem::Error::SectionTooLarge => "a PEM section is too large".to_owned(),
        _ => "not a valid PEM file".to_owned(),
    }
}

/// The TCP stream under `connection` (what `on_connect` gets), plain or TLS.
pub fn tcp_stream(connection: &dyn Any) -> Option<&actix_web::rt::net::TcpStream> {
    if let Some(tcp) = connection.downcast_ref::<actix_web::rt::net::TcpStream>() {
        return Some(tcp);
    }
    connection
        .downcast_ref::<TlsStream>()
        .map(|tls| tls.get_ref().0)
}

/// The user named by the client certificate of `connection`, if it is a TLS connection whose
/// client presented one (rustls has verified it by now, before any request is read).
pub fn certificate_user(connection: &dyn Any) -> Option<CertificateUser> {
    let tls = connection.downcast_ref::<TlsStream>()?;
    let leaf = tls.get_ref().1.peer_certificates()?.first()?;
    match common_name(leaf) {
        Ok(name) => Some(CertificateUser(name)),
        Err(reason) => {
            log::warn!("client certificate names no user: {reason}");
            None
        }
    }
}

/// The subject common name of a DER certificate. Exactly one is accepted: with several, which
/// one names the user would be a guess.
fn common_name(der: &[u8]) -> Result<String, &'static str> {
    const COMMON_NAME: ObjectIdentifier = ObjectIdentifier::new_unwrap("2.5.4.3");
    let cert = x509_cert::Certificate::from_der(der).map_err(|_| "not a valid certificate")?;
    let mut names = cert
        .tbs_certificate
        .subject
        .0
        .iter()
        .flat_map(|rdn| rdn.0.iter())
        .filter(|attribute| attribute.oid == COMMON_NAME);
    let attribute = names.next().ok_or("no common name in the subject")?;
    if names.next().is_some() {
        return Err("more than one common name in the subject");
    }
    let value = &attribute.value;
    let name = match value.tag() {
        // PrintableString and IA5String are ASCII, so UTF-8 reads them too.
        Tag::Utf8String | Tag::PrintableString | Tag::Ia5String => {
            std::str::from_utf8(value.value())
                .map_err(|_| "the common name is not valid text")?
                .to_owned()
        }
        Tag::BmpString => {
            let units: Vec<u16> = value
                .value()
                .chunks_exact(2)
                .map(|pair| u16::from_be_bytes([pair[0], pair[1]]))
                .collect();
            String::from_utf16(&units).map_err(|_| "the common name is not valid text")?
        }
        _ => return Err("the common name is of an unsupported string type"),
    };
    if name.is_empty() {
        return Err("the common name is empty");
    }
    Ok(name)
}

#[cfg(test)]
mod tests {
    use rcgen::{CertificateParams, DnType, KeyPair};

    use super::*;

    fn settings(cert: Option<&str>, key: Option<&str>, client_auth: ClientAuth) -> TlsSettings {
        TlsSettings {
            cert: cert.map(PathBuf::from),
            key: key.map(PathBuf::from),
            client_ca: None,
            client_auth,
        }
    }

    #[test]
    fn no_cert_and_no_key_is_plain() {
        assert!(server_config(&TlsSettings::default()).unwrap().is_none());
    }

    #[test]
    fn half_or_inconsistent_settings_are_errors() {
        let only_cert = settings(Some("/c.pem"), None, ClientAuth::None);
        assert!(matches!(
            server_config(&only_cert),
            Err(TlsError::Incomplete)
        ));
        let auth_without_tls = settings(None, None, ClientAuth::Required);
        assert!(matches!(
            server_config(&auth_without_tls),
            Err(TlsError::ClientAuthWithoutTls("required"))
        ));
        let auth_without_ca = settings(Some("/c.pem"), Some("/k.pem"), ClientAuth::Optional);
        assert!(matches!(
            server_config(&auth_without_ca),
            Err(TlsError::MissingClientCa("optional"))
        ));
    }

    #[test]
    fn an_unreadable_file_is_named() {
        let missing = "/nonexistent/rpc-crypto/cert.pem";
        let error = server_config(&settings(Some(missing), Some("/k.pem"), ClientAuth::None))
            .unwrap_err()
            .to_string();
        assert!(
            error.contains("tls.cert") && error.contains(missing),
            "{error}"
        );
    }

    #[test]
    fn the_common_name_of_a_certificate() {
        let key = KeyPair::generate().unwrap();
        let mut params = CertificateParams::new(Vec::new()).unwrap();
        params.distinguished_name = rcgen::DistinguishedName::new();
        params
            .distinguished_name
            .push(DnType::OrganizationName, "Acme");
        params.distinguished_name.push(DnType::CommonName, "alice");
        let cert = params.self_signed(&key).unwrap();
        assert_eq!(common_name(cert.der()), Ok("alice".to_owned()));

        params.distinguished_name = rcgen::DistinguishedName::new();
        params
            .distinguished_name
            .push(DnType::OrganizationName, "Acme");
        let cert = params.self_signed(&key).unwrap();
        assert!(common_name(cert.der()).is_err());
        assert!(common_name(b"not DER").is_err());
    }
}
