//! API keys for server-side signup clients (`Authorization: Bearer`). A key
//! is shown once, at creation; only its SHA-256 is kept.

use chrono::{NaiveDateTime, Utc};
use diesel::prelude::*;
use serde::Serialize;

use super::schema::api_keys;
use super::{Store, StoreResult};

#[derive(Debug, Clone, Serialize, Queryable)]
pub struct ApiKey {
    pub id: i64,
    pub name: String,
    #[serde(serialize_with = "super::utc")]
    pub created_at: NaiveDateTime,
    #[serde(serialize_with = "super::utc_opt")]
    pub revoked_at: Option<NaiveDateTime>,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum CreateOutcome {
    Created(i64),
    NameTaken,
}

const COLUMNS: (api_keys::id, api_keys::name, api_keys::created_at, api_keys::revoked_at) =
    (api_keys::id, api_keys::name, api_keys::created_at, api_keys::revoked_at);

per_backend! {
    pub(crate) fn create(c: &mut Conn, name: &str, key_hash: &str) -> QueryResult<CreateOutcome> {
        let now = Utc::now().naive_utc();
        let inserted = diesel::insert_into(api_keys::table)
            .values((api_keys::name.eq(name), api_keys::key_hash.eq(key_hash), api_keys::created_at.eq(now)))
            .on_conflict_do_nothing()
            .returning(api_keys::id)
            .get_result::<i64>(c)
            .optional()?;
        Ok(inserted.map_or(CreateOutcome::NameTaken, CreateOutcome::Created))
    }

    pub(crate) fn all(c: &mut Conn) -> QueryResult<Vec<ApiKey>> {
        api_keys::table.select(COLUMNS).order(api_keys::id).load(c)
    }

    /// Revokes the key called `name`; false when there is none (or it was
    /// revoked already).
    pub(crate) fn revoke(c: &mut Conn, name: &str) -> QueryResult<bool> {
        let n = diesel::update(api_keys::table.filter(api_keys::name.eq(name)).filter(api_keys::revoked_at.is_null()))
            .set(api_keys::revoked_at.eq(Utc::now().naive_utc()))
            .execute(c)?;
        Ok(n > 0)
    }

    /// Every live key: id, name, hash.
    pub(crate) fn live(c: &mut Conn) -> QueryResult<Vec<(i64, String, String)>> {
        api_keys::table
            .filter(api_keys::revoked_at.is_null())
            .select((api_keys::id, api_keys::name, api_keys::key_hash))
            .load(c)
    }
}

impl Store {
    pub async fn create_api_key(&self, name: String, key_hash: String) -> StoreResult<CreateOutcome> {
        self.write(move |conn| Ok(on_backend!(conn, self::create(&name, &key_hash))?)).await
    }

    pub async fn api_keys(&self) -> StoreResult<Vec<ApiKey>> {
        self.read(|conn| Ok(on_backend!(conn, self::all())?)).await
    }

    pub async fn revoke_api_key(&self, name: String) -> StoreResult<bool> {
        self.write(move |conn| Ok(on_backend!(conn, self::revoke(&name))?)).await
    }

    pub async fn live_api_keys(&self) -> StoreResult<Vec<(i64, String, String)>> {
        self.read(|conn| Ok(on_backend!(conn, self::live())?)).await
    }
}
