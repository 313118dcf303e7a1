//! Parameter checkpoints: written atomically, checked on reading.
//!
//! Layout: the magic `BPTTCKPT`, a format version (u32 LE), the length of a
//! JSON header (u32 LE), the header, the float sections it lists (f32 LE),
//! then a CRC-32 of everything before it. Writing goes to a temporary file
//! `.NAME.tmp-PID` in the same directory, synced, then renamed over the
//! target, so a crash leaves either the old checkpoint or the new one, never
//! a torn file; the next save removes temporary files left by a process that
//! no longer runs. A checkpoint path that is a symbolic link is written
//! through: the file it points to is replaced, the link stays.

use std::fs;
use std::io::{Read, Write};
use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

use bptt::Error;

const MAGIC: &[u8; 8] = b"BPTTCKPT";
const VERSION: u32 = 2;
/// The most header bytes read before the header is trusted.
const MAX_HEADER: usize = 1 << 20;

/// What a checkpoint holds besides its float sections.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Header<C> {
    /// The training configuration it was made with.
    pub config: C,
    /// Optimisation steps taken.
    pub step: u64,
    /// Lengths of the float sections, in order.
    pub sections: Vec<usize>,
}

/// The file a save writes: the end of a chain of symbolic links (which may
/// not exist yet), else the path.
fn target(path: &Path) -> Result<PathBuf, Error> {
    let mut file = path.to_path_buf();
    for _ in 0..32 {
        match fs::symlink_metadata(&file) {
            Ok(m) if m.file_type().is_symlink() => {
                let link = fs::read_link(&file).map_err(Error::io(format!(
                    "cannot follow the link {}",
                    file.display()
                )))?;
                file = match file.parent() {
                    Some(dir) => dir.join(link),
                    None => link,
                };
            }
            _ => return Ok(file),
        }
    }
    Err(Error::File(format!(
        "the checkpoint {} is a loop of symbolic links",
        path.display()
    )))
}

fn temp_name(name: &str, pid: u32) -> String {
    format!(".{name}.tmp-{pid}")
}

/// Removes `.NAME.tmp-PID` files beside `path` whose process is gone (on
/// systems with `/proc`; elsewhere, those of other processes are kept).
fn remove_stale(path: &Path) {
    let (Some(dir), Some(name)) = (path.parent(), path.file_name()) else {
        return;
    };
    let dir = if dir.as_os_str().is_empty() {
        Path::new(".")
    } else {
        dir
    };
    let prefix = format!(".{}.tmp-", name.to_string_lossy());
    let Ok(entries) = fs::read_dir(dir) else {
        return;
    };
    for entry in entries.flatten() {
        let file = entry.file_name().to_string_lossy().into_owned();
        let Some(pid) = file
            .strip_prefix(&prefix)
            .and_then(|p| p.parse::<u32>().ok())
        else {
            continue;
        };
        let alive = pid == std::process::id()
            || !Path::new("/proc/self").exists()
            || Path::new("/proc").join(pid.to_string()).exists();
        if !alive {
            let _ = fs::remove_file(entry.path());
        }
    }
}

/// Checks, before any work, that a checkpoint can be written at `path`:
/// it names a file (not a directory), is none of `inputs` (the text, the
/// cell file), and its directory (created if missing) takes a new file.
pub fn check_writable(path: &Path, inputs: &[&Path]) -> Result<(), Error> {
    let what = || format!("cannot write the checkpoint {}", path.display());
    let bad = |why: String| Error::File(format!("{}: {why}", what()));
    let file = target(path)?;
    let name = match file.file_name() {
        Some(n) if !path.as_os_str().to_string_lossy().ends_with('/') => n.to_os_string(),
        _ => return Err(bad("it names a directory, not a file".to_string())),
    };
    if file.is_dir() {
        return Err(bad("it is a directory".to_string()));
    }
    if file.exists() && !file.is_file() {
        return Err(bad("it is not a regular file".to_string()));
    }
    for input in inputs {
        if let (Ok(a), Ok(b)) = (fs::canonicalize(&file), fs::canonicalize(input))
            && a == b
        {
            return Err(bad(format!(
                "it is the input {}, which would be overwritten",
                input.display()
            )));
        }
    }
    let dir = match file.parent() {
        Some(d) if !d.as_os_str().is_empty() => d.to_path_buf(),
        _ => PathBuf::from("."),
    };
    fs::create_dir_all(&dir).map_err(Error::io(format!("{}: cannot create its folder", what())))?;
    let probe = dir.join(temp_name(&name.to_string_lossy(), std::process::id()));
    fs::File::create(&probe).map_err(Error::io(what()))?;
    let _ = fs::remove_file(&probe);
    Ok(())
}

/// Writes a checkpoint atomically.
pub fn save<C: Serialize>(
    path: &Path,
    header: &Header<C>,
    sections: &[&[f32]],
) -> Result<(), Error> {
    let io =
        |e: std::io::Error| Error::io(format!("cannot write the checkpoint {}", path.display()))(e);
    assert_eq!(
        header.sections,
        sections.iter().map(|s| s.len()).collect::<Vec<_>>()
    );
    let json = serde_json::to_vec(header).expect("headers serialise");
    let floats: usize = sections.iter().map(|s| s.len()).sum();
    let mut bytes = Vec::with_capacity(16 + json.len() + 4 * floats + 4);
    bytes.extend_from_slice(MAGIC);
    bytes.extend_from_slice(&VERSION.to_le_bytes());
    bytes.extend_from_slice(&(json.len() as u32).to_le_bytes());
    bytes.extend_from_slice(&json);
    for x in sections.iter().flat_map(|s| s.iter()) {
        bytes.extend_from_slice(&x.to_le_bytes());
    }
    let crc = crc32fast::hash(&bytes);
    bytes.extend_from_slice(&crc.to_le_bytes());
    let path = &target(path)?;
    let name = path
        .file_name()
        .ok_or_else(|| Error::File(format!("{} is not a file path", path.display())))?;
    remove_stale(path);
    let tmp = path.with_file_name(temp_name(&name.to_string_lossy(), std::process::id()));
    let mut file = fs::File::create(&tmp).map_err(io)?;
    file.write_all(&bytes).map_err(io)?;
    file.sync_all().map_err(io)?;
    drop(file);
    fs::rename(&tmp, path).map_err(|e| {
        let _ = fs::remove_file(&tmp);
        io(e)
    })
}

/// An opened checkpoint: its header read, its floats not yet.
pub struct Opened<C> {
    /// The header.
    pub header: Header<C>,
    path: PathBuf,
    file: fs::File,
    crc: crc32fast::Hasher,
}

/// Opens a checkpoint and reads its header (magic, version, header, sizes):
/// the file must be a regular file whose size is what its header says, so
/// nothing is read beyond what the header promises; the checksum is checked
/// when the sections are read.
pub fn open<C: for<'de> Deserialize<'de>>(path: &Path) -> Result<Opened<C>, Error> {
    let bad = |why: &str| Error::Checkpoint(format!("{}: {why}", path.display()));
    let mut file = fs::File::open(path).map_err(|e| read_error(path, e))?;
    let meta = file.metadata().map_err(|e| read_error(path, e))?;
    if !meta.is_file() {
        return Err(bad("not a regular file"));
    }
    let mut head = [0u8; 16];
    if file.read_exact(&mut head).is_err() || &head[..8] != MAGIC {
        return Err(bad("not a bptt checkpoint"));
    }
    let version = u32::from_le_bytes(head[8..12].try_into().expect("4 bytes"));
    if version != VERSION {
        return Err(bad(&format!(
            "format version {version}, this bptt reads {VERSION}"
        )));
    }
    let json_len = u32::from_le_bytes(head[12..16].try_into().expect("4 bytes")) as usize;
    if json_len > MAX_HEADER || 16 + json_len as u64 + 4 > meta.len() {
        return Err(bad("truncated header"));
    }
    let mut json = vec![0u8; json_len];
    file.read_exact(&mut json)
        .map_err(|e| read_error(path, e))?;
    let mut crc = crc32fast::Hasher::new();
    crc.update(&head);
    crc.update(&json);
    let header: Header<C> =
        serde_json::from_slice(&json).map_err(|e| bad(&format!("unreadable header: {e}")))?;
    let expected = header
        .sections
        .iter()
        .try_fold(0u64, |a, &n| a.checked_add(n as u64))
        .and_then(|n| n.checked_mul(4))
        .and_then(|n| n.checked_add(16 + json_len as u64 + 4));
    if expected != Some(meta.len()) {
        return Err(bad("section sizes do not match the header"));
    }
    Ok(Opened {
        header,
        path: path.to_path_buf(),
        file,
        crc,
    })
}

fn read_error(path: &Path, e: std::io::Error) -> Error {
    Error::io(format!("cannot read the checkpoint {}", path.display()))(e)
}

impl<C> Opened<C> {
    /// Reads the float sections, in order, and checks the checksum.
    pub fn sections(mut self) -> Result<(Header<C>, Vec<Vec<f32>>), Error> {
        let mut sections = Vec::with_capacity(self.header.sections.len());
        let mut buf = vec![0u8; 1 << 16];
        for &n in &self.header.sections {
            let mut floats = Vec::with_capacity(n);
            while floats.len() < n {
                let bytes = (4 * (n - floats.len())).min(buf.len());
                self.file
                    .read_exact(&mut buf[..bytes])
                    .map_err(|e| read_error(&self.path, e))?;
                self.crc.update(&buf[..bytes]);
                floats.extend(
                    buf[..bytes]
                        .chunks_exact(4)
                        .map(|b| f32::from_le_bytes(b.try_into().expect("4 bytes"))),
                );
            }
            sections.push(floats);
        }
        let mut tail = [0u8; 4];
        self.file
            .read_exact(&mut tail)
            .map_err(|e| read_error(&self.path, e))?;
        if self.crc.finalize().to_le_bytes() != tail {
            return Err(Error::Checkpoint(format!(
                "{}: corrupted (checksum mismatch)",
                self.path.display()
            )));
        }
        Ok((self.header, sections))
    }
}

/// Reads and checks a checkpoint: its header and its sections.
#[cfg(test)]
pub fn load<C: for<'de> Deserialize<'de>>(
    path: &Path,
) -> Result<(Header<C>, Vec<Vec<f32>>), Error> {
    open(path)?.sections()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn temp(name: &str) -> std::path::PathBuf {
        std::env::temp_dir().join(format!("bptt-ckpt-{}-{name}", std::process::id()))
    }

    #[test]
    fn round_trips() {
        let path = temp("round");
        let header = Header {
            config: "cfg".to_string(),
            step: 7,
            sections: vec![2, 1],
        };
        save(&path, &header, &[&[1.0, 2.0], &[3.5]]).unwrap();
        let (h, s) = load::<String>(&path).unwrap();
        assert_eq!(h, header);
        assert_eq!(s, vec![vec![1.0, 2.0], vec![3.5]]);
        fs::remove_file(path).unwrap();
    }

    #[test]
    fn a_flipped_byte_is_refused() {
        let path = temp("flip");
        let header = Header {
            config: 1u32,
            step: 1,
            sections: vec![3],
        };
        save(&path, &header, &[&[1.0, 2.0, 3.0]]).unwrap();
        let mut bytes = fs::read(&path).unwrap();
        let at = bytes.len() - 6;
        bytes[at] ^= 0x40;
        fs::write(&path, &bytes).unwrap();
        let err = load::<u32>(&path).unwrap_err().to_string();
        assert!(err.contains("corrupted"), "{err}");
        fs::remove_file(path).unwrap();
    }

    #[test]
    fn a_save_removes_the_temporary_file_of_a_killed_write() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("run.ckpt");
        // No process has this id (above the kernel's pid_max).
        let stale = dir.path().join(temp_name("run.ckpt", 4_999_999));
        let other = dir.path().join(".other.ckpt.tmp-4999999");
        fs::write(&stale, b"half a checkpoint").unwrap();
        fs::write(&other, b"not ours").unwrap();
        let header = Header {
            config: 0u32,
            step: 1,
            sections: vec![1],
        };
        save(&path, &header, &[&[1.0]]).unwrap();
        assert!(!stale.exists(), "the stale temporary file is left");
        assert!(other.exists(), "another checkpoint's file was removed");
        assert_eq!(load::<u32>(&path).unwrap().1, vec![vec![1.0]]);
    }

    #[cfg(unix)]
    #[test]
    fn a_symlinked_checkpoint_is_written_through() {
        let dir = tempfile::tempdir().unwrap();
        let real = dir.path().join("real.ckpt");
        let link = dir.path().join("link.ckpt");
        std::os::unix::fs::symlink(&real, &link).unwrap();
        let header = Header {
            config: 0u32,
            step: 2,
            sections: vec![1],
        };
        check_writable(&link, &[]).unwrap();
        save(&link, &header, &[&[2.0]]).unwrap();
        assert!(
            fs::symlink_metadata(&link)
                .unwrap()
                .file_type()
                .is_symlink()
        );
        assert_eq!(load::<u32>(&real).unwrap().0.step, 2);
    }

    #[test]
    fn a_checkpoint_path_is_checked_before_any_work() {
        let dir = tempfile::tempdir().unwrap();
        let text = dir.path().join("text.txt");
        fs::write(&text, "abc").unwrap();
        let err = |p: &Path| check_writable(p, &[&text]).unwrap_err().to_string();
        assert!(err(&text).contains("the input"), "{}", err(&text));
        assert!(err(dir.path()).contains("directory"), "{}", err(dir.path()));
        assert!(err(Path::new("/")).contains("directory"));
        let nested = dir.path().join("a/b/c.ckpt");
        check_writable(&nested, &[&text]).unwrap();
        assert!(dir.path().join("a/b").is_dir(), "parents are created");
        let spelled = dir.path().join(".").join("text.txt");
        assert!(err(&spelled).contains("the input"));
    }
}
