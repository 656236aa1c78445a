//! The rows a worker holds: claimed, and not yet recorded or handed back.
//!
//! The database has no index from a worker to its leased rows, because one
//! would make every claim write to it. The worker keeps their ids instead,
//! to renew and hand back their leases, and publishes how many of each
//! report's deliveries it holds, which is what a send's progress shows as
//! in flight.

use std::collections::{BTreeMap, HashMap};
use std::sync::{Arc, Mutex};

use crate::store::{ClaimedJob, JobKind};

#[derive(Clone, Default)]
pub(super) struct Holdings {
    rows: Arc<Mutex<HashMap<i64, Held>>>,
}

struct Held {
    /// The report of a report delivery.
    report: Option<i64>,
    /// Claims not let go yet: a row retried at once can be claimed again
    /// before its outcome's writer lets go of the claim before.
    claims: u32,
}

impl Holdings {
    fn rows(&self) -> std::sync::MutexGuard<'_, HashMap<i64, Held>> {
        self.rows.lock().expect("not poisoned")
    }

    /// Rows just claimed.
    pub fn take(&self, jobs: &[ClaimedJob]) {
        let mut rows = self.rows();
        for job in jobs {
            let report = (job.kind == JobKind::Report)
                .then_some(job.report_id)
                .flatten();
            rows.entry(job.id)
                .and_modify(|held| held.claims += 1)
                .or_insert(Held { report, claims: 1 });
        }
    }

    /// Claims recorded or handed back, one each.
    pub fn let_go(&self, ids: impl IntoIterator<Item = i64>) {
        let mut rows = self.rows();
        for id in ids {
            if let Some(held) = rows.get_mut(&id) {
                held.claims -= 1;
                if held.claims == 0 {
                    rows.remove(&id);
                }
            }
        }
    }

    /// Forgets every claim on these rows (the run is over).
    pub fn forget(&self, ids: &[i64]) {
        let mut rows = self.rows();
        for id in ids {
            rows.remove(id);
        }
    }

    /// Every row held, in id order.
    pub fn ids(&self) -> Vec<i64> {
        let mut ids: Vec<i64> = self.rows().keys().copied().collect();
        ids.sort_unstable();
        ids
    }

    /// How many deliveries of each report are held, by report.
    pub fn by_report(&self) -> Vec<(i64, i64)> {
        let mut counts = BTreeMap::new();
        for report in self.rows().values().filter_map(|held| held.report) {
            *counts.entry(report).or_insert(0) += 1;
        }
        counts.into_iter().collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn job(id: i64, kind: JobKind, report_id: Option<i64>) -> ClaimedJob {
        ClaimedJob {
            id,
            kind,
            subscriber_id: Some(id),
            report_id,
            report_revision: report_id.map(|_| 1),
            recipient: format!("r{id}@example.com"),
            seed: None,
            attempts: 1,
            subscriber_name: None,
            subscriber_public_id: None,
            subscriber_status: None,
            suppressed: None,
        }
    }

    #[test]
    fn counts_report_deliveries_until_they_are_let_go() {
        let held = Holdings::default();
        held.take(&[
            job(3, JobKind::Report, Some(7)),
            job(1, JobKind::Report, Some(7)),
            job(2, JobKind::Confirmation, None),
            // A test copy names its report but is no delivery of the send.
            job(4, JobKind::Test, Some(7)),
            job(5, JobKind::Report, Some(9)),
        ]);
        assert_eq!(held.ids(), vec![1, 2, 3, 4, 5]);
        assert_eq!(held.by_report(), vec![(7, 2), (9, 1)]);
        held.let_go([1, 2, 9]);
        assert_eq!(held.ids(), vec![3, 4, 5]);
        assert_eq!(held.by_report(), vec![(7, 1), (9, 1)]);
        held.let_go([3, 4, 5]);
        assert!(held.ids().is_empty());
        assert!(held.by_report().is_empty());
    }

    /// A row retried at once is claimed again before the writer of its
    /// first outcome lets go: the second claim still holds it.
    #[test]
    fn a_row_claimed_again_stays_held_until_both_claims_end() {
        let held = Holdings::default();
        held.take(&[job(1, JobKind::Report, Some(7))]);
        held.take(&[job(1, JobKind::Report, Some(7))]);
        held.let_go([1]);
        assert_eq!(held.ids(), vec![1]);
        assert_eq!(held.by_report(), vec![(7, 1)]);
        held.let_go([1]);
        assert!(held.ids().is_empty());
        held.take(&[job(1, JobKind::Report, Some(7))]);
        held.take(&[job(1, JobKind::Report, Some(7))]);
        held.forget(&[1]);
        assert!(held.ids().is_empty());
    }
}
