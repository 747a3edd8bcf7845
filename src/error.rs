//! Rendering an error with its causes on one line, for log lines and error answers.

use std::error::Error;

/// `e` and its sources, `: `-separated, each cause once: a cause whose text the line
/// already contains (an error that prints its source itself, as many wrapped I/O and
/// hyper errors do) is not repeated.
pub fn error_chain(e: &(dyn Error + 'static)) -> String {
    let mut text = e.to_string();
    let mut source = e.source();
    while let Some(s) = source {
        let part = s.to_string();
        if !text.contains(&part) {
            text.push_str(": ");
            text.push_str(&part);
        }
        source = s.source();
    }
    text
}

#[cfg(test)]
mod tests {
    use super::*;

    #[derive(Debug, thiserror::Error)]
    enum Outer {
        #[error("could not write the file")]
        Quiet(#[source] std::io::Error),
        #[error("could not read the file: {0}")]
        Loud(#[source] std::io::Error),
        #[error("wrapped")]
        Nested(#[source] Box<Outer>),
    }

    fn io() -> std::io::Error {
        std::io::Error::new(std::io::ErrorKind::PermissionDenied, "permission denied")
    }

    #[test]
    fn causes_follow_once_each() {
        let table: [(Outer, &str); 4] = [
            (
                Outer::Quiet(io()),
                "could not write the file: permission denied",
            ),
            (
                Outer::Loud(io()),
                "could not read the file: permission denied",
            ),
            (
                Outer::Nested(Box::new(Outer::Quiet(io()))),
                "wrapped: could not write the file: permission denied",
            ),
            (
                Outer::Nested(Box::new(Outer::Loud(io()))),
                "wrapped: could not read the file: permission denied",
            ),
        ];
        for (e, want) in table {
            assert_eq!(error_chain(&e), want);
        }
    }
}
