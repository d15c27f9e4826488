//! The process's file descriptor table, grown once at start-up, before any client is served.
//!
//! Linux doubles a process's descriptor table whenever a new descriptor does not fit (64, 128,
//! … slots). In a process with more than one thread every doubling waits for an RCU grace
//! period (`expand_fdtable` calls `synchronize_rcu`), 5–20 ms on a busy or virtual machine,
//! and the thread that called `accept` sleeps all that time: with one worker thread, the whole
//! broker stops. A burst of 5,000 connections crosses seven doublings (docs/performance.md,
//! "Connection rate"). Grown at start-up, the table costs at most one grace period, before
//! anyone connects, and no later descriptor up to its size waits for one.
//!
//! The table is sized to the soft `RLIMIT_NOFILE` (no descriptor beyond it can be opened),
//! at most [`MOST_SLOTS`]; it never shrinks, and costs the kernel 8 bytes a slot (512 KiB at
//! the most), none of it in the process's resident memory.

use std::os::fd::AsFd;

/// The largest table grown at start-up; beyond it, each doubling waits as before (once at
/// 131,072 descriptors, once at 262,144, …).
pub(crate) const MOST_SLOTS: u64 = 65_536;

/// Grows the table to `min(soft RLIMIT_NOFILE, MOST_SLOTS)` slots by duplicating a descriptor
/// to the last of them and closing the copy at once. Returns the number of slots asked for, or
/// `None` where the limit leaves nothing to grow or the duplicate was refused (the table then
/// grows on demand, as it would have).
pub(crate) fn grow() -> Option<u64> {
    let limit = rustix::process::getrlimit(rustix::process::Resource::Nofile);
    let slots = limit.current.unwrap_or(MOST_SLOTS).min(MOST_SLOTS);
    // The table starts with 64 slots.
    if slots <= 64 {
        return None;
    }
    let last = i32::try_from(slots - 1).ok()?;
    // Any open descriptor will do; standard error is open in a daemon too (on /dev/null).
    let copy = rustix::io::fcntl_dupfd_cloexec(std::io::stderr().as_fd(), last)
        .or_else(|_| {
            let null = std::fs::File::open("/dev/null").map_err(|_| rustix::io::Errno::BADF)?;
            rustix::io::fcntl_dupfd_cloexec(null.as_fd(), last)
        })
        .ok()?;
    drop(copy);
    Some(slots)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The slots the kernel has allocated for this process's table (`FDSize` in
    /// /proc/self/status).
    fn table_slots() -> u64 {
        let status = std::fs::read_to_string("/proc/self/status").expect("/proc/self/status");
        status
            .lines()
            .find_map(|line| line.strip_prefix("FDSize:"))
            .and_then(|value| value.trim().parse().ok())
            .expect("an FDSize line")
    }

    #[test]
    fn the_table_holds_as_many_descriptors_as_the_limit_allows_up_to_the_most() {
        let limit = rustix::process::getrlimit(rustix::process::Resource::Nofile);
        let wanted = limit.current.unwrap_or(MOST_SLOTS).min(MOST_SLOTS);
        let grown = grow();
        if wanted > 64 {
            assert_eq!(grown, Some(wanted));
            assert!(table_slots() >= wanted, "FDSize {} < {wanted}", table_slots());
        }
        // The copy is closed again: the next descriptor is a low one.
        let file = std::fs::File::open("/dev/null").expect("/dev/null");
        assert!(std::os::fd::AsRawFd::as_raw_fd(&file) < 1024);
    }
}
