//! The request buffer: at most `concurrent_requests` requests execute at once, at
//! most `requests_buffer_size` wait for their turn, the others are refused (503).

use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

use tokio::sync::{Semaphore, SemaphorePermit};

use super::throttle::Throttle;
use crate::error::ApiError;

/// Minimum time between two "overloaded" warnings.
const WARNING_INTERVAL: Duration = Duration::from_millis(500);

pub(crate) struct RequestGate {
    slots: Semaphore,
    waiting: AtomicUsize,
    buffer_size: usize,
    warnings: Throttle,
}

impl RequestGate {
    pub(crate) fn new(concurrent_requests: usize, buffer_size: usize) -> Self {
        Self {
            slots: Semaphore::new(concurrent_requests.clamp(1, Semaphore::MAX_PERMITS)),
            waiting: AtomicUsize::new(0),
            buffer_size,
            warnings: Throttle::new(WARNING_INTERVAL),
        }
    }

    /// Waits for an execution slot; refuses at once when the buffer is full, and
    /// with `ShuttingDown` once the gate is closed.
    pub(crate) async fn enter(&self) -> Result<SemaphorePermit<'_>, ApiError> {
        match self.slots.try_acquire() {
            Ok(permit) => return Ok(permit),
            Err(tokio::sync::TryAcquireError::Closed) => return Err(ApiError::ShuttingDown),
            Err(tokio::sync::TryAcquireError::NoPermits) => {}
        }
        if self.waiting.fetch_add(1, Ordering::AcqRel) >= self.buffer_size {
            self.waiting.fetch_sub(1, Ordering::AcqRel);
            self.warn_overloaded();
            return Err(ApiError::Overloaded);
        }
        let permit = self.slots.acquire().await;
        self.waiting.fetch_sub(1, Ordering::AcqRel);
        permit.map_err(|_| ApiError::ShuttingDown)
    }

    /// Refuses every request from now on, including those waiting.
    pub(crate) fn close(&self) {
        self.slots.close();
    }

    fn warn_overloaded(&self) {
        if self.warnings.ready() {
            tracing::warn!(
                buffer_size = self.buffer_size,
                "Request buffer full: requests are refused with api.process.overloaded."
            );
        }
    }
}
