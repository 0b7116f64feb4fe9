//! Each list's readers by state and its growth per day, as the triggers of
//! migration 000016 keep them: a few dozen rows to read at any size. On
//! PostgreSQL the triggers append changes that `fold` adds to the tallies
//! now and then; a read adds whatever is not folded yet, in one statement
//! (one snapshot), so it never counts a change twice or misses one.

use diesel::prelude::*;
use diesel::sql_types::Bool;

use super::schema::{list_day_changes, list_days, list_tallies, list_tally_changes};
use super::{AnyConn, Store, StoreResult};

/// Readers of one list in one state.
#[derive(Debug, Clone, PartialEq, Eq, Queryable)]
pub struct StateTally {
    pub list_id: i64,
    pub status: String,
    pub readers: i64,
}

/// Confirmations and unsubscribes of one list on one UTC day (`YYYY-MM-DD`).
#[derive(Debug, Clone, PartialEq, Eq, Queryable)]
pub struct DayTally {
    pub list_id: i64,
    pub day: String,
    pub confirmed: i64,
    pub unsubscribed: i64,
}

per_backend! {
    /// Every list's readers by state, with the changes not yet folded in
    /// (several rows per list and state; the caller adds them up).
    pub(crate) fn states(c: &mut Conn) -> QueryResult<Vec<StateTally>> {
        list_tallies::table
            .select((list_tallies::list_id, list_tallies::status, list_tallies::readers))
            .union_all(list_tally_changes::table.select((
                list_tally_changes::list_id,
                list_tally_changes::status,
                list_tally_changes::readers,
            )))
            .load(c)
    }

    /// Each list's growth on the days from `since` (`YYYY-MM-DD`), with the
    /// changes not yet folded in (the caller adds them up).
    pub(crate) fn days(c: &mut Conn, since: &str) -> QueryResult<Vec<DayTally>> {
        list_days::table
            .filter(list_days::day.ge(since))
            .select((list_days::list_id, list_days::day, list_days::confirmed, list_days::unsubscribed))
            .union_all(
                list_day_changes::table
                    .filter(list_day_changes::day.ge(since))
                    .select((
                        list_day_changes::list_id,
                        list_day_changes::day,
                        list_day_changes::confirmed,
                        list_day_changes::unsubscribed,
                    )),
            )
            .load(c)
    }
}

#[derive(QueryableByName)]
struct Locked {
    #[diesel(sql_type = Bool)]
    locked: bool,
}

/// Moves PostgreSQL's appended changes into the tallies. One process folds
/// at a time (an advisory lock; the others skip their turn), so two folds
/// never update the same tally rows in opposite orders. A change appended
/// meanwhile is not visible to the `DELETE` and waits for the next fold.
fn fold_pg(c: &mut PgConnection) -> QueryResult<()> {
    c.transaction(|c| {
        let Locked { locked } =
            diesel::sql_query("SELECT pg_try_advisory_xact_lock(7163552) AS locked").get_result(c)?;
        if !locked {
            return Ok(());
        }
        diesel::sql_query(
            "WITH moved AS (DELETE FROM list_tally_changes RETURNING list_id, status, readers) \
             INSERT INTO list_tallies (list_id, status, readers) \
             SELECT list_id, status, SUM(readers) FROM moved GROUP BY list_id, status \
             ON CONFLICT (list_id, status) DO UPDATE SET readers = list_tallies.readers + EXCLUDED.readers",
        )
        .execute(c)?;
        diesel::sql_query(
            "WITH moved AS (DELETE FROM list_day_changes RETURNING list_id, day, confirmed, unsubscribed) \
             INSERT INTO list_days (list_id, day, confirmed, unsubscribed) \
             SELECT list_id, day, SUM(confirmed), SUM(unsubscribed) FROM moved GROUP BY list_id, day \
             ON CONFLICT (list_id, day) DO UPDATE SET confirmed = list_days.confirmed + EXCLUDED.confirmed, \
             unsubscribed = list_days.unsubscribed + EXCLUDED.unsubscribed",
        )
        .execute(c)?;
        Ok(())
    })
}

impl Store {
    /// Folds the changes PostgreSQL's triggers appended into the tallies
    /// (SQLite's triggers update them in place: nothing to do).
    pub async fn fold_tallies(&self) -> StoreResult<()> {
        if self.backend_name() == "sqlite" {
            return Ok(());
        }
        self.write(|conn| {
            if let AnyConn::Pg(c) = conn {
                fold_pg(c)?;
            }
            Ok(())
        })
        .await
    }
}
