//! What the dashboard's overview shows: each list's readers by state, and
//! its growth per day. The figures come from the tallies (migration 000016)
//! and the few suppressed readers (a partial index), so the page costs the
//! same at a million readers.

use chrono::NaiveDate;
use diesel::dsl::count_star;
use diesel::prelude::*;

use super::lists::ListCounts;
use super::schema::{subscribers, subscriptions};
use super::{Store, StoreResult};

/// One list's readers by state. `suppressed` counts readers whose address
/// is suppressed, whatever their subscription's state.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ListOverview {
    pub counts: ListCounts,
    pub suppressed: i64,
    /// Per day, oldest first, every day of the window (zeros included).
    pub growth: Vec<DayGrowth>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct DayGrowth {
    pub day: NaiveDate,
    pub confirmed: i64,
    pub unsubscribed: i64,
}

per_backend! {
    pub(crate) fn overview(c: &mut Conn, since: NaiveDate, until: NaiveDate) -> QueryResult<Vec<ListOverview>> {
        // From the few suppressed readers to their subscriptions (a join
        // the other way round reads every subscription).
        let suppressed_readers = subscribers::table.filter(subscribers::suppressed_at.is_not_null()).select(subscribers::id);
        let suppressed: Vec<(i64, i64)> = subscriptions::table
            .filter(subscriptions::subscriber_id.eq_any(suppressed_readers))
            .group_by(subscriptions::list_id)
            .select((subscriptions::list_id, count_star()))
            .load(c)?;
        let days = tallies_sql::days(c, &day_key(since))?;
        let mut lists = Vec::new();
        for (list, counts) in lists_sql::counts_by_id(c)? {
            let growth = since
                .iter_days()
                .take_while(|d| *d <= until)
                .map(|day| {
                    let key = day_key(day);
                    let on_day = days.iter().filter(|t| t.list_id == list && t.day == key);
                    let (confirmed, unsubscribed) =
                        on_day.fold((0, 0), |(sum_c, sum_u), t| (sum_c + t.confirmed, sum_u + t.unsubscribed));
                    DayGrowth { day, confirmed, unsubscribed }
                })
                .collect();
            let suppressed = suppressed.iter().find(|(id, _)| *id == list).map_or(0, |(_, n)| *n);
            lists.push(ListOverview { counts, suppressed, growth });
        }
        Ok(lists)
    }
}

/// A day as the tallies spell it.
fn day_key(day: NaiveDate) -> String {
    day.format("%Y-%m-%d").to_string()
}

impl Store {
    /// Every list's counts and its growth per day from `since` to `until`
    /// (UTC days, both included).
    pub async fn overview(&self, since: NaiveDate, until: NaiveDate) -> StoreResult<Vec<ListOverview>> {
        self.read(move |conn| Ok(on_backend!(conn, self::overview(since, until))?)).await
    }
}
