//! What differs between the backends, kept to the few helpers the shared query
//! code calls by the same name on each.

pub(crate) mod sqlite {
    use chrono::NaiveDateTime;
    use diesel::prelude::*;
    use diesel::result::Error;

    use crate::domain::DeliveryStatus;
    use crate::store::schema::{deliveries, outbox};

    pub(crate) type Conn = diesel::SqliteConnection;

    /// Reader search through an FTS5 trigram table (migration 000015): the query, binding the
    /// `%needle%` pattern and the limit.
    pub(crate) const SEARCH_BY_TRIGRAMS: Option<&str> = Some(
        "SELECT s.id, s.email, s.name FROM subscribers s WHERE s.id IN (SELECT rowid FROM subscriber_search WHERE email LIKE ?) ORDER BY s.id LIMIT ?",
    );

    /// The other table families' query code for this backend.
    pub(crate) use crate::store::deliveries::sqlite as deliveries_sql;
    pub(crate) use crate::store::digests::sqlite as digests_sql;
    pub(crate) use crate::store::lists::sqlite as lists_sql;
    pub(crate) use crate::store::posts::sqlite as posts_sql;
    pub(crate) use crate::store::preferences::sqlite as preferences_sql;
    pub(crate) use crate::store::signups::sqlite as signups_sql;
    pub(crate) use crate::store::subscriptions::sqlite as subscriptions_sql;
    pub(crate) use crate::store::suppressions::sqlite as suppressions_sql;
    pub(crate) use crate::store::tallies::sqlite as tallies_sql;

    /// `BEGIN IMMEDIATE` takes the write lock up front, so a transaction that
    /// reads then writes can never fail half-way with "database is locked".
    pub(crate) fn write_tx<T, E>(c: &mut Conn, f: impl FnOnce(&mut Conn) -> Result<T, E>) -> Result<T, E>
    where
        E: From<Error>,
    {
        c.immediate_transaction(f)
    }

    pub(crate) fn lock_list(_c: &mut Conn, _id: i64) -> Result<(), Error> {
        Ok(())
    }

    pub(crate) fn lock_digest(_c: &mut Conn, _id: i64) -> Result<(), Error> {
        Ok(())
    }

    /// SQLite's `synchronous = NORMAL` already commits without waiting for
    /// the disk.
    pub(crate) fn relaxed_commit(_c: &mut Conn) -> Result<(), Error> {
        Ok(())
    }

    pub(crate) fn due_delivery_ids(
        c: &mut Conn,
        now: NaiveDateTime,
        limit: i64,
        digests: &[i64],
    ) -> Result<Vec<i64>, Error> {
        deliveries::table
            .filter(deliveries::status.eq(DeliveryStatus::Pending.as_str()))
            .filter(deliveries::digest_id.eq_any(digests))
            .filter(deliveries::next_attempt_at.le(now))
            .filter(deliveries::leased_until.is_null().or(deliveries::leased_until.le(now)))
            .order(deliveries::next_attempt_at)
            .limit(limit)
            .select(deliveries::id)
            .load(c)
    }

    /// The status of each of `ids`; no row lock needed behind SQLite's
    /// single writer. The caller picks the statuses it wants rather than SQL:
    /// with `status = 'pending'` in the query, SQLite walks its status index
    /// instead of looking the few ids up by key.
    pub(crate) fn delivery_statuses(c: &mut Conn, ids: &[i64]) -> Result<Vec<(i64, String)>, Error> {
        deliveries::table.filter(deliveries::id.eq_any(ids)).select((deliveries::id, deliveries::status)).load(c)
    }

    /// Due outbox rows; no row lock needed behind SQLite's single writer.
    pub(crate) fn due_outbox_ids(c: &mut Conn, now: NaiveDateTime, limit: i64) -> Result<Vec<i64>, Error> {
        outbox::table
            .filter(outbox::status.eq("pending"))
            .filter(outbox::next_attempt_at.le(now))
            .order(outbox::next_attempt_at)
            .limit(limit)
            .select(outbox::id)
            .load(c)
    }
}

pub(crate) mod pg {
    use chrono::NaiveDateTime;
    use diesel::prelude::*;
    use diesel::result::Error;

    use crate::domain::DeliveryStatus;
    use crate::store::schema::{deliveries, digests, lists, outbox};

    pub(crate) type Conn = diesel::PgConnection;

    /// Reader search through none: a GIN trigram index serves `LIKE` itself: the query, binding the
    /// `%needle%` pattern and the limit.
    pub(crate) const SEARCH_BY_TRIGRAMS: Option<&str> = None;

    pub(crate) use crate::store::deliveries::pg as deliveries_sql;
    pub(crate) use crate::store::digests::pg as digests_sql;
    pub(crate) use crate::store::lists::pg as lists_sql;
    pub(crate) use crate::store::posts::pg as posts_sql;
    pub(crate) use crate::store::preferences::pg as preferences_sql;
    pub(crate) use crate::store::signups::pg as signups_sql;
    pub(crate) use crate::store::subscriptions::pg as subscriptions_sql;
    pub(crate) use crate::store::suppressions::pg as suppressions_sql;
    pub(crate) use crate::store::tallies::pg as tallies_sql;

    pub(crate) fn write_tx<T, E>(c: &mut Conn, f: impl FnOnce(&mut Conn) -> Result<T, E>) -> Result<T, E>
    where
        E: From<Error>,
    {
        c.build_transaction().read_write().run(f)
    }

    /// Lets this transaction commit without waiting for the WAL flush. Used
    /// for delivery bookkeeping only: the commit survives a crash of Tidings;
    /// a crash of the database server itself may forget the last results,
    /// and those messages are sent again (duplicates, never losses).
    pub(crate) fn relaxed_commit(c: &mut Conn) -> Result<(), Error> {
        diesel::sql_query("SET LOCAL synchronous_commit = off").execute(c).map(drop)
    }

    /// Serialises digest triggers of one list across processes.
    pub(crate) fn lock_list(c: &mut Conn, id: i64) -> Result<(), Error> {
        lists::table.find(id).select(lists::id).for_update().first::<i64>(c).map(drop)
    }

    /// Waits for any sender recording results of this digest right now.
    pub(crate) fn lock_digest(c: &mut Conn, id: i64) -> Result<(), Error> {
        digests::table.find(id).select(digests::id).for_update().first::<i64>(c).map(drop)
    }

    /// Due deliveries that no other sender holds locked right now.
    pub(crate) fn due_delivery_ids(
        c: &mut Conn,
        now: NaiveDateTime,
        limit: i64,
        digests: &[i64],
    ) -> Result<Vec<i64>, Error> {
        deliveries::table
            .filter(deliveries::status.eq(DeliveryStatus::Pending.as_str()))
            .filter(deliveries::digest_id.eq_any(digests))
            .filter(deliveries::next_attempt_at.le(now))
            .filter(deliveries::leased_until.is_null().or(deliveries::leased_until.le(now)))
            .order(deliveries::next_attempt_at)
            .limit(limit)
            .select(deliveries::id)
            .for_update()
            .skip_locked()
            .load(c)
    }

    /// The status of each of `ids`, locked until commit so that a second
    /// sender recording the same delivery waits and then sees it finished.
    /// The caller picks the statuses it wants, for the reason given for
    /// SQLite: with the status in the query, the cached generic plan combined
    /// the key lookup with a pass over the status index (3 ms per call at
    /// 100,000 deliveries instead of 0.1 ms).
    pub(crate) fn delivery_statuses(c: &mut Conn, ids: &[i64]) -> Result<Vec<(i64, String)>, Error> {
        deliveries::table
            .filter(deliveries::id.eq_any(ids))
            .select((deliveries::id, deliveries::status))
            .for_update()
            .load(c)
    }

    /// Due outbox rows that no other sender holds locked right now.
    pub(crate) fn due_outbox_ids(c: &mut Conn, now: NaiveDateTime, limit: i64) -> Result<Vec<i64>, Error> {
        outbox::table
            .filter(outbox::status.eq("pending"))
            .filter(outbox::next_attempt_at.le(now))
            .order(outbox::next_attempt_at)
            .limit(limit)
            .select(outbox::id)
            .for_update()
            .skip_locked()
            .load(c)
    }
}
