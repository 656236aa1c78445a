//! Password checks for logins, bounded in number and in memory.
//!
//! One Argon2id verification takes about 19 MiB. Run one per request, a
//! burst of anonymous logins takes as much memory as it likes, and the
//! allocator keeps most of it afterwards. Here a fixed number of checks run
//! at once, each in a work area that is kept for the next check, and a login
//! that finds every slot busy is turned away at once instead of queueing.

use std::sync::{Arc, Mutex};

use argon2::Block;
use tokio::sync::{OwnedSemaphorePermit, Semaphore};

use crate::domain::{hash_password, random_token, verify_password_in, PasswordError};

type WorkAreas = Arc<Mutex<Vec<Vec<Block>>>>;

pub struct PasswordChecks {
    permits: Arc<Semaphore>,
    areas: WorkAreas,
    /// Checked against when the address is unknown, so that an unknown
    /// address takes as long to refuse as a wrong password.
    stand_in_hash: String,
}

/// The right to run one check now.
pub struct CheckSlot {
    permit: OwnedSemaphorePermit,
    areas: WorkAreas,
    stand_in_hash: String,
}

impl PasswordChecks {
    /// Allows `concurrency` checks at once (at least one).
    pub fn new(concurrency: usize) -> Result<Self, PasswordError> {
        let concurrency = concurrency.max(1);
        Ok(PasswordChecks {
            permits: Arc::new(Semaphore::new(concurrency)),
            areas: Arc::new(Mutex::new(Vec::with_capacity(concurrency))),
            stand_in_hash: hash_password(&random_token())?,
        })
    }

    /// A slot, or `None` when every slot is busy.
    pub fn try_slot(&self) -> Option<CheckSlot> {
        let permit = self.permits.clone().try_acquire_owned().ok()?;
        Some(CheckSlot {
            permit,
            areas: self.areas.clone(),
            stand_in_hash: self.stand_in_hash.clone(),
        })
    }
}

impl CheckSlot {
    /// Whether `password` matches `hash`; with no hash (unknown address)
    /// the same work is done and the answer is no. The slot stays taken
    /// until the computation ends, even if the request is abandoned.
    pub async fn verify(self, password: String, hash: Option<String>) -> bool {
        let CheckSlot {
            permit,
            areas,
            stand_in_hash,
        } = self;
        let known = hash.is_some();
        let hash = hash.unwrap_or(stand_in_hash);
        let checked = tokio::task::spawn_blocking(move || {
            let mut area = areas
                .lock()
                .unwrap_or_else(|e| e.into_inner())
                .pop()
                .unwrap_or_default();
            let ok = verify_password_in(&password, &hash, &mut area);
            areas.lock().unwrap_or_else(|e| e.into_inner()).push(area);
            drop(permit);
            ok
        })
        .await;
        match checked {
            Ok(ok) => ok && known,
            Err(e) => {
                tracing::error!(error = %e, "a password check failed to run");
                false
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn slots_are_bounded_and_returned() {
        let checks = PasswordChecks::new(1).unwrap();
        let hash = hash_password("a long enough password").unwrap();
        let slot = checks.try_slot().expect("a free slot");
        assert!(checks.try_slot().is_none(), "only one at a time");
        assert!(
            slot.verify("a long enough password".into(), Some(hash.clone()))
                .await
        );
        let slot = checks.try_slot().expect("the slot is back");
        assert!(!slot.verify("a long enough password".into(), None).await);
        assert_eq!(
            checks.areas.lock().unwrap().len(),
            1,
            "one work area, reused"
        );
    }
}
