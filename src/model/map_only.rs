//! Maps only. serde's derived `Deserialize` for a struct also takes its
//! fields as a list, in order (`users: [["u-1", "active"]]`), which no
//! snapshot means: a list where a map belongs would pass as a struct, and
//! a file holding `[]` as an empty snapshot. [`MapOnly`] (a whole file or
//! value) and the `deserialize_with` functions below (the fields that hold
//! structs) accept a map and refuse anything else, with the reader's
//! place of the error.

use std::fmt;
use std::marker::PhantomData;

use serde::de::value::MapAccessDeserializer;
use serde::de::{MapAccess, Visitor};
use serde::{Deserialize, Deserializer};

/// What a reader expected where it found something else.
pub const EXPECTING: &str = "a map of fields (name: value)";

/// A `T` read from a map and nothing else.
#[derive(Debug, Clone, PartialEq)]
pub struct MapOnly<T>(pub T);

impl<'de, T: Deserialize<'de>> Deserialize<'de> for MapOnly<T> {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        d.deserialize_map(Fields(PhantomData)).map(MapOnly)
    }
}

/// Hands a map, and only a map, to `T`'s own deserializer.
struct Fields<T>(PhantomData<fn() -> T>);

impl<'de, T: Deserialize<'de>> Visitor<'de> for Fields<T> {
    type Value = T;

    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(EXPECTING)
    }

    fn visit_map<A: MapAccess<'de>>(self, map: A) -> Result<T, A::Error> {
        T::deserialize(MapAccessDeserializer::new(map))
    }
}

/// `#[serde(deserialize_with)]` for a struct field.
pub fn map_only<'de, D: Deserializer<'de>, T: Deserialize<'de>>(d: D) -> Result<T, D::Error> {
    MapOnly::deserialize(d).map(|m| m.0)
}

/// `#[serde(deserialize_with)]` for an optional struct field.
pub fn map_only_opt<'de, D: Deserializer<'de>, T: Deserialize<'de>>(
    d: D,
) -> Result<Option<T>, D::Error> {
    Option::<MapOnly<T>>::deserialize(d).map(|o| o.map(|m| m.0))
}

/// `#[serde(deserialize_with)]` for a list of structs.
pub fn maps_only<'de, D: Deserializer<'de>, T: Deserialize<'de>>(d: D) -> Result<Vec<T>, D::Error> {
    Vec::<MapOnly<T>>::deserialize(d).map(|v| v.into_iter().map(|m| m.0).collect())
}
