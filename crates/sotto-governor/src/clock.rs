//! Process CPU time from a precise clock (`CLOCK_PROCESS_CPUTIME_ID`, nanoseconds), as
//! ../shared/MEASURING.md requires; never the 10 ms ticks of `/proc/self/stat`.

use std::time::Duration;

/// CPU time used so far by every thread of this process.
pub fn process_cpu_time() -> Duration {
    let mut ts = libc::timespec { tv_sec: 0, tv_nsec: 0 };
    // SAFETY: `ts` is a valid, writable timespec; the clock id is a constant the kernel knows.
    let rc = unsafe { libc::clock_gettime(libc::CLOCK_PROCESS_CPUTIME_ID, &mut ts) };
    if rc != 0 {
        return Duration::ZERO;
    }
    Duration::new(ts.tv_sec as u64, ts.tv_nsec as u32)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// CPU time of the calling thread alone.
    fn thread_cpu_time() -> Duration {
        let mut ts = libc::timespec { tv_sec: 0, tv_nsec: 0 };
        // SAFETY: `ts` is a valid, writable timespec; the clock id is a constant the kernel knows.
        assert_eq!(unsafe { libc::clock_gettime(libc::CLOCK_THREAD_CPUTIME_ID, &mut ts) }, 0);
        Duration::new(ts.tv_sec as u64, ts.tv_nsec as u32)
    }

    /// A fixed amount of work (not a spin until some clock moves, which would hang rather
    /// than fail with a clock that never does); returns the CPU time the thread spent on it.
    fn work() -> Duration {
        let start = thread_cpu_time();
        let mut x = 0u64;
        for i in 0..20_000_000u64 {
            x = std::hint::black_box(x.wrapping_add(i));
        }
        thread_cpu_time() - start
    }

    #[test]
    fn the_process_clock_counts_the_work_of_every_thread_exited_ones_included() {
        let before = process_cpu_time();
        let own = work();
        let exited = std::thread::spawn(work).join().unwrap();
        let used = process_cpu_time().checked_sub(before).expect("the process clock never goes back");
        assert!(own > Duration::ZERO && exited > Duration::ZERO, "the work takes CPU time: {own:?}, {exited:?}");
        assert!(used >= own + exited, "the process clock counted {used:?} for {own:?} here and {exited:?} in a thread");
    }
}
