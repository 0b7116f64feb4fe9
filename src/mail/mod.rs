//! Email: rendering templates, composing MIME messages, and delivering them.

mod compose;
mod corked;
pub mod dkim;
mod eightbit;
mod failure;
mod messages;
mod render;
mod smtp;
mod stencil;
mod transport;

pub use compose::{ComposeError, Composer, ListHeaders, Outgoing};
pub use dkim::Dkim;
pub use failure::{EnhancedCode, SendError};
pub use messages::{Links, MessageError, Messages, PreparedDigest};
pub use render::{RenderError, Rendered, Renderer};
pub use transport::Mailer;
