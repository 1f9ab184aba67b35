//! A reserve of free disk space below which the store takes no more data. An embedded engine
//! that runs out of space mid-write can be left unable to write until it is reopened (sled keeps
//! its first I/O error); refusing growth while some space is left keeps the database writable,
//! and writes resume by themselves once space is freed.

use std::path::{Path, PathBuf};

use crate::error::{Result, StoreError};

#[derive(Debug, Clone)]
pub struct SpaceReserve {
    dir: PathBuf,
    reserve_bytes: u64,
}

impl SpaceReserve {
    pub fn new(dir: &Path, reserve_bytes: u64) -> Self {
        Self {
            dir: dir.to_path_buf(),
            reserve_bytes,
        }
    }

    pub fn set_bytes(&mut self, reserve_bytes: u64) {
        self.reserve_bytes = reserve_bytes;
    }

    /// Refuses a write of about `incoming` bytes that would leave less than the reserve free.
    pub fn check(&self, incoming: u64) -> Result<()> {
        if self.reserve_bytes == 0 {
            return Ok(());
        }
        let free = free_bytes(&self.dir)?;
        let needed = self.reserve_bytes.saturating_add(incoming);
        if free < needed {
            return Err(StoreError::DiskFull { free, needed });
        }
        Ok(())
    }
}

/// Bytes an unprivileged process may still write on the file system holding `dir`.
#[cfg(unix)]
pub fn free_bytes(dir: &Path) -> Result<u64> {
    use std::os::unix::ffi::OsStrExt;
    let path = std::ffi::CString::new(dir.as_os_str().as_bytes())
        .map_err(|e| StoreError::Engine(e.to_string()))?;
    let mut stat = std::mem::MaybeUninit::<libc::statvfs>::uninit();
    // SAFETY: `path` is a valid C string and `stat` is written by statvfs before it is read.
    let rc = unsafe { libc::statvfs(path.as_ptr(), stat.as_mut_ptr()) };
    if rc != 0 {
        return Err(StoreError::Engine(format!(
            "reading the free space of {}: {}",
            dir.display(),
            std::io::Error::last_os_error()
        )));
    }
    // SAFETY: statvfs returned 0, so it filled `stat`.
    let stat = unsafe { stat.assume_init() };
    // The field types differ between platforms (u32 on some 32-bit ones, u64 here).
    #[allow(clippy::unnecessary_cast)]
    Ok((stat.f_bavail as u64).saturating_mul(stat.f_frsize as u64))
}

#[cfg(not(unix))]
pub fn free_bytes(_dir: &Path) -> Result<u64> {
    Ok(u64::MAX)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_reserve_larger_than_the_disk_refuses_and_none_allows() {
        let dir = tempfile::tempdir().unwrap();
        let free = free_bytes(dir.path()).unwrap();
        assert!(free > 0);
        assert!(SpaceReserve::new(dir.path(), 0).check(u64::MAX).is_ok());
        assert!(SpaceReserve::new(dir.path(), 1).check(0).is_ok());
        assert!(matches!(
            SpaceReserve::new(dir.path(), free.saturating_mul(2)).check(0),
            Err(StoreError::DiskFull { .. })
        ));
    }
}
