//! The sending processes that share this database, by heartbeat, so that a
//! send-rate cap holds across all of them (see `dispatch::rate`).

use chrono::Utc;
use diesel::prelude::*;

use super::schema::senders;
use super::{Store, StoreResult};

/// A sender not seen for this long is gone (crashed, or stopped).
pub const SENDER_GONE_AFTER: chrono::Duration = chrono::Duration::seconds(5);

per_backend! {
    /// Marks `id` alive, forgets the senders gone, and counts the live ones
    /// (this one included).
    pub(crate) fn heartbeat(c: &mut Conn, id: &str) -> QueryResult<i64> {
        let now = Utc::now().naive_utc();
        write_tx(c, |c| {
            diesel::insert_into(senders::table)
                .values((senders::id.eq(id), senders::seen_at.eq(now)))
                .on_conflict(senders::id)
                .do_update()
                .set(senders::seen_at.eq(now))
                .execute(c)?;
            diesel::delete(senders::table.filter(senders::seen_at.lt(now - SENDER_GONE_AFTER))).execute(c)?;
            senders::table.count().get_result(c)
        })
    }

    pub(crate) fn leave(c: &mut Conn, id: &str) -> QueryResult<()> {
        diesel::delete(senders::table.find(id)).execute(c).map(drop)
    }
}

impl Store {
    /// The number of live senders, after marking `id` alive.
    pub async fn sender_heartbeat(&self, id: String) -> StoreResult<i64> {
        self.write(move |conn| Ok(on_backend!(conn, self::heartbeat(&id))?)).await
    }

    pub async fn sender_leaves(&self, id: String) -> StoreResult<()> {
        self.write(move |conn| Ok(on_backend!(conn, self::leave(&id))?)).await
    }
}
