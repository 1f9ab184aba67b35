//! CPU priorities of the threads that do optional work beside live predictions (Linux threads
//! have their own; elsewhere these do nothing).

/// Gives the calling thread the lowest nice value (19): it still gets a small share of a busy CPU.
pub(crate) fn lowest_priority() {
    #[cfg(target_os = "linux")]
    // SAFETY: setpriority with PRIO_PROCESS and 0 changes only the calling thread's nice value.
    unsafe {
        libc::setpriority(libc::PRIO_PROCESS, 0, 19);
    }
}

/// Runs the calling thread only when a CPU would otherwise be idle (`SCHED_IDLE`): any other
/// runnable thread preempts it at once. Falls back to the lowest nice value.
pub(crate) fn idle_priority() {
    #[cfg(target_os = "linux")]
    {
        let param = libc::sched_param { sched_priority: 0 };
        // SAFETY: sched_setscheduler with pid 0 changes only the calling thread's policy.
        if unsafe { libc::sched_setscheduler(0, libc::SCHED_IDLE, &param) } == 0 {
            return;
        }
    }
    lowest_priority();
}
