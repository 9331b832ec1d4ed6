//! Encoding job arguments and results with postcard, keeping the messages of custom serde errors.
//!
//! postcard turns every `serde::ser::Error::custom(msg)` and `serde::de::Error::custom(msg)` into
//! one fixed variant and drops `msg`, so a type that refuses a value ("port must be below 65536")
//! would reach the caller as "Serde Serialization Error". To keep the text, values go through
//! a thin proxy of the serializer and deserializer whose error type records the first custom
//! message in a thread-local before handing postcard its own error; when postcard then fails,
//! the recorded message is the one reported. The proxy only forwards calls, so the bytes are
//! exactly postcard's.

use std::cell::RefCell;
use std::fmt;

use serde::de::{self, DeserializeOwned, DeserializeSeed, Visitor};
use serde::ser::{self, Serialize};

thread_local! {
    /// The first custom message of the encode or decode running on this thread.
    static CUSTOM: RefCell<Option<String>> = const { RefCell::new(None) };
}

/// Encodes `value` after the bytes already in `out`; on failure the custom message, if the value
/// gave one, else postcard's.
pub(crate) fn encode<T: Serialize + ?Sized>(value: &T, out: Vec<u8>) -> Result<Vec<u8>, String> {
    CUSTOM.with(|c| c.borrow_mut().take());
    postcard::to_extend(&Proxy(value), out).map_err(custom_or)
}

/// Encodes `value` onto the end of `out` (the worker's reused result buffer).
pub(crate) fn encode_into<T: Serialize + ?Sized>(
    value: &T,
    out: &mut Vec<u8>,
) -> Result<(), String> {
    CUSTOM.with(|c| c.borrow_mut().take());
    postcard::to_io(&Proxy(value), &mut *out)
        .map(drop)
        .map_err(custom_or)
}

/// Decodes a whole value from `bytes`.
pub(crate) fn decode<T: DeserializeOwned>(bytes: &[u8]) -> Result<T, String> {
    CUSTOM.with(|c| c.borrow_mut().take());
    let mut deserializer = postcard::Deserializer::from_bytes(bytes);
    T::deserialize(Proxy(&mut deserializer)).map_err(|Captured(e)| custom_or(e))
}

fn custom_or(error: postcard::Error) -> String {
    CUSTOM
        .with(|c| c.borrow_mut().take())
        .unwrap_or_else(|| error.to_string())
}

/// A serializer or deserializer (or a value to serialize, or a seed) seen through the proxy.
struct Proxy<T>(T);

/// The proxy's error: the wrapped format's, after recording a custom message.
#[derive(Debug)]
struct Captured<E>(E);

impl<E: fmt::Display> fmt::Display for Captured<E> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        self.0.fmt(f)
    }
}

impl<E: std::error::Error> std::error::Error for Captured<E> {}

fn record(msg: impl fmt::Display) -> String {
    let text = msg.to_string();
    CUSTOM.with(|c| {
        c.borrow_mut().get_or_insert_with(|| text.clone());
    });
    text
}

impl<E: ser::Error> ser::Error for Captured<E> {
    fn custom<T: fmt::Display>(msg: T) -> Self {
        Captured(E::custom(record(msg)))
    }
}

impl<E: de::Error> de::Error for Captured<E> {
    fn custom<T: fmt::Display>(msg: T) -> Self {
        Captured(E::custom(record(msg)))
    }
}

// ---- serializing --------------------------------------------------------------------------

impl<T: Serialize + ?Sized> Serialize for Proxy<&T> {
    fn serialize<S: ser::Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        self.0.serialize(Proxy(serializer)).map_err(|Captured(e)| e)
    }
}

macro_rules! forward_ser {
    ($($method:ident($ty:ty);)*) => {$(
        fn $method(self, v: $ty) -> Result<Self::Ok, Self::Error> {
            self.0.$method(v).map_err(Captured)
        }
    )*};
}

impl<S: ser::Serializer> ser::Serializer for Proxy<S> {
    type Ok = S::Ok;
    type Error = Captured<S::Error>;
    type SerializeSeq = Proxy<S::SerializeSeq>;
    type SerializeTuple = Proxy<S::SerializeTuple>;
    type SerializeTupleStruct = Proxy<S::SerializeTupleStruct>;
    type SerializeTupleVariant = Proxy<S::SerializeTupleVariant>;
    type SerializeMap = Proxy<S::SerializeMap>;
    type SerializeStruct = Proxy<S::SerializeStruct>;
    type SerializeStructVariant = Proxy<S::SerializeStructVariant>;

    forward_ser! {
        serialize_bool(bool); serialize_i8(i8); serialize_i16(i16); serialize_i32(i32);
        serialize_i64(i64); serialize_i128(i128); serialize_u8(u8); serialize_u16(u16);
        serialize_u32(u32); serialize_u64(u64); serialize_u128(u128); serialize_f32(f32);
        serialize_f64(f64); serialize_char(char); serialize_str(&str); serialize_bytes(&[u8]);
        serialize_unit_struct(&'static str);
    }

    fn serialize_none(self) -> Result<Self::Ok, Self::Error> {
        self.0.serialize_none().map_err(Captured)
    }

    fn serialize_some<T: Serialize + ?Sized>(self, value: &T) -> Result<Self::Ok, Self::Error> {
        self.0.serialize_some(&Proxy(value)).map_err(Captured)
    }

    fn serialize_unit(self) -> Result<Self::Ok, Self::Error> {
        self.0.serialize_unit().map_err(Captured)
    }

    fn serialize_unit_variant(
        self,
        name: &'static str,
        index: u32,
        variant: &'static str,
    ) -> Result<Self::Ok, Self::Error> {
        self.0
            .serialize_unit_variant(name, index, variant)
            .map_err(Captured)
    }

    fn serialize_newtype_struct<T: Serialize + ?Sized>(
        self,
        name: &'static str,
        value: &T,
    ) -> Result<Self::Ok, Self::Error> {
        self.0
            .serialize_newtype_struct(name, &Proxy(value))
            .map_err(Captured)
    }

    fn serialize_newtype_variant<T: Serialize + ?Sized>(
        self,
        name: &'static str,
        index: u32,
        variant: &'static str,
        value: &T,
    ) -> Result<Self::Ok, Self::Error> {
        self.0
            .serialize_newtype_variant(name, index, variant, &Proxy(value))
            .map_err(Captured)
    }

    fn serialize_seq(self, len: Option<usize>) -> Result<Self::SerializeSeq, Self::Error> {
        self.0.serialize_seq(len).map(Proxy).map_err(Captured)
    }

    fn serialize_tuple(self, len: usize) -> Result<Self::SerializeTuple, Self::Error> {
        self.0.serialize_tuple(len).map(Proxy).map_err(Captured)
    }

    fn serialize_tuple_struct(
        self,
        name: &'static str,
        len: usize,
    ) -> Result<Self::SerializeTupleStruct, Self::Error> {
        self.0
            .serialize_tuple_struct(name, len)
            .map(Proxy)
            .map_err(Captured)
    }

    fn serialize_tuple_variant(
        self,
        name: &'static str,
        index: u32,
        variant: &'static str,
        len: usize,
    ) -> Result<Self::SerializeTupleVariant, Self::Error> {
        self.0
            .serialize_tuple_variant(name, index, variant, len)
            .map(Proxy)
            .map_err(Captured)
    }

    fn serialize_map(self, len: Option<usize>) -> Result<Self::SerializeMap, Self::Error> {
        self.0.serialize_map(len).map(Proxy).map_err(Captured)
    }

    fn serialize_struct(
        self,
        name: &'static str,
        len: usize,
    ) -> Result<Self::SerializeStruct, Self::Error> {
        self.0
            .serialize_struct(name, len)
            .map(Proxy)
            .map_err(Captured)
    }

    fn serialize_struct_variant(
        self,
        name: &'static str,
        index: u32,
        variant: &'static str,
        len: usize,
    ) -> Result<Self::SerializeStructVariant, Self::Error> {
        self.0
            .serialize_struct_variant(name, index, variant, len)
            .map(Proxy)
            .map_err(Captured)
    }

    fn is_human_readable(&self) -> bool {
        self.0.is_human_readable()
    }
}

/// The compound serializers: each element or field goes through the proxy again.
macro_rules! forward_compound {
    ($($trait:ident::$method:ident;)*) => {$(
        impl<C: ser::$trait> ser::$trait for Proxy<C> {
            type Ok = C::Ok;
            type Error = Captured<C::Error>;

            fn $method<T: Serialize + ?Sized>(&mut self, value: &T) -> Result<(), Self::Error> {
                self.0.$method(&Proxy(value)).map_err(Captured)
            }

            fn end(self) -> Result<Self::Ok, Self::Error> {
                self.0.end().map_err(Captured)
            }
        }
    )*};
}

forward_compound! {
    SerializeSeq::serialize_element;
    SerializeTuple::serialize_element;
    SerializeTupleStruct::serialize_field;
    SerializeTupleVariant::serialize_field;
}

impl<C: ser::SerializeMap> ser::SerializeMap for Proxy<C> {
    type Ok = C::Ok;
    type Error = Captured<C::Error>;

    fn serialize_key<T: Serialize + ?Sized>(&mut self, key: &T) -> Result<(), Self::Error> {
        self.0.serialize_key(&Proxy(key)).map_err(Captured)
    }

    fn serialize_value<T: Serialize + ?Sized>(&mut self, value: &T) -> Result<(), Self::Error> {
        self.0.serialize_value(&Proxy(value)).map_err(Captured)
    }

    fn end(self) -> Result<Self::Ok, Self::Error> {
        self.0.end().map_err(Captured)
    }
}

macro_rules! forward_struct {
    ($($trait:ident;)*) => {$(
        impl<C: ser::$trait> ser::$trait for Proxy<C> {
            type Ok = C::Ok;
            type Error = Captured<C::Error>;

            fn serialize_field<T: Serialize + ?Sized>(
                &mut self,
                key: &'static str,
                value: &T,
            ) -> Result<(), Self::Error> {
                self.0.serialize_field(key, &Proxy(value)).map_err(Captured)
            }

            fn skip_field(&mut self, key: &'static str) -> Result<(), Self::Error> {
                self.0.skip_field(key).map_err(Captured)
            }

            fn end(self) -> Result<Self::Ok, Self::Error> {
                self.0.end().map_err(Captured)
            }
        }
    )*};
}

forward_struct! {
    SerializeStruct;
    SerializeStructVariant;
}

// ---- deserializing ------------------------------------------------------------------------

macro_rules! forward_de {
    ($($method:ident($($arg:ident: $ty:ty),*);)*) => {$(
        fn $method<V: Visitor<'de>>(self, $($arg: $ty,)* visitor: V) -> Result<V::Value, Self::Error> {
            self.0.$method($($arg,)* Proxy(visitor)).map_err(Captured)
        }
    )*};
}

impl<'de, D: de::Deserializer<'de>> de::Deserializer<'de> for Proxy<D> {
    type Error = Captured<D::Error>;

    forward_de! {
        deserialize_any(); deserialize_bool(); deserialize_i8(); deserialize_i16();
        deserialize_i32(); deserialize_i64(); deserialize_i128(); deserialize_u8();
        deserialize_u16(); deserialize_u32(); deserialize_u64(); deserialize_u128();
        deserialize_f32(); deserialize_f64(); deserialize_char(); deserialize_str();
        deserialize_string(); deserialize_bytes(); deserialize_byte_buf(); deserialize_option();
        deserialize_unit(); deserialize_unit_struct(name: &'static str);
        deserialize_newtype_struct(name: &'static str); deserialize_seq();
        deserialize_tuple(len: usize); deserialize_tuple_struct(name: &'static str, len: usize);
        deserialize_map();
        deserialize_struct(name: &'static str, fields: &'static [&'static str]);
        deserialize_enum(name: &'static str, variants: &'static [&'static str]);
        deserialize_identifier(); deserialize_ignored_any();
    }

    fn is_human_readable(&self) -> bool {
        self.0.is_human_readable()
    }
}

impl<'de, T: DeserializeSeed<'de>> DeserializeSeed<'de> for Proxy<T> {
    type Value = T::Value;

    fn deserialize<D: de::Deserializer<'de>>(self, deserializer: D) -> Result<T::Value, D::Error> {
        self.0
            .deserialize(Proxy(deserializer))
            .map_err(|Captured(e)| e)
    }
}

macro_rules! forward_visit {
    ($($method:ident($ty:ty);)*) => {$(
        fn $method<E: de::Error>(self, v: $ty) -> Result<Self::Value, E> {
            self.0.$method::<Captured<E>>(v).map_err(|Captured(e)| e)
        }
    )*};
}

/// The visitor a value's `Deserialize` impl gave: it sees the proxy's error type, so its own
/// `E::custom` calls are recorded too.
impl<'de, V: Visitor<'de>> Visitor<'de> for Proxy<V> {
    type Value = V::Value;

    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        self.0.expecting(f)
    }

    forward_visit! {
        visit_bool(bool); visit_i8(i8); visit_i16(i16); visit_i32(i32); visit_i64(i64);
        visit_i128(i128); visit_u8(u8); visit_u16(u16); visit_u32(u32); visit_u64(u64);
        visit_u128(u128); visit_f32(f32); visit_f64(f64); visit_char(char); visit_str(&str);
        visit_borrowed_str(&'de str); visit_string(String); visit_bytes(&[u8]);
        visit_borrowed_bytes(&'de [u8]); visit_byte_buf(Vec<u8>);
    }

    fn visit_none<E: de::Error>(self) -> Result<Self::Value, E> {
        self.0.visit_none::<Captured<E>>().map_err(|Captured(e)| e)
    }

    fn visit_unit<E: de::Error>(self) -> Result<Self::Value, E> {
        self.0.visit_unit::<Captured<E>>().map_err(|Captured(e)| e)
    }

    fn visit_some<D: de::Deserializer<'de>>(self, d: D) -> Result<Self::Value, D::Error> {
        self.0.visit_some(Proxy(d)).map_err(|Captured(e)| e)
    }

    fn visit_newtype_struct<D: de::Deserializer<'de>>(self, d: D) -> Result<Self::Value, D::Error> {
        self.0
            .visit_newtype_struct(Proxy(d))
            .map_err(|Captured(e)| e)
    }

    fn visit_seq<A: de::SeqAccess<'de>>(self, seq: A) -> Result<Self::Value, A::Error> {
        self.0.visit_seq(Proxy(seq)).map_err(|Captured(e)| e)
    }

    fn visit_map<A: de::MapAccess<'de>>(self, map: A) -> Result<Self::Value, A::Error> {
        self.0.visit_map(Proxy(map)).map_err(|Captured(e)| e)
    }

    fn visit_enum<A: de::EnumAccess<'de>>(self, data: A) -> Result<Self::Value, A::Error> {
        self.0.visit_enum(Proxy(data)).map_err(|Captured(e)| e)
    }
}

impl<'de, A: de::SeqAccess<'de>> de::SeqAccess<'de> for Proxy<A> {
    type Error = Captured<A::Error>;

    fn next_element_seed<T: DeserializeSeed<'de>>(
        &mut self,
        seed: T,
    ) -> Result<Option<T::Value>, Self::Error> {
        self.0.next_element_seed(Proxy(seed)).map_err(Captured)
    }

    fn size_hint(&self) -> Option<usize> {
        self.0.size_hint()
    }
}

impl<'de, A: de::MapAccess<'de>> de::MapAccess<'de> for Proxy<A> {
    type Error = Captured<A::Error>;

    fn next_key_seed<K: DeserializeSeed<'de>>(
        &mut self,
        seed: K,
    ) -> Result<Option<K::Value>, Self::Error> {
        self.0.next_key_seed(Proxy(seed)).map_err(Captured)
    }

    fn next_value_seed<V: DeserializeSeed<'de>>(
        &mut self,
        seed: V,
    ) -> Result<V::Value, Self::Error> {
        self.0.next_value_seed(Proxy(seed)).map_err(Captured)
    }

    fn size_hint(&self) -> Option<usize> {
        self.0.size_hint()
    }
}

impl<'de, A: de::EnumAccess<'de>> de::EnumAccess<'de> for Proxy<A> {
    type Error = Captured<A::Error>;
    type Variant = Proxy<A::Variant>;

    fn variant_seed<V: DeserializeSeed<'de>>(
        self,
        seed: V,
    ) -> Result<(V::Value, Self::Variant), Self::Error> {
        self.0
            .variant_seed(Proxy(seed))
            .map(|(value, variant)| (value, Proxy(variant)))
            .map_err(Captured)
    }
}

impl<'de, A: de::VariantAccess<'de>> de::VariantAccess<'de> for Proxy<A> {
    type Error = Captured<A::Error>;

    fn unit_variant(self) -> Result<(), Self::Error> {
        self.0.unit_variant().map_err(Captured)
    }

    fn newtype_variant_seed<T: DeserializeSeed<'de>>(
        self,
        seed: T,
    ) -> Result<T::Value, Self::Error> {
        self.0.newtype_variant_seed(Proxy(seed)).map_err(Captured)
    }

    fn tuple_variant<V: Visitor<'de>>(
        self,
        len: usize,
        visitor: V,
    ) -> Result<V::Value, Self::Error> {
        self.0.tuple_variant(len, Proxy(visitor)).map_err(Captured)
    }

    fn struct_variant<V: Visitor<'de>>(
        self,
        fields: &'static [&'static str],
        visitor: V,
    ) -> Result<V::Value, Self::Error> {
        self.0
            .struct_variant(fields, Proxy(visitor))
            .map_err(Captured)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde::{Deserialize, Deserializer, Serializer};
    use std::collections::BTreeMap;

    #[derive(Debug, PartialEq)]
    struct Port(u16);

    impl Serialize for Port {
        fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
            if self.0 == 0 {
                return Err(ser::Error::custom("port 0 is not a port"));
            }
            self.0.serialize(s)
        }
    }

    impl<'de> Deserialize<'de> for Port {
        fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
            match u16::deserialize(d)? {
                0 => Err(de::Error::custom("port 0 is reserved")),
                n => Ok(Port(n)),
            }
        }
    }

    #[derive(Debug, PartialEq, serde::Serialize, serde::Deserialize)]
    enum Shape {
        Unit,
        Pair(u8, Port),
        Named {
            ports: Vec<Port>,
            by_name: BTreeMap<String, Option<Port>>,
        },
    }

    #[test]
    fn the_bytes_are_postcards() {
        let value = Shape::Named {
            ports: vec![Port(80), Port(443)],
            by_name: [("a".to_owned(), Some(Port(1))), ("b".to_owned(), None)].into(),
        };
        let ours = encode(&value, Vec::new()).unwrap();
        assert_eq!(ours, postcard::to_allocvec(&value).unwrap());
        assert_eq!(decode::<Shape>(&ours).unwrap(), value);
        let pair = encode(&Shape::Pair(1, Port(2)), vec![9]).unwrap();
        assert_eq!(pair[0], 9, "appended after what was there");
        assert_eq!(
            decode::<Shape>(&pair[1..]).unwrap(),
            Shape::Pair(1, Port(2))
        );
        assert_eq!(
            decode::<Shape>(&encode(&Shape::Unit, Vec::new()).unwrap()).unwrap(),
            Shape::Unit
        );
    }

    #[test]
    fn custom_messages_survive_however_deep() {
        let nested = Shape::Named {
            ports: vec![Port(1)],
            by_name: [("x".to_owned(), Some(Port(0)))].into(),
        };
        assert_eq!(
            encode(&nested, Vec::new()).unwrap_err(),
            "port 0 is not a port"
        );
        let mut out = Vec::new();
        assert_eq!(
            encode_into(&Shape::Pair(3, Port(0)), &mut out).unwrap_err(),
            "port 0 is not a port"
        );
        let bytes = postcard::to_allocvec(&(2u32, 1u8, 0u16)).unwrap(); // Pair(1, Port(0))
        assert_eq!(
            decode::<Shape>(&bytes[..]).unwrap_err(),
            "port 0 is reserved"
        );
        // A failure that is postcard's own keeps postcard's text.
        let own = decode::<Shape>(&[]).unwrap_err();
        assert!(!own.contains("port"), "{own}");
    }
}
