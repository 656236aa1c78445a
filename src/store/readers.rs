//! The editors' view of their readers: finding them, growth over the weeks,
//! and erasing one on request.

use sqlx::Row;

use super::subscribers::{subscriber_from_row, SUBSCRIBER_COLUMNS};
use super::{Backend, Store, StoreError, Subscriber};
use crate::bounces::SuppressionReason;
use crate::domain::{DeliveryState, SubscriberStatus};

/// What the readers page asks for.
#[derive(Debug, Clone, Default)]
pub struct ReaderQuery {
    /// Part of an address, matched without regard to case.
    pub address: Option<String>,
    pub status: Option<SubscriberStatus>,
    /// Only readers whose address is suppressed for this reason.
    pub suppressed: Option<SuppressionReason>,
    pub limit: i64,
    pub offset: i64,
    /// Only readers older than this one (by row id): a page that follows
    /// the last one read, unmoved by readers added meanwhile. Taken only
    /// where readers are listed newest first by id (no address search).
    pub before: Option<i64>,
}

/// One page of readers and how many match in all.
#[derive(Debug, Clone)]
pub struct ReaderPage {
    pub readers: Vec<Subscriber>,
    /// Matches counted; for a search, at most `SEARCH_COUNT_LIMIT`.
    pub matching: i64,
    /// Whether more match than were counted.
    pub more: bool,
}

/// A search counts this many matches at most: past that, "more than" is
/// all an editor needs, and counting on would read the whole list.
pub const SEARCH_COUNT_LIMIT: i64 = 10_000;

/// Sign-ups, confirmations and departures in one week.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, serde::Serialize)]
pub struct WeekGrowth {
    /// Start of the week, Unix milliseconds.
    pub start: i64,
    pub signed_up: i64,
    pub confirmed: i64,
    pub unsubscribed: i64,
}

const DAY_MS: i64 = 24 * 60 * 60 * 1000;

/// `%`, `_` and the escape character itself would be wildcards in LIKE.
fn like_pattern(fragment: &str) -> String {
    let mut pattern = String::with_capacity(fragment.len() + 2);
    pattern.push('%');
    for c in fragment.to_lowercase().chars() {
        if matches!(c, '%' | '_' | '\\') {
            pattern.push('\\');
        }
        pattern.push(c);
    }
    pattern.push('%');
    pattern
}

/// Characters in a search fragment before the address index can serve it:
/// the index holds every three-letter piece of each address.
const INDEXED_FRAGMENT: usize = 3;

/// The readers a query can match, as a `from` clause and its conditions,
/// with the values to bind in order. Only the filters asked for appear, so
/// each statement can use the index that fits it.
struct ReaderFilter {
    from: String,
    conditions: Vec<String>,
    binds: Vec<String>,
    /// The column that orders readers newest first.
    order: &'static str,
}

impl ReaderFilter {
    fn new(backend: Backend, query: &ReaderQuery) -> ReaderFilter {
        let mut filter = ReaderFilter {
            from: "subscribers".into(),
            conditions: Vec::new(),
            binds: Vec::new(),
            order: "id",
        };
        if let Some(fragment) = query.address.as_deref() {
            let fragment = fragment.to_lowercase();
            // On SQLite the trigram table finds candidates, in the order of
            // their ids, and the exact condition below keeps only true
            // matches (the table's own LIKE takes `%` and `_` as wildcards,
            // so it finds a superset). PostgreSQL's trigram index serves the
            // exact condition directly.
            if backend == Backend::Sqlite && fragment.chars().count() >= INDEXED_FRAGMENT {
                let n = filter.bind(format!("%{fragment}%"));
                filter.from = format!(
                    "(select rowid as found from subscriber_search where email like ${n}) \
                     as candidates join subscribers on subscribers.id = candidates.found"
                );
                filter.order = "candidates.found";
            }
            let n = filter.bind(like_pattern(&fragment));
            filter
                .conditions
                .push(format!("lower(email) like ${n} escape '\\'"));
        }
        if let Some(status) = query.status {
            let n = filter.bind(status.as_str().to_string());
            filter.conditions.push(format!("status = ${n}"));
        }
        if let Some(reason) = query.suppressed {
            let n = filter.bind(reason.as_str().to_string());
            filter.conditions.push(format!(
                "exists (select 1 from suppressions s \
                 where s.email = lower(subscribers.email) and s.reason = ${n})"
            ));
        }
        filter
    }

    /// Binds `value`, returning its placeholder number.
    fn bind(&mut self, value: String) -> usize {
        self.binds.push(value);
        self.binds.len()
    }

    fn searches(&self) -> bool {
        !self.conditions.is_empty()
    }

    /// `from … where …`, followed by the placeholder number free next.
    fn clause(&self) -> (String, usize) {
        let mut clause = format!("from {}", self.from);
        if !self.conditions.is_empty() {
            clause.push_str(" where ");
            clause.push_str(&self.conditions.join(" and "));
        }
        (clause, self.binds.len() + 1)
    }

    fn query<'q>(
        &'q self,
        sql: &'q str,
    ) -> sqlx::query::Query<'q, sqlx::Any, sqlx::any::AnyArguments<'q>> {
        self.binds
            .iter()
            .fold(sqlx::query(sql), |q, value| q.bind(value.as_str()))
    }
}

/// The deliveries to reader `$1`. Their reports and their other mail are
/// indexed apart (migration 0024), so each is reached through its own index.
pub(super) const READER_DELIVERIES: [&str; 2] = [
    "kind = 'report' and report_id in (select report_id from sends) and subscriber_id = $1",
    "kind <> 'report' and subscriber_id = $1",
];

impl Store {
    /// Readers matching `query`, newest first.
    pub async fn find_readers(&self, query: &ReaderQuery) -> Result<ReaderPage, StoreError> {
        let filter = ReaderFilter::new(self.backend, query);
        let (clause, next) = filter.clause();
        // The count and the page are read at once, on two connections: a
        // search through the address index costs each of them one pass
        // over the index, and side by side the page waits for one.
        let counting = async {
            if filter.searches() {
                let sql =
                    format!("select count(*) as n from (select 1 {clause} limit ${next}) as found");
                let counted: i64 = filter
                    .query(&sql)
                    .bind(SEARCH_COUNT_LIMIT + 1)
                    .fetch_one(&self.read)
                    .await?
                    .try_get("n")?;
                Ok::<_, StoreError>((
                    counted.min(SEARCH_COUNT_LIMIT),
                    counted > SEARCH_COUNT_LIMIT,
                ))
            } else {
                // Without a search the counts are kept per status.
                Ok((self.count_readers(query.status).await?, false))
            }
        };
        // The count is of every match; only the page starts after `before`.
        let before = query.before.filter(|_| filter.order == "id");
        let (page_clause, next) = match before {
            Some(_) => {
                let joiner = if filter.searches() { "and" } else { "where" };
                (format!("{clause} {joiner} id < ${next}"), next + 1)
            }
            None => (clause.clone(), next),
        };
        let sql = format!(
            "select {SUBSCRIBER_COLUMNS} {page_clause} order by {order} desc limit ${next} offset ${after}",
            order = filter.order,
            after = next + 1,
        );
        let paging = async {
            let mut page = filter.query(&sql);
            if let Some(before) = before {
                page = page.bind(before);
            }
            page.bind(query.limit)
                .bind(query.offset)
                .fetch_all(&self.read)
                .await
                .map_err(StoreError::from)
        };
        let ((matching, more), rows) = tokio::try_join!(counting, paging)?;
        let ids = self.reader_ids().await?;
        let readers = rows
            .iter()
            .map(|row| subscriber_from_row(ids, row))
            .collect::<Result<_, _>>()?;
        Ok(ReaderPage {
            readers,
            matching,
            more,
        })
    }

    /// Sign-ups, confirmations and departures in each of the `weeks` weeks
    /// that end with the UTC day of `now`, oldest first. Read from the
    /// counts kept per day, so a million readers cost what a hundred do.
    pub async fn reader_growth(&self, weeks: i64, now: i64) -> Result<Vec<WeekGrowth>, StoreError> {
        let end_day = now.div_euclid(DAY_MS) + 1;
        let first_day = end_day - weeks * 7;
        let mut growth: Vec<WeekGrowth> = (0..weeks)
            .map(|w| WeekGrowth {
                start: (first_day + w * 7) * DAY_MS,
                ..WeekGrowth::default()
            })
            .collect();
        let days: Vec<(i64, i64, i64, i64)> = sqlx::query_as(
            "select day, signed_up, confirmed, unsubscribed from reader_days \
             where day >= $1 and day < $2",
        )
        .bind(first_day)
        .bind(end_day)
        .fetch_all(&self.read)
        .await?;
        for (day, signed_up, confirmed, unsubscribed) in days {
            let Some(week) = usize::try_from((day - first_day) / 7)
                .ok()
                .and_then(|w| growth.get_mut(w))
            else {
                continue;
            };
            week.signed_up += signed_up;
            week.confirmed += confirmed;
            week.unsubscribed += unsubscribed;
        }
        Ok(growth)
    }

    /// Erases a reader: the address and name go, deliveries keep their
    /// counts but lose the address, queued ones are skipped, and votes stay
    /// counted without anything that leads back to the person. Returns
    /// false for an unknown id.
    pub async fn delete_reader(&self, id: i64) -> Result<bool, StoreError> {
        let mut tx = self.begin_write().await?;
        for deliveries in READER_DELIVERIES {
            sqlx::query(&format!(
                "update outbox set status = case when status in ($2, $3) then $4 else status end, \
                 last_error = case when status in ($2, $3) \
                 then 'the reader was deleted' else last_error end, \
                 recipient = 'deleted reader', seed = null, subscriber_id = null \
                 where {deliveries}"
            ))
            .bind(id)
            .bind(DeliveryState::Queued)
            .bind(DeliveryState::Paused)
            .bind(DeliveryState::Skipped)
            .execute(&mut *tx)
            .await?;
        }
        // Bounces and complaints name the address, and the messages they
        // came in quote it: both lose it (a report about several readers
        // loses its text for all of them). The suppression stays, so the
        // address is not mailed again if someone signs it up.
        let theirs =
            "subscriber_id = $1 or recipient = (select email from subscribers where id = $1)";
        sqlx::query(&format!(
            "update bounce_messages set raw = '', truncated = 1 \
             where id in (select message_id from bounces where {theirs})"
        ))
        .bind(id)
        .execute(&mut *tx)
        .await?;
        sqlx::query(&format!(
            "update bounces set recipient = 'deleted reader', diagnostic = '', \
             subscriber_id = null where {theirs}"
        ))
        .bind(id)
        .execute(&mut *tx)
        .await?;
        // Ids are never reused, so a vote's id points at nobody once the
        // reader is gone; the comment may name the person, so it goes too.
        sqlx::query("update votes set comment = null where subscriber_id = $1")
            .bind(id)
            .execute(&mut *tx)
            .await?;
        let deleted = sqlx::query("delete from subscribers where id = $1")
            .bind(id)
            .execute(&mut *tx)
            .await?
            .rows_affected();
        tx.commit().await?;
        Ok(deleted == 1)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn wildcards_in_a_search_are_taken_literally() {
        assert_eq!(like_pattern("A_b%c"), "%a\\_b\\%c%");
        assert_eq!(like_pattern("x\\y"), "%x\\\\y%");
    }
}
