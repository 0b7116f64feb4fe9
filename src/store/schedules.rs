//! Scheduled slots: claimed once per list and slot by whichever process
//! comes first (the primary key decides), then marked with their outcome.

use chrono::{NaiveDateTime, Utc};
use diesel::prelude::*;
use serde::Serialize;

use super::schema::{lists, schedule_runs};
use super::{Store, StoreResult};

#[derive(Debug, Clone, Serialize, PartialEq, Eq)]
pub struct ScheduleRun {
    pub list: String,
    #[serde(serialize_with = "super::utc")]
    pub slot: NaiveDateTime,
    /// `sent`, `nothing new`, or what went wrong; `None` while it runs.
    pub outcome: Option<String>,
    pub digest: Option<i64>,
}

per_backend! {
    /// True when this call claimed the slot: nobody had, or a process that
    /// had died before finishing it (the digest's idempotency key makes the
    /// second run send nothing twice).
    pub(crate) fn claim(c: &mut Conn, list: &str, slot: NaiveDateTime) -> QueryResult<bool> {
        let now = Utc::now().naive_utc();
        let Some(list_id) = lists::table.filter(lists::slug.eq(list)).select(lists::id).first::<i64>(c).optional()? else {
            return Ok(false);
        };
        let claimed = diesel::insert_into(schedule_runs::table)
            .values((
                schedule_runs::list_id.eq(list_id),
                schedule_runs::slot.eq(slot),
                schedule_runs::started_at.eq(now),
            ))
            .on_conflict_do_nothing()
            .execute(c)?;
        if claimed == 1 {
            return Ok(true);
        }
        let abandoned = diesel::update(
            schedule_runs::table
                .filter(schedule_runs::list_id.eq(list_id))
                .filter(schedule_runs::slot.eq(slot))
                .filter(schedule_runs::outcome.is_null())
                .filter(schedule_runs::started_at.lt(now - chrono::Duration::minutes(10))),
        )
        .set(schedule_runs::started_at.eq(now))
        .execute(c)?;
        Ok(abandoned == 1)
    }

    pub(crate) fn finish(
        c: &mut Conn,
        list: &str,
        slot: NaiveDateTime,
        outcome: &str,
        digest: Option<i64>,
    ) -> QueryResult<()> {
        let list_id = lists::table.filter(lists::slug.eq(list)).select(lists::id);
        diesel::update(schedule_runs::table.filter(schedule_runs::list_id.eq_any(list_id)).filter(schedule_runs::slot.eq(slot)))
            .set((schedule_runs::outcome.eq(outcome), schedule_runs::digest_id.eq(digest)))
            .execute(c)
            .map(drop)
    }

    pub(crate) fn recent(c: &mut Conn, limit: i64) -> QueryResult<Vec<ScheduleRun>> {
        let rows: Vec<(String, NaiveDateTime, Option<String>, Option<i64>)> = schedule_runs::table
            .inner_join(lists::table)
            .select((lists::slug, schedule_runs::slot, schedule_runs::outcome, schedule_runs::digest_id))
            .order(schedule_runs::slot.desc())
            .limit(limit)
            .load(c)?;
        Ok(rows.into_iter().map(|(list, slot, outcome, digest)| ScheduleRun { list, slot, outcome, digest }).collect())
    }
}

impl Store {
    pub async fn claim_slot(&self, list: String, slot: NaiveDateTime) -> StoreResult<bool> {
        self.write(move |conn| Ok(on_backend!(conn, self::claim(&list, slot))?)).await
    }

    pub async fn finish_slot(
        &self,
        list: String,
        slot: NaiveDateTime,
        outcome: String,
        digest: Option<i64>,
    ) -> StoreResult<()> {
        self.write(move |conn| Ok(on_backend!(conn, self::finish(&list, slot, &outcome, digest))?)).await
    }

    pub async fn schedule_runs(&self, limit: i64) -> StoreResult<Vec<ScheduleRun>> {
        self.read(move |conn| Ok(on_backend!(conn, self::recent(limit))?)).await
    }
}
