//! The secure transport's RSA keys: the server's private key and the clients' public keys,
//! shared by every secure session and reloaded while the server runs.
//!
//! The handshake of the secure transport (seed 002) decrypts message 1 with the server's private
//! key and encrypts message 2 to the client's public key, looked up by the client id of message 1.
//! Keys come from `[secure]` ([`SecureSettings`]): `server_key_file`, one `<client id>.pem` per
//! client in `clients_dir`, and inline PEM text in `secure.clients`.
//!
//! A [`KeyStore`] holds the current [`KeySet`] behind one lock; a session takes it once per
//! handshake ([`KeyStore::current`]) and keeps the `Arc`s it needs, so frames never touch the
//! lock and a reload never changes a running session's keys. [`KeyStore::reload`] reads every
//! source again and swaps the whole set at once, or — on any error — keeps the previous set
//! untouched. [`spawn_reloader`] reloads when the files change ([`KeyStore::changed_on_disk`]
//! compares sizes, modification times and the directory listing) and on SIGHUP, so that adding or
//! revoking a client needs no restart.
//!
//! Errors name the setting, the file and the reason, never a key: nothing here logs or formats
//! key material, and the PEM text of the private key is wiped after parsing.

use std::collections::{BTreeMap, HashMap};
use std::ffi::OsString;
use std::fmt;
use std::io::Read as _;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex, PoisonError, RwLock};
use std::time::{Duration, SystemTime};

use rpc_crypto_proto::secure::{KeyError, PrivateKey, PublicKey};

use crate::settings::{valid_client_id, SecureSettings};

/// The largest key file read, in bytes: a 4096-bit private key in PEM is about 3.3 kB.
pub const MAX_KEY_FILE_SIZE: u64 = 64 * 1024;

/// Why keys could not be loaded. Each variant names the setting and file (or inline client id)
/// at fault and says why, without quoting the file.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum KeyStoreError {
    /// The secure transport is on but no server key is configured.
    #[error("secure.server_key_file is not set (`rpc-crypto keygen` makes a key)")]
    NoServerKeyFile,
    /// The server key file cannot be read or is not an acceptable RSA private key.
    #[error("secure.server_key_file {}: {reason}", path.display())]
    ServerKey { path: PathBuf, reason: String },
    /// The clients directory cannot be listed.
    #[error("secure.clients_dir {}: {reason}", path.display())]
    ClientsDir { path: PathBuf, reason: String },
    /// A `<client id>.pem` file of the clients directory cannot be read or is not an acceptable
    /// RSA public key.
    #[error("secure.clients_dir: {}: {reason}", path.display())]
    ClientFile { path: PathBuf, reason: String },
    /// An inline key of `secure.clients` has a bad client id or is not an acceptable RSA public
    /// key. `client_id` is escaped (printable).
    #[error("secure.clients.{client_id}: {reason}")]
    InlineClient { client_id: String, reason: String },
    /// A client id has a key both in `secure.clients` and in the clients directory.
    #[error(
        "client id `{client_id}` has a key both in secure.clients and in {}; keep one",
        path.display()
    )]
    Duplicate { client_id: String, path: PathBuf },
}

/// One consistent set of keys: the server's private key and every client's public key.
pub struct KeySet {
    server: Arc<PrivateKey>,
    clients: HashMap<String, Arc<PublicKey>>,
}

impl KeySet {
    /// A set from keys already parsed (tests, or a server that gets its keys elsewhere).
    pub fn new(server: PrivateKey, clients: impl IntoIterator<Item = (String, PublicKey)>) -> Self {
        KeySet {
            server: Arc::new(server),
            clients: clients
                .into_iter()
                .map(|(id, key)| (id, Arc::new(key)))
                .collect(),
        }
    }

    /// The server's private key (decrypts handshake message 1).
    pub fn server_key(&self) -> &Arc<PrivateKey> {
        &self.server
    }

    /// The public key of `client_id` (encrypts handshake message 2, verifies message 3), or
    /// `None` for a client without a key.
    pub fn client_key(&self, client_id: &str) -> Option<Arc<PublicKey>> {
        self.clients.get(client_id).cloned()
    }

    /// How many clients have a key.
    pub fn client_count(&self) -> usize {
        self.clients.len()
    }

    /// The ids of the clients with a key, in no particular order.
    pub fn client_ids(&self) -> impl Iterator<Item = &str> + '_ {
        self.clients.keys().map(String::as_str)
    }
}

/// Shows the key size and the number of clients, never a key.
impl fmt::Debug for KeySet {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("KeySet")
            .field("server_bits", &self.server.bits())
            .field("clients", &self.clients.len())
            .finish()
    }
}

/// What a successful [`KeyStore::reload`] changed, for a log line. Counts only, no key bytes.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ReloadReport {
    /// Clients that have a key now and did not before.
    pub added: usize,
    /// Clients that had a key before and have none now.
    pub removed: usize,
    /// Clients whose key was replaced.
    pub changed: usize,
    /// The server key was replaced.
    pub server_key_changed: bool,
    /// Clients with a key after the reload.
    pub clients: usize,
}

impl ReloadReport {
    /// Nothing changed (e.g. a file was touched, or rewritten with the same key).
    pub fn is_unchanged(&self) -> bool {
        self.added == 0 && self.removed == 0 && self.changed == 0 && !self.server_key_changed
    }

    fn between(before: &KeySet, after: &KeySet) -> Self {
        let mut report = ReloadReport {
            server_key_changed: before.server.public_key() != after.server.public_key(),
            clients: after.clients.len(),
            ..ReloadReport::default()
        };
        for (id, key) in &after.clients {
            match before.clients.get(id) {
                None => report.added += 1,
                Some(old) if old != key => report.changed += 1,
                Some(_) => {}
            }
        }
        report.removed = before
            .clients
            .keys()
            .filter(|id| !after.clients.contains_key(*id))
            .count();
        report
    }
}

impl fmt::Display for ReloadReport {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "{} client key(s) added, {} removed, {} replaced ({} in all); server key {}",
            self.added,
            self.removed,
            self.changed,
            self.clients,
            if self.server_key_changed {
                "replaced"
            } else {
                "unchanged"
            }
        )
    }
}

/// The current [`KeySet`], shared by every secure session; cheap to clone.
///
/// Reads ([`KeyStore::current`]) take a read lock for the time of an `Arc` clone: once per
/// handshake, never per frame.
#[derive(Clone)]
pub struct KeyStore {
    inner: Arc<Inner>,
}

struct Inner {
    /// Where the keys come from; `None` for a fixed set ([`KeyStore::fixed`]).
    source: Option<Source>,
    current: RwLock<Arc<KeySet>>,
    /// The files as they were at the last load or reload attempt (successful or not), so a
    /// broken file is reported once, not at every check. Held through a reload: reloads run one
    /// at a time.
    seen: Mutex<Stamp>,
}

impl KeyStore {
    /// Reads the server key, the clients directory and the inline client keys of `settings`.
    /// Whether `settings.enabled` is set is the caller's business; a server key file is needed.
    pub fn load(settings: &SecureSettings) -> Result<KeyStore, KeyStoreError> {
        let source = Source {
            server_key_file: settings
                .server_key_file
                .clone()
                .ok_or(KeyStoreError::NoServerKeyFile)?,
            clients_dir: settings.clients_dir.clone(),
            inline: settings.clients.clone(),
        };
        let stamp = source.stamp();
        let set = source.read()?;
        Ok(KeyStore {
            inner: Arc::new(Inner {
                source: Some(source),
                current: RwLock::new(Arc::new(set)),
                seen: Mutex::new(stamp),
            }),
        })
    }

    /// A store that always holds `set`: nothing to reload, never changed on disk.
    pub fn fixed(set: KeySet) -> KeyStore {
        KeyStore {
            inner: Arc::new(Inner {
                source: None,
                current: RwLock::new(Arc::new(set)),
                seen: Mutex::new(Stamp::default()),
            }),
        }
    }

    /// The current keys. Take it once per handshake and keep what you need from it.
    pub fn current(&self) -> Arc<KeySet> {
        self.inner
            .current
            .read()
            .unwrap_or_else(PoisonError::into_inner)
            .clone()
    }

    /// Whether the key files look different from the last load or reload attempt: the server
    /// key file's or a clients directory entry's size, modification or change time, or inode,
    /// or the directory's list of names. Only metadata is read (no key is parsed).
    pub fn changed_on_disk(&self) -> bool {
        let Some(source) = &self.inner.source else {
            return false;
        };
        let now = source.stamp();
        *self
            .inner
            .seen
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            != now
    }

    /// Reads every source again and, if all of it is valid, replaces the current set at once.
    /// On any error the previous set stays whole and the error is returned; the files are not
    /// tried again by [`spawn_reloader`] until they change again (or SIGHUP).
    pub fn reload(&self) -> Result<ReloadReport, KeyStoreError> {
        let Some(source) = &self.inner.source else {
            return Ok(ReloadReport {
                clients: self.current().client_count(),
                ..ReloadReport::default()
            });
        };
        let mut seen = self
            .inner
            .seen
            .lock()
            .unwrap_or_else(PoisonError::into_inner);
        // Stamped before reading: a file changed during the read shows as changed next time.
        let stamp = source.stamp();
        let read = source.read();
        *seen = stamp;
        let set = Arc::new(read?);
        let previous = std::mem::replace(
            &mut *self
                .inner
                .current
                .write()
                .unwrap_or_else(PoisonError::into_inner),
            set.clone(),
        );
        drop(seen);
        Ok(ReloadReport::between(&previous, &set))
    }
}

/// Shows where the keys come from and the current set's size, never a key.
impl fmt::Debug for KeyStore {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let mut debug = f.debug_struct("KeyStore");
        if let Some(source) = &self.inner.source {
            debug
                .field("server_key_file", &source.server_key_file)
                .field("clients_dir", &source.clients_dir);
        }
        debug.field("current", &self.current()).finish()
    }
}

/// Reloads `store` when its files change, checked every `interval` (not at all when zero), and
/// on every SIGHUP (unix). A reload that changed something is logged at info, one that changed
/// nothing at debug, a failed one at warn (the previous keys stay in use).
///
/// Call it inside the actix system (or a tokio runtime with time and signal drivers): the SIGHUP
/// handler is installed before this returns, so from then on SIGHUP no longer ends the process.
/// The tasks live as long as the system. Reading and parsing run on the blocking pool.
pub fn spawn_reloader(store: KeyStore, interval: Duration) {
    #[cfg(unix)]
    {
        use tokio::signal::unix::{signal, SignalKind};
        match signal(SignalKind::hangup()) {
            Ok(mut hangup) => {
                let store = store.clone();
                actix::spawn(async move {
                    while hangup.recv().await.is_some() {
                        log::info!("SIGHUP: reloading the secure transport keys");
                        reload_in_background(&store, true).await;
                    }
                });
            }
            Err(error) => log::warn!(
                "secure transport keys: cannot listen for SIGHUP ({error}); they reload only \
                 when their files change"
            ),
        }
    }
    if interval.is_zero() {
        return;
    }
    actix::spawn(async move {
        let mut ticks = tokio::time::interval(interval);
        ticks.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        // The first tick is immediate: the keys were just loaded.
        ticks.tick().await;
        loop {
            ticks.tick().await;
            reload_in_background(&store, false).await;
        }
    });
}

/// Reloads on the blocking pool (file reads, RSA key checks), when forced or when the files
/// changed, and logs the outcome.
async fn reload_in_background(store: &KeyStore, force: bool) {
    let store = store.clone();
    let outcome = actix_web::rt::task::spawn_blocking(move || {
        (force || store.changed_on_disk()).then(|| store.reload())
    })
    .await;
    match outcome {
        Ok(None) => {}
        Ok(Some(Ok(report))) if report.is_unchanged() => {
            log::debug!("secure transport keys reloaded: {report}");
        }
        Ok(Some(Ok(report))) => log::info!("secure transport keys reloaded: {report}"),
        Ok(Some(Err(error))) => {
            log::warn!("secure transport keys not reloaded, the previous ones stay in use: {error}")
        }
        Err(error) => log::warn!("secure transport keys: the reload task failed: {error}"),
    }
}

/// Where a [`KeyStore`]'s keys come from.
struct Source {
    server_key_file: PathBuf,
    clients_dir: Option<PathBuf>,
    inline: BTreeMap<String, String>,
}

impl Source {
    /// The metadata [`KeyStore::changed_on_disk`] compares.
    fn stamp(&self) -> Stamp {
        let dir = self.clients_dir.as_deref().and_then(|dir| {
            let entries = std::fs::read_dir(dir).ok()?;
            Some(
                entries
                    .filter_map(Result::ok)
                    .map(|entry| (entry.file_name(), FileStamp::of(&entry.path())))
                    .collect(),
            )
        });
        Stamp {
            server: Some(FileStamp::of(&self.server_key_file)),
            dir,
        }
    }

    /// Every key, or the first error.
    fn read(&self) -> Result<KeySet, KeyStoreError> {
        let server = read_private_key(&self.server_key_file)?;
        let mut clients = HashMap::new();
        for (id, pem) in &self.inline {
            let inline_error = |reason: String| KeyStoreError::InlineClient {
                client_id: id.escape_debug().to_string(),
                reason,
            };
            if !valid_client_id(id) {
                return Err(inline_error(
                    "not a client id (printable ASCII, no space, `/`, `#` or `,`)".to_owned(),
                ));
            }
            let key = PublicKey::from_pem(pem).map_err(|e| inline_error(e.to_string()))?;
            clients.insert(id.clone(), Arc::new(key));
        }
        if let Some(dir) = &self.clients_dir {
            for (id, path) in client_files(dir)? {
                if clients.contains_key(&id) {
                    return Err(KeyStoreError::Duplicate {
                        client_id: id,
                        path,
                    });
                }
                let client_error = |reason: String| KeyStoreError::ClientFile {
                    path: path.clone(),
                    reason,
                };
                let pem = read_key_file(&path).map_err(client_error)?;
                let key = PublicKey::from_pem(&pem).map_err(|e| client_error(e.to_string()))?;
                clients.insert(id, Arc::new(key));
            }
        }
        Ok(KeySet {
            server: Arc::new(server),
            clients,
        })
    }
}

/// The `<client id>.pem` files of `dir`, sorted by name, as (client id, path). Hidden files
/// (`.name`) are ignored; other names, and entries that are not files, are skipped with a
/// warning.
fn client_files(dir: &Path) -> Result<Vec<(String, PathBuf)>, KeyStoreError> {
    let dir_error = |error: std::io::Error| KeyStoreError::ClientsDir {
        path: dir.to_owned(),
        reason: error.to_string(),
    };
    let mut names = std::fs::read_dir(dir)
        .map_err(dir_error)?
        .map(|entry| entry.map(|entry| entry.file_name()))
        .collect::<Result<Vec<OsString>, _>>()
        .map_err(dir_error)?;
    names.sort();
    let mut files = Vec::with_capacity(names.len());
    for name in names {
        let path = dir.join(&name);
        let skip = |why: &str| {
            log::warn!(
                "secure.clients_dir: skipping {}: {why}; client keys are files named \
                 <client id>.pem",
                path.display()
            );
        };
        let Some(name) = name.to_str() else {
            skip("the name is not UTF-8");
            continue;
        };
        if name.starts_with('.') {
            continue;
        }
        let Some(id) = name.strip_suffix(".pem") else {
            skip("not a .pem file");
            continue;
        };
        if !valid_client_id(id) {
            skip("the name is not a client id (printable ASCII, no space)");
            continue;
        }
        // Follows symbolic links, as reading the file does.
        match std::fs::metadata(&path) {
            Ok(meta) if meta.is_file() => files.push((id.to_owned(), path)),
            Ok(_) => skip("not a file"),
            Err(error) => {
                return Err(KeyStoreError::ClientFile {
                    path,
                    reason: error.to_string(),
                })
            }
        }
    }
    Ok(files)
}

/// Reads and parses the server's private key; the PEM text is wiped afterwards.
fn read_private_key(path: &Path) -> Result<PrivateKey, KeyStoreError> {
    let error = |reason: String| KeyStoreError::ServerKey {
        path: path.to_owned(),
        reason,
    };
    let pem = read_key_file(path).map_err(error)?;
    let key = PrivateKey::from_pem(&pem);
    wipe(pem.into_bytes());
    key.map_err(|e| error(e.to_string()))
}

/// A key file's text: at most [`MAX_KEY_FILE_SIZE`] bytes of UTF-8. Bytes of a refused file are
/// wiped.
fn read_key_file(path: &Path) -> Result<String, String> {
    let file = std::fs::File::open(path).map_err(|e| e.to_string())?;
    let len = file.metadata().map_err(|e| e.to_string())?.len();
    if len > MAX_KEY_FILE_SIZE {
        return Err(format!(
            "{len} bytes; a key file is at most {MAX_KEY_FILE_SIZE} bytes"
        ));
    }
    // Sized up front so the buffer is not reallocated (leaving unwiped copies) while reading.
    let mut bytes = Vec::with_capacity(usize::try_from(len).unwrap_or(0) + 1);
    if let Err(error) = file.take(MAX_KEY_FILE_SIZE + 1).read_to_end(&mut bytes) {
        wipe(bytes);
        return Err(error.to_string());
    }
    if bytes.len() as u64 > MAX_KEY_FILE_SIZE {
        wipe(bytes);
        return Err(format!(
            "more than {MAX_KEY_FILE_SIZE} bytes; not a key file"
        ));
    }
    String::from_utf8(bytes).map_err(|error| {
        wipe(error.into_bytes());
        "not text (PEM)".to_owned()
    })
}

/// Overwrites a buffer that held key material before it is freed. `black_box` keeps the
/// compiler from dropping the writes to memory about to be freed.
fn wipe(mut bytes: Vec<u8>) {
    bytes.fill(0);
    std::hint::black_box(&bytes);
}

/// What the key files looked like: compared, never interpreted.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
struct Stamp {
    server: Option<FileStamp>,
    /// Every entry of the clients directory by name; `None` when there is none or it cannot be
    /// listed.
    dir: Option<BTreeMap<OsString, FileStamp>>,
}

/// A file's metadata; `Missing` when it cannot be read.
#[derive(Debug, Clone, PartialEq, Eq)]
enum FileStamp {
    Missing,
    Present {
        len: u64,
        modified: Option<SystemTime>,
        /// Device, inode, and change time (seconds, nanoseconds) on unix: a file replaced by a
        /// rename, or rewritten with its old modification time kept (`cp -p`), still shows.
        unix: (u64, u64, i64, i64),
    },
}

impl FileStamp {
    fn of(path: &Path) -> FileStamp {
        match std::fs::metadata(path) {
            Ok(meta) => FileStamp::Present {
                len: meta.len(),
                modified: meta.modified().ok(),
                unix: unix_identity(&meta),
            },
            Err(_) => FileStamp::Missing,
        }
    }
}

#[cfg(unix)]
fn unix_identity(meta: &std::fs::Metadata) -> (u64, u64, i64, i64) {
    use std::os::unix::fs::MetadataExt as _;
    (meta.dev(), meta.ino(), meta.ctime(), meta.ctime_nsec())
}

#[cfg(not(unix))]
fn unix_identity(_meta: &std::fs::Metadata) -> (u64, u64, i64, i64) {
    (0, 0, 0, 0)
}

/// A fresh RSA key pair of `bits` bits (2048 to 4096) from the operating system's random
/// generator, for `rpc-crypto keygen`. Slow: seconds for 4096 bits.
pub fn generate_key(bits: usize) -> Result<PrivateKey, KeyError> {
    PrivateKey::generate(&mut rand::rngs::OsRng, bits)
}

#[cfg(test)]
mod tests {
    use std::sync::OnceLock;

    use super::*;

    /// RSA-2048 keys, generated once per test binary (slow without optimisation).
    fn keys() -> &'static [PrivateKey; 3] {
        static KEYS: OnceLock<[PrivateKey; 3]> = OnceLock::new();
        KEYS.get_or_init(|| {
            std::array::from_fn(|_| PrivateKey::generate(&mut rand::thread_rng(), 2048).unwrap())
        })
    }

    /// A fresh directory in the temp dir, removed on drop.
    struct TempDir(PathBuf);

    impl TempDir {
        fn new(name: &str) -> Self {
            let nanos = SystemTime::now()
                .duration_since(SystemTime::UNIX_EPOCH)
                .unwrap()
                .as_nanos();
            let path = std::env::temp_dir().join(format!(
                "rpc-crypto-secure-keys-{}-{nanos}-{name}",
                std::process::id()
            ));
            std::fs::create_dir_all(path.join("clients")).unwrap();
            TempDir(path)
        }

        fn server_key(&self) -> PathBuf {
            self.0.join("server.key.pem")
        }

        fn clients(&self) -> PathBuf {
            self.0.join("clients")
        }

        fn client(&self, id: &str) -> PathBuf {
            self.clients().join(format!("{id}.pem"))
        }

        fn settings(&self) -> SecureSettings {
            SecureSettings {
                enabled: true,
                server_key_file: Some(self.server_key()),
                clients_dir: Some(self.clients()),
                ..SecureSettings::default()
            }
        }
    }

    impl Drop for TempDir {
        fn drop(&mut self) {
            let _ = std::fs::remove_dir_all(&self.0);
        }
    }

    fn write(path: &Path, text: &str) {
        std::fs::write(path, text).unwrap();
    }

    /// A directory with the server key (keys()[0]) and client `alice` (keys()[1]).
    fn setup(name: &str) -> TempDir {
        let dir = TempDir::new(name);
        write(&dir.server_key(), &keys()[0].to_pkcs8_pem());
        write(&dir.client("alice"), &keys()[1].public_key().to_pem());
        dir
    }

    #[test]
    fn secure_keys_load_reads_server_dir_and_inline_keys() {
        let dir = setup("load");
        let mut settings = dir.settings();
        settings
            .clients
            .insert("bob".to_owned(), keys()[2].public_key().to_pem());
        let store = KeyStore::load(&settings).unwrap();
        let set = store.current();
        assert_eq!(
            set.server_key().public_key(),
            keys()[0].public_key(),
            "server key"
        );
        assert_eq!(*set.client_key("alice").unwrap(), keys()[1].public_key());
        assert_eq!(*set.client_key("bob").unwrap(), keys()[2].public_key());
        assert!(set.client_key("carol").is_none());
        assert_eq!(set.client_count(), 2);
        let mut ids: Vec<&str> = set.client_ids().collect();
        ids.sort();
        assert_eq!(ids, ["alice", "bob"]);
        assert!(!store.changed_on_disk());
        assert_eq!(
            format!("{set:?}"),
            "KeySet { server_bits: 2048, clients: 2 }"
        );
    }

    #[test]
    fn secure_keys_add_change_and_remove_a_client() {
        let dir = setup("add-remove");
        let store = KeyStore::load(&dir.settings()).unwrap();
        let before = store.current();

        write(&dir.client("carol"), &keys()[2].public_key().to_pem());
        assert!(store.changed_on_disk());
        let report = store.reload().unwrap();
        assert_eq!(
            report,
            ReloadReport {
                added: 1,
                clients: 2,
                ..ReloadReport::default()
            }
        );
        assert!(!store.changed_on_disk());
        assert_eq!(
            *store.current().client_key("carol").unwrap(),
            keys()[2].public_key()
        );
        // A session that took the set before keeps it.
        assert!(before.client_key("carol").is_none());

        // alice's key replaced by a PKCS#1 one of another key.
        write(&dir.client("alice"), &pkcs1_public(&keys()[2]));
        assert!(store.changed_on_disk());
        let report = store.reload().unwrap();
        assert_eq!((report.added, report.changed, report.removed), (0, 1, 0));

        std::fs::remove_file(dir.client("carol")).unwrap();
        assert!(store.changed_on_disk());
        let report = store.reload().unwrap();
        assert_eq!((report.added, report.removed, report.clients), (0, 1, 1));
        assert!(store.current().client_key("carol").is_none());
        assert!(!report.server_key_changed);
        assert_eq!(
            report.to_string(),
            "0 client key(s) added, 1 removed, 0 replaced (1 in all); server key unchanged"
        );
    }

    fn pkcs1_public(key: &PrivateKey) -> String {
        use rsa::pkcs1::EncodeRsaPublicKey as _;
        use rsa::pkcs8::DecodePublicKey as _;
        let spki = key.public_key().to_pem();
        rsa::RsaPublicKey::from_public_key_pem(&spki)
            .unwrap()
            .to_pkcs1_pem(rsa::pkcs8::LineEnding::LF)
            .unwrap()
    }

    #[test]
    fn secure_keys_broken_file_keeps_the_previous_set_whole() {
        let dir = setup("broken");
        let store = KeyStore::load(&dir.settings()).unwrap();
        // One good new client and one broken file: neither is applied.
        write(&dir.client("carol"), &keys()[2].public_key().to_pem());
        write(
            &dir.client("dave"),
            "-----BEGIN PUBLIC KEY-----\nnot base64!\n-----END PUBLIC KEY-----\n",
        );
        assert!(store.changed_on_disk());
        let error = store.reload().unwrap_err();
        assert!(
            matches!(&error, KeyStoreError::ClientFile { path, .. } if path == &dir.client("dave")),
            "{error}"
        );
        assert!(error.to_string().contains("dave.pem"), "{error}");
        let set = store.current();
        assert!(set.client_key("carol").is_none());
        assert!(set.client_key("alice").is_some());
        // Reported once: nothing changed since the failed attempt.
        assert!(!store.changed_on_disk());

        // A private key where a public one belongs is refused too, without quoting it.
        let private = keys()[2].to_pkcs8_pem();
        write(&dir.client("dave"), &private);
        assert!(store.changed_on_disk());
        let error = store.reload().unwrap_err().to_string();
        let body: String = private.lines().nth(1).unwrap().to_owned();
        assert!(!error.contains(&body), "{error}");
        assert!(store.current().client_key("dave").is_none());

        // Fixed: both apply.
        std::fs::remove_file(dir.client("dave")).unwrap();
        let report = store.reload().unwrap();
        assert_eq!((report.added, report.clients), (1, 2));
    }

    #[test]
    fn secure_keys_server_key_replaced_and_broken() {
        let dir = setup("server");
        let store = KeyStore::load(&dir.settings()).unwrap();

        // Same key, PKCS#1 this time: reloaded, nothing changed.
        use rsa::pkcs1::EncodeRsaPrivateKey as _;
        use rsa::pkcs8::DecodePrivateKey as _;
        let pkcs1 = rsa::RsaPrivateKey::from_pkcs8_pem(&keys()[0].to_pkcs8_pem())
            .unwrap()
            .to_pkcs1_pem(rsa::pkcs8::LineEnding::LF)
            .unwrap();
        write(&dir.server_key(), &pkcs1);
        assert!(store.changed_on_disk());
        assert!(store.reload().unwrap().is_unchanged());

        write(&dir.server_key(), &keys()[2].to_pkcs8_pem());
        assert!(store.changed_on_disk());
        let report = store.reload().unwrap();
        assert!(report.server_key_changed);
        assert_eq!(
            store.current().server_key().public_key(),
            keys()[2].public_key()
        );

        std::fs::remove_file(dir.server_key()).unwrap();
        assert!(store.changed_on_disk());
        let error = store.reload().unwrap_err();
        assert!(
            matches!(error, KeyStoreError::ServerKey { .. }),
            "{error:?}"
        );
        assert_eq!(
            store.current().server_key().public_key(),
            keys()[2].public_key()
        );
    }

    #[test]
    fn secure_keys_other_files_are_skipped_not_errors() {
        let dir = setup("skip");
        write(&dir.clients().join("README.txt"), "client keys here");
        write(&dir.clients().join("bad id.pem"), "not a key");
        write(&dir.clients().join(".hidden.pem"), "not a key");
        write(&dir.clients().join("alice.pem~"), "an editor's backup");
        std::fs::create_dir(dir.clients().join("sub.pem")).unwrap();
        let store = KeyStore::load(&dir.settings()).unwrap();
        let mut ids: Vec<&str> = Vec::new();
        let set = store.current();
        ids.extend(set.client_ids());
        assert_eq!(ids, ["alice"]);
    }

    #[test]
    fn secure_keys_load_errors_name_the_setting_and_file() {
        let dir = setup("errors");
        let mut settings = dir.settings();

        settings.server_key_file = None;
        assert_eq!(
            KeyStore::load(&settings).unwrap_err(),
            KeyStoreError::NoServerKeyFile
        );

        settings.server_key_file = Some(dir.0.join("missing.pem"));
        let error = KeyStore::load(&settings).unwrap_err().to_string();
        assert!(
            error.starts_with("secure.server_key_file ") && error.contains("missing.pem"),
            "{error}"
        );

        // A public key as the server key.
        settings.server_key_file = Some(dir.client("alice"));
        assert!(matches!(
            KeyStore::load(&settings),
            Err(KeyStoreError::ServerKey { .. })
        ));

        let mut settings = dir.settings();
        settings.clients_dir = Some(dir.0.join("nowhere"));
        assert!(matches!(
            KeyStore::load(&settings),
            Err(KeyStoreError::ClientsDir { .. })
        ));

        let mut settings = dir.settings();
        settings
            .clients
            .insert("alice".to_owned(), keys()[2].public_key().to_pem());
        assert!(matches!(
            KeyStore::load(&settings),
            Err(KeyStoreError::Duplicate { client_id, .. }) if client_id == "alice"
        ));

        let mut settings = dir.settings();
        settings
            .clients
            .insert("bob".to_owned(), "garbage".to_owned());
        assert_eq!(
            KeyStore::load(&settings).unwrap_err().to_string(),
            "secure.clients.bob: not a PEM RSA key: no PEM block"
        );

        let mut settings = dir.settings();
        settings
            .clients
            .insert("b\no/b".to_owned(), keys()[2].public_key().to_pem());
        let error = KeyStore::load(&settings).unwrap_err().to_string();
        assert!(error.starts_with("secure.clients.b\\no/b: "), "{error}");

        write(
            &dir.server_key(),
            &"x".repeat(MAX_KEY_FILE_SIZE as usize + 1),
        );
        let error = KeyStore::load(&dir.settings()).unwrap_err().to_string();
        assert!(error.contains("at most"), "{error}");
    }

    #[test]
    fn secure_keys_fixed_store_and_debug() {
        let store = KeyStore::fixed(KeySet::new(
            keys()[0].clone(),
            [("alice".to_owned(), keys()[1].public_key())],
        ));
        assert!(!store.changed_on_disk());
        assert!(store.reload().unwrap().is_unchanged());
        assert!(store.current().client_key("alice").is_some());
        let clone = store.clone();
        assert!(Arc::ptr_eq(&clone.current(), &store.current()));
        assert_eq!(
            format!("{store:?}"),
            "KeyStore { current: KeySet { server_bits: 2048, clients: 1 } }"
        );
    }

    #[test]
    fn secure_keys_settings_debug_shows_client_ids_not_keys() {
        let mut settings = SecureSettings::default();
        settings
            .clients
            .insert("alice".to_owned(), keys()[1].public_key().to_pem());
        let debug = format!("{settings:?}");
        assert!(debug.contains("clients: [\"alice\"]"), "{debug}");
        assert!(!debug.contains("BEGIN"), "{debug}");
    }

    /// The periodic reloader picks up a new client.
    #[actix::test]
    async fn secure_keys_reloader_reloads_on_change() {
        let dir = setup("reloader");
        let store = KeyStore::load(&dir.settings()).unwrap();
        spawn_reloader(store.clone(), Duration::from_millis(20));
        write(&dir.client("carol"), &keys()[2].public_key().to_pem());
        let found = wait_until(|| store.current().client_key("carol").is_some()).await;
        assert!(found, "the reloader did not pick up carol.pem");
    }

    /// With no interval only SIGHUP reloads.
    #[cfg(unix)]
    #[actix::test]
    async fn secure_keys_reloader_reloads_on_sighup() {
        let dir = setup("sighup");
        let store = KeyStore::load(&dir.settings()).unwrap();
        // Installs the SIGHUP handler before it returns: the signal below cannot end the tests.
        spawn_reloader(store.clone(), Duration::ZERO);
        write(&dir.client("dave"), &keys()[2].public_key().to_pem());
        tokio::time::sleep(Duration::from_millis(100)).await;
        assert!(
            store.current().client_key("dave").is_none(),
            "no periodic reload"
        );
        let status = std::process::Command::new("kill")
            .args(["-HUP", &std::process::id().to_string()])
            .status()
            .unwrap();
        assert!(status.success());
        let found = wait_until(|| store.current().client_key("dave").is_some()).await;
        assert!(found, "SIGHUP did not reload");
    }

    async fn wait_until(mut done: impl FnMut() -> bool) -> bool {
        for _ in 0..250 {
            if done() {
                return true;
            }
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
        false
    }

    #[test]
    fn secure_keys_generate_key_checks_the_size() {
        assert!(matches!(generate_key(1024), Err(KeyError::Size(1024))));
    }
}
