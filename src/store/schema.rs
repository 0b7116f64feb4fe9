//! Table definitions shared by both backends (see `migrations/`).

diesel::table! {
    lists (id) {
        id -> BigInt,
        slug -> Text,
        name -> Text,
        description -> Text,
        created_at -> Timestamp,
    }
}

diesel::table! {
    subscribers (id) {
        id -> BigInt,
        uuid -> Text,
        email -> Text,
        name -> Nullable<Text>,
        created_at -> Timestamp,
        suppressed_at -> Nullable<Timestamp>,
    }
}

diesel::table! {
    subscriptions (id) {
        id -> BigInt,
        subscriber_id -> BigInt,
        list_id -> BigInt,
        status -> Text,
        unsubscribe_id -> Text,
        created_at -> Timestamp,
        updated_at -> Timestamp,
        confirmed_at -> Nullable<Timestamp>,
        unsubscribed_at -> Nullable<Timestamp>,
    }
}

diesel::table! {
    consent_events (id) {
        id -> BigInt,
        subscription_id -> BigInt,
        kind -> Text,
        at -> Timestamp,
        ip -> Nullable<Text>,
        user_agent -> Nullable<Text>,
        source -> Text,
        consent_version -> Text,
    }
}

diesel::table! {
    confirmation_tokens (id) {
        id -> BigInt,
        public_id -> Text,
        subscriber_id -> BigInt,
        name -> Nullable<Text>,
        created_at -> Timestamp,
        expires_at -> Timestamp,
        used_at -> Nullable<Timestamp>,
    }
}

diesel::table! {
    confirmation_token_lists (token_id, list_id) {
        token_id -> BigInt,
        list_id -> BigInt,
    }
}

diesel::table! {
    outbox (id) {
        id -> BigInt,
        kind -> Text,
        subscriber_id -> BigInt,
        token_id -> Nullable<BigInt>,
        status -> Text,
        attempts -> Integer,
        next_attempt_at -> Timestamp,
        last_error -> Nullable<Text>,
        created_at -> Timestamp,
        sent_at -> Nullable<Timestamp>,
        list_id -> Nullable<BigInt>,
    }
}

diesel::table! {
    secrets (name) {
        name -> Text,
        value -> Text,
    }
}

diesel::joinable!(subscriptions -> subscribers (subscriber_id));
diesel::joinable!(subscriptions -> lists (list_id));
diesel::joinable!(consent_events -> subscriptions (subscription_id));
diesel::joinable!(confirmation_tokens -> subscribers (subscriber_id));
diesel::joinable!(confirmation_token_lists -> confirmation_tokens (token_id));
diesel::joinable!(confirmation_token_lists -> lists (list_id));
diesel::joinable!(outbox -> subscribers (subscriber_id));
diesel::joinable!(outbox -> confirmation_tokens (token_id));

diesel::table! {
    posts (id) {
        id -> BigInt,
        url -> Text,
        title -> Text,
        summary -> Text,
        published_at -> Timestamp,
        created_at -> Timestamp,
        updated_at -> Timestamp,
    }
}

diesel::table! {
    post_lists (post_id, list_id) {
        post_id -> BigInt,
        list_id -> BigInt,
        sent_before -> Bool,
    }
}

diesel::table! {
    digests (id) {
        id -> BigInt,
        list_id -> BigInt,
        subject -> Text,
        status -> Text,
        recipients -> BigInt,
        idempotency_key -> Nullable<Text>,
        created_at -> Timestamp,
        finished_at -> Nullable<Timestamp>,
        sent_count -> BigInt,
        failed_count -> BigInt,
        skipped_count -> BigInt,
        rejected_count -> BigInt,
        bounced_count -> BigInt,
        cancelled_count -> BigInt,
        failure_streak -> BigInt,
        paused_reason -> Nullable<Text>,
    }
}

diesel::table! {
    digest_posts (digest_id, post_id) {
        digest_id -> BigInt,
        post_id -> BigInt,
    }
}

diesel::table! {
    deliveries (id) {
        id -> BigInt,
        digest_id -> BigInt,
        subscription_id -> BigInt,
        status -> Text,
        attempts -> Integer,
        next_attempt_at -> Timestamp,
        last_error -> Nullable<Text>,
        sent_at -> Nullable<Timestamp>,
        leased_until -> Nullable<Timestamp>,
        failure_class -> Nullable<Text>,
        failure_stage -> Nullable<Text>,
        failure_code -> Nullable<Text>,
    }
}

diesel::table! {
    form_token_uses (nonce) {
        nonce -> Text,
        used_at -> Timestamp,
    }
}

diesel::table! {
    schedule_runs (list_id, slot) {
        list_id -> BigInt,
        slot -> Timestamp,
        outcome -> Nullable<Text>,
        digest_id -> Nullable<BigInt>,
        started_at -> Timestamp,
    }
}

diesel::table! {
    digest_suppressed (digest_id) {
        digest_id -> BigInt,
        readers -> BigInt,
    }
}

diesel::table! {
    suppressions (address_hash) {
        address_hash -> Text,
        email -> Nullable<Text>,
        reason -> Text,
        source -> Text,
        detail -> Nullable<Text>,
        created_at -> Timestamp,
    }
}

diesel::table! {
    bounce_events (id) {
        id -> BigInt,
        report_key -> Text,
        address_hash -> Text,
        kind -> Text,
        source -> Text,
        detail -> Nullable<Text>,
        at -> Timestamp,
    }
}

diesel::table! {
    api_keys (id) {
        id -> BigInt,
        name -> Text,
        key_hash -> Text,
        created_at -> Timestamp,
        revoked_at -> Nullable<Timestamp>,
    }
}

diesel::table! {
    senders (id) {
        id -> Text,
        seen_at -> Timestamp,
    }
}

diesel::table! {
    authors (id) {
        id -> BigInt,
        email -> Text,
        password_hash -> Text,
        created_at -> Timestamp,
    }
}

diesel::table! {
    author_sessions (id_hash) {
        id_hash -> Text,
        author_id -> BigInt,
        csrf_token -> Text,
        created_at -> Timestamp,
        expires_at -> Timestamp,
    }
}

diesel::table! {
    list_tallies (list_id, status) {
        list_id -> BigInt,
        status -> Text,
        readers -> BigInt,
    }
}

diesel::table! {
    list_tally_changes (id) {
        id -> BigInt,
        list_id -> BigInt,
        status -> Text,
        readers -> BigInt,
    }
}

diesel::table! {
    list_days (list_id, day) {
        list_id -> BigInt,
        day -> Text,
        confirmed -> BigInt,
        unsubscribed -> BigInt,
    }
}

diesel::table! {
    list_day_changes (id) {
        id -> BigInt,
        list_id -> BigInt,
        day -> Text,
        confirmed -> BigInt,
        unsubscribed -> BigInt,
    }
}

diesel::joinable!(author_sessions -> authors (author_id));
diesel::joinable!(outbox -> lists (list_id));
diesel::joinable!(post_lists -> posts (post_id));
diesel::joinable!(post_lists -> lists (list_id));
diesel::joinable!(digests -> lists (list_id));
diesel::joinable!(digest_suppressed -> digests (digest_id));
diesel::joinable!(schedule_runs -> lists (list_id));
diesel::joinable!(digest_posts -> digests (digest_id));
diesel::joinable!(digest_posts -> posts (post_id));
diesel::joinable!(deliveries -> digests (digest_id));
diesel::joinable!(deliveries -> subscriptions (subscription_id));

diesel::allow_tables_to_appear_in_same_query!(
    lists,
    subscribers,
    subscriptions,
    consent_events,
    confirmation_tokens,
    confirmation_token_lists,
    outbox,
    secrets,
    posts,
    post_lists,
    digests,
    digest_posts,
    deliveries,
    form_token_uses,
    suppressions,
    bounce_events,
    digest_suppressed,
    schedule_runs,
    api_keys,
    senders,
    authors,
    author_sessions,
    list_tallies,
    list_tally_changes,
    list_days,
    list_day_changes,
);
