//! A text corpus for character-level language modelling.

use std::path::Path;

use crate::error::Error;

/// A text as character ids, split into a training part and a held-out part.
#[derive(Debug, Clone)]
pub struct Corpus {
    chars: Vec<char>,
    train: Vec<u32>,
    held_out: Vec<u32>,
}

/// The share of the text held out for evaluation (its last tenth).
const HELD_OUT_SHARE: f64 = 0.1;

impl Corpus {
    /// Reads a UTF-8 text file.
    pub fn load(path: &Path) -> Result<Self, Error> {
        let text = std::fs::read_to_string(path)
            .map_err(|e| Error::Io(format!("cannot read the text {}: {e}", path.display())))?;
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
        let mut chars: Vec<char> = text.chars().collect();
        chars.sort_unstable();
        chars.dedup();
        let ids: Vec<u32> = text
            .chars()
            .map(|c| {
                chars
                    .binary_search(&c)
                    .expect("every char is in the vocabulary") as u32
            })
            .collect();
        let split = ids.len() - (ids.len() as f64 * HELD_OUT_SHARE) as usize;
        Ok(Corpus {
            chars,
            held_out: ids[split..].to_vec(),
            train: ids[..split].to_vec(),
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
