DROP TABLE form_token_uses;
