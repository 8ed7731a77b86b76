//! How the control thread keeps its period: a deadline wait that sleeps most of the way
//! and spins the rest on the monotonic clock, and real-time priority when the OS grants it.
//!
//! Linux wakes a sleeping thread tens of microseconds late when idle and up to
//! milliseconds late when the model's threads hold every core; a spin of a few hundred
//! microseconds absorbs the first, `SCHED_FIFO` the second.

use std::time::{Duration, Instant};

/// Sleeps until `spin` before `due`, then spins on the monotonic clock until `due`.
/// With `spin` zero, a plain sleep.
pub fn wait_until(due: Instant, spin: Duration) {
    let now = Instant::now();
    if due <= now {
        return;
    }
    let sleep = due.saturating_duration_since(now + spin);
    if !sleep.is_zero() {
        std::thread::sleep(sleep);
    }
    while Instant::now() < due {
        std::hint::spin_loop();
    }
}

/// Gives the calling thread `SCHED_FIFO` at `priority` (1–99). The error says why the OS
/// refused and how to allow it; the thread then keeps its normal priority.
#[cfg(target_os = "linux")]
pub fn realtime_priority(priority: i32) -> Result<(), String> {
    let param = libc::sched_param {
        sched_priority: priority,
    };
    // SAFETY: `param` outlives the call; pid 0 is the calling thread.
    let rc = unsafe { libc::sched_setscheduler(0, libc::SCHED_FIFO, &param) };
    if rc == 0 {
        Ok(())
    } else {
        Err(format!(
            "SCHED_FIFO {priority} refused ({}): run as root, grant CAP_SYS_NICE, or raise \
             rtprio in /etc/security/limits.conf",
            std::io::Error::last_os_error()
        ))
    }
}

#[cfg(not(target_os = "linux"))]
pub fn realtime_priority(_priority: i32) -> Result<(), String> {
    Err("real-time priority is implemented for Linux only".into())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_wait_ends_at_the_deadline_not_before() {
        for spin in [Duration::ZERO, Duration::from_micros(300)] {
            let due = Instant::now() + Duration::from_millis(3);
            wait_until(due, spin);
            assert!(Instant::now() >= due);
        }
        // A deadline already past returns at once.
        let t = Instant::now();
        wait_until(t - Duration::from_millis(1), Duration::from_millis(1));
        assert!(t.elapsed() < Duration::from_millis(1));
    }

    #[test]
    fn an_impossible_priority_is_refused_with_a_reason() {
        let e = realtime_priority(1000).unwrap_err();
        assert!(e.contains("SCHED_FIFO 1000 refused"), "{e}");
    }
}
