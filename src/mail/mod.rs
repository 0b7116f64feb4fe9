//! Email: rendering templates, composing MIME messages, and delivering them.

mod compose;
mod corked;
mod messages;
mod render;
mod stencil;
mod transport;

pub use compose::{ComposeError, Composer, ListHeaders, Outgoing};
pub use messages::{Links, MessageError, Messages, PreparedDigest};
pub use render::{RenderError, Rendered, Renderer};
pub use transport::{Mailer, SendError};
