//! Signups: many at a time, one transaction and one statement per table for
//! a whole group of them (see `Store::signup`).

use std::collections::{HashMap, HashSet};

use chrono::{NaiveDateTime, Utc};
use diesel::prelude::*;

use super::schema::{
    confirmation_token_lists, confirmation_tokens, form_token_uses, lists, outbox, subscribers, subscriptions,
};
use super::subscriptions::Evidence;
use super::{Store, StoreError, StoreResult};
use crate::domain::{EmailAddress, ListSlug, Signer, SubscriberName, SubscriptionStatus, address_hash};

/// The outbox kind of a confirmation mail.
pub(crate) const CONFIRMATION_KIND: &str = "confirmation";

#[derive(Debug, Clone)]
pub struct SignupRequest {
    pub email: EmailAddress,
    pub name: Option<SubscriberName>,
    pub lists: Vec<ListSlug>,
    pub evidence: Evidence,
    pub token_ttl: chrono::Duration,
    pub confirmations_per_day: u32,
    /// The nonce of the form token the signup came with: a token serves one
    /// signup. `None` when the fill-time check is off.
    pub form_nonce: Option<String>,
}

/// How long a used form token's nonce is kept: as long as the token could
/// be valid (`http::abuse::FORM_TOKEN_LIFETIME_MS`), and a little more.
const FORM_NONCE_KEPT: chrono::Duration = chrono::Duration::hours(3);

/// When this process last deleted nonces older than `FORM_NONCE_KEPT`
/// (Unix seconds): once a minute is plenty.
static NONCES_PURGED_AT: std::sync::atomic::AtomicI64 = std::sync::atomic::AtomicI64::new(0);

/// What a signup did. The HTTP answer is the same for all of them, so that
/// nobody can learn who subscribes; the difference is for logs and tests.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SignupOutcome {
    ConfirmationQueued,
    AlreadyConfirmed,
    ConfirmationCapReached,
    /// The form token was used by another signup: nothing was done.
    FormTokenUsed,
    /// The address is suppressed for a complaint or by the author: no mail.
    Suppressed,
}

/// A signup's reader: created by it, or there before.
enum Reader {
    New(i64),
    Known(i64),
}

/// A confirmation mail to queue: its reader, the name to apply when they
/// confirm, the lists it confirms, and how long its link works.
pub(crate) struct Confirmation<'a> {
    pub subscriber_id: i64,
    pub name: Option<&'a str>,
    pub lists: Vec<i64>,
    pub ttl: chrono::Duration,
}

/// Rows a group of signups will write, gathered so that each table gets
/// one statement.
#[derive(Default)]
struct SignupPlan<'a> {
    /// (subscriber, list) pairs to subscribe, with the request's evidence.
    subscriptions: Vec<(i64, i64, &'a Evidence)>,
    /// Consent records for subscriptions that exist already.
    events: Vec<(i64, &'a Evidence)>,
    /// (subscriber, request, lists) to send a confirmation for.
    confirmations: Vec<(i64, &'a SignupRequest, Vec<i64>)>,
}

impl<'a> SignupPlan<'a> {
    /// A reader new to us has no subscriptions and was sent nothing yet.
    fn new_reader(&mut self, subscriber_id: i64, req: &'a SignupRequest, list_ids: Vec<i64>) -> SignupOutcome {
        for &list_id in &list_ids {
            self.subscriptions.push((subscriber_id, list_id, &req.evidence));
        }
        if list_ids.is_empty() {
            return SignupOutcome::AlreadyConfirmed;
        }
        if req.confirmations_per_day == 0 {
            return SignupOutcome::ConfirmationCapReached;
        }
        self.confirmations.push((subscriber_id, req, list_ids));
        SignupOutcome::ConfirmationQueued
    }
}

per_backend! {
    /// Several signups in one transaction: one commit (one WAL write, one
    /// fsync on PostgreSQL) for the whole group, and a statement per table
    /// for all of it. Should one signup fail, the group is rolled back and
    /// done again with a savepoint for each, so that one failure leaves the
    /// others intact.
    pub(crate) fn signup_group(
        c: &mut Conn,
        group: &[SignupRequest],
    ) -> QueryResult<Vec<QueryResult<SignupOutcome>>> {
        let together = write_tx(c, |c| {
            let lists = list_ids(c)?;
            with_fresh_tokens(c, &lists, group)
        });
        match together {
            Ok(outcomes) => Ok(outcomes.into_iter().map(Ok).collect()),
            Err(e) => {
                tracing::debug!(error = %e, "a signup failed its group: committing one by one");
                write_tx(c, |c| {
                    let lists = list_ids(c)?;
                    Ok(group
                        .iter()
                        .map(|req| c.transaction(|c| with_fresh_tokens(c, &lists, std::slice::from_ref(req))))
                        .map(|outcomes| outcomes.map(|o| o.into_iter().next().unwrap_or(SignupOutcome::AlreadyConfirmed)))
                        .collect())
                })
            }
        }
    }

    /// The signups of a group whose form tokens are unused; the others
    /// answer `FormTokenUsed` and do nothing.
    fn with_fresh_tokens(
        c: &mut Conn,
        all_lists: &[(String, i64)],
        group: &[SignupRequest],
    ) -> QueryResult<Vec<SignupOutcome>> {
        let fresh = claim_form_tokens(c, group)?;
        if fresh.iter().all(|&f| f) {
            return signups(c, all_lists, group);
        }
        let admitted: Vec<SignupRequest> =
            group.iter().zip(&fresh).filter(|&(_, &f)| f).map(|(req, _)| req.clone()).collect();
        let mut done = signups(c, all_lists, &admitted)?.into_iter();
        Ok(fresh
            .iter()
            .map(|&f| if f { done.next().unwrap_or(SignupOutcome::AlreadyConfirmed) } else { SignupOutcome::FormTokenUsed })
            .collect())
    }

    /// Records the group's form-token nonces in one statement; whether each
    /// signup's token was unused (the first of a group to use one wins).
    fn claim_form_tokens(c: &mut Conn, group: &[SignupRequest]) -> QueryResult<Vec<bool>> {
        let now = Utc::now().naive_utc();
        let purged = NONCES_PURGED_AT.load(std::sync::atomic::Ordering::Relaxed);
        if now.and_utc().timestamp() - purged >= 60 {
            NONCES_PURGED_AT.store(now.and_utc().timestamp(), std::sync::atomic::Ordering::Relaxed);
            diesel::delete(form_token_uses::table.filter(form_token_uses::used_at.lt(now - FORM_NONCE_KEPT)))
                .execute(c)?;
        }
        let mut offered: Vec<&str> = group.iter().filter_map(|r| r.form_nonce.as_deref()).collect();
        if offered.is_empty() {
            return Ok(vec![true; group.len()]);
        }
        offered.sort_unstable();
        offered.dedup();
        let rows: Vec<_> =
            offered.iter().map(|n| (form_token_uses::nonce.eq(*n), form_token_uses::used_at.eq(now))).collect();
        let claimed: HashSet<String> = diesel::insert_into(form_token_uses::table)
            .values(&rows)
            .on_conflict_do_nothing()
            .returning(form_token_uses::nonce)
            .get_results::<String>(c)?
            .into_iter()
            .collect();
        let mut taken = HashSet::new();
        Ok(group
            .iter()
            .map(|r| match r.form_nonce.as_deref() {
                None => true,
                Some(n) => claimed.contains(n) && taken.insert(n),
            })
            .collect())
    }

    fn list_ids(c: &mut Conn) -> QueryResult<Vec<(String, i64)>> {
        lists::table.select((lists::slug, lists::id)).load(c)
    }

    /// The signups of a group, in the group's order. Readers new to us
    /// (most of them) need no lookups at all; those we know are looked at
    /// one by one, and the rows both create are written together.
    fn signups(
        c: &mut Conn,
        all_lists: &[(String, i64)],
        group: &[SignupRequest],
    ) -> QueryResult<Vec<SignupOutcome>> {
        let now = Utc::now().naive_utc();
        // One upsert cannot touch a row twice: an address repeated within
        // the group is signed up again after the rest.
        let mut seen = HashSet::new();
        let (first, again): (Vec<usize>, Vec<usize>) =
            (0..group.len()).partition(|&i| seen.insert(group[i].email.as_str()));
        let readers = find_or_create_readers(c, first.iter().map(|&i| &group[i].email), now)?;

        // A complaint (or the author) suppressed these addresses: they get
        // the usual answer and no mail. A bounce lets a confirmation through.
        let hashes: Vec<String> = first.iter().map(|&i| address_hash(group[i].email.as_str())).collect();
        let (bounced, held): (Vec<_>, Vec<_>) =
            suppressions_sql::reasons_of(c, &hashes)?.into_iter().partition(|(_, r)| r.lifted_by_confirming());
        let held: HashSet<String> = held.into_iter().map(|(hash, _)| hash).collect();
        let bounced: HashSet<String> = bounced.into_iter().map(|(hash, _)| hash).collect();
        let mut outcomes = vec![SignupOutcome::ConfirmationQueued; group.len()];
        let mut plan = SignupPlan::default();
        for (&i, reader) in first.iter().zip(readers) {
            let req = &group[i];
            let list_ids: Vec<i64> = all_lists
                .iter()
                .filter(|(slug, _)| req.lists.iter().any(|l| l.as_str() == slug))
                .map(|&(_, id)| id)
                .collect();
            outcomes[i] = match reader {
                Reader::New(id) => plan.new_reader(id, req, list_ids),
                Reader::Known(id) => {
                    let reconfirm = bounced.contains(&address_hash(req.email.as_str()));
                    known_reader(c, &mut plan, id, req, list_ids, reconfirm, now)?
                }
            };
            if held.contains(&address_hash(req.email.as_str())) {
                if outcomes[i] == SignupOutcome::ConfirmationQueued {
                    plan.confirmations.pop();
                }
                outcomes[i] = SignupOutcome::Suppressed;
            }
        }
        write_plan(c, plan, now)?;
        for i in again {
            if let Some(outcome) = signups(c, all_lists, std::slice::from_ref(&group[i]))?.pop() {
                outcomes[i] = outcome;
            }
        }
        Ok(outcomes)
    }

    /// One statement finds or creates every reader. Updating a row on
    /// conflict also locks it on PostgreSQL, which serialises concurrent
    /// signups of one address across processes (SQLite has one writer
    /// anyway). The uuid we offered comes back only for a new row.
    fn find_or_create_readers<'a>(
        c: &mut Conn,
        emails: impl Iterator<Item = &'a EmailAddress>,
        now: NaiveDateTime,
    ) -> QueryResult<Vec<Reader>> {
        let offered: Vec<(String, &str)> = emails.map(|e| (uuid::Uuid::new_v4().to_string(), e.as_str())).collect();
        if offered.is_empty() {
            return Ok(Vec::new());
        }
        // Rows are locked in address order, the same in every group, so two
        // groups sharing addresses cannot deadlock on PostgreSQL.
        let mut in_order: Vec<&(String, &str)> = offered.iter().collect();
        in_order.sort_unstable_by_key(|(_, email)| *email);
        let rows: Vec<_> = in_order
            .iter()
            .map(|(uuid, email)| {
                (subscribers::uuid.eq(uuid), subscribers::email.eq(*email), subscribers::created_at.eq(now))
            })
            .collect();
        let stored: Vec<(i64, String, String)> = diesel::insert_into(subscribers::table)
            .values(&rows)
            .on_conflict(subscribers::email)
            .do_update()
            .set(subscribers::email.eq(diesel::upsert::excluded(subscribers::email)))
            .returning((subscribers::id, subscribers::uuid, subscribers::email))
            .get_results(c)?;
        let by_email: HashMap<&str, (i64, &str)> =
            stored.iter().map(|(id, uuid, email)| (email.as_str(), (*id, uuid.as_str()))).collect();
        offered
            .iter()
            .map(|(uuid, email)| match by_email.get(email) {
                Some(&(id, stored_uuid)) if stored_uuid == uuid => Ok(Reader::New(id)),
                Some(&(id, _)) => Ok(Reader::Known(id)),
                None => Err(diesel::result::Error::NotFound),
            })
            .collect()
    }

    /// A reader we already know: nobody but the reader can change a
    /// confirmed subscription; others go (back) to pending, within the
    /// daily cap on confirmation mails. A reader whose address bounced
    /// (`reconfirm`) is sent a confirmation for confirmed lists too: the
    /// mailbox must show it works before anything else is sent there.
    fn known_reader<'a>(
        c: &mut Conn,
        plan: &mut SignupPlan<'a>,
        subscriber_id: i64,
        req: &'a SignupRequest,
        list_ids: Vec<i64>,
        reconfirm: bool,
        now: NaiveDateTime,
    ) -> QueryResult<SignupOutcome> {
        let existing: Vec<(i64, i64, String)> = subscriptions::table
            .filter(subscriptions::subscriber_id.eq(subscriber_id))
            .filter(subscriptions::list_id.eq_any(&list_ids))
            .select((subscriptions::id, subscriptions::list_id, subscriptions::status))
            .load(c)?;
        let mut to_confirm = Vec::new();
        for list_id in list_ids {
            let found = existing.iter().find(|(_, l, _)| *l == list_id);
            match found.map(|(id, _, s)| (*id, SubscriptionStatus::parse(s))) {
                Some((_, Some(SubscriptionStatus::Confirmed))) if !reconfirm => continue,
                Some((_, Some(SubscriptionStatus::Confirmed))) => {}
                Some((id, _)) => {
                    diesel::update(subscriptions::table.find(id))
                        .set((
                            subscriptions::status.eq(SubscriptionStatus::Pending.as_str()),
                            subscriptions::updated_at.eq(now),
                        ))
                        .execute(c)?;
                    plan.events.push((id, &req.evidence));
                }
                None => plan.subscriptions.push((subscriber_id, list_id, &req.evidence)),
            }
            to_confirm.push(list_id);
        }
        if to_confirm.is_empty() {
            return Ok(SignupOutcome::AlreadyConfirmed);
        }
        let sent_today: i64 = outbox::table
            .filter(outbox::subscriber_id.eq(subscriber_id))
            .filter(outbox::kind.eq(super::CONFIRMATION_KIND))
            .filter(outbox::created_at.gt(now - chrono::Duration::hours(24)))
            .count()
            .get_result(c)?;
        if sent_today >= i64::from(req.confirmations_per_day) {
            return Ok(SignupOutcome::ConfirmationCapReached);
        }
        plan.confirmations.push((subscriber_id, req, to_confirm));
        Ok(SignupOutcome::ConfirmationQueued)
    }

    /// Writes the planned rows, a statement per table.
    fn write_plan(c: &mut Conn, plan: SignupPlan<'_>, now: NaiveDateTime) -> QueryResult<()> {
        let SignupPlan { subscriptions: wanted, mut events, confirmations } = plan;
        if !wanted.is_empty() {
            let rows: Vec<_> = wanted
                .iter()
                .map(|&(subscriber_id, list_id, _)| {
                    (
                        subscriptions::subscriber_id.eq(subscriber_id),
                        subscriptions::list_id.eq(list_id),
                        subscriptions::status.eq(SubscriptionStatus::Pending.as_str()),
                        subscriptions::unsubscribe_id.eq(Signer::new_id()),
                        subscriptions::created_at.eq(now),
                        subscriptions::updated_at.eq(now),
                    )
                })
                .collect();
            let created: Vec<(i64, i64, i64)> = diesel::insert_into(subscriptions::table)
                .values(&rows)
                .returning((subscriptions::id, subscriptions::subscriber_id, subscriptions::list_id))
                .get_results(c)?;
            for (id, subscriber_id, list_id) in created {
                if let Some(&(_, _, evidence)) =
                    wanted.iter().find(|&&(s, l, _)| s == subscriber_id && l == list_id)
                {
                    events.push((id, evidence));
                }
            }
        }
        subscriptions_sql::record_events(c, &events, "signup", now)?;
        let confirmations: Vec<Confirmation<'_>> = confirmations
            .iter()
            .map(|(subscriber_id, req, lists)| Confirmation {
                subscriber_id: *subscriber_id,
                name: req.name.as_ref().map(SubscriberName::as_str),
                lists: lists.clone(),
                ttl: req.token_ttl,
            })
            .collect();
        issue_confirmations(c, &confirmations, now)
    }

    /// A confirmation token per reader, the lists it confirms, and the mail
    /// in the outbox.
    pub(crate) fn issue_confirmations(
        c: &mut Conn,
        confirmations: &[Confirmation<'_>],
        now: NaiveDateTime,
    ) -> QueryResult<()> {
        if confirmations.is_empty() {
            return Ok(());
        }
        let rows: Vec<_> = confirmations
            .iter()
            .map(|conf| {
                (
                    confirmation_tokens::public_id.eq(Signer::new_id()),
                    confirmation_tokens::subscriber_id.eq(conf.subscriber_id),
                    confirmation_tokens::name.eq(conf.name),
                    confirmation_tokens::created_at.eq(now),
                    confirmation_tokens::expires_at.eq(now + conf.ttl),
                )
            })
            .collect();
        let tokens: Vec<(i64, i64)> = diesel::insert_into(confirmation_tokens::table)
            .values(&rows)
            .returning((confirmation_tokens::id, confirmation_tokens::subscriber_id))
            .get_results(c)?;
        let mut token_lists = Vec::new();
        let mut mails = Vec::new();
        for (token_id, subscriber_id) in tokens {
            let Some(Confirmation { lists: list_ids, .. }) =
                confirmations.iter().find(|conf| conf.subscriber_id == subscriber_id)
            else {
                continue;
            };
            token_lists.extend(list_ids.iter().map(|&list_id| {
                (confirmation_token_lists::token_id.eq(token_id), confirmation_token_lists::list_id.eq(list_id))
            }));
            mails.push((
                outbox::kind.eq(super::CONFIRMATION_KIND),
                outbox::subscriber_id.eq(subscriber_id),
                outbox::token_id.eq(token_id),
                outbox::status.eq("pending"),
                outbox::next_attempt_at.eq(now),
                outbox::created_at.eq(now),
            ));
        }
        diesel::insert_into(confirmation_token_lists::table).values(&token_lists).execute(c)?;
        diesel::insert_into(outbox::table).values(&mails).execute(c).map(drop)
    }
}

impl Store {
    /// Stores a signup. Concurrent signups are committed together (group
    /// commit); each answer still waits for its own commit.
    pub async fn signup(&self, req: SignupRequest) -> StoreResult<SignupOutcome> {
        let (answer, answered) = tokio::sync::oneshot::channel();
        self.signups.send((req, answer)).await.map_err(|_| StoreError::Task("signup writer stopped".into()))?;
        answered.await.map_err(|_| StoreError::Task("signup writer stopped".into()))?
    }
}
