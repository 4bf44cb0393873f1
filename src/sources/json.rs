//! Borrowing JSON reading for the connectors' answers.
//!
//! A pull decodes hundreds of megabytes of answers. Parsing them into `serde_json::Value`
//! trees allocates every key and string, and the connectors then copied most of them
//! again. Here the answer is read straight into the few shapes the connectors need, with
//! text borrowed from the answer's bytes wherever it has no escapes.

use std::borrow::Cow;
use std::fmt;

use compact_str::{CompactString, ToCompactString};
use serde::de::{
    Deserialize, DeserializeSeed, Deserializer, IgnoredAny, MapAccess, SeqAccess, Visitor,
};

/// An answer's bytes as text, to be read with `serde_json::from_str`: checking the
/// UTF-8 of the whole answer at once costs far less than `from_slice` checking each
/// string as it reads it (a tenth of a pull's decoding went to that).
pub fn text(body: &[u8]) -> Result<&str, std::str::Utf8Error> {
    std::str::from_utf8(body)
}

/// `part`, text read from `body`, as a share of `body`'s buffer (no copy); a copy when
/// it is not from `body`.
pub fn share(body: &bytes::Bytes, part: &str) -> bytes::Bytes {
    let (start, end) = (body.as_ptr() as usize, body.as_ptr() as usize + body.len());
    let p = part.as_ptr() as usize;
    if p >= start && p + part.len() <= end {
        body.slice_ref(part.as_bytes())
    } else {
        bytes::Bytes::copy_from_slice(part.as_bytes())
    }
}

/// A JSON value read as text, as the sources mean it: iTop and GLPI send numbers as
/// strings, but not always. Numbers and booleans become their JSON text; null, arrays
/// and objects become `None` (they are never a field's value here).
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Text<'a>(pub Option<Str<'a>>);

/// The text of a JSON value: borrowed from the answer when it is a string without
/// escapes, else made (inline when up to 24 bytes: a number's text allocates nothing).
#[derive(Debug, Clone, PartialEq)]
pub enum Str<'a> {
    Borrowed(&'a str),
    Made(CompactString),
}

impl std::ops::Deref for Str<'_> {
    type Target = str;

    fn deref(&self) -> &str {
        match self {
            Str::Borrowed(s) => s,
            Str::Made(s) => s,
        }
    }
}

impl<'a> Text<'a> {
    /// The text, if the value had one.
    pub fn get(&self) -> Option<&str> {
        self.0.as_deref()
    }

    /// The text as an object's key (empty if the value had none).
    pub fn into_key(self) -> Cow<'a, str> {
        match self.0 {
            Some(Str::Borrowed(s)) => Cow::Borrowed(s),
            Some(Str::Made(s)) => Cow::Owned(s.into_string()),
            None => Cow::Borrowed(""),
        }
    }

    /// The text, if the value had one and it is not empty.
    pub fn non_empty(&self) -> Option<&str> {
        self.get().filter(|s| !s.is_empty())
    }

    /// The text, owned.
    pub fn owned(&self) -> Option<String> {
        self.get().map(str::to_string)
    }

    /// The value as JSON (a string or null), for a quarantined record.
    pub fn to_value(&self) -> serde_json::Value {
        match self.get() {
            Some(s) => serde_json::Value::String(s.to_string()),
            None => serde_json::Value::Null,
        }
    }
}

impl<'de: 'a, 'a> Deserialize<'de> for Text<'a> {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        d.deserialize_any(TextVisitor(std::marker::PhantomData))
    }
}

struct TextVisitor<'a>(std::marker::PhantomData<&'a ()>);

impl<'de: 'a, 'a> Visitor<'de> for TextVisitor<'a> {
    type Value = Text<'a>;

    fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
        f.write_str("a JSON value")
    }

    fn visit_borrowed_str<E>(self, v: &'de str) -> Result<Text<'a>, E> {
        Ok(Text(Some(Str::Borrowed(v))))
    }

    fn visit_str<E>(self, v: &str) -> Result<Text<'a>, E> {
        Ok(Text(Some(Str::Made(v.into()))))
    }

    fn visit_string<E>(self, v: String) -> Result<Text<'a>, E> {
        Ok(Text(Some(Str::Made(v.into()))))
    }

    fn visit_i64<E>(self, v: i64) -> Result<Text<'a>, E> {
        Ok(Text(Some(Str::Made(v.to_compact_string()))))
    }

    fn visit_u64<E>(self, v: u64) -> Result<Text<'a>, E> {
        Ok(Text(Some(Str::Made(v.to_compact_string()))))
    }

    fn visit_f64<E>(self, v: f64) -> Result<Text<'a>, E> {
        // the text `serde_json::Value` gives the same number
        Ok(Text(
            serde_json::Number::from_f64(v).map(|n| Str::Made(n.to_compact_string())),
        ))
    }

    fn visit_bool<E>(self, v: bool) -> Result<Text<'a>, E> {
        Ok(Text(Some(Str::Borrowed(if v { "true" } else { "false" }))))
    }

    fn visit_unit<E>(self) -> Result<Text<'a>, E> {
        Ok(Text(None))
    }

    fn visit_none<E>(self) -> Result<Text<'a>, E> {
        Ok(Text(None))
    }

    fn visit_some<D: Deserializer<'de>>(self, d: D) -> Result<Text<'a>, D::Error> {
        Text::deserialize(d)
    }

    fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<Text<'a>, A::Error> {
        while seq.next_element::<IgnoredAny>()?.is_some() {}
        Ok(Text(None))
    }

    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<Text<'a>, A::Error> {
        while map.next_entry::<IgnoredAny, IgnoredAny>()?.is_some() {}
        Ok(Text(None))
    }
}

/// A JSON object read as (key, text) pairs in the answer's order.
#[derive(Debug, Clone, Default)]
pub struct Fields<'a>(pub Vec<(Cow<'a, str>, Text<'a>)>);

impl<'a> Fields<'a> {
    /// The text of `key` (the last one when a key is repeated, as `serde_json` does).
    pub fn get(&self, key: &str) -> Option<&str> {
        self.0
            .iter()
            .rev()
            .find(|(k, _)| k == key)
            .and_then(|(_, v)| v.get())
    }

    /// The text of `key`, if not empty.
    pub fn non_empty(&self, key: &str) -> Option<&str> {
        self.get(key).filter(|s| !s.is_empty())
    }
}

impl<'de: 'a, 'a> Deserialize<'de> for Fields<'a> {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        d.deserialize_map(FieldsVisitor(std::marker::PhantomData))
    }
}

struct FieldsVisitor<'a>(std::marker::PhantomData<&'a ()>);

impl<'de: 'a, 'a> Visitor<'de> for FieldsVisitor<'a> {
    type Value = Fields<'a>;

    fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
        f.write_str("a JSON object")
    }

    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<Fields<'a>, A::Error> {
        let mut out = Vec::with_capacity(map.size_hint().unwrap_or(24));
        while let Some((k, v)) = map.next_entry::<Text<'a>, Text<'a>>()? {
            out.push((k.into_key(), v));
        }
        Ok(Fields(out))
    }
}

/// A JSON object's members in the answer's order, values of type `V`.
#[derive(Debug)]
pub struct Members<'a, V>(pub Vec<(Cow<'a, str>, V)>);

impl<V> Default for Members<'_, V> {
    fn default() -> Self {
        Members(Vec::new())
    }
}

impl<'de: 'a, 'a, V: Deserialize<'de>> Deserialize<'de> for Members<'a, V> {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        d.deserialize_map(MembersVisitor(std::marker::PhantomData))
    }
}

struct MembersVisitor<'a, V>(std::marker::PhantomData<(&'a (), V)>);

impl<'de: 'a, 'a, V: Deserialize<'de>> Visitor<'de> for MembersVisitor<'a, V> {
    type Value = Members<'a, V>;

    fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
        f.write_str("a JSON object")
    }

    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<Members<'a, V>, A::Error> {
        let mut out = Vec::with_capacity(map.size_hint().unwrap_or(0));
        while let Some((k, v)) = map.next_entry::<Text<'a>, V>()? {
            out.push((k.into_key(), v));
        }
        Ok(Members(out))
    }
}

/// Reads a JSON object's members one by one, handing each to a function as it is read
/// (nothing is collected: an answer of thousands of history rows is read in one pass);
/// `null` reads as an object without members. Members are given in the answer's order,
/// their values read as `V`.
pub struct EachMember<F, V>(F, std::marker::PhantomData<fn() -> V>);

impl<F, V> EachMember<F, V> {
    pub fn new(f: F) -> Self {
        EachMember(f, std::marker::PhantomData)
    }
}

impl<'de, V: Deserialize<'de>, F: FnMut(Cow<'de, str>, V)> DeserializeSeed<'de>
    for EachMember<F, V>
{
    type Value = ();

    fn deserialize<D: Deserializer<'de>>(self, d: D) -> Result<(), D::Error> {
        d.deserialize_option(self)
    }
}

impl<'de, V: Deserialize<'de>, F: FnMut(Cow<'de, str>, V)> Visitor<'de> for EachMember<F, V> {
    type Value = ();

    fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
        f.write_str("a JSON object or null")
    }

    fn visit_none<E>(self) -> Result<(), E> {
        Ok(())
    }

    fn visit_unit<E>(self) -> Result<(), E> {
        Ok(())
    }

    fn visit_some<D: Deserializer<'de>>(self, d: D) -> Result<(), D::Error> {
        d.deserialize_map(self)
    }

    fn visit_map<A: MapAccess<'de>>(mut self, mut map: A) -> Result<(), A::Error> {
        while let Some(k) = map.next_key::<Text<'de>>()? {
            let v = map.next_value::<V>()?;
            (self.0)(k.into_key(), v);
        }
        Ok(())
    }
}

/// Reads a JSON array's elements one by one, handing each to a function as it is read,
/// like [`EachMember`] for an object.
pub struct EachElement<F, V>(F, std::marker::PhantomData<fn() -> V>);

impl<F: FnMut(V), V> EachElement<F, V> {
    pub fn new(f: F) -> Self {
        EachElement(f, std::marker::PhantomData)
    }
}

impl<'de, V: Deserialize<'de>, F: FnMut(V)> DeserializeSeed<'de> for EachElement<F, V> {
    type Value = ();

    fn deserialize<D: Deserializer<'de>>(self, d: D) -> Result<(), D::Error> {
        d.deserialize_seq(self)
    }
}

impl<'de, V: Deserialize<'de>, F: FnMut(V)> Visitor<'de> for EachElement<F, V> {
    type Value = ();

    fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
        f.write_str("a JSON array")
    }

    fn visit_seq<A: SeqAccess<'de>>(mut self, mut seq: A) -> Result<(), A::Error> {
        while let Some(v) = seq.next_element::<V>()? {
            (self.0)(v);
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn text_reads_scalars_as_value_would() {
        let f: Fields = serde_json::from_str(
            r#"{"a":"x","b":12,"c":-3,"d":1.5,"e":true,"f":null,"g":[1,2],"h":{"i":"j"},"k":"caf\u00e9","a":"y"}"#,
        )
        .unwrap();
        assert_eq!(f.get("a"), Some("y"), "the last of a repeated key");
        assert_eq!(f.get("b"), Some("12"));
        assert_eq!(f.get("c"), Some("-3"));
        assert_eq!(f.get("d"), Some("1.5"));
        assert_eq!(f.get("e"), Some("true"));
        assert_eq!(f.get("f"), None);
        assert_eq!(f.get("g"), None);
        assert_eq!(f.get("h"), None);
        assert_eq!(f.get("k"), Some("café"), "an escaped string is decoded");
        assert_eq!(f.get("zz"), None);
        // borrowed where there is no escape
        assert!(matches!(f.0[0].1.0, Some(Str::Borrowed("x"))));
        assert!(matches!(f.0[8].1.0, Some(Str::Made(_))));
        assert!(matches!(&f.0[1].1.0, Some(Str::Made(n)) if !n.is_heap_allocated()));
        // the same texts as `str_of` on a `Value`
        let v: serde_json::Value = serde_json::from_str(r#"{"d":1.5,"b":12}"#).unwrap();
        assert_eq!(
            crate::sources::itop::str_of(&v["d"]).as_deref(),
            Some("1.5")
        );
        assert_eq!(Text(Some(Str::Borrowed("12"))).to_value(), "12");
        assert_eq!(Text(None).to_value(), serde_json::Value::Null);
    }

    #[test]
    fn members_in_answer_order() {
        let m: Option<Members<Fields>> = serde_json::from_str("null").unwrap();
        assert!(m.is_none());
        assert!(serde_json::from_str::<Fields>("[1]").is_err());
        let m: Members<Fields> =
            serde_json::from_str(r#"{"T::2":{"id":"2"},"T::1":{"id":1}}"#).unwrap();
        assert_eq!(m.0.len(), 2);
        assert_eq!(m.0[0].0, "T::2");
        assert_eq!(m.0[1].1.get("id"), Some("1"));
    }

    #[test]
    fn each_member_in_answer_order() {
        let read = |text: &str| {
            let mut seen = Vec::new();
            let each = EachMember::new(|k: Cow<str>, v: Fields| {
                seen.push((k.into_owned(), v.get("id").map(str::to_string)))
            });
            let mut de = serde_json::Deserializer::from_str(text);
            each.deserialize(&mut de)
                .and_then(|()| de.end())
                .map(|()| seen)
        };
        assert_eq!(
            read(r#"{"T::2":{"id":"2"},"T::1":{"id":1},"T::3":{}}"#).unwrap(),
            [
                ("T::2".to_string(), Some("2".to_string())),
                ("T::1".to_string(), Some("1".to_string())),
                ("T::3".to_string(), None),
            ]
        );
        assert!(read("null").unwrap().is_empty());
        assert!(read("[1]").is_err());
        assert!(read(r#"{"T::1":{"id":1}} x"#).is_err(), "trailing text");
    }
}
