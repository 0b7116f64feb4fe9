//! The authors who sign in to the dashboard, and their sessions. A session
//! is found by the SHA-256 of its cookie and ends at its expiry, at logout,
//! when its author's password changes, or when the author is removed.

use chrono::{NaiveDateTime, Utc};
use diesel::prelude::*;

use super::schema::{author_sessions, authors};
use super::{Store, StoreResult};

#[derive(Debug, Clone, Queryable)]
pub struct Author {
    pub id: i64,
    pub email: String,
    pub created_at: NaiveDateTime,
}

/// A live session: who it is, and the token its forms must carry.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Session {
    pub author_id: i64,
    pub email: String,
    pub csrf_token: String,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum AddOutcome {
    Added(i64),
    Taken,
}

per_backend! {
    pub(crate) fn add(c: &mut Conn, email: &str, password_hash: &str) -> QueryResult<AddOutcome> {
        let inserted = diesel::insert_into(authors::table)
            .values((
                authors::email.eq(email),
                authors::password_hash.eq(password_hash),
                authors::created_at.eq(Utc::now().naive_utc()),
            ))
            .on_conflict_do_nothing()
            .returning(authors::id)
            .get_result::<i64>(c)
            .optional()?;
        Ok(inserted.map_or(AddOutcome::Taken, AddOutcome::Added))
    }

    pub(crate) fn all(c: &mut Conn) -> QueryResult<Vec<Author>> {
        authors::table.select((authors::id, authors::email, authors::created_at)).order(authors::email).load(c)
    }

    pub(crate) fn remove(c: &mut Conn, email: &str) -> QueryResult<bool> {
        write_tx(c, |c| {
            let Some(id) = authors::table.filter(authors::email.eq(email)).select(authors::id).first::<i64>(c).optional()?
            else {
                return Ok(false);
            };
            diesel::delete(author_sessions::table.filter(author_sessions::author_id.eq(id))).execute(c)?;
            diesel::delete(authors::table.find(id)).execute(c)?;
            Ok(true)
        })
    }

    /// A new password ends every session of the author.
    pub(crate) fn set_password(c: &mut Conn, email: &str, password_hash: &str) -> QueryResult<bool> {
        write_tx(c, |c| {
            let Some(id) = authors::table.filter(authors::email.eq(email)).select(authors::id).first::<i64>(c).optional()?
            else {
                return Ok(false);
            };
            diesel::update(authors::table.find(id)).set(authors::password_hash.eq(password_hash)).execute(c)?;
            diesel::delete(author_sessions::table.filter(author_sessions::author_id.eq(id))).execute(c)?;
            Ok(true)
        })
    }

    pub(crate) fn credentials(c: &mut Conn, email: &str) -> QueryResult<Option<(i64, String)>> {
        authors::table
            .filter(authors::email.eq(email))
            .select((authors::id, authors::password_hash))
            .first(c)
            .optional()
    }

    /// Starts a session; expired ones of anyone are swept on the way.
    pub(crate) fn open_session(
        c: &mut Conn,
        id_hash: &str,
        author_id: i64,
        csrf_token: &str,
        expires_at: NaiveDateTime,
    ) -> QueryResult<()> {
        let now = Utc::now().naive_utc();
        write_tx(c, |c| {
            diesel::delete(author_sessions::table.filter(author_sessions::expires_at.le(now))).execute(c)?;
            diesel::insert_into(author_sessions::table)
                .values((
                    author_sessions::id_hash.eq(id_hash),
                    author_sessions::author_id.eq(author_id),
                    author_sessions::csrf_token.eq(csrf_token),
                    author_sessions::created_at.eq(now),
                    author_sessions::expires_at.eq(expires_at),
                ))
                .execute(c)?;
            Ok(())
        })
    }

    pub(crate) fn session(c: &mut Conn, id_hash: &str) -> QueryResult<Option<Session>> {
        let found: Option<(i64, String, String)> = author_sessions::table
            .inner_join(authors::table)
            .filter(author_sessions::id_hash.eq(id_hash))
            .filter(author_sessions::expires_at.gt(Utc::now().naive_utc()))
            .select((authors::id, authors::email, author_sessions::csrf_token))
            .first(c)
            .optional()?;
        Ok(found.map(|(author_id, email, csrf_token)| Session { author_id, email, csrf_token }))
    }

    pub(crate) fn close_session(c: &mut Conn, id_hash: &str) -> QueryResult<()> {
        diesel::delete(author_sessions::table.filter(author_sessions::id_hash.eq(id_hash))).execute(c)?;
        Ok(())
    }
}

impl Store {
    pub async fn add_author(&self, email: String, password_hash: String) -> StoreResult<AddOutcome> {
        self.write(move |conn| Ok(on_backend!(conn, self::add(&email, &password_hash))?)).await
    }

    pub async fn authors(&self) -> StoreResult<Vec<Author>> {
        self.read(|conn| Ok(on_backend!(conn, self::all())?)).await
    }

    pub async fn remove_author(&self, email: String) -> StoreResult<bool> {
        self.write(move |conn| Ok(on_backend!(conn, self::remove(&email))?)).await
    }

    pub async fn set_author_password(&self, email: String, password_hash: String) -> StoreResult<bool> {
        self.write(move |conn| Ok(on_backend!(conn, self::set_password(&email, &password_hash))?)).await
    }

    /// The author's id and password hash, if there is such an author.
    pub async fn author_credentials(&self, email: String) -> StoreResult<Option<(i64, String)>> {
        self.read(move |conn| Ok(on_backend!(conn, self::credentials(&email))?)).await
    }

    pub async fn open_session(
        &self,
        id_hash: String,
        author_id: i64,
        csrf_token: String,
        expires_at: NaiveDateTime,
    ) -> StoreResult<()> {
        self.write(move |conn| Ok(on_backend!(conn, self::open_session(&id_hash, author_id, &csrf_token, expires_at))?))
            .await
    }

    pub async fn session(&self, id_hash: String) -> StoreResult<Option<Session>> {
        self.read(move |conn| Ok(on_backend!(conn, self::session(&id_hash))?)).await
    }

    pub async fn close_session(&self, id_hash: String) -> StoreResult<()> {
        self.write(move |conn| Ok(on_backend!(conn, self::close_session(&id_hash))?)).await
    }
}
