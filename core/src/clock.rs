//! Time, in one place: the wall clock of this machine, and which clock a graph of nodes
//! runs on ([`ClockSource`]): the wall clock on a robot, the simulator's `clock` topic in
//! lockstep evaluation (ROS 2's `use_sim_time`).

/// Which clock a graph of nodes runs on; every node of one graph uses the same.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ClockSource {
    /// Real time: physics at wall-clock pace, one setpoint per control period, the arm's
    /// watchdog on (real arms, the real-time simulator).
    Wall,
    /// Lockstep: the simulator's `clock` topic. Each setpoint advances physics to its
    /// stamp and the controller waits for the clock to reach it, as fast as both can go;
    /// the same episode whatever the machine's load.
    Sim,
}

/// Nanoseconds since the Unix epoch on this machine's clock: MCAP log times and the
/// stamps of wall-clock nodes (processes on one machine share it).
pub fn wall_ns() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_nanos() as u64)
}

/// [`wall_ns`] in seconds.
pub fn wall_s() -> f64 {
    wall_ns() as f64 * 1e-9
}
