//! The text encodings CSV files come in: UTF-8 (with or without a BOM), and
//! Windows-1252, which Excel writes. A file is UTF-8 when all of it is, read
//! once in chunks (memory stays flat); otherwise it is Windows-1252, which
//! can decode any bytes. Transcoding is `encoding_rs_io`'s.

use std::io::{self, Read};

use encoding_rs::WINDOWS_1252;
use encoding_rs_io::DecodeReaderBytesBuilder;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Encoding {
    Utf8,
    Windows1252,
    /// NUL bytes: an image, a spreadsheet, an archive — not text at all.
    Binary,
}

impl Encoding {
    pub fn name(self) -> &'static str {
        match self {
            Self::Utf8 => "UTF-8",
            Self::Windows1252 => "Windows-1252",
            Self::Binary => "binary",
        }
    }
}

/// Whether everything `reader` holds is UTF-8 (or not text at all).
pub fn sniff(mut reader: impl Read) -> io::Result<Encoding> {
    let mut buf = vec![0u8; 64 * 1024];
    let mut carried = 0;
    let mut utf8 = true;
    loop {
        let n = reader.read(&mut buf[carried..])?;
        if n == 0 {
            return Ok(if carried == 0 && utf8 { Encoding::Utf8 } else { Encoding::Windows1252 });
        }
        let filled = carried + n;
        if memchr::memchr(0, &buf[carried..filled]).is_some() {
            return Ok(Encoding::Binary);
        }
        if !utf8 {
            carried = 0;
            continue;
        }
        match std::str::from_utf8(&buf[..filled]) {
            Ok(_) => carried = 0,
            // A character cut at the end of the chunk: keep its first bytes.
            Err(e) if e.error_len().is_none() => {
                let valid = e.valid_up_to();
                buf.copy_within(valid..filled, 0);
                carried = filled - valid;
            }
            Err(_) => {
                utf8 = false;
                carried = 0;
            }
        }
    }
}

/// `reader` as UTF-8 text, without a BOM.
pub fn utf8_reader<R: Read>(reader: R, encoding: Encoding) -> impl Read {
    let mut builder = DecodeReaderBytesBuilder::new();
    builder.bom_override(true).strip_bom(true);
    if encoding == Encoding::Windows1252 {
        builder.encoding(Some(WINDOWS_1252));
    } else {
        builder.encoding(Some(encoding_rs::UTF_8));
    }
    builder.build(reader)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn decoded(bytes: &[u8]) -> (Encoding, String) {
        let encoding = sniff(bytes).unwrap();
        let mut text = String::new();
        utf8_reader(bytes, encoding).read_to_string(&mut text).unwrap();
        (encoding, text)
    }

    #[test]
    fn utf8_with_or_without_bom_and_excels_windows_1252() {
        assert_eq!(decoded("email\nzoë@example.org\n".as_bytes()), (Encoding::Utf8, "email\nzoë@example.org\n".into()));
        assert_eq!(decoded(b"\xef\xbb\xbfemail\n"), (Encoding::Utf8, "email\n".into()));
        assert_eq!(decoded(b"name\nJos\xe9 \x80\n"), (Encoding::Windows1252, "name\nJosé €\n".into()));
        // A multi-byte character across a chunk boundary is still UTF-8.
        let mut long = "a".repeat(64 * 1024 - 1).into_bytes();
        long.extend_from_slice("é".as_bytes());
        assert_eq!(sniff(&long[..]).unwrap(), Encoding::Utf8);
        assert_eq!(sniff(&b"\x89PNG\r\n\x1a\n\0\0"[..]).unwrap(), Encoding::Binary);
    }
}
