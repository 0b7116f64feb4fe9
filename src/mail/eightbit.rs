//! Messages for servers that do not take 8bit bodies (no 8BITMIME, RFC
//! 6152): the same message, each 8bit part re-encoded as quoted-printable.
//!
//! Tidings sends its parts as 8bit when they hold UTF-8 (quoted-printable
//! was the costliest step of composing a digest), so this runs only for
//! the rare server that needs it, on the finished bytes. It relies on the
//! shape Tidings' own messages have: ASCII headers (lettre encodes the rest
//! per RFC 2047), and parts delimited by `--boundary` lines.

use memchr::memmem;

const EIGHT_BIT: &[u8] = b"Content-Transfer-Encoding: 8bit\r\n";
const QUOTED_PRINTABLE: &[u8] = b"Content-Transfer-Encoding: quoted-printable\r\n";

/// The message with every 8bit part in quoted-printable; 7bit parts and
/// every header are copied as they are.
pub fn to_seven_bit(message: &[u8]) -> Vec<u8> {
    let mut out = Vec::with_capacity(message.len() + message.len() / 4);
    let mut at = 0;
    while let Some(found) = memmem::find(&message[at..], EIGHT_BIT) {
        let header = at + found;
        // The part's body starts after the blank line that ends its headers.
        let Some(blank) = memmem::find(&message[header..], b"\r\n\r\n") else { break };
        let body_start = header + blank + 4;
        let body_end = match boundary_before(message, header) {
            Some(boundary) => memmem::find(&message[body_start..], boundary)
                .map_or(message.len(), |i| body_start + i)
                .saturating_sub(2)
                .max(body_start),
            None => message.len(),
        };
        out.extend_from_slice(&message[at..header]);
        out.extend_from_slice(QUOTED_PRINTABLE);
        out.extend_from_slice(&message[header + EIGHT_BIT.len()..body_start]);
        out.extend_from_slice(&quoted_printable::encode(&message[body_start..body_end]));
        at = body_end;
    }
    out.extend_from_slice(&message[at..]);
    out
}

/// The `--boundary` line that opened the part whose header is at `header`,
/// if the part is inside a multipart body; `None` for a single-part message.
fn boundary_before(message: &[u8], header: usize) -> Option<&[u8]> {
    let before = &message[..header];
    let line_start = memmem::rfind(before, b"\r\n--")? + 2;
    let line_end = line_start + memmem::find(&message[line_start..], b"\r\n")?;
    // The delimiter as it appears between parts: CRLF, then the line.
    Some(&message[line_start..line_end])
}

#[cfg(test)]
mod tests {
    use super::*;

    const MESSAGE: &str = "From: a@example.org\r\nMIME-Version: 1.0\r\n\
        Content-Type: multipart/alternative; boundary=\"b1\"\r\n\r\n\
        --b1\r\nContent-Type: text/plain; charset=utf-8\r\nContent-Transfer-Encoding: 8bit\r\n\r\n\
        Grüße, Zoë\r\nline two\r\n\
        --b1\r\nContent-Type: text/html; charset=utf-8\r\nContent-Transfer-Encoding: 7bit\r\n\r\n\
        <p>plain</p>\r\n\
        --b1\r\nContent-Type: text/html; charset=utf-8\r\nContent-Transfer-Encoding: 8bit\r\n\r\n\
        <p>café</p>\r\n\
        --b1--\r\n";

    #[test]
    fn eight_bit_parts_become_quoted_printable() {
        let out = String::from_utf8(to_seven_bit(MESSAGE.as_bytes())).unwrap();
        assert!(out.is_ascii(), "{out}");
        assert!(!out.contains("8bit"), "{out}");
        assert!(out.contains("quoted-printable\r\n\r\nGr=C3=BC=C3=9Fe, Zo=C3=AB\r\nline two\r\n--b1\r\n"), "{out}");
        assert!(out.contains("7bit\r\n\r\n<p>plain</p>\r\n--b1\r\n"), "7bit parts stay: {out}");
        assert!(out.contains("quoted-printable\r\n\r\n<p>caf=C3=A9</p>\r\n--b1--\r\n"), "{out}");
        assert!(out.starts_with("From: a@example.org\r\n"));
    }

    #[test]
    fn a_single_part_message_is_encoded_to_its_end() {
        let single = "Subject: x\r\nContent-Transfer-Encoding: 8bit\r\n\r\nÄrger\r\n";
        let out = String::from_utf8(to_seven_bit(single.as_bytes())).unwrap();
        assert_eq!(out, "Subject: x\r\nContent-Transfer-Encoding: quoted-printable\r\n\r\n=C3=84rger\r\n");
    }

    #[test]
    fn ascii_messages_are_unchanged() {
        let ascii = MESSAGE.replace("ü", "u").replace("ß", "ss").replace("ë", "e").replace("é", "e");
        let out = to_seven_bit(ascii.replace("8bit", "7bit").as_bytes());
        assert_eq!(out, ascii.replace("8bit", "7bit").as_bytes());
    }
}
