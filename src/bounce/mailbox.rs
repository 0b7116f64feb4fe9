//! The files `tidings bounces import` reads: an mbox file, a Maildir folder
//! (`cur/` and `new/`), or one `.eml` message. Splitting is mail-parser's.

use std::io::{BufReader, Read};
use std::path::Path;

use mail_parser::mailbox::{maildir, mbox};

/// Each message of the mailbox at `path`, as raw bytes.
pub fn messages(path: &Path) -> Result<Vec<Vec<u8>>, String> {
    let shown = path.display();
    if path.is_dir() {
        let folder = maildir::MessageIterator::new(path)
            .map_err(|e| format!("{shown}: not a Maildir folder (needs cur/ and new/): {e}"))?;
        return folder.map(|m| m.map(|m| m.unwrap_contents()).map_err(|e| format!("{shown}: {e}"))).collect();
    }
    let mut file = std::fs::File::open(path).map_err(|e| format!("{shown}: {e}"))?;
    let mut head = [0u8; 5];
    let read = file.read(&mut head).map_err(|e| format!("{shown}: {e}"))?;
    let file = std::fs::File::open(path).map_err(|e| format!("{shown}: {e}"))?;
    if &head[..read] == b"From " {
        return mbox::MessageIterator::new(BufReader::new(file))
            .map(|m| m.map(|m| m.unwrap_contents()).map_err(|e| format!("{shown}: {e}")))
            .collect();
    }
    let mut raw = Vec::new();
    BufReader::new(file).read_to_end(&mut raw).map_err(|e| format!("{shown}: {e}"))?;
    Ok(vec![raw])
}
