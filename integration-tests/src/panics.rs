//! Panics anywhere in the process, as a panic hook sees them: tokio catches
//! the panic of a spawned task, so a server task that panics leaves no other
//! trace than a dropped connection.

use std::sync::{Mutex, Once, PoisonError};

static PANICS: Mutex<Vec<Panic>> = Mutex::new(Vec::new());
static INSTALL: Once = Once::new();

/// One panic: where, on which thread, saying what.
#[derive(Debug, Clone)]
pub struct Panic {
    /// The thread's name.
    pub thread: String,
    /// `file:line:column`.
    pub location: String,
    /// The panic's message.
    pub message: String,
}

/// Installs the hook (once per process): every panic, from any thread, is
/// recorded, then reported by the hook that was there before.
pub fn watch() {
    INSTALL.call_once(|| {
        let previous = std::panic::take_hook();
        std::panic::set_hook(Box::new(move |info| {
            let message = info
                .payload()
                .downcast_ref::<&str>()
                .map(|message| (*message).to_owned())
                .or_else(|| info.payload().downcast_ref::<String>().cloned())
                .unwrap_or_default();
            let panic = Panic {
                thread: std::thread::current().name().unwrap_or("unnamed").to_owned(),
                location: info
                    .location()
                    .map(|location| location.to_string())
                    .unwrap_or_default(),
                message,
            };
            PANICS.lock().unwrap_or_else(PoisonError::into_inner).push(panic);
            previous(info);
        }));
    });
}

/// The panics recorded so far outside the test code (this crate): the
/// server's, or a library's. A failed assertion of a test is not one of them,
/// so that a test failing does not fail the others running alongside.
pub fn outside_tests() -> Vec<Panic> {
    PANICS
        .lock()
        .unwrap_or_else(PoisonError::into_inner)
        .iter()
        .filter(|panic| !panic.location.contains("integration-tests"))
        .cloned()
        .collect()
}

/// Fails the test when anything but test code panicked.
pub fn assert_none() {
    let panics = outside_tests();
    assert!(panics.is_empty(), "panics outside the tests: {panics:#?}");
}
