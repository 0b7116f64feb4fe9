use diesel::prelude::*;

use super::schema::secrets;
use super::{Store, StoreResult};

per_backend! {
    /// Returns the stored value, storing `fresh` first when there is none;
    /// the first of several racing instances wins and all use its value.
    pub(crate) fn get_or_insert(c: &mut Conn, name: &str, fresh: &str) -> QueryResult<String> {
        diesel::insert_into(secrets::table)
            .values((secrets::name.eq(name), secrets::value.eq(fresh)))
            .on_conflict_do_nothing()
            .execute(c)?;
        secrets::table.find(name).select(secrets::value).first(c)
    }
}

impl Store {
    pub async fn secret_or_insert(&self, name: &'static str, fresh: String) -> StoreResult<String> {
        self.write(move |conn| Ok(on_backend!(conn, self::get_or_insert(name, &fresh))?)).await
    }
}
