//! The answers given recently, by connection and request id, so that a
//! request received again is answered without being executed twice.
//!
//! A request comes again when its client, having lost its connection before
//! the answer reached it, sends it again on reconnecting, or when the broker
//! delivers it again after protoplex's own connection was lost. A request is
//! "the same" when it comes from the same connection (reply queue) with the
//! same `requestId` and the same bytes; a request without a `requestId` of its
//! client's is never the same as another.
//!
//! The memory is bounded by a byte budget (answers, request ids and a fixed
//! overhead per entry), the oldest entries going first, and entries expire
//! after a time to live. While a request executes, a copy of it waits for its
//! answer instead of executing too.

use std::collections::{HashMap, VecDeque};
use std::hash::{DefaultHasher, Hasher};
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};
use std::time::{Duration, Instant};

use bytes::Bytes;
use protoplex_core::ConnectionId;
use tokio::sync::watch;

/// Bytes counted per entry besides its request id and answer: the map and
/// queue slots, the key, the state.
const ENTRY_OVERHEAD: usize = 128;

/// The digest of a request's bytes: tells it apart from another request
/// reusing its `requestId`.
pub(crate) fn digest(payload: &[u8]) -> u64 {
    let mut hasher = DefaultHasher::new();
    hasher.write(payload);
    hasher.finish()
}

#[derive(Debug, Clone, PartialEq, Eq, Hash)]
struct Key {
    connection: ConnectionId,
    request_id: Arc<str>,
}

impl Key {
    fn cost(&self) -> usize {
        ENTRY_OVERHEAD + self.request_id.len()
    }
}

#[derive(Debug)]
enum State {
    /// Being executed: the answer comes on the receiver.
    Running(watch::Receiver<Option<Bytes>>),
    /// Executed: its answer, and whether the broker confirmed publishing it.
    Done { answer: Bytes, delivered: bool },
}

#[derive(Debug)]
struct Slot {
    /// Which claim made the slot: a later one replaces it.
    seq: u64,
    digest: u64,
    at: Instant,
    state: State,
}

impl Slot {
    fn answer_len(&self) -> usize {
        match &self.state {
            State::Running(_) => 0,
            State::Done { answer, .. } => answer.len(),
        }
    }
}

#[derive(Debug, Default)]
struct Inner {
    slots: HashMap<Key, Slot>,
    /// Every claim in order, oldest first; those whose slot was replaced or
    /// removed are skipped when they come first.
    order: VecDeque<(Key, u64)>,
    /// Bytes counted: the claims in `order` and the answers in `slots`.
    used: usize,
    next_seq: u64,
}

impl Inner {
    /// Drops the oldest claims while over `budget` or expired.
    fn evict(&mut self, budget: usize, ttl: Duration, now: Instant) {
        while let Some((key, seq)) = self.order.front() {
            let live = self.slots.get(key).filter(|slot| slot.seq == *seq);
            let expired = live.is_none_or(|slot| now.saturating_duration_since(slot.at) >= ttl);
            if self.used <= budget && !expired {
                break;
            }
            if let Some((key, seq)) = self.order.pop_front() {
                self.used = self.used.saturating_sub(key.cost());
                self.remove(&key, seq);
            }
        }
    }

    /// Removes the slot of `key` if it is still that of claim `seq`.
    fn remove(&mut self, key: &Key, seq: u64) {
        if self.slots.get(key).is_some_and(|slot| slot.seq == seq)
            && let Some(slot) = self.slots.remove(key)
        {
            self.used = self.used.saturating_sub(slot.answer_len());
        }
    }
}

/// What to do with a request.
#[derive(Debug)]
pub(crate) enum Claim {
    /// New: execute it, and give its answer to the ticket.
    Execute(Ticket),
    /// Executed already: its answer, and whether the broker confirmed
    /// publishing it; `receipt` records a confirm of publishing it again.
    Done {
        answer: Bytes,
        delivered: bool,
        receipt: Receipt,
    },
    /// Being executed: its answer comes here (`Err` if that execution is
    /// abandoned: claim again).
    Running(watch::Receiver<Option<Bytes>>),
}

/// The answers given recently. See the [module](self).
#[derive(Debug)]
pub(crate) struct Answers {
    budget: usize,
    ttl: Duration,
    inner: Mutex<Inner>,
}

impl Answers {
    /// A cache of at most `budget` bytes keeping answers for `ttl`. With a
    /// budget or a time to live of zero it keeps nothing: every request is
    /// executed.
    pub(crate) fn new(budget: usize, ttl: Duration) -> Arc<Self> {
        Arc::new(Self {
            budget,
            ttl,
            inner: Mutex::default(),
        })
    }

    fn lock(&self) -> MutexGuard<'_, Inner> {
        self.inner.lock().unwrap_or_else(PoisonError::into_inner)
    }

    fn enabled(&self) -> bool {
        self.budget > 0 && !self.ttl.is_zero()
    }

    /// Claims the request `request_id` of `connection`, whose bytes have
    /// `digest`.
    pub(crate) fn claim(self: &Arc<Self>, connection: ConnectionId, request_id: &str, digest: u64) -> Claim {
        if !self.enabled() {
            return Claim::Execute(Ticket::untracked());
        }
        let now = Instant::now();
        let mut inner = self.lock();
        inner.evict(self.budget, self.ttl, now);
        let key = Key {
            connection,
            request_id: request_id.into(),
        };
        if let Some(slot) = inner.slots.get(&key)
            && slot.digest == digest
        {
            return match &slot.state {
                State::Running(receiver) => Claim::Running(receiver.clone()),
                State::Done { answer, delivered } => Claim::Done {
                    answer: answer.clone(),
                    delivered: *delivered,
                    receipt: Receipt(Some((self.clone(), key, slot.seq))),
                },
            };
        }
        // New, or another request under a reused id: it replaces the old one.
        let seq = inner.next_seq;
        inner.next_seq += 1;
        let (sender, receiver) = watch::channel(None);
        let slot = Slot {
            seq,
            digest,
            at: now,
            state: State::Running(receiver),
        };
        if let Some(old) = inner.slots.insert(key.clone(), slot) {
            inner.used = inner.used.saturating_sub(old.answer_len());
        }
        inner.used += key.cost();
        inner.order.push_back((key.clone(), seq));
        inner.evict(self.budget, self.ttl, now);
        Claim::Execute(Ticket {
            receipt: Receipt(Some((self.clone(), key, seq))),
            sender: Some(sender),
        })
    }

    /// Records the answer of claim `seq`, if it still holds the slot.
    fn done(&self, key: &Key, seq: u64, answer: &Bytes) {
        let mut inner = self.lock();
        let Some(slot) = inner.slots.get_mut(key).filter(|slot| slot.seq == seq) else {
            return;
        };
        slot.state = State::Done {
            answer: answer.clone(),
            delivered: false,
        };
        inner.used += answer.len();
        inner.evict(self.budget, self.ttl, Instant::now());
    }

    fn delivered(&self, key: &Key, seq: u64) {
        if let Some(slot) = self.lock().slots.get_mut(key).filter(|slot| slot.seq == seq)
            && let State::Done { delivered, .. } = &mut slot.state
        {
            *delivered = true;
        }
    }

    fn abandon(&self, key: &Key, seq: u64) {
        self.lock().remove(key, seq);
    }

    /// Entries kept (executing or executed).
    #[cfg(test)]
    fn len(&self) -> usize {
        self.lock().slots.len()
    }

    /// Bytes counted.
    #[cfg(test)]
    fn used(&self) -> usize {
        self.lock().used
    }
}

/// The right to execute a request. Dropped without [`done`](Self::done), it
/// lets a copy of the request waiting for it execute instead.
#[derive(Debug)]
pub(crate) struct Ticket {
    receipt: Receipt,
    sender: Option<watch::Sender<Option<Bytes>>>,
}

impl Ticket {
    fn untracked() -> Self {
        Self {
            receipt: Receipt(None),
            sender: None,
        }
    }

    /// Records the answer and hands it to the copies waiting for it.
    pub(crate) fn done(mut self, answer: &Bytes) -> Receipt {
        if let Some((answers, key, seq)) = &self.receipt.0 {
            answers.done(key, *seq, answer);
        }
        if let Some(sender) = self.sender.take() {
            sender.send_replace(Some(answer.clone()));
        }
        Receipt(self.receipt.0.take())
    }
}

impl Drop for Ticket {
    fn drop(&mut self) {
        if self.sender.is_some()
            && let Some((answers, key, seq)) = &self.receipt.0
        {
            answers.abandon(key, *seq);
        }
    }
}

/// Records that the broker confirmed publishing an answer.
#[derive(Debug)]
pub(crate) struct Receipt(Option<(Arc<Answers>, Key, u64)>);

impl Receipt {
    /// A receipt recording nothing.
    pub(crate) fn untracked() -> Self {
        Self(None)
    }

    /// The broker confirmed the answer: a redelivery of the request is not
    /// answered again.
    pub(crate) fn delivered(&self) {
        if let Some((answers, key, seq)) = &self.0 {
            answers.delivered(key, *seq);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const TTL: Duration = Duration::from_secs(60);

    fn execute(claim: Claim) -> Ticket {
        match claim {
            Claim::Execute(ticket) => ticket,
            other => panic!("expected Execute, got {other:?}"),
        }
    }

    fn done(claim: Claim) -> (Bytes, bool, Receipt) {
        match claim {
            Claim::Done {
                answer,
                delivered,
                receipt,
            } => (answer, delivered, receipt),
            other => panic!("expected Done, got {other:?}"),
        }
    }

    #[tokio::test]
    async fn a_request_received_again_reuses_its_answer() {
        let answers = Answers::new(1 << 20, TTL);
        let (a, b) = (ConnectionId::next(), ConnectionId::next());
        let payload = br#"{"controller":"server","action":"now","requestId":"r1"}"#;
        let digest = digest(payload);

        let ticket = execute(answers.claim(a, "r1", digest));
        // A copy arriving while it executes waits for its answer.
        let Claim::Running(mut running) = answers.claim(a, "r1", digest) else {
            panic!("expected Running");
        };
        let receipt = ticket.done(&Bytes::from_static(b"answer-1"));
        let waited = running.wait_for(Option::is_some).await.expect("answer");
        assert_eq!(waited.as_deref(), Some(&b"answer-1"[..]));

        let (answer, delivered, _) = done(answers.claim(a, "r1", digest));
        assert_eq!(&answer[..], b"answer-1");
        assert!(!delivered);
        receipt.delivered();
        let (_, delivered, _) = done(answers.claim(a, "r1", digest));
        assert!(delivered, "the broker confirmed the answer");

        // Another connection, another request under the same id: executed.
        drop(execute(answers.claim(b, "r1", digest)));
        let ticket = execute(answers.claim(a, "r1", digest ^ 1));
        ticket.done(&Bytes::from_static(b"answer-2"));
        let (answer, _, _) = done(answers.claim(a, "r1", digest ^ 1));
        assert_eq!(&answer[..], b"answer-2");
        assert!(matches!(answers.claim(a, "r1", digest), Claim::Execute(_)));
    }

    #[tokio::test]
    async fn an_abandoned_execution_lets_a_copy_execute() {
        let answers = Answers::new(1 << 20, TTL);
        let a = ConnectionId::next();
        let ticket = execute(answers.claim(a, "r", 7));
        let Claim::Running(mut running) = answers.claim(a, "r", 7) else {
            panic!("expected Running");
        };
        drop(ticket);
        assert!(running.wait_for(Option::is_some).await.is_err());
        assert_eq!(answers.len(), 0);
        drop(execute(answers.claim(a, "r", 7)));
    }

    #[test]
    fn answers_expire() {
        let answers = Answers::new(1 << 20, Duration::from_millis(30));
        let a = ConnectionId::next();
        execute(answers.claim(a, "r", 1)).done(&Bytes::from_static(b"x"));
        assert!(matches!(answers.claim(a, "r", 1), Claim::Done { .. }));
        std::thread::sleep(Duration::from_millis(40));
        drop(execute(answers.claim(a, "r", 1)));
        assert_eq!(answers.len(), 0, "expired, then abandoned");
    }

    #[test]
    fn memory_stays_within_the_budget() {
        let budget = 10 * (ENTRY_OVERHEAD + 4 + 100);
        let answers = Answers::new(budget, TTL);
        let a = ConnectionId::next();
        for n in 0..100 {
            let id = format!("r{n:03}");
            execute(answers.claim(a, &id, 1)).done(&Bytes::from(vec![b'x'; 100]));
            assert!(answers.used() <= budget, "{} > {budget}", answers.used());
        }
        assert_eq!(answers.len(), 10);
        // The oldest went first.
        assert!(matches!(answers.claim(a, "r099", 1), Claim::Done { .. }));
        assert!(matches!(answers.claim(a, "r000", 1), Claim::Execute(_)));

        // An answer larger than the budget is not kept.
        execute(answers.claim(a, "big", 1)).done(&Bytes::from(vec![b'x'; budget]));
        assert!(answers.used() <= budget);
        assert!(matches!(answers.claim(a, "big", 1), Claim::Execute(_)));
    }

    #[test]
    fn nothing_is_kept_without_a_budget_or_a_time_to_live() {
        for answers in [Answers::new(0, TTL), Answers::new(1 << 20, Duration::ZERO)] {
            let a = ConnectionId::next();
            execute(answers.claim(a, "r", 1)).done(&Bytes::from_static(b"x"));
            assert!(matches!(answers.claim(a, "r", 1), Claim::Execute(_)));
            assert_eq!(answers.len(), 0);
        }
    }
}
