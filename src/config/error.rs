use std::fmt;

/// A place in the config file, 1-based, as editors count.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Location {
    pub file: String,
    pub line: usize,
    pub column: usize,
}

impl Location {
    /// The place of byte `offset` in `source`. Scans `source` once; to place
    /// many offsets in one file, build a [`LineIndex`] instead.
    pub fn at(file: &str, source: &str, offset: usize) -> Location {
        LineIndex::new(source).location(file, offset)
    }
}

/// Where each line of a file starts, found in one pass, so that placing an
/// offset is a binary search rather than a scan from the start of the file
/// (which made loading a config of n checks take time in n²).
pub struct LineIndex<'a> {
    source: &'a str,
    /// Byte offset of the first character of every line; `starts[0] == 0`.
    starts: Vec<usize>,
}

impl<'a> LineIndex<'a> {
    pub fn new(source: &'a str) -> LineIndex<'a> {
        let mut starts = vec![0];
        starts.extend(
            source
                .bytes()
                .enumerate()
                .filter(|&(_, b)| b == b'\n')
                .map(|(i, _)| i + 1),
        );
        LineIndex { source, starts }
    }

    /// The 1-based line of byte `offset`: a binary search, no scan.
    pub fn line(&self, offset: usize) -> usize {
        let offset = offset.min(self.source.len());
        self.starts.partition_point(|&start| start <= offset).max(1)
    }

    /// The 1-based line and column (in characters) of byte `offset`;
    /// offsets past the end count as the end.
    pub fn location(&self, file: &str, offset: usize) -> Location {
        let offset = offset.min(self.source.len());
        // The last line start at or before `offset`; `starts[0]` is 0.
        let line = self.starts.partition_point(|&start| start <= offset);
        let line_start = self.starts.get(line.wrapping_sub(1)).copied().unwrap_or(0);
        let column = self
            .source
            .get(line_start..offset)
            .map_or(0, |s| s.chars().count())
            + 1;
        Location {
            file: file.to_owned(),
            line: line.max(1),
            column,
        }
    }
}

impl fmt::Display for Location {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}:{}:{}", self.file, self.line, self.column)
    }
}

#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    #[error("{file}: cannot read the config file: {source}")]
    Read {
        file: String,
        #[source]
        source: crate::file::ReadError,
    },
    /// A command-line option that overrides the file (`--shard`, `--location`…).
    #[error("{option}: {message}")]
    Option { option: String, message: String },
    /// Everything else: where, which field, and what is wrong.
    #[error("{location}: {field}: {message}")]
    Invalid {
        location: Location,
        field: String,
        message: String,
    },
}

/// A message with the user and password of every URL in it replaced by
/// `…`: a config error quotes what was written, and a URL's password is
/// not a known secret the redactor would find. Every `Invalid` error's
/// message goes through here, whichever check made it.
pub(super) fn without_userinfo(message: String) -> String {
    if !message.contains("://") {
        return message;
    }
    let mut out = String::with_capacity(message.len());
    let mut rest = message.as_str();
    while let Some(at) = rest.find("://") {
        let (head, tail) = rest.split_at(at + 3);
        out.push_str(head);
        let authority_end = tail
            .find(|c: char| matches!(c, '/' | '?' | '#' | '"' | '\'' | '\\') || c.is_whitespace())
            .unwrap_or(tail.len());
        let authority = &tail[..authority_end];
        match authority.rfind('@') {
            Some(user_end) => {
                out.push('…');
                out.push_str(&tail[user_end..authority_end]);
            }
            None => out.push_str(authority),
        }
        rest = &tail[authority_end..];
    }
    out.push_str(rest);
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn no_url_in_a_message_keeps_its_user_or_password() {
        for (message, want) in [
            (
                "invalid URL \"https://bob:hunter2@a.test:99999/x\": bad port",
                "invalid URL \"https://…@a.test:99999/x\": bad port",
            ),
            ("\"ftp://u:pw@h\" is not", "\"ftp://…@h\" is not"),
            (
                "a https://a.test/p?x=u:p@q and tcp://x:y@h:1",
                "a https://a.test/p?x=u:p@q and tcp://…@h:1",
            ),
            ("no url here", "no url here"),
            ("trailing https://only:pw@", "trailing https://…@"),
        ] {
            assert_eq!(without_userinfo(message.to_owned()), want);
        }
    }

    #[test]
    fn the_index_places_offsets_like_a_scan_from_the_start() {
        let source = "a = 1\n\nname = \"é€x\"\r\nlast";
        let index = LineIndex::new(source);
        for offset in
            (0..=source.len() + 3).filter(|&o| o >= source.len() || source.is_char_boundary(o))
        {
            let before = &source[..offset.min(source.len())];
            let line = before.matches('\n').count() + 1;
            let start = before.rfind('\n').map_or(0, |i| i + 1);
            let column = before[start..].chars().count() + 1;
            let got = index.location("f", offset);
            assert_eq!((got.line, got.column), (line, column), "offset {offset}");
        }
        assert_eq!(Location::at("f", "", 0).to_string(), "f:1:1");
        assert_eq!(Location::at("f", "x\n", 2).to_string(), "f:2:1");
    }
}
