use chrono::Utc;
use diesel::prelude::*;
use serde::Serialize;

use super::schema::lists;
use super::{Store, StoreResult};
use crate::config::ListSettings;
use crate::domain::SubscriptionStatus;

#[derive(Debug, Clone, Queryable)]
pub struct ListRow {
    pub id: i64,
    pub slug: String,
    pub name: String,
    pub description: String,
}

#[derive(Debug, Clone, Serialize, PartialEq, Eq, utoipa::ToSchema)]
pub struct ListCounts {
    pub slug: String,
    pub name: String,
    pub pending: i64,
    pub confirmed: i64,
    pub unsubscribed: i64,
}

per_backend! {
    pub(crate) fn sync(c: &mut Conn, wanted: &[ListSettings]) -> QueryResult<()> {
        let now = Utc::now().naive_utc();
        write_tx(c, |c| {
            for list in wanted {
                diesel::insert_into(lists::table)
                    .values((
                        lists::slug.eq(list.slug.as_str()),
                        lists::name.eq(&list.name),
                        lists::description.eq(&list.description),
                        lists::created_at.eq(now),
                    ))
                    .on_conflict(lists::slug)
                    .do_update()
                    .set((lists::name.eq(&list.name), lists::description.eq(&list.description)))
                    .execute(c)?;
            }
            Ok(())
        })
    }

    pub(crate) fn all(c: &mut Conn) -> QueryResult<Vec<ListRow>> {
        lists::table
            .select((lists::id, lists::slug, lists::name, lists::description))
            .order(lists::id)
            .load(c)
    }

    pub(crate) fn counts(c: &mut Conn) -> QueryResult<Vec<ListCounts>> {
        Ok(counts_by_id(c)?.into_iter().map(|(_, counts)| counts).collect())
    }

    /// Each list's id and its readers by state, from the tallies.
    pub(crate) fn counts_by_id(c: &mut Conn) -> QueryResult<Vec<(i64, ListCounts)>> {
        let tallies = tallies_sql::states(c)?;
        Ok(all(c)?
            .into_iter()
            .map(|list| {
                let count = |status: SubscriptionStatus| {
                    tallies
                        .iter()
                        .filter(|t| t.list_id == list.id && t.status == status.as_str())
                        .map(|t| t.readers)
                        .sum()
                };
                let counts = ListCounts {
                    pending: count(SubscriptionStatus::Pending),
                    confirmed: count(SubscriptionStatus::Confirmed),
                    unsubscribed: count(SubscriptionStatus::Unsubscribed),
                    slug: list.slug,
                    name: list.name,
                };
                (list.id, counts)
            })
            .collect())
    }
}

impl Store {
    /// Creates the configured lists and updates their names and descriptions.
    pub async fn sync_lists(&self, wanted: Vec<ListSettings>) -> StoreResult<()> {
        self.write(move |conn| Ok(on_backend!(conn, self::sync(&wanted))?)).await
    }

    pub async fn lists(&self) -> StoreResult<Vec<ListRow>> {
        self.read(|conn| Ok(on_backend!(conn, self::all())?)).await
    }

    pub async fn list_counts(&self) -> StoreResult<Vec<ListCounts>> {
        self.read(|conn| Ok(on_backend!(conn, self::counts())?)).await
    }
}
