-- Form tokens are single-use: the nonce of each one a signup used.
CREATE TABLE form_token_uses (
    nonce TEXT PRIMARY KEY,
    used_at TIMESTAMP NOT NULL
);
