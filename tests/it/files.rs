//! Files that never end or never begin: every file lookout reads (the
//! config, secret files, CA files, the listener's certificate, key and
//! client CA, a previous report) must be a regular file of bounded size.
//! `/dev/zero` used to abort the process (allocation failure) and a FIFO or
//! `/dev/urandom` to hang it; now each is refused at once, naming the file.
//! Every case runs the real binary under a deadline, so a regression fails
//! instead of hanging or taking the test process down.

use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};
use std::time::{Duration, Instant};

const DEADLINE: Duration = Duration::from_secs(20);

/// `lookout ARGS` in `dir`, killed if it has not finished by [`DEADLINE`].
fn lookout(dir: &Path, args: &[&str]) -> Output {
    let mut child = Command::new(env!("CARGO_BIN_EXE_lookout"))
        .args(args)
        .current_dir(dir)
        .env("LOOKOUT_LOG", "warn")
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("lookout starts");
    let start = Instant::now();
    while child.try_wait().expect("wait for lookout").is_none() {
        if start.elapsed() > DEADLINE {
            let _ = child.kill();
            let _ = child.wait();
            panic!("lookout {args:?} did not finish within {DEADLINE:?}");
        }
        std::thread::sleep(Duration::from_millis(20));
    }
    child.wait_with_output().expect("lookout's output")
}

/// A FIFO nobody writes to, in `dir`.
pub fn fifo(dir: &Path, name: &str) -> PathBuf {
    let path = dir.join(name);
    let status = Command::new("mkfifo")
        .arg(&path)
        .status()
        .expect("mkfifo runs");
    assert!(status.success(), "mkfifo {}", path.display());
    path
}

/// A regular file of `len` bytes that takes no space (sparse).
fn sparse(dir: &Path, name: &str, len: u64) -> PathBuf {
    let path = dir.join(name);
    std::fs::File::create(&path)
        .and_then(|f| f.set_len(len))
        .expect("a sparse file");
    path
}

/// Runs `check-config` on `toml` (written to `lookout.toml` in `dir`) and
/// expects exit 2 with exactly `want` (after the path of the config) on
/// stderr.
fn refused(dir: &Path, toml: &str, want: &str) {
    let config = dir.join("lookout.toml");
    std::fs::write(&config, toml).expect("write the config");
    let out = lookout(dir, &["check-config", "lookout.toml"]);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(2), "{toml}\nstderr: {stderr}");
    assert_eq!(stderr.trim_end(), format!("lookout.toml:{want}"), "{toml}");
}

const NOT_REGULAR_DEV: &str = "not a regular file (it is a character device)";
const NOT_REGULAR_FIFO: &str = "not a regular file (it is a FIFO)";

#[test]
fn a_config_file_that_never_ends_or_never_begins_is_refused() {
    let dir = tempfile::tempdir().unwrap();
    let fifo = fifo(dir.path(), "lookout.toml");
    let big = sparse(dir.path(), "big.toml", 64 * 1024 * 1024 + 1);
    let cases: &[(&[&str], &Path, &str)] = &[
        (&["check-config"], Path::new("/dev/zero"), NOT_REGULAR_DEV),
        (&["check-config"], &fifo, NOT_REGULAR_FIFO),
        (&["run", "--config"], &fifo, NOT_REGULAR_FIFO),
        (&["report", "--config"], &fifo, NOT_REGULAR_FIFO),
        (
            &["check-config"],
            &big,
            "larger than 64 MiB, the limit for a config file",
        ),
    ];
    for (command, path, why) in cases {
        let path = path.to_str().unwrap();
        let mut args = command.to_vec();
        args.push(path);
        let out = lookout(dir.path(), &args);
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert_eq!(out.status.code(), Some(2), "{args:?}: {stderr}");
        let want = format!("{path}: cannot read the config file: {why}");
        assert!(stderr.trim_end().ends_with(&want), "{args:?}: {stderr}");
    }
}

#[test]
fn secret_files_must_be_regular_and_at_most_16_kib() {
    let dir = tempfile::tempdir().unwrap();
    let fifo = fifo(dir.path(), "key.fifo");
    let fifo = fifo.to_str().unwrap();
    let secret = |path: &str| format!("[secrets]\nk = {{ file = \"{path}\" }}\n");
    for (path, why) in [
        ("/dev/zero", NOT_REGULAR_DEV),
        ("/dev/urandom", NOT_REGULAR_DEV),
        (fifo, NOT_REGULAR_FIFO),
    ] {
        refused(
            dir.path(),
            &secret(path),
            &format!("2:5: secrets.k: cannot read secret file {path}: {why}"),
        );
    }
    // The limit itself is fine; one byte more is not.
    let key: String = (0..16 * 1024)
        .map(|i| char::from(b'a' + (i * 7 % 26) as u8))
        .collect();
    std::fs::write(dir.path().join("max"), &key).unwrap();
    std::fs::write(dir.path().join("over"), key + "x").unwrap();
    std::fs::write(dir.path().join("lookout.toml"), secret("max")).unwrap();
    let out = lookout(dir.path(), &["check-config", "lookout.toml"]);
    assert_eq!(
        out.status.code(),
        Some(0),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    refused(
        dir.path(),
        &secret("over"),
        "2:5: secrets.k: cannot read secret file over: larger than 16 KiB, the limit for a secret file",
    );
}

#[test]
fn ca_files_must_be_regular_and_at_most_1_mib() {
    let dir = tempfile::tempdir().unwrap();
    let fifo = fifo(dir.path(), "ca.fifo");
    let big = sparse(dir.path(), "big.pem", 1024 * 1024 + 1);
    for (path, why) in [
        ("/dev/zero", NOT_REGULAR_DEV),
        (fifo.to_str().unwrap(), NOT_REGULAR_FIFO),
        (
            big.to_str().unwrap(),
            "larger than 1 MiB, the limit for a PEM file",
        ),
    ] {
        refused(
            dir.path(),
            &format!(
                "[[checks]]\nname = \"a\"\nurl = \"https://127.0.0.1:1/\"\ntls = {{ ca_file = \"{path}\" }}\n"
            ),
            &format!("4:7: checks[0].tls.ca_file: cannot read {path}: {why}"),
        );
        refused(
            dir.path(),
            &format!(
                "[defaults]\ntls = {{ ca_file = \"{path}\" }}\n[[flows]]\nname = \"f\"\nsteps = [{{ name = \"s\", url = \"https://127.0.0.1:1/\" }}]\n"
            ),
            &format!("2:7: defaults.tls.ca_file: cannot read {path}: {why}"),
        );
    }
}

#[test]
fn the_listeners_certificate_key_and_client_ca_must_be_regular_files() {
    let dir = tempfile::tempdir().unwrap();
    let fifo = fifo(dir.path(), "tls.fifo");
    let fifo = fifo.to_str().unwrap();
    let key = rcgen::KeyPair::generate().unwrap();
    let cert = rcgen::CertificateParams::new(vec!["localhost".to_owned()])
        .unwrap()
        .self_signed(&key)
        .unwrap();
    std::fs::write(dir.path().join("cert.pem"), cert.pem()).unwrap();
    std::fs::write(dir.path().join("key.pem"), key.serialize_pem()).unwrap();
    let server = |cert: &str, key: &str, ca: &str| {
        format!(
            "[server]\ntls_server_config = {{ cert_file = \"{cert}\", key_file = \"{key}\"{ca} }}\n"
        )
    };
    for (path, why) in [("/dev/zero", NOT_REGULAR_DEV), (fifo, NOT_REGULAR_FIFO)] {
        refused(
            dir.path(),
            &server(path, "key.pem", ""),
            &format!("2:21: server.tls_server_config.cert_file: cannot read {path}: {why}"),
        );
        refused(
            dir.path(),
            &server("cert.pem", path, ""),
            &format!("2:21: server.tls_server_config.key_file: cannot read {path}: {why}"),
        );
        refused(
            dir.path(),
            &server(
                "cert.pem",
                "key.pem",
                &format!(", client_ca_file = \"{path}\""),
            ),
            &format!("2:21: server.tls_server_config.client_ca_file: cannot read {path}: {why}"),
        );
    }
    // The same files as regular files are accepted.
    std::fs::write(
        dir.path().join("lookout.toml"),
        server("cert.pem", "key.pem", ""),
    )
    .unwrap();
    let out = lookout(dir.path(), &["check-config", "lookout.toml"]);
    assert_eq!(
        out.status.code(),
        Some(0),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
}

#[test]
fn a_previous_report_must_be_a_regular_file_of_at_most_64_mib() {
    let dir = tempfile::tempdir().unwrap();
    let fifo = fifo(dir.path(), "previous.json");
    let big = sparse(dir.path(), "big.json", 64 * 1024 * 1024 + 1);
    std::fs::write(dir.path().join("lookout.toml"), "").unwrap();
    for (path, why) in [
        (Path::new("/dev/zero"), NOT_REGULAR_DEV),
        (&fifo, NOT_REGULAR_FIFO),
        (&big, "larger than 64 MiB, the limit for a report"),
    ] {
        let path = path.to_str().unwrap();
        let out = lookout(
            dir.path(),
            &["report", "--config", "lookout.toml", "--against", path],
        );
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert_eq!(out.status.code(), Some(2), "{path}: {stderr}");
        assert_eq!(
            stderr.trim_end(),
            format!("{path}: cannot read the previous report: {why}")
        );
        assert!(out.stdout.is_empty(), "no report is printed");
    }
}
