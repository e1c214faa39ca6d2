//! A line protocol (memcached-style text): a request is a line ending in
//! `\n`, and its answer is the same line back. A line over [`MAX_LINE`]
//! bytes gets `error: line too long` and a close.

use super::Answer;

/// The longest line answered, its `\n` included.
pub const MAX_LINE: usize = 16 * 1024;

/// Answers the first line in `buf` (see [`Answer`]).
pub fn answer(buf: &[u8], out: &mut Vec<u8>) -> Answer {
    let window = &buf[..buf.len().min(MAX_LINE)];
    match window.iter().position(|&b| b == b'\n') {
        Some(end) => {
            out.extend_from_slice(&buf[..=end]);
            Answer::Answered {
                len: end + 1,
                close: false,
            }
        }
        None if buf.len() < MAX_LINE => Answer::Incomplete,
        None => {
            out.extend_from_slice(format!("error: line longer than {MAX_LINE} bytes\n").as_bytes());
            Answer::Refused
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn each_line_comes_back_in_turn() {
        let buf = b"one\r\ntwo\nthr";
        let mut out = Vec::new();
        assert_eq!(
            answer(buf, &mut out),
            Answer::Answered {
                len: 5,
                close: false
            }
        );
        assert_eq!(
            answer(&buf[5..], &mut out),
            Answer::Answered {
                len: 4,
                close: false
            }
        );
        assert_eq!(answer(&buf[9..], &mut out), Answer::Incomplete);
        assert_eq!(out, b"one\r\ntwo\n");
    }

    #[test]
    fn a_line_longer_than_the_bound_is_refused() {
        let mut line = vec![b'a'; MAX_LINE - 1];
        line.push(b'\n');
        let mut out = Vec::new();
        assert_eq!(
            answer(&line, &mut out),
            Answer::Answered {
                len: MAX_LINE,
                close: false
            }
        );
        line.insert(0, b'a');
        let mut out = Vec::new();
        assert_eq!(answer(&line, &mut out), Answer::Refused);
        assert_eq!(
            out,
            format!("error: line longer than {MAX_LINE} bytes\n").as_bytes()
        );
    }
}
