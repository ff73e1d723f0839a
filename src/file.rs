//! Reading a file a user pointed lookout at: a regular file, of bounded size.
//!
//! Every path lookout reads comes from a user: the config, secret files, CA
//! files, the listener's certificate and key, a previous report. Such a path
//! can name something that never ends (`/dev/zero`, `/dev/urandom`: reading
//! it whole exhausts memory) or never begins (a FIFO nobody writes to: a
//! plain `open` waits for a writer, for ever). So a file is opened without
//! blocking (`O_NONBLOCK`: opening a FIFO returns at once), its type is read
//! from the opened handle (`fstat`, so nothing can be swapped in between a
//! check and the open), anything but a regular file (or a symlink to one) is
//! refused, and at most one byte more than the limit is read, so a file that
//! grows while it is read, or one whose size `fstat` does not know (`/proc`),
//! is refused as well. `O_NONBLOCK` changes nothing for a regular file.
//!
//! Imports nothing of the crate: a leaf every reader can use.

use std::fmt;
use std::fs::{File, FileType, OpenOptions};
use std::io::{self, Read};
use std::path::Path;

/// What a file is for, which sets how much of it lookout reads.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Kind {
    /// The config file: 64 MiB (a flat check is some 150 bytes).
    Config,
    /// A secret file (`[secrets] name = { file = "…" }`): 16 KiB, twice
    /// what most servers take for all request headers together (8 KiB), so
    /// no credential that can be sent is refused, and a file of something
    /// else is (the redactor indexes every 8-character run of a secret).
    Secret,
    /// A PEM file: a CA bundle, a certificate chain or a private key: 1 MiB
    /// (the Mozilla root bundle is about 220 KiB).
    Pem,
    /// A previous report (`lookout report --against`): 64 MiB.
    Report,
}

const KIB: u64 = 1024;
const MIB: u64 = 1024 * KIB;

impl Kind {
    /// The most bytes read from a file of this kind.
    pub const fn limit(self) -> u64 {
        match self {
            Kind::Config | Kind::Report => 64 * MIB,
            Kind::Secret => 16 * KIB,
            Kind::Pem => MIB,
        }
    }

    fn noun(self) -> &'static str {
        match self {
            Kind::Config => "a config file",
            Kind::Secret => "a secret file",
            Kind::Pem => "a PEM file",
            Kind::Report => "a report",
        }
    }
}

/// Why a file was not read. The message does not name the file: the caller
/// does, with what the file was for.
#[derive(Debug, thiserror::Error)]
pub enum ReadError {
    #[error("{0}")]
    Open(#[source] io::Error),
    #[error("not a regular file (it is {0})")]
    NotRegular(&'static str),
    #[error("larger than {}, the limit for {}", Size(.0.limit()), .0.noun())]
    TooLarge(Kind),
    #[error("{0}")]
    Read(#[source] io::Error),
    #[error("not UTF-8 text")]
    NotUtf8,
}

/// Reads the regular file at `path`, at most `kind.limit()` bytes.
pub fn read(path: &Path, kind: Kind) -> Result<Vec<u8>, ReadError> {
    read_limited(path, kind.limit()).map_err(|e| match e {
        Limited::Over => ReadError::TooLarge(kind),
        Limited::Failed(e) => e,
    })
}

/// Like [`read`], for text.
pub fn read_to_string(path: &Path, kind: Kind) -> Result<String, ReadError> {
    String::from_utf8(read(path, kind)?).map_err(|_| ReadError::NotUtf8)
}

enum Limited {
    Over,
    Failed(ReadError),
}

fn read_limited(path: &Path, limit: u64) -> Result<Vec<u8>, Limited> {
    let file = open(path).map_err(|e| Limited::Failed(ReadError::Open(e)))?;
    // fstat on the handle: the type of what was opened, not of what the
    // path names now.
    let meta = file
        .metadata()
        .map_err(|e| Limited::Failed(ReadError::Open(e)))?;
    if !meta.is_file() {
        return Err(Limited::Failed(ReadError::NotRegular(describe(
            meta.file_type(),
        ))));
    }
    if meta.len() > limit {
        return Err(Limited::Over);
    }
    // The size is a hint only (it may change, or be 0 as in /proc).
    let mut bytes = Vec::with_capacity(usize::try_from(meta.len()).map_or(0, |n| n + 1));
    file.take(limit.saturating_add(1))
        .read_to_end(&mut bytes)
        .map_err(|e| Limited::Failed(ReadError::Read(e)))?;
    if bytes.len() as u64 > limit {
        return Err(Limited::Over);
    }
    Ok(bytes)
}

#[cfg(unix)]
fn open(path: &Path) -> io::Result<File> {
    use std::os::unix::fs::OpenOptionsExt;
    OpenOptions::new()
        .read(true)
        // Without O_NONBLOCK, opening a FIFO waits for a writer; O_NOCTTY:
        // a terminal named here must not become lookout's.
        .custom_flags(libc::O_NONBLOCK | libc::O_NOCTTY)
        .open(path)
}

#[cfg(not(unix))]
fn open(path: &Path) -> io::Result<File> {
    OpenOptions::new().read(true).open(path)
}

fn describe(t: FileType) -> &'static str {
    if t.is_dir() {
        return "a directory";
    }
    #[cfg(unix)]
    {
        use std::os::unix::fs::FileTypeExt;
        if t.is_fifo() {
            return "a FIFO";
        }
        if t.is_char_device() {
            return "a character device";
        }
        if t.is_block_device() {
            return "a block device";
        }
        if t.is_socket() {
            return "a socket";
        }
    }
    "neither a file nor a directory"
}

/// A byte count as people write limits: `64 KiB`, `1 MiB`, `100 bytes`.
struct Size(u64);

impl fmt::Display for Size {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self.0 {
            n if n >= MIB && n % MIB == 0 => write!(f, "{} MiB", n / MIB),
            n if n >= KIB && n % KIB == 0 => write!(f, "{} KiB", n / KIB),
            n => write!(f, "{n} bytes"),
        }
    }
}

#[cfg(test)]
mod tests {
    use std::path::PathBuf;

    use super::*;

    #[test]
    fn a_regular_file_is_read_up_to_its_limit() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("f");
        std::fs::write(&path, b"0123456789").unwrap();
        assert_eq!(read_limited(&path, 10).ok(), Some(b"0123456789".to_vec()));
        assert!(matches!(read_limited(&path, 9), Err(Limited::Over)));
        // A symlink to a regular file is a regular file.
        #[cfg(unix)]
        {
            let link = dir.path().join("link");
            std::os::unix::fs::symlink(&path, &link).unwrap();
            assert_eq!(read(&link, Kind::Secret).unwrap(), b"0123456789");
        }
    }

    /// `/proc` files say they are empty: the limit holds on what is read.
    #[cfg(target_os = "linux")]
    #[test]
    fn the_limit_holds_when_the_size_is_unknown() {
        let path = Path::new("/proc/self/status");
        assert_eq!(std::fs::metadata(path).unwrap().len(), 0);
        assert!(read_limited(path, 64 * 1024).is_ok_and(|b| b.len() > 16));
        assert!(matches!(read_limited(path, 16), Err(Limited::Over)));
    }

    #[cfg(unix)]
    #[test]
    fn devices_fifos_and_directories_are_refused_without_blocking() {
        let dir = tempfile::tempdir().unwrap();
        let fifo = dir.path().join("fifo");
        let status = std::process::Command::new("mkfifo")
            .arg(&fifo)
            .status()
            .unwrap();
        assert!(status.success());
        for (path, what) in [
            (PathBuf::from("/dev/zero"), "a character device"),
            (PathBuf::from("/dev/urandom"), "a character device"),
            (fifo.clone(), "a FIFO"),
            (dir.path().to_path_buf(), "a directory"),
        ] {
            // In a thread, so that a regression fails here instead of hanging.
            let (tx, rx) = std::sync::mpsc::channel();
            let p = path.clone();
            std::thread::spawn(move || tx.send(read(&p, Kind::Config).map(|b| b.len())));
            let got = rx.recv_timeout(std::time::Duration::from_secs(10));
            if got.is_err() && path == fifo {
                // Let the blocked open return before failing.
                let _writer = OpenOptions::new().write(true).open(&fifo);
            }
            let e = got
                .unwrap_or_else(|_| panic!("reading {} did not return", path.display()))
                .unwrap_err();
            assert_eq!(
                e.to_string(),
                format!("not a regular file (it is {what})"),
                "{}",
                path.display()
            );
        }
    }

    #[test]
    fn messages_name_the_limit() {
        let e = |k| ReadError::TooLarge(k).to_string();
        assert_eq!(
            e(Kind::Secret),
            "larger than 16 KiB, the limit for a secret file"
        );
        assert_eq!(e(Kind::Pem), "larger than 1 MiB, the limit for a PEM file");
        assert_eq!(
            e(Kind::Config),
            "larger than 64 MiB, the limit for a config file"
        );
        assert_eq!(
            e(Kind::Report),
            "larger than 64 MiB, the limit for a report"
        );
        assert_eq!(Size(100).to_string(), "100 bytes");
    }
}
