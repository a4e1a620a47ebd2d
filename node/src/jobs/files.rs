//! Files a job names (`params.test_ids_file`, `params.queries_file`). The names come from the
//! job, so possibly from the peer: each node reads them only inside its own `node.data_dir`.
//!
//! A name is refused unless it is relative, has no `..`, resolves (after symlinks) to a path
//! inside the data directory, and that path is a regular file of at most [`MAX_JOB_FILE`] bytes.
//! The file is opened with `O_NONBLOCK | O_NOFOLLOW` and its type checked on the open handle
//! before anything is read, so neither a FIFO nor a device can block or flood the node, and at
//! most `MAX_JOB_FILE + 1` bytes are ever read. Refusals name the rule and the path for this
//! node's operator; the peer is only told that its job named a file this node refused
//! ([`FileRefused::to_peer`]).
//!
//! Not covered: a local user who can swap directories inside the data directory between the
//! check and the open (the data directory is owner-only, mode 0700).

use std::fs::File;
use std::io::Read;
use std::os::unix::fs::{FileTypeExt, OpenOptionsExt};
use std::path::{Component, Path, PathBuf};

/// Largest file a job may name (64 MiB).
pub const MAX_JOB_FILE: u64 = 64 << 20;

/// A job file this node refuses to read; the message names the parameter, the rule and the fix.
#[derive(Debug, thiserror::Error)]
#[error("{key} = '{name}': {why}")]
pub struct FileRefused {
    /// The job parameter naming the file, e.g. `params.test_ids_file`.
    pub key: &'static str,
    name: String,
    why: String,
}

impl FileRefused {
    /// What the peer may learn: that the job named a file this node refuses (no path, no reason).
    pub fn to_peer(&self, node: &str) -> String {
        format!(
            "policy: {} names a file node '{node}' refuses to read (a job may name only regular files inside \
             the node's data directory)",
            self.key
        )
    }
}

/// Where `name` (parameter `key` of a job) is in `data_dir`, checked and opened for reading:
/// the opened regular file, its resolved path and its size.
fn open(data_dir: &Path, key: &'static str, name: &Path) -> Result<(File, PathBuf, u64), FileRefused> {
    let refuse = |why: String| FileRefused { key, name: name.display().to_string(), why };
    if name.as_os_str().is_empty() {
        return Err(refuse("the name is empty; name a file inside node.data_dir".into()));
    }
    for c in name.components() {
        match c {
            Component::Normal(_) | Component::CurDir => {}
            Component::RootDir | Component::Prefix(_) => {
                return Err(refuse(format!(
                    "absolute paths are refused: name a file relative to node.data_dir ({})",
                    data_dir.display()
                )));
            }
            Component::ParentDir => {
                return Err(refuse(format!(
                    "'..' is refused: name a file inside node.data_dir ({})",
                    data_dir.display()
                )));
            }
        }
    }
    let root = data_dir
        .canonicalize()
        .map_err(|e| refuse(format!("cannot resolve node.data_dir {}: {e}", data_dir.display())))?;
    let joined = root.join(name);
    let path = joined.canonicalize().map_err(|e| refuse(format!("cannot open {}: {e}", joined.display())))?;
    if !path.starts_with(&root) {
        return Err(refuse(format!(
            "{} leads (through a symlink) to {}, outside node.data_dir; copy the file into the data directory",
            joined.display(),
            path.display()
        )));
    }
    let file = std::fs::OpenOptions::new()
        .read(true)
        .custom_flags(libc::O_NONBLOCK | libc::O_NOFOLLOW)
        .open(&path)
        .map_err(|e| refuse(format!("cannot open {}: {e}", path.display())))?;
    let meta = file.metadata().map_err(|e| refuse(format!("cannot inspect {}: {e}", path.display())))?;
    let t = meta.file_type();
    if !t.is_file() {
        let what = if t.is_dir() {
            "a directory"
        } else if t.is_fifo() {
            "a FIFO"
        } else if t.is_char_device() || t.is_block_device() {
            "a device"
        } else if t.is_socket() {
            "a socket"
        } else {
            "not a regular file"
        };
        return Err(refuse(format!("{} is {what}; a job may name only regular files", path.display())));
    }
    if meta.len() > MAX_JOB_FILE {
        return Err(refuse(too_large(&path)));
    }
    Ok((file, path, meta.len()))
}

fn too_large(path: &Path) -> String {
    format!("{} is larger than the limit of {} MiB for files a job names", path.display(), MAX_JOB_FILE >> 20)
}

/// Checks that job parameter `key` names a file this node would read (see the module docs).
pub fn check(data_dir: &Path, key: &'static str, name: &Path) -> Result<(), FileRefused> {
    open(data_dir, key, name).map(drop)
}

/// A job file's contents and its resolved path (for this node's messages only).
pub struct JobFile {
    pub path: PathBuf,
    pub bytes: Vec<u8>,
}

/// Reads the file job parameter `key` names, within the rules of the module docs.
pub fn read(data_dir: &Path, key: &'static str, name: &Path) -> Result<JobFile, FileRefused> {
    let (file, path, len) = open(data_dir, key, name)?;
    let refuse = |why: String| FileRefused { key, name: name.display().to_string(), why };
    let mut bytes = Vec::with_capacity(len as usize);
    file.take(MAX_JOB_FILE + 1)
        .read_to_end(&mut bytes)
        .map_err(|e| refuse(format!("cannot read {}: {e}", path.display())))?;
    if bytes.len() as u64 > MAX_JOB_FILE {
        return Err(refuse(too_large(&path)));
    }
    Ok(JobFile { path, bytes })
}

#[cfg(test)]
mod tests {
    use std::time::{Duration, Instant};

    use super::*;

    const KEY: &str = "params.test_ids_file";

    fn why(dir: &Path, name: &str) -> String {
        let started = Instant::now();
        let e = read(dir, KEY, Path::new(name)).err().unwrap_or_else(|| panic!("{name} must be refused"));
        assert!(started.elapsed() < Duration::from_secs(1), "{name}: refused only after {:?}", started.elapsed());
        assert_eq!(
            e.to_peer("bank"),
            format!(
                "policy: {KEY} names a file node 'bank' refuses to read (a job may name only regular files inside the node's data directory)"
            )
        );
        e.to_string()
    }

    #[test]
    fn only_regular_files_inside_the_data_dir_are_read() {
        let outside = tempfile::tempdir().unwrap();
        let dir = tempfile::tempdir().unwrap();
        let data = dir.path().join("data");
        std::fs::create_dir_all(data.join("sub")).unwrap();
        std::fs::write(data.join("sub/ids.txt"), "id\n1\n").unwrap();
        std::fs::write(outside.path().join("secret.txt"), "s").unwrap();
        std::os::unix::fs::symlink(outside.path().join("secret.txt"), data.join("out")).unwrap();
        std::os::unix::fs::symlink(data.join("sub/ids.txt"), data.join("in")).unwrap();
        let fifo = data.join("fifo");
        assert!(std::process::Command::new("mkfifo").arg(&fifo).status().unwrap().success());

        let ok = read(&data, KEY, Path::new("sub/ids.txt")).unwrap();
        assert_eq!((ok.bytes.as_slice(), ok.path.ends_with("sub/ids.txt")), (&b"id\n1\n"[..], true));
        assert_eq!(read(&data, KEY, Path::new("./in")).unwrap().bytes, b"id\n1\n", "a symlink inside is followed");

        let cases = [
            ("/dev/zero", "absolute paths are refused"),
            ("/etc/passwd", "absolute paths are refused"),
            ("../x", "'..' is refused"),
            ("sub/../../x", "'..' is refused"),
            ("out", "outside node.data_dir"),
            ("fifo", "is a FIFO"),
            ("sub", "is a directory"),
            ("missing.txt", "cannot open"),
            ("", "the name is empty"),
        ];
        for (name, rule) in cases {
            let msg = why(&data, name);
            assert!(msg.starts_with(&format!("{KEY} = '{name}': ")) && msg.contains(rule), "{name}: {msg}");
        }
        // A device reached through a symlink inside the data directory: the link leads outside.
        std::os::unix::fs::symlink("/dev/zero", data.join("zero")).unwrap();
        assert!(why(&data, "zero").contains("outside node.data_dir"));
    }

    #[test]
    fn files_over_the_limit_are_refused_before_reading() {
        let dir = tempfile::tempdir().unwrap();
        let f = File::create(dir.path().join("big")).unwrap();
        f.set_len(MAX_JOB_FILE + 1).unwrap(); // sparse: nothing is written
        let msg = why(dir.path(), "big");
        assert!(msg.contains("larger than the limit of 64 MiB"), "{msg}");
        f.set_len(MAX_JOB_FILE).unwrap();
        assert_eq!(read(dir.path(), KEY, Path::new("big")).unwrap().bytes.len() as u64, MAX_JOB_FILE);
    }
}
