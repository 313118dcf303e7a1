//! Parameter checkpoints: written atomically, checked on reading.
//!
//! Layout: the magic `BPTTCKPT`, a format version (u32 LE), the length of a
//! JSON header (u32 LE), the header, the float sections it lists (f32 LE),
//! then a CRC-32 of everything before it. Writing goes to a temporary file
//! in the same directory, synced, then renamed over the target, so a crash
//! leaves either the old checkpoint or the new one, never a torn file.

use std::fs;
use std::io::Write;
use std::path::Path;

use serde::{Deserialize, Serialize};

use crate::error::Error;

const MAGIC: &[u8; 8] = b"BPTTCKPT";
const VERSION: u32 = 1;

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

/// Writes a checkpoint atomically.
pub fn save<C: Serialize>(
    path: &Path,
    header: &Header<C>,
    sections: &[&[f32]],
) -> Result<(), Error> {
    let io = |e: std::io::Error| {
        Error::Io(format!(
            "cannot write the checkpoint {}: {e}",
            path.display()
        ))
    };
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
    let name = path
        .file_name()
        .ok_or_else(|| Error::Io(format!("{} is not a file path", path.display())))?;
    let tmp = path.with_file_name(format!(
        ".{}.tmp-{}",
        name.to_string_lossy(),
        std::process::id()
    ));
    let mut file = fs::File::create(&tmp).map_err(io)?;
    file.write_all(&bytes).map_err(io)?;
    file.sync_all().map_err(io)?;
    drop(file);
    fs::rename(&tmp, path).map_err(|e| {
        let _ = fs::remove_file(&tmp);
        io(e)
    })
}

/// Reads and checks a checkpoint: magic, version, checksum, header, sizes.
pub fn load<C: for<'de> Deserialize<'de>>(
    path: &Path,
) -> Result<(Header<C>, Vec<Vec<f32>>), Error> {
    let bad = |why: &str| Error::Checkpoint(format!("{}: {why}", path.display()));
    let bytes = fs::read(path).map_err(|e| {
        Error::Io(format!(
            "cannot read the checkpoint {}: {e}",
            path.display()
        ))
    })?;
    if bytes.len() < 20 || &bytes[..8] != MAGIC {
        return Err(bad("not a bptt checkpoint"));
    }
    let (body, tail) = bytes.split_at(bytes.len() - 4);
    if crc32fast::hash(body).to_le_bytes() != tail {
        return Err(bad("corrupted (checksum mismatch)"));
    }
    let version = u32::from_le_bytes(body[8..12].try_into().expect("4 bytes"));
    if version != VERSION {
        return Err(bad(&format!(
            "format version {version}, this bptt reads {VERSION}"
        )));
    }
    let json_len = u32::from_le_bytes(body[12..16].try_into().expect("4 bytes")) as usize;
    let json = body
        .get(16..16 + json_len)
        .ok_or_else(|| bad("truncated header"))?;
    let header: Header<C> =
        serde_json::from_slice(json).map_err(|e| bad(&format!("unreadable header: {e}")))?;
    let mut floats = body[16 + json_len..]
        .chunks_exact(4)
        .map(|b| f32::from_le_bytes(b.try_into().expect("4 bytes")));
    let expected: usize = header.sections.iter().sum();
    if (body.len() - 16 - json_len) != 4 * expected {
        return Err(bad("section sizes do not match the header"));
    }
    let sections = header
        .sections
        .iter()
        .map(|&n| floats.by_ref().take(n).collect())
        .collect();
    Ok((header, sections))
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
}
