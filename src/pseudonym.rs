//! Keyed pseudonyms: HMAC-SHA256 of an identity under a secret, so the lake never holds
//! a raw identity and the same person keeps the same pseudonym across sources and runs.

use compact_str::CompactString;
use hmac::{Hmac, Mac};
use sha2::Sha256;

/// Makes pseudonyms with one secret.
///
/// A pull or a generated lake names the same few thousand people again and again (every
/// history row has an actor), so pseudonyms already made are kept, up to
/// [`CACHED`] of them: a lookup costs a fraction of the HMAC. Identities of up to 24
/// bytes and the pseudonyms are kept inline in the table, so a lookup that finds one
/// reads no other memory.
pub struct Pseudonymizer {
    mac: Hmac<Sha256>,
    made: std::sync::Mutex<foldhash::HashMap<CompactString, CompactString>>,
}

/// Pseudonyms kept at most (about 100 bytes each); the cache starts again when full.
pub const CACHED: usize = 1 << 18;

impl Clone for Pseudonymizer {
    fn clone(&self) -> Pseudonymizer {
        Pseudonymizer {
            mac: self.mac.clone(),
            made: Default::default(),
        }
    }
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
            made: Default::default(),
        }
    }

    /// `p_` and the first 16 hex digits of HMAC-SHA256(secret, identity); 18 bytes, so
    /// kept inline by the [`CompactString`] (copying one allocates nothing).
    pub fn pseudonym(&self, identity: &str) -> CompactString {
        let mut made = self.made.lock().unwrap_or_else(|e| e.into_inner());
        if let Some(p) = made.get(identity) {
            return p.clone();
        }
        let p = self.compute(identity);
        if made.len() >= CACHED {
            made.clear();
        }
        made.insert(identity.into(), p.clone());
        p
    }

    fn compute(&self, identity: &str) -> CompactString {
        const HEX: &[u8; 16] = b"0123456789abcdef";
        let mut mac = self.mac.clone();
        mac.update(identity.as_bytes());
        let digest = mac.finalize().into_bytes();
        let mut out = CompactString::with_capacity(18);
        out.push_str("p_");
        for b in &digest[..8] {
            out.push(HEX[usize::from(b >> 4)] as char);
            out.push(HEX[usize::from(b & 15)] as char);
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
        // a kept pseudonym is the one computed, and a clone (which starts empty) agrees
        assert_eq!(a.pseudonym("x"), a.compute("x"));
        assert_eq!(
            a.clone().pseudonym("alice@insa-lyon.fr"),
            a.compute("alice@insa-lyon.fr")
        );
        // RFC 4231-style check of the construction: HMAC-SHA256(key="key", "The quick brown fox jumps over the lazy dog")
        let k = Pseudonymizer::new(b"key");
        assert_eq!(
            k.pseudonym("The quick brown fox jumps over the lazy dog"),
            "p_f7bc83f430538424"
        );
    }
}
