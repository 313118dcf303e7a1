//! A text corpus for character-level language modelling.

use std::io::Read;
use std::path::Path;

use bptt::Error;

/// A text as character ids, split into a training part and a held-out part.
#[derive(Debug, Clone)]
pub struct Corpus {
    chars: Vec<char>,
    train: Vec<u32>,
    held_out: Vec<u32>,
}

/// The most bytes of text read.
pub const MAX_TEXT_BYTES: usize = 32 << 20;

/// Reads a text file, capped and checked as UTF-8 chunk by chunk.
fn read_text(path: &Path) -> Result<String, Error> {
    let what = || format!("cannot read the text {}", path.display());
    let fail = |why: String| Error::File(format!("{}: {why}", what()));
    let mut file = std::fs::File::open(path).map_err(Error::io(what()))?;
    let mut bytes: Vec<u8> = Vec::new();
    let mut checked = 0;
    let mut chunk = vec![0u8; 1 << 16];
    loop {
        let n = match file.read(&mut chunk) {
            Ok(0) => break,
            Ok(n) => n,
            Err(e) if e.kind() == std::io::ErrorKind::Interrupted => continue,
            Err(e) => return Err(Error::io(what())(e)),
        };
        if bytes.len() + n > MAX_TEXT_BYTES {
            return Err(fail(format!(
                "it is larger than {} MB, the most bptt reads",
                MAX_TEXT_BYTES >> 20
            )));
        }
        bytes.extend_from_slice(&chunk[..n]);
        // Check what arrived; an incomplete character at the end waits for
        // the next chunk.
        if let Err(e) = std::str::from_utf8(&bytes[checked..]) {
            if e.error_len().is_some() {
                return Err(fail(format!(
                    "it is not UTF-8 (at byte {})",
                    checked + e.valid_up_to()
                )));
            }
            checked += e.valid_up_to();
        } else {
            checked = bytes.len();
        }
    }
    String::from_utf8(bytes).map_err(|e| {
        fail(format!(
            "it is not UTF-8 (at byte {})",
            e.utf8_error().valid_up_to()
        ))
    })
}

/// The share of the text held out for evaluation (its last tenth).
const HELD_OUT_SHARE: f64 = 0.1;

impl Corpus {
    /// Reads a UTF-8 text file of at most [`MAX_TEXT_BYTES`], checking the
    /// encoding as it streams (a file that is not UTF-8 is refused at its
    /// first bad byte, and one too large at the cap, without reading on).
    pub fn load(path: &Path) -> Result<Self, Error> {
        let text = read_text(path)?;
        Self::from_text(&text).map_err(|e| match e {
            Error::EmptyText(_) => Error::EmptyText(path.display().to_string()),
            other => other,
        })
    }

    /// Builds the vocabulary (sorted distinct characters) and splits the text.
    pub fn from_text(text: &str) -> Result<Self, Error> {
        if text.is_empty() {
            return Err(Error::EmptyText("the text".to_string()));
        }
        let chars: Vec<char> = text
            .chars()
            .collect::<std::collections::BTreeSet<char>>()
            .into_iter()
            .collect();
        let mut ids: Vec<u32> = text
            .chars()
            .map(|c| {
                chars
                    .binary_search(&c)
                    .expect("every char is in the vocabulary") as u32
            })
            .collect();
        let split = ids.len() - (ids.len() as f64 * HELD_OUT_SHARE) as usize;
        let held_out = ids.split_off(split);
        Ok(Corpus {
            chars,
            held_out,
            train: ids,
        })
    }

    /// The vocabulary, sorted.
    pub fn chars(&self) -> &[char] {
        &self.chars
    }

    /// Training ids.
    pub fn train(&self) -> &[u32] {
        &self.train
    }

    /// Held-out ids.
    pub fn held_out(&self) -> &[u32] {
        &self.held_out
    }

    /// The id of a character, if it is in the vocabulary.
    pub fn id(&self, c: char) -> Option<u32> {
        self.chars.binary_search(&c).ok().map(|i| i as u32)
    }

    /// The character of an id.
    pub fn char(&self, id: u32) -> char {
        self.chars[id as usize]
    }
}
