//! The credential cache: its file layout (upstream's), its privacy checks and its writes.

use std::sync::Arc;
use std::sync::atomic::{AtomicU32, Ordering};
use std::time::Duration;

use super::*;

fn key(role: &str) -> CacheKey {
    CacheKey {
        cluster_id: "test-cluster".into(),
        profile: "default".into(),
        role_arn: role.into(),
    }
}

fn t(secs: u64) -> SystemTime {
    SystemTime::UNIX_EPOCH + Duration::from_secs(secs)
}

#[test]
fn path_selection() {
    assert_eq!(
        cache_path(Some("/x/c.yaml"), Some(Path::new("/home/u"))),
        Some(PathBuf::from("/x/c.yaml"))
    );
    assert_eq!(
        cache_path(Some(""), Some(Path::new("/home/u"))),
        Some(PathBuf::from(
            "/home/u/.kube/cache/aws-iam-authenticator/credentials.yaml"
        ))
    );
    assert_eq!(cache_path(None, None), None);
}

#[test]
fn reads_upstreams_layout() {
    // As yaml.v2 writes it (unquoted timestamps, `""` for "no role").
    let text = include_str!("testdata/credentials-yaml-v2.yaml");
    let cache = CacheFile::parse(Path::new("c.yaml"), text).unwrap();
    let entry = cache.get(&key("")).unwrap();
    assert_eq!(entry.accesskeyid, "ASIAEXAMPLE");
    let creds = entry.usable_at(t(1_682_640_000)).unwrap();
    assert_eq!(creds.session_token(), Some("token"));
    assert_eq!(
        creds.expiry(),
        Some(t(1_682_643_600) + Duration::from_nanos(123_456_789))
    );
    // Expired an instant later.
    assert!(entry.usable_at(t(1_682_643_601)).is_none());

    let role = cache
        .get(&key("arn:aws:iam::123456789012:role/admin"))
        .unwrap();
    // 02:00+02:00 is 00:00Z: expired at 00:00:01Z.
    assert!(role.usable_at(t(1_682_640_001)).is_none());
    let creds = role.usable_at(t(1_682_639_999)).unwrap();
    assert_eq!(creds.session_token(), None);
    assert_eq!(creds.account_id().map(|a| a.as_str()), Some("123456789012"));
}

#[test]
fn round_trips_through_yaml() {
    let mut cache = CacheFile::default();
    let creds = Credentials::new(
        "AKID",
        "SECRET",
        Some("TOK".into()),
        Some(t(1_700_000_000)),
        "t",
    );
    cache.put(&key(""), CachedCredential::from_credentials(&creds));
    cache.put(
        &key("arn:aws:iam::1:role/x"),
        CachedCredential::from_credentials(&creds),
    );
    let text = unquote_timestamps(&serde_saphyr::to_string(&cache).unwrap());
    assert!(text.starts_with("clusters:\n"), "{text}");
    assert!(
        text.contains("\n        expires: 2023-11-14T22:13:20Z\n"),
        "{text}"
    );
    let back = CacheFile::parse(Path::new("c"), &text).unwrap();
    let entry = back.get(&key("")).unwrap();
    assert!(entry.canexpire);
    assert_eq!(entry.expiry(), Some(t(1_700_000_000)));
    assert_eq!(back.get(&key("arn:aws:iam::1:role/x")), Some(entry));
}

#[test]
fn entries_without_keys_or_with_bad_dates_are_unusable() {
    let mut c = CachedCredential::from_credentials(&Credentials::new(
        "A",
        "S",
        None,
        Some(t(2_000_000_000)),
        "t",
    ));
    assert!(c.usable_at(t(0)).is_some());
    c.expires = "yesterday".into();
    assert!(c.usable_at(t(0)).is_none());
    let empty = CachedCredential::default();
    assert!(empty.usable_at(t(0)).is_none());
}

/// An inner provider that hands out fresh credentials and counts its calls.
#[derive(Debug)]
struct Counting {
    calls: Arc<AtomicU32>,
    expiry: Option<SystemTime>,
}

impl ProvideCredentials for Counting {
    fn provide_credentials<'a>(&'a self) -> provider::future::ProvideCredentials<'a>
    where
        Self: 'a,
    {
        self.calls.fetch_add(1, Ordering::SeqCst);
        provider::future::ProvideCredentials::ready(Ok(Credentials::new(
            "ASIAFRESH",
            "fresh-secret",
            Some("fresh-token".into()),
            self.expiry,
            "counting",
        )))
    }
}

/// The inner providers' calls, shared by every cache built over them.
#[derive(Default)]
struct Calls(Arc<AtomicU32>);

impl Calls {
    /// A cache at `path` for `role` over a [`Counting`] inner whose credentials expire
    /// at `expiry` (None: static ones).
    async fn cache(
        &self,
        path: &Path,
        role: &str,
        expiry: Option<SystemTime>,
    ) -> Result<FileCacheProvider, Error> {
        let inner = Counting {
            calls: Arc::clone(&self.0),
            expiry,
        };
        FileCacheProvider::new(path.to_owned(), key(role), inner).await
    }

    fn count(&self) -> u32 {
        self.0.load(Ordering::SeqCst)
    }
}

fn in_an_hour() -> Option<SystemTime> {
    Some(SystemTime::now() + Duration::from_secs(3600))
}

#[tokio::test]
async fn caches_expiring_credentials_and_reuses_them() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("sub/dir/credentials.yaml");
    let calls = Calls::default();

    let p = calls.cache(&path, "", in_an_hour()).await.unwrap();
    let first = p.provide_credentials().await.unwrap();
    assert_eq!(first.access_key_id(), "ASIAFRESH");
    assert_eq!(calls.count(), 1);
    let meta = fs::metadata(&path).unwrap();
    assert_eq!(meta.permissions().mode() & 0o777, 0o600);
    let dir_mode = fs::metadata(path.parent().unwrap())
        .unwrap()
        .permissions()
        .mode();
    assert_eq!(dir_mode & 0o777, 0o700);

    let p = calls.cache(&path, "", in_an_hour()).await.unwrap();
    let second = p.provide_credentials().await.unwrap();
    assert_eq!(second.session_token(), Some("fresh-token"));
    assert_eq!(calls.count(), 1);

    // Another role is another entry; the first survives the rewrite.
    let p = calls
        .cache(&path, "arn:aws:iam::1:role/r", in_an_hour())
        .await
        .unwrap();
    p.provide_credentials().await.unwrap();
    assert_eq!(calls.count(), 2);
    let text = fs::read_to_string(&path).unwrap();
    let cache = CacheFile::parse(&path, &text).unwrap();
    assert!(cache.get(&key("")).is_some());
    assert!(cache.get(&key("arn:aws:iam::1:role/r")).is_some());
}

#[tokio::test]
async fn static_credentials_are_not_written() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("credentials.yaml");
    let p = Calls::default().cache(&path, "", None).await.unwrap();
    p.provide_credentials().await.unwrap();
    assert!(!path.exists());
}

#[tokio::test]
async fn refuses_a_file_others_can_read() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("credentials.yaml");
    fs::write(&path, "clusters: {}\n").unwrap();
    fs::set_permissions(&path, fs::Permissions::from_mode(0o640)).unwrap();
    let err = Calls::default().cache(&path, "", None).await.unwrap_err();
    assert_eq!(
        err.to_string(),
        format!("cache file {} is not private", path.display())
    );
}

#[tokio::test]
async fn a_garbled_file_is_not_used() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("credentials.yaml");
    fs::write(&path, "clusters: [1, 2\n").unwrap();
    fs::set_permissions(&path, fs::Permissions::from_mode(0o600)).unwrap();
    let err = Calls::default().cache(&path, "", None).await.unwrap_err();
    assert!(matches!(err, Error::Parse { .. }), "{err}");
}

#[tokio::test]
async fn a_write_removes_temporaries_killed_writers_left_but_not_live_ones() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("credentials.yaml");
    let abandoned = dir.path().join(".credentials.yaml.tmp.00000000000000ab");
    let live = dir.path().join(".credentials.yaml.tmp.00000000000000cd");
    let unrelated = dir.path().join(".other.yaml.tmp.00000000000000ef");
    for p in [&abandoned, &live, &unrelated] {
        fs::write(p, "partial").unwrap();
    }
    let an_hour_ago = SystemTime::now() - Duration::from_secs(3600);
    for p in [&abandoned, &unrelated] {
        fs::File::options()
            .write(true)
            .open(p)
            .unwrap()
            .set_modified(an_hour_ago)
            .unwrap();
    }
    let p = Calls::default()
        .cache(&path, "", in_an_hour())
        .await
        .unwrap();
    p.provide_credentials().await.unwrap();
    assert!(path.exists());
    assert!(!abandoned.exists(), "an hour-old temporary is removed");
    assert!(live.exists(), "a fresh one may be a live writer's");
    assert!(unrelated.exists(), "only the cache's own temporaries");
}
