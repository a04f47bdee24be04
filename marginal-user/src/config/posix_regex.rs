//! `devices` patterns as multipathd matches them: POSIX extended regular expressions compiled by
//! the C library's `regcomp(REG_EXTENDED|REG_NOSUB)` and tested with `regexec` (libmultipath's
//! `hwe_regmatch`).
//!
//! The C library is used on purpose instead of a Rust regex crate: the two dialects differ at
//! the edges (`\d` is a literal `d` in POSIX, `[[:alpha:]]` classes, `{,n}` bounds, what counts
//! as an invalid pattern), and the whole point is that a pattern means to marginal exactly what
//! it means to multipathd on the same host, which links the same C library.
use std::{ffi::CString, fmt, sync::Arc};

/// A compiled pattern; cloning shares it.
#[derive(Clone)]
pub struct PosixRegex {
    compiled: Arc<Compiled>,
}

struct Compiled(libc::regex_t);

// SAFETY: a compiled regex_t is only read by regexec, which glibc makes safe to call from
// several threads at once on one pattern (it locks the pattern's DFA internally); it owns its
// heap memory, freed once by regfree in Drop.
unsafe impl Send for Compiled {}
unsafe impl Sync for Compiled {}

impl Drop for Compiled {
    fn drop(&mut self) {
        // SAFETY: self.0 was filled by a successful regcomp and is freed only here.
        unsafe { libc::regfree(&mut self.0) }
    }
}

impl PosixRegex {
    /// Compiles `pattern` as multipathd does. The error is regerror's text, e.g.
    /// "Unmatched ( or \\(".
    pub fn new(pattern: &str) -> Result<PosixRegex, String> {
        let c_pattern = CString::new(pattern)
            .map_err(|_| "a NUL byte cannot be part of a pattern".to_string())?;
        // SAFETY: regex_t is plain data that regcomp initialises; zeroed is a valid start.
        let mut regex: libc::regex_t = unsafe { std::mem::zeroed() };
        // SAFETY: regex points to writable storage, c_pattern is NUL-terminated.
        let code = unsafe {
            libc::regcomp(
                &mut regex,
                c_pattern.as_ptr(),
                libc::REG_EXTENDED | libc::REG_NOSUB,
            )
        };
        if code != 0 {
            let message = error_text(code, &regex);
            // POSIX leaves the regex_t undefined after a failed regcomp; glibc frees what it
            // allocated itself, so regfree is not called.
            return Err(message);
        }
        Ok(PosixRegex {
            compiled: Arc::new(Compiled(regex)),
        })
    }

    /// `regexec(..., 0, NULL, 0) == 0`: a match anywhere in `s`, unless the pattern anchors.
    /// A string with a NUL byte is tested up to it, as C would see it.
    pub fn is_match(&self, s: &str) -> bool {
        let bytes = s.as_bytes();
        let end = bytes.iter().position(|&b| b == 0).unwrap_or(bytes.len());
        let c_text = CString::new(&bytes[..end]).expect("no NUL before end");
        // SAFETY: the pattern was compiled by regcomp and outlives the call; no match offsets
        // are asked for (nmatch 0, pmatch NULL), as REG_NOSUB requires.
        let code = unsafe {
            libc::regexec(
                &self.compiled.0,
                c_text.as_ptr(),
                0,
                std::ptr::null_mut(),
                0,
            )
        };
        code == 0
    }
}

impl fmt::Debug for PosixRegex {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("PosixRegex")
    }
}

fn error_text(code: libc::c_int, regex: &libc::regex_t) -> String {
    let mut buffer = vec![0u8; 256];
    // SAFETY: regerror writes at most buffer.len() bytes, NUL included.
    let len = unsafe {
        libc::regerror(
            code,
            regex,
            buffer.as_mut_ptr().cast(),
            buffer.len() as libc::size_t,
        )
    };
    let len = len.min(buffer.len());
    let text = &buffer[..len];
    let text = text.split(|&b| b == 0).next().unwrap_or_default();
    String::from_utf8_lossy(text).into_owned()
}

#[cfg(test)]
mod tests {
    use super::PosixRegex;

    fn m(pattern: &str, s: &str) -> bool {
        PosixRegex::new(pattern)
            .unwrap_or_else(|e| panic!("{pattern}: {e}"))
            .is_match(s)
    }

    #[test]
    fn unanchored_patterns_match_anywhere() {
        assert!(m("NETAPP", "NETAPP"));
        assert!(m("LUN", "LUN C-Mode"));
        assert!(m("C-Mode", "LUN C-Mode"));
        assert!(!m("netapp", "NETAPP"));
        assert!(m("", "anything"));
    }

    #[test]
    fn anchors_matter_even_without_submatches() {
        assert!(m("^LUN", "LUN C-Mode"));
        assert!(!m("^C-Mode", "LUN C-Mode"));
        assert!(m("Mode$", "LUN C-Mode"));
        assert!(!m("^LUN$", "LUN C-Mode"));
        assert!(m("^8", "8300"));
        assert!(!m("^8", "9800"));
    }

    #[test]
    fn posix_classes_and_alternation() {
        assert!(m("^[[:alpha:]]+$", "NETAPP"));
        assert!(!m("^[[:alpha:]]+$", "LUN 1"));
        assert!(m("^[[:digit:]]{4}$", "9800"));
        assert!(m("^(HSV1[01]1|HSVX700)$", "HSV101"));
        assert!(m("^(HSV1[01]1|HSVX700)$", "HSVX700"));
        assert!(!m("^(HSV1[01]1|HSVX700)$", "HSV121"));
        // Leftmost-longest against leftmost-first does not change whether there is a match.
        assert!(m("^(a|ab)c$", "abc"));
    }

    #[test]
    fn backslash_d_is_a_literal_d_in_posix() {
        // Perl and the Rust regex crate read \d as a digit; glibc's ERE reads it as `d`.
        assert!(!m("^\\d$", "7"));
        assert!(m("^\\d$", "d"));
    }

    #[test]
    fn backreferences_are_not_part_of_ere() {
        // glibc accepts \1 in ERE as an extension; what matters is that it means what it
        // means to multipathd, which calls the same regcomp.
        match PosixRegex::new("^(a)\\1$") {
            Ok(regex) => assert!(regex.is_match("aa")),
            Err(e) => assert!(!e.is_empty()),
        }
    }

    #[test]
    fn invalid_patterns_are_refused_with_the_c_library_message() {
        let error = PosixRegex::new("(unclosed").unwrap_err();
        assert!(error.contains("Unmatched"), "{error}");
        assert!(PosixRegex::new("[z-a]").is_err());
        // Patterns the Rust crate refuses but POSIX accepts.
        assert!(m("a{,2}", "a"));
        assert!(PosixRegex::new("NUL\0byte").is_err());
    }

    #[test]
    fn shared_between_threads() {
        let regex = PosixRegex::new("^LUN").unwrap();
        let clone = regex.clone();
        let handle = std::thread::spawn(move || clone.is_match("LUN C-Mode"));
        assert!(handle.join().unwrap());
        assert!(regex.is_match("LUN"));
    }
}
