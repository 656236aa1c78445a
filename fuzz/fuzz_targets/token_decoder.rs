//! Whatever arrives as a token in a link is refused or accepted without a
//! panic, and only tokens this key signed are accepted.
#![no_main]

use libfuzzer_sys::fuzz_target;
use newsletter::domain::{ConfirmationToken, Signer};

fuzz_target!(|data: &[u8]| {
    let Ok(token) = std::str::from_utf8(data) else {
        return;
    };
    let signer = Signer::new(b"a fixed key for fuzzing only, 32+ bytes long");
    if let Ok(id) = signer.verify_unsubscribe(token) {
        assert_eq!(signer.unsubscribe_token(id).as_str(), token);
    }
    if let Ok((report, reader)) = signer.verify_feedback(token) {
        assert_eq!(signer.feedback_token(report, reader), token);
    }
    let _ = signer.verify_id("fuzz", token);
    let _ = ConfirmationToken::parse(token);
});
