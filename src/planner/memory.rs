//! Up-front memory checks: refuse what would not fit rather than abort.

use crate::error::Error;

/// Bytes a [`super::Table`] of `cells` `(t, m)` cells needs: costs and
/// choices (4 bytes each), the block extremes (about one byte a cell).
pub fn table_bytes(cells: u64) -> u64 {
    cells.saturating_mul(9)
}

/// Bytes this machine has available (`MemAvailable` of `/proc/meminfo`), or
/// `None` where that cannot be read.
pub fn available_bytes() -> Option<u64> {
    let info = std::fs::read_to_string("/proc/meminfo").ok()?;
    let line = info.lines().find(|l| l.starts_with("MemAvailable:"))?;
    let kib: u64 = line.split_whitespace().nth(1)?.parse().ok()?;
    Some(kib.saturating_mul(1024))
}

/// Refuses, naming both figures, when `need` bytes for `what` exceed the
/// memory available.
pub fn ensure_fits(what: impl FnOnce() -> String, need: u64) -> Result<(), Error> {
    match available_bytes() {
        Some(available) if need > available => Err(Error::OutOfMemory {
            what: what(),
            need,
            available,
        }),
        _ => Ok(()),
    }
}
