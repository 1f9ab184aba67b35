//! How the process hands memory back to the system (glibc's allocator; elsewhere these do nothing).

/// glibc gives each thread that allocates concurrently its own malloc arena, up to 8 per core.
/// Request, decoding and inference threads each keep one, and every arena holds on to freed
/// memory: under load that is tens of MiB for nothing. One arena per core cut peak RSS at 32
/// clients by about 15% at the same throughput (loadtest/LOAD_TEST_RESULTS.md). Must run before
/// any thread starts; an operator's own `MALLOC_ARENA_MAX` wins.
pub fn limit_malloc_arenas() {
    #[cfg(all(target_os = "linux", target_env = "gnu"))]
    if std::env::var_os("MALLOC_ARENA_MAX").is_none() {
        let cores = std::thread::available_parallelism().map_or(1, |n| n.get());
        // SAFETY: mallopt only sets an allocator parameter; no other thread exists yet.
        unsafe {
            libc::mallopt(libc::M_ARENA_MAX, cores as libc::c_int);
        }
    }
}

/// Returns freed heap pages to the system. Loading a model (reading the artifact, building the
/// backbone to export it, compiling sessions) and training free tens of MiB that glibc otherwise
/// keeps mapped below blocks still in use: ~20 MiB of the idle server's RSS after start-up
/// (loadtest/LOAD_TEST_RESULTS.md). Called after those, not per request.
pub fn release_freed_memory() {
    #[cfg(all(target_os = "linux", target_env = "gnu"))]
    // SAFETY: malloc_trim only walks the allocator's own free lists.
    unsafe {
        libc::malloc_trim(0);
    }
}

#[cfg(all(test, target_os = "linux", target_env = "gnu"))]
mod tests {
    use super::*;

    fn resident_mib() -> f64 {
        let statm = std::fs::read_to_string("/proc/self/statm").unwrap();
        let pages: f64 = statm.split_whitespace().nth(1).unwrap().parse().unwrap();
        pages * 4096.0 / (1024.0 * 1024.0)
    }

    #[test]
    fn freed_blocks_between_live_ones_go_back_to_the_system() {
        // Freed blocks with a live one after each cannot merge into free space glibc gives back
        // by itself (the top of a heap, or a whole heap): the leftovers of loading a model.
        let (blocks, keepers): (Vec<Vec<u8>>, Vec<Vec<u8>>) = (0..8 * 1024)
            .map(|_| (vec![1u8; 16_000], vec![1u8; 64]))
            .unzip();
        drop(blocks);
        let before = resident_mib();
        release_freed_memory();
        let after = resident_mib();
        assert_eq!(keepers.len(), 8 * 1024);
        assert!(
            before - after >= 64.0,
            "RSS went from {before:.1} to {after:.1} MiB"
        );
    }
}
