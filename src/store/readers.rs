//! The editors' view of their readers: finding them, growth over the weeks,
//! and erasing one on request.

use sqlx::Row;

use super::subscribers::{subscriber_from_row, SUBSCRIBER_COLUMNS};
use super::{Store, StoreError, Subscriber};
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

pub const WEEK_MS: i64 = 7 * 24 * 60 * 60 * 1000;

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

impl Store {
    /// Readers matching `query`, newest first.
    pub async fn find_readers(&self, query: &ReaderQuery) -> Result<ReaderPage, StoreError> {
        // Both filters are always bound; a null one matches everything, so
        // the statement text stays the same.
        let pattern = query.address.as_deref().map(like_pattern);
        let status = query.status.map(SubscriberStatus::as_str);
        let suppressed = query.suppressed.map(SuppressionReason::as_str);
        let filter = "($1 is null or lower(email) like $1 escape '\\') \
                      and ($2 is null or status = $2) \
                      and ($3 is null or exists (select 1 from suppressions s \
                      where s.email = lower(subscribers.email) and s.reason = $3))";
        let (matching, more) = match (&pattern, suppressed) {
            // Without a search the counts are kept per status.
            (None, None) => (self.count_readers(query.status).await?, false),
            _ => {
                let counted: i64 = sqlx::query_scalar(&format!(
                    "select count(*) from (select 1 from subscribers where {filter} limit $4) as found"
                ))
                .bind(pattern.as_deref())
                .bind(status)
                .bind(suppressed)
                .bind(SEARCH_COUNT_LIMIT + 1)
                .fetch_one(&self.read)
                .await?;
                (
                    counted.min(SEARCH_COUNT_LIMIT),
                    counted > SEARCH_COUNT_LIMIT,
                )
            }
        };
        let sql = format!(
            "select {SUBSCRIBER_COLUMNS} from subscribers where {filter} \
             order by id desc limit $4 offset $5"
        );
        let rows = sqlx::query(&sql)
            .bind(pattern.as_deref())
            .bind(status)
            .bind(suppressed)
            .bind(query.limit)
            .bind(query.offset)
            .fetch_all(&self.read)
            .await?;
        let readers = rows
            .iter()
            .map(subscriber_from_row)
            .collect::<Result<_, _>>()?;
        Ok(ReaderPage {
            readers,
            matching,
            more,
        })
    }

    /// Sign-ups, confirmations and departures in each of the `weeks` weeks
    /// ending at `now`, oldest first.
    pub async fn reader_growth(&self, weeks: i64, now: i64) -> Result<Vec<WeekGrowth>, StoreError> {
        let first = now - weeks * WEEK_MS;
        let mut growth: Vec<WeekGrowth> = (0..weeks)
            .map(|w| WeekGrowth {
                start: first + w * WEEK_MS,
                ..WeekGrowth::default()
            })
            .collect();
        for column in ["created_at", "confirmed_at", "unsubscribed_at"] {
            // Integer division buckets the times into weeks on both backends.
            let sql = format!(
                "select ({column} - $1) / $2 as week, count(*) as n from subscribers \
                 where {column} >= $1 and {column} < $3 group by ({column} - $1) / $2"
            );
            let rows = sqlx::query(&sql)
                .bind(first)
                .bind(WEEK_MS)
                .bind(now)
                .fetch_all(&self.read)
                .await?;
            for row in rows {
                let week: i64 = row.try_get("week")?;
                let n: i64 = row.try_get("n")?;
                let Some(slot) = usize::try_from(week).ok().and_then(|w| growth.get_mut(w)) else {
                    continue;
                };
                match column {
                    "created_at" => slot.signed_up = n,
                    "confirmed_at" => slot.confirmed = n,
                    _ => slot.unsubscribed = n,
                }
            }
        }
        Ok(growth)
    }

    /// Erases a reader: the address and name go, deliveries keep their
    /// counts but lose the address, queued ones are skipped, and votes stay
    /// counted without anything that leads back to the person. Returns
    /// false for an unknown id.
    pub async fn delete_reader(&self, id: i64) -> Result<bool, StoreError> {
        let mut tx = self.write.begin().await?;
        sqlx::query(
            "update outbox set status = case when status in ($2, $3) then $4 else status end, \
             last_error = case when status in ($2, $3) \
             then 'the reader was deleted' else last_error end, \
             recipient = 'deleted reader', seed = null where subscriber_id = $1",
        )
        .bind(id)
        .bind(DeliveryState::Queued)
        .bind(DeliveryState::Paused)
        .bind(DeliveryState::Skipped)
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
