//! What the dashboard's overview shows: each list's readers by state, and
//! its growth per day. Every figure is an indexed count or range (see
//! migration 000014), so the page costs the same at a million readers.

use chrono::{NaiveDate, NaiveDateTime};
use diesel::dsl::{count_star, sql};
use diesel::prelude::*;
use diesel::sql_types::Text;

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
    /// Subscriptions of `list_id` whose `column` falls on each day since
    /// `since`, as (day, count).
    fn per_day(c: &mut Conn, list_id: i64, confirmed: bool, since: NaiveDateTime) -> QueryResult<Vec<(String, i64)>> {
        if confirmed {
            let day = day_of("confirmed_at");
            subscriptions::table
                .filter(subscriptions::list_id.eq(list_id))
                .filter(subscriptions::confirmed_at.ge(since))
                .group_by(sql::<Text>(&day))
                .select((sql::<Text>(&day), count_star()))
                .load(c)
        } else {
            let day = day_of("unsubscribed_at");
            subscriptions::table
                .filter(subscriptions::list_id.eq(list_id))
                .filter(subscriptions::unsubscribed_at.ge(since))
                .group_by(sql::<Text>(&day))
                .select((sql::<Text>(&day), count_star()))
                .load(c)
        }
    }

    pub(crate) fn overview(c: &mut Conn, since: NaiveDate, until: NaiveDate) -> QueryResult<Vec<ListOverview>> {
        // From the few suppressed readers to their subscriptions (a join
        // the other way round reads every subscription).
        let suppressed_readers = subscribers::table.filter(subscribers::suppressed_at.is_not_null()).select(subscribers::id);
        let suppressed: Vec<(i64, i64)> = subscriptions::table
            .filter(subscriptions::subscriber_id.eq_any(suppressed_readers))
            .group_by(subscriptions::list_id)
            .select((subscriptions::list_id, count_star()))
            .load(c)?;
        let start = since.and_hms_opt(0, 0, 0).unwrap_or_default();
        let mut lists = Vec::new();
        for (list, counts) in lists_sql::counts_by_id(c)? {
            let confirmed = per_day(c, list, true, start)?;
            let unsubscribed = per_day(c, list, false, start)?;
            let on = |rows: &[(String, i64)], day: NaiveDate| {
                let key = day.format("%Y-%m-%d").to_string();
                rows.iter().find(|(d, _)| *d == key).map_or(0, |(_, n)| *n)
            };
            let growth = since
                .iter_days()
                .take_while(|d| *d <= until)
                .map(|day| DayGrowth { day, confirmed: on(&confirmed, day), unsubscribed: on(&unsubscribed, day) })
                .collect();
            let suppressed = suppressed.iter().find(|(id, _)| *id == list).map_or(0, |(_, n)| *n);
            lists.push(ListOverview { counts, suppressed, growth });
        }
        Ok(lists)
    }
}

impl Store {
    /// Every list's counts and its growth per day from `since` to `until`
    /// (UTC days, both included).
    pub async fn overview(&self, since: NaiveDate, until: NaiveDate) -> StoreResult<Vec<ListOverview>> {
        self.read(move |conn| Ok(on_backend!(conn, self::overview(since, until))?)).await
    }
}
