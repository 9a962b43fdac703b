//! The request buffer: at most `concurrent_requests` requests execute at once, at
//! most `requests_buffer_size` wait for their turn, the others are refused (503).

use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::time::Instant;

use tokio::sync::{Semaphore, SemaphorePermit};

use crate::error::ApiError;

/// Minimum time between two "overloaded" warnings, in milliseconds.
const WARNING_INTERVAL_MS: u64 = 500;

pub(crate) struct RequestGate {
    slots: Semaphore,
    waiting: AtomicUsize,
    buffer_size: usize,
    created: Instant,
    last_warning_ms: AtomicU64,
}

impl RequestGate {
    pub(crate) fn new(concurrent_requests: usize, buffer_size: usize) -> Self {
        Self {
            slots: Semaphore::new(concurrent_requests.clamp(1, Semaphore::MAX_PERMITS)),
            waiting: AtomicUsize::new(0),
            buffer_size,
            created: Instant::now(),
            // Far enough in the past for the first warning to go out.
            last_warning_ms: AtomicU64::new(0),
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
        let now = u64::try_from(self.created.elapsed().as_millis()).unwrap_or(u64::MAX) + WARNING_INTERVAL_MS;
        let last = self.last_warning_ms.load(Ordering::Relaxed);
        if now.saturating_sub(last) >= WARNING_INTERVAL_MS
            && self
                .last_warning_ms
                .compare_exchange(last, now, Ordering::Relaxed, Ordering::Relaxed)
                .is_ok()
        {
            tracing::warn!(
                buffer_size = self.buffer_size,
                "Request buffer full: requests are refused with api.process.overloaded."
            );
        }
    }
}
