//! Preparing a fresh stream mapping before the first frame: huge pages where
//! the file system allows them, and page tables filled at open.
//!
//! Without this, the first frame through a new mapping takes one page fault
//! per 4 KiB page it touches (6,075 for a 1080p double buffer, 4 for each
//! 4K-page-sized run of pixels), inside `put_frame` or the reader's first
//! pass. `MADV_POPULATE_WRITE` (Linux 5.14) fills the page tables for the
//! whole mapping in one system call at open instead; where it is missing, the
//! pages are read once (the effect of `MAP_POPULATE`: mapped, still to be
//! made writable by a cheaper fault on the first store).
//!
//! Huge pages: `MADV_HUGEPAGE` is asked for on every mapping, before it is
//! populated. It takes effect where the stream file's tmpfs is mounted with
//! `huge=advise` (or `within_size`/`always`), or where
//! `/sys/kernel/mm/transparent_hugepage/shmem_enabled` is `force`; elsewhere
//! (the default `/dev/shm`, `huge=never`) the kernel ignores it. A stream file
//! on hugetlbfs is backed by huge pages whatever the advice.
//!
//! Populating makes the whole file resident at open: a 25 MiB EnSight-sized
//! file carrying small frames costs 25 MiB of memory at once instead of what
//! the frames touch. `SHMIMAGE_PREFAULT=0` in the environment turns this
//! module off (both the advice and the population).

use std::sync::atomic::{AtomicU8, Ordering};

/// What [`prepare`] did, for the log.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Prepared {
    /// Turned off by `SHMIMAGE_PREFAULT=0`.
    Off,
    /// Page tables filled for writing with `MADV_POPULATE_WRITE`.
    PopulatedForWrite,
    /// The kernel lacks `MADV_POPULATE_WRITE`: every page was read once.
    Touched,
    /// Population failed (e.g. out of memory): pages fault in on first use.
    Failed,
}

/// 0 = unknown, 1 = MADV_POPULATE_WRITE works, 2 = it does not exist here.
static POPULATE_WRITE: AtomicU8 = AtomicU8::new(0);

/// True unless `SHMIMAGE_PREFAULT` is `0`, `off` or `no`.
pub(crate) fn enabled() -> bool {
    enabled_by(std::env::var("SHMIMAGE_PREFAULT").ok().as_deref())
}

fn enabled_by(value: Option<&str>) -> bool {
    !matches!(value, Some("0" | "off" | "no"))
}

/// Advise huge pages for `len` bytes at `ptr` and fill their page tables.
///
/// # Safety
/// `ptr..ptr + len` is a live shared mapping of this process, readable and
/// writable, page-aligned at `ptr`. Faults past the end of a file truncated
/// meanwhile must be survivable (the mapping's SIGBUS guard is installed).
pub(crate) unsafe fn prepare(ptr: *mut u8, len: usize) -> Prepared {
    if !enabled() || len == 0 {
        return Prepared::Off;
    }
    // SAFETY: forwarded from this function's contract.
    unsafe { populate(ptr, len) }
}

/// [`prepare`] whatever the environment says.
///
/// # Safety
/// As for [`prepare`].
pub(crate) unsafe fn populate(ptr: *mut u8, len: usize) -> Prepared {
    // SAFETY: advice on a range of this process's own mapping; it changes no
    // byte. EINVAL (no THP in this kernel) is the same as "not allowed".
    unsafe { libc::madvise(ptr.cast(), len, libc::MADV_HUGEPAGE) };
    if POPULATE_WRITE.load(Ordering::Relaxed) != 2 {
        // SAFETY: as above; population write-faults each page without
        // changing its contents (what a peer wrote stays).
        let r = unsafe { libc::madvise(ptr.cast(), len, libc::MADV_POPULATE_WRITE) };
        if r == 0 {
            POPULATE_WRITE.store(1, Ordering::Relaxed);
            return Prepared::PopulatedForWrite;
        }
        let err = std::io::Error::last_os_error();
        if err.raw_os_error() != Some(libc::EINVAL) {
            tracing::debug!(%err, len, "prefaulting the stream mapping failed; pages fault in on first use");
            return Prepared::Failed;
        }
        POPULATE_WRITE.store(2, Ordering::Relaxed);
    }
    let page = page_size();
    let mut at = 0;
    while at < len {
        // SAFETY: `at < len` lies in the mapping; a volatile read of a byte
        // another process may write is a torn value at worst, and it is
        // discarded. A read past a truncated end is caught by the guard.
        unsafe { std::ptr::read_volatile(ptr.add(at)) };
        at += page;
    }
    Prepared::Touched
}

fn page_size() -> usize {
    // SAFETY: sysconf has no preconditions.
    let p = unsafe { libc::sysconf(libc::_SC_PAGESIZE) };
    usize::try_from(p).ok().filter(|&p| p > 0).unwrap_or(4096)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::file::StreamFile;

    fn minor_faults() -> i64 {
        // SAFETY: getrusage writes the struct it is given.
        let mut r: libc::rusage = unsafe { std::mem::zeroed() };
        // SAFETY: a valid pointer to a rusage.
        unsafe { libc::getrusage(libc::RUSAGE_THREAD, &mut r) };
        r.ru_minflt
    }

    /// A fresh shared mapping of a new 8 MiB stream file whose bytes are 0xA5.
    fn mapped_file() -> (StreamFile, memmap2::MmapRaw) {
        let f = StreamFile::with_len(8 << 20).unwrap();
        std::fs::write(f.path(), vec![0xA5u8; 8 << 20]).unwrap();
        let file = std::fs::OpenOptions::new().read(true).write(true).open(f.path()).unwrap();
        let map = memmap2::MmapOptions::new().map_raw(&file).unwrap();
        (f, map)
    }

    /// Write one byte per page and count the faults that took.
    fn faults_writing_every_page(map: &memmap2::MmapRaw) -> i64 {
        let before = minor_faults();
        for at in (0..map.len()).step_by(page_size()) {
            // SAFETY: inside the mapping; the file is private to this test.
            unsafe { map.as_mut_ptr().add(at).write_volatile(1) };
        }
        minor_faults() - before
    }

    #[test]
    fn a_populated_mapping_takes_no_fault_on_first_write_and_keeps_the_bytes() {
        let (_f, map) = mapped_file();
        // SAFETY: a live read-write shared mapping of this test's own file.
        let how = unsafe { populate(map.as_mut_ptr(), map.len()) };
        assert!(matches!(how, Prepared::PopulatedForWrite | Prepared::Touched), "{how:?}");
        // SAFETY: reading the mapping; nobody else writes it.
        let bytes = unsafe { std::slice::from_raw_parts(map.as_ptr(), map.len()) };
        assert!(bytes.iter().all(|&b| b == 0xA5), "populating changed the file's bytes");
        let pages = map.len() as i64 / page_size() as i64;
        let faults = faults_writing_every_page(&map);
        if how == Prepared::PopulatedForWrite {
            assert!(faults < pages / 8, "{faults} faults writing {pages} pages of a populated mapping");
        }
    }

    #[test]
    fn unprepared_the_first_write_faults_every_page() {
        let (_f, map) = mapped_file();
        let pages = map.len() as i64 / page_size() as i64;
        let faults = faults_writing_every_page(&map);
        // Fewer with huge pages on this tmpfs; /dev/shm as mounted by default
        // has 4 KiB pages. The point: this is what populate saves.
        assert!(faults > pages / 1024, "{faults} faults for {pages} pages");
    }

    #[test]
    fn the_environment_turns_it_off() {
        assert!(enabled_by(None) && enabled_by(Some("1")) && enabled_by(Some("")));
        assert!(!enabled_by(Some("0")) && !enabled_by(Some("off")) && !enabled_by(Some("no")));
    }
}
