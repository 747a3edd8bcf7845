use super::temps::{is_temp_of, temp_name};
use super::*;
use nix::errno::Errno;
use nix::fcntl::{Flock, FlockArg};
use nix::sys::stat::Mode;
use std::ffi::OsStr;
use std::fs;
use std::os::unix::fs::PermissionsExt;
use std::os::unix::fs::symlink;

fn names(dir: &Path) -> Vec<String> {
    let mut v: Vec<_> = fs::read_dir(dir)
        .unwrap()
        .map(|e| e.unwrap().file_name().into_string().unwrap())
        .collect();
    v.sort();
    v
}

#[test]
fn owners_parse() {
    assert_eq!(
        "65532".parse::<Owner>().unwrap(),
        Owner {
            uid: 65532,
            gid: None
        }
    );
    assert_eq!(
        "1:2".parse::<Owner>().unwrap(),
        Owner {
            uid: 1,
            gid: Some(2)
        }
    );
    for bad in ["", "x", "1:", ":1", "1:2:3", "-1"] {
        assert!(bad.parse::<Owner>().is_err(), "{bad}");
    }
}

#[test]
fn writes_with_mode_and_replaces() {
    let dir = tempfile::tempdir().unwrap();
    let p = dir.path().join("key.pem");
    write_atomic(&p, b"one", 0o600).unwrap();
    assert_eq!(fs::read(&p).unwrap(), b"one");
    assert_eq!(
        fs::metadata(&p).unwrap().permissions().mode() & 0o777,
        0o600
    );
    write_atomic(&p, b"two", 0o644).unwrap();
    assert_eq!(fs::read(&p).unwrap(), b"two");
    assert_eq!(
        fs::metadata(&p).unwrap().permissions().mode() & 0o777,
        0o644
    );
    // No temporary files are left behind.
    assert_eq!(names(dir.path()), ["key.pem"]);
}

#[test]
fn missing_directory_is_an_error_naming_the_file() {
    let err = write_atomic(Path::new("/nonexistent/dir/x"), b"", 0o644).unwrap_err();
    assert!(err.to_string().contains("/nonexistent/dir/x"), "{err}");
}

#[test]
fn a_link_at_the_target_is_replaced_not_written_through() {
    let dir = tempfile::tempdir().unwrap();
    let victim = dir.path().join("victim");
    fs::write(&victim, "victim").unwrap();
    symlink(&victim, dir.path().join("key.pem")).unwrap();
    let d = Dir::open(dir.path()).unwrap();
    d.write_atomic("key.pem", b"new", 0o600, None).unwrap();
    assert_eq!(fs::read(&victim).unwrap(), b"victim");
    let meta = fs::symlink_metadata(dir.path().join("key.pem")).unwrap();
    assert!(meta.file_type().is_file());
    assert_eq!(fs::read(dir.path().join("key.pem")).unwrap(), b"new");
}

#[test]
fn temporary_files_are_created_exclusively_and_never_through_links() {
    let dir = tempfile::tempdir().unwrap();
    let victim = dir.path().join("victim");
    fs::write(&victim, "victim").unwrap();
    let d = Dir::open(dir.path()).unwrap();
    let name = temp_name(OsStr::new("key.pem"), 7);
    symlink(&victim, dir.path().join(&name)).unwrap();
    assert_eq!(d.create_exclusive(&name, 0o600).unwrap_err(), Errno::EEXIST);
    fs::remove_file(dir.path().join(&name)).unwrap();
    symlink(dir.path().join("dangling"), dir.path().join(&name)).unwrap();
    assert_eq!(d.create_exclusive(&name, 0o600).unwrap_err(), Errno::EEXIST);
    assert!(!dir.path().join("dangling").exists());
    assert_eq!(fs::read(&victim).unwrap(), b"victim");
    // Names are random: two in a row differ.
    let (_, a) = d.create_temp(OsStr::new("x"), 0o600).unwrap();
    let (_, b) = d.create_temp(OsStr::new("x"), 0o600).unwrap();
    assert_ne!(a, b);
    assert!(is_temp_of(&a, OsStr::new("x")), "{a:?}");
}

#[test]
fn links_fifos_and_directories_are_refused_by_name() {
    let dir = tempfile::tempdir().unwrap();
    let victim = dir.path().join("victim");
    fs::write(&victim, "victim").unwrap();
    symlink(&victim, dir.path().join("link")).unwrap();
    nix::unistd::mkfifo(&dir.path().join("fifo"), Mode::from_bits_truncate(0o600)).unwrap();
    fs::create_dir(dir.path().join("sub")).unwrap();
    let d = Dir::open(dir.path()).unwrap();
    let err = d.read("link").unwrap_err();
    assert!(matches!(err, Error::Symlink { .. }), "{err}");
    assert!(
        err.to_string()
            .starts_with(&format!("{}/link is a symbolic link", dir.path().display())),
        "{err}"
    );
    assert!(matches!(
        d.read("fifo").unwrap_err(),
        Error::NotRegular { .. }
    ));
    assert!(matches!(
        d.read("sub").unwrap_err(),
        Error::NotRegular { .. }
    ));
    assert!(d.read("missing").unwrap().is_none());
    assert!(matches!(
        d.ensure_content("link", b"x", 0o644).unwrap_err(),
        Error::Symlink { .. }
    ));
    assert_eq!(fs::read(&victim).unwrap(), b"victim");

    // A directory that is a link is refused too; so is a file where one is wanted.
    symlink(dir.path().join("sub"), dir.path().join("sublink")).unwrap();
    let err = Dir::open(&dir.path().join("sublink")).unwrap_err();
    assert!(matches!(err, Error::Symlink { .. }), "{err}");
    let err = Dir::create(&dir.path().join("sublink"), 0o755).unwrap_err();
    assert!(matches!(err, Error::Symlink { .. }), "{err}");
    let err = Dir::open(&victim).unwrap_err();
    assert!(matches!(err, Error::NotDirectory { .. }), "{err}");
    // A trailing slash doesn't make a link followed.
    let err = Dir::open(Path::new(&format!("{}/sublink/", dir.path().display()))).unwrap_err();
    assert!(matches!(err, Error::Symlink { .. }), "{err}");
}

#[test]
fn modes_change_on_the_descriptor_and_never_across_hard_links() {
    let dir = tempfile::tempdir().unwrap();
    let d = Dir::open(dir.path()).unwrap();
    d.write_atomic("f", b"x", 0o640, None).unwrap();
    let (file, _) = d.read("f").unwrap().unwrap();
    assert!(d.fix("f", &file, 0o600, None).unwrap());
    assert!(!d.fix("f", &file, 0o600, None).unwrap());
    fs::hard_link(dir.path().join("f"), dir.path().join("g")).unwrap();
    let err = d.fix("f", &file, 0o644, None).unwrap_err();
    assert!(matches!(err, Error::HardLinked { links: 2, .. }), "{err}");
    assert_eq!(
        fs::metadata(dir.path().join("g"))
            .unwrap()
            .permissions()
            .mode()
            & 0o777,
        0o600
    );
    // Nothing to change: fine even with other links.
    assert!(!d.fix("f", &file, 0o600, None).unwrap());
}

#[test]
fn stale_temporary_files_are_recognised_and_removed() {
    let t = OsStr::new("key.pem");
    for (name, want) in [
        (".key.pem.tmp.0123456789abcdef", true),
        (".key.pem.tmp.4242", true),
        (".key.pem.tmp.", false),
        (".key.pem.tmp.0123456789abcdef0", false),
        (".key.pem.tmp.xyz", false),
        ("key.pem.tmp.1", false),
        (".cert.pem.tmp.1", false),
        ("key.pem", false),
    ] {
        assert_eq!(is_temp_of(OsStr::new(name), t), want, "{name}");
    }
    let dir = tempfile::tempdir().unwrap();
    let d = Dir::open(dir.path()).unwrap();
    fs::write(dir.path().join(".key.pem.tmp.1f"), "").unwrap();
    fs::write(dir.path().join(".other.tmp.1f"), "").unwrap();
    symlink("/etc/passwd", dir.path().join(".key.pem.tmp.2f")).unwrap();
    fs::write(dir.path().join("key.pem"), "k").unwrap();
    let mut removed = d.remove_stale_temps(&[t]).unwrap();
    removed.sort();
    assert_eq!(removed, [".key.pem.tmp.1f", ".key.pem.tmp.2f"]);
    assert_eq!(names(dir.path()), [".other.tmp.1f", "key.pem"]);
    assert!(Path::new("/etc/passwd").exists());
    // A second listing sees the directory afresh.
    assert!(d.remove_stale_temps(&[t]).unwrap().is_empty());
}

#[test]
fn the_lock_is_exclusive_between_descriptions() {
    let dir = tempfile::tempdir().unwrap();
    let a = Dir::open(dir.path()).unwrap();
    let b = Dir::open(dir.path()).unwrap();
    let held = a.lock().unwrap();
    let probe = b.file.try_clone().unwrap();
    assert!(Flock::lock(probe, FlockArg::LockExclusiveNonblock).is_err());
    drop(held);
    let probe = b.file.try_clone().unwrap();
    assert!(Flock::lock(probe, FlockArg::LockExclusiveNonblock).is_ok());
}
