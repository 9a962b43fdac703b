//! The progress line printed on stderr every second while a scenario runs.

use std::time::Duration;

use tokio::task::JoinHandle;

/// Prints `label` and what `line` returns every second until dropped.
pub struct Progress {
    task: JoinHandle<()>,
}

impl Progress {
    /// Starts printing.
    pub fn start(label: String, line: impl Fn() -> String + Send + 'static) -> Self {
        let task = tokio::spawn(async move {
            let started = tokio::time::Instant::now();
            let mut ticks = tokio::time::interval(Duration::from_secs(1));
            ticks.tick().await;
            loop {
                ticks.tick().await;
                eprintln!("  [{label}] {:>3.0}s {}", started.elapsed().as_secs_f64(), line());
            }
        });
        Self { task }
    }
}

impl Drop for Progress {
    fn drop(&mut self) {
        self.task.abort();
    }
}
