//! Readers in and out: CSV import from other tools and Tidings' own
//! export, and a reader's own data (GDPR).

pub mod decode;
pub mod export;
pub mod formats;
pub mod import;
