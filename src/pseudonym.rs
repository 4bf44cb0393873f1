//! Keyed pseudonyms: HMAC-SHA256 of an identity under a secret, so the lake never holds
//! a raw identity and the same person keeps the same pseudonym across sources and runs.

use hmac::{Hmac, Mac};
use sha2::Sha256;

/// Makes pseudonyms with one secret.
#[derive(Clone)]
pub struct Pseudonymizer {
    mac: Hmac<Sha256>,
}

impl std::fmt::Debug for Pseudonymizer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Pseudonymizer(<secret>)")
    }
}

impl Pseudonymizer {
    pub fn new(secret: &[u8]) -> Pseudonymizer {
        Pseudonymizer {
            mac: Hmac::<Sha256>::new_from_slice(secret).expect("HMAC takes any key length"),
        }
    }

    /// `p_` and the first 16 hex digits of HMAC-SHA256(secret, identity).
    pub fn pseudonym(&self, identity: &str) -> String {
        let mut mac = self.mac.clone();
        mac.update(identity.as_bytes());
        let digest = mac.finalize().into_bytes();
        let mut out = String::with_capacity(18);
        out.push_str("p_");
        for b in &digest[..8] {
            out.push_str(&format!("{b:02x}"));
        }
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keyed_and_stable() {
        let a = Pseudonymizer::new(b"secret-a");
        let b = Pseudonymizer::new(b"secret-b");
        assert_eq!(
            a.pseudonym("alice@insa-lyon.fr"),
            a.pseudonym("alice@insa-lyon.fr")
        );
        assert_ne!(
            a.pseudonym("alice@insa-lyon.fr"),
            b.pseudonym("alice@insa-lyon.fr")
        );
        assert_eq!(a.pseudonym("x").len(), 18);
        // RFC 4231-style check of the construction: HMAC-SHA256(key="key", "The quick brown fox jumps over the lazy dog")
        let k = Pseudonymizer::new(b"key");
        assert_eq!(
            k.pseudonym("The quick brown fox jumps over the lazy dog"),
            "p_f7bc83f430538424"
        );
    }
}
