//! The ids of a resource table, stored by type and compressed the way ids
//! of one type usually allow.
//!
//! Ids of one type tend to share a prefix (`r-`, `doc_`, a tenant's name)
//! and, once it is cut, to be numbers of one width (`0000042`). A column
//! stores the prefix once and each id's rest after it:
//! - [`Rests::Run`]: rests of decimal digits, all of one count, that read
//!   as numbers count up by one (ids handed out in sequence), but for a few
//!   holes (ids since removed): only the holes are stored, and the place of
//!   an id is its number minus the first, less the holes below it, so a
//!   lookup needs no hash index and, without holes, reads no memory at all;
//! - [`Rests::Digits`]: rests of decimal digits, all of one count, two
//!   digits to a byte: `r-0000042` takes 4 bytes instead of 9;
//! - [`Rests::Fixed`]: rests of one length in bytes, as they are;
//! - [`Rests::Varying`]: rests of different lengths, with their offsets.
//!
//! In `Digits` and `Fixed` the place of the `i`-th rest is computed from
//! `i`, so a lookup reads the candidate's bytes and nothing else. A stored
//! id comes back as a [`ResourceId`], which borrows its prefix and rest
//! (digits are unpacked, and a run's number written out, on demand, on the
//! stack): no allocation either way.

use std::cmp::Ordering;
use std::fmt;

use super::id_table::{mix, touch, IdTable};
use super::names;
use super::schema::TypeId;

/// The most digits a rest may have to be packed, so that a packed probe and
/// an unpacked rest fit on the stack; longer ones are stored as bytes.
const MAX_DIGITS: usize = 32;
const MAX_PACKED: usize = MAX_DIGITS / 2;
/// The most digits a run's numbers may have: every such number fits a
/// `u64`.
const MAX_RUN_DIGITS: usize = 19;
/// A run may have one hole for this many ids: a block of 1,024 numbers
/// then holds 16 holes on average, which a lookup searches. With more, the
/// ids are packed and hashed instead.
const IDS_PER_HOLE: usize = 64;

/// Every id of a resource table, by type.
#[derive(Debug, Clone, Default)]
pub struct IdColumns {
    /// The rests of every column, back to back.
    bytes: Vec<u8>,
    columns: Vec<IdColumn>,
}

/// The ids of one type, in the order of the type's resources (ascending).
#[derive(Debug, Clone)]
struct IdColumn {
    /// Where the column's rests start in [`IdColumns::bytes`].
    start: usize,
    /// What every id of the type begins with (the longest such, cut to a
    /// character boundary).
    prefix: Box<str>,
    rests: Rests,
}

#[derive(Debug, Clone, PartialEq)]
enum Rests {
    /// The rests are numbers in sequence: see [`Run`].
    Run(Run),
    /// Each rest is this many ASCII digits, packed two to a byte (the
    /// first in the high nibble; an odd count leaves the last low nibble
    /// 0).
    Digits(usize),
    /// Each rest is this many bytes.
    Fixed(usize),
    /// The `i`-th rest is `offsets[i]..offsets[i + 1]` from the column's
    /// start (`count + 1` offsets, the first 0).
    Varying(Box<[u32]>),
}

/// Ids numbered in sequence: the rests are the numbers from `first` on,
/// all but the `holes`, each written with `digits` digits (zero-padded).
#[derive(Debug, Clone, PartialEq)]
struct Run {
    digits: usize,
    first: u64,
    /// How many ids.
    len: usize,
    /// The numbers between the first and the last that no id has,
    /// ascending: at most one per [`IDS_PER_HOLE`] ids.
    holes: Box<[u64]>,
    /// `holes_before[b]`: how many holes are below the `b`-th block of
    /// numbers from `first` (2^[`BLOCK_BITS`] to a block), for each block
    /// and one past the last; empty when there are no holes. A lookup
    /// searches only its block's holes (a line or two of them, mostly)
    /// instead of all of them.
    holes_before: Box<[u32]>,
}

/// The numbers of a run's block (see [`Run::holes_before`]): 4 bytes of
/// directory per 1,024 numbers.
const BLOCK_BITS: u32 = 10;

impl Run {
    fn new(digits: usize, first: u64, len: usize, holes: Vec<u64>) -> Run {
        let mut holes_before = Vec::new();
        if !holes.is_empty() {
            let span = (len + holes.len()) as u64;
            let blocks = span.div_ceil(1 << BLOCK_BITS) as usize;
            // At most one hole per 64 ids, so the counts fit a `u32`.
            holes_before = (0..=blocks)
                .map(|b| {
                    let start = first + ((b as u64) << BLOCK_BITS);
                    holes.partition_point(|&h| h < start) as u32
                })
                .collect();
        }
        Run {
            digits,
            first,
            len,
            holes: holes.into_boxed_slice(),
            holes_before: holes_before.into_boxed_slice(),
        }
    }

    /// The place of the id numbered `n`, if there is one.
    #[inline]
    fn place(&self, n: u64) -> Option<usize> {
        let k = n.checked_sub(self.first)?;
        if k >= (self.len + self.holes.len()) as u64 {
            return None;
        }
        if self.holes.is_empty() {
            return Some(k as usize);
        }
        let b = (k >> BLOCK_BITS) as usize;
        let (lo, hi) = (
            self.holes_before[b] as usize,
            self.holes_before[b + 1] as usize,
        );
        let below = lo + self.holes[lo..hi].partition_point(|&h| h < n);
        (self.holes.get(below) != Some(&n)).then_some(k as usize - below)
    }

    /// The number of the `i`-th id.
    fn number(&self, i: usize) -> u64 {
        // The holes below it are those with at most `i` ids below them:
        // the `m`-th hole has `hole - first - m`.
        let (mut lo, mut hi) = (0, self.holes.len());
        while lo < hi {
            let mid = (lo + hi) / 2;
            if self.holes[mid] - self.first - mid as u64 <= i as u64 {
                lo = mid + 1;
            } else {
                hi = mid;
            }
        }
        self.first + (i + lo) as u64
    }
}

impl Rests {
    /// The bytes each rest takes, when that is one number.
    fn stride(&self) -> Option<usize> {
        match self {
            Rests::Digits(d) => Some(d.div_ceil(2)),
            Rests::Fixed(w) => Some(*w),
            Rests::Run(_) | Rests::Varying(_) => None,
        }
    }

    /// Whether ids are found by the hash index (all but runs).
    fn hashed(&self) -> bool {
        !matches!(self, Rests::Run(_))
    }
}

/// The ids of one type take more bytes than a `u32` offset reaches (only
/// when they differ in length: other columns store no offsets).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct TooManyIdBytes {
    pub type_: TypeId,
    pub bytes: usize,
}

impl IdColumns {
    /// The columns of `type_count` types: the ids of type `t` are
    /// `id(i)` for `i` in `type_start[t]..type_start[t + 1]`, ascending.
    pub fn build<'a>(
        type_start: &[u32],
        id: impl Fn(usize) -> &'a str,
        max_offset: usize,
    ) -> Result<IdColumns, TooManyIdBytes> {
        let mut out = IdColumns::default();
        let type_count = type_start.len().saturating_sub(1);
        for t in 0..type_count {
            let range = type_start[t] as usize..type_start[t + 1] as usize;
            let prefix = common_prefix(range.clone().map(&id));
            let rest = |i: usize| &id(i)[prefix.len()..];
            let width = range.clone().next().map_or(0, |i| rest(i).len());
            let same_width = range.clone().all(|i| rest(i).len() == width);
            // A run is tried first: it reads every digit once, and gives up
            // at the first gap or letter.
            let run = if same_width {
                run_of(range.clone().map(rest), range.len(), width)
            } else {
                None
            };
            let rests = if let Some(run) = run {
                Rests::Run(run)
            } else if same_width
                && (1..=MAX_DIGITS).contains(&width)
                && range.clone().all(|i| is_digits(rest(i)))
            {
                Rests::Digits(width)
            } else if same_width {
                Rests::Fixed(width)
            } else {
                let bytes: usize = range.clone().map(|i| rest(i).len()).sum();
                if bytes > max_offset {
                    return Err(TooManyIdBytes {
                        type_: t as TypeId,
                        bytes,
                    });
                }
                // Every offset is at most `bytes`, within a `u32`.
                let mut end = 0;
                let mut offsets = Vec::with_capacity(range.len() + 1);
                offsets.push(0);
                for i in range.clone() {
                    end += rest(i).len() as u32;
                    offsets.push(end);
                }
                Rests::Varying(offsets.into_boxed_slice())
            };
            let start = out.bytes.len();
            for i in range {
                match rests {
                    Rests::Digits(d) => {
                        // Every rest is digits (checked above).
                        let packed = pack_digits(rest(i).as_bytes()).unwrap_or_default();
                        out.bytes.extend_from_slice(&packed[..d.div_ceil(2)])
                    }
                    Rests::Run(_) => {}
                    _ => out.bytes.extend_from_slice(rest(i).as_bytes()),
                }
            }
            out.columns.push(IdColumn {
                start,
                prefix: prefix.into(),
                rests,
            });
        }
        out.bytes.shrink_to_fit();
        Ok(out)
    }

    /// The `i`-th id of type `t`.
    #[inline]
    pub fn get(&self, t: TypeId, i: usize) -> ResourceId<'_> {
        let c = &self.columns[t as usize];
        let rest = match c.rests {
            Rests::Run(ref run) => Rest::Number {
                value: run.number(i),
                digits: run.digits as u8,
            },
            Rests::Digits(d) => {
                let w = d.div_ceil(2);
                let at = c.start + i * w;
                Rest::Digits {
                    packed: &self.bytes[at..at + w],
                    count: d as u8,
                }
            }
            Rests::Fixed(w) => {
                let at = c.start + i * w;
                Rest::Str(as_str(&self.bytes[at..at + w]))
            }
            Rests::Varying(ref o) => Rest::Str(as_str(
                &self.bytes[c.start + o[i] as usize..c.start + o[i + 1] as usize],
            )),
        };
        ResourceId {
            prefix: &c.prefix,
            rest,
        }
    }

    /// Whether the ids of type `t` are found through a hash index: all
    /// but a run's (see [`IdColumns::locate`]).
    pub fn is_hashed(&self, t: TypeId) -> bool {
        self.columns
            .get(t as usize)
            .is_some_and(|c| c.rests.hashed())
    }

    /// The hash of the `i`-th id of type `t` for a hash index: the one
    /// [`Probe::hash`] gives for that id. Only for a type whose ids are
    /// hashed ([`IdColumns::is_hashed`]).
    pub fn hash_of(&self, t: TypeId, i: usize) -> u64 {
        let c = &self.columns[t as usize];
        debug_assert!(c.rests.hashed(), "a run's ids are not hashed");
        let (at, len) = match &c.rests {
            Rests::Varying(o) => (o[i] as usize, (o[i + 1] - o[i]) as usize),
            r => {
                let w = r.stride().unwrap_or(0);
                (i * w, w)
            }
        };
        let rest = &self.bytes[c.start + at..c.start + at + len];
        match c.rests {
            Rests::Digits(_) => {
                let mut packed = [0u8; MAX_PACKED];
                packed[..len].copy_from_slice(rest);
                hash_packed(t, &packed)
            }
            _ => IdTable::hash(&(t, rest)),
        }
    }

    /// Where `id` is among the ids of type `t`: computed for a run, to be
    /// looked up in the hash index with a [`Probe`] otherwise.
    #[inline]
    pub fn locate<'a>(&'a self, t: TypeId, id: &'a str) -> Locate<'a> {
        let Some(c) = self.columns.get(t as usize) else {
            return Locate::Absent;
        };
        let prefix = c.prefix.as_bytes();
        if id.len() < prefix.len() || !names::eq(&id.as_bytes()[..prefix.len()], prefix) {
            return Locate::Absent;
        }
        let rest = &id.as_bytes()[prefix.len()..];
        let mut packed = [0u8; MAX_PACKED];
        let want = match c.rests {
            Rests::Run(ref run) => {
                return match parse_number(rest, run.digits).and_then(|n| run.place(n)) {
                    Some(i) => Locate::At(i),
                    None => Locate::Absent,
                };
            }
            Rests::Digits(d) => {
                if rest.len() != d {
                    return Locate::Absent;
                }
                let Some(p) = pack_digits(rest) else {
                    return Locate::Absent;
                };
                packed = p;
                Want::Packed(d.div_ceil(2))
            }
            Rests::Fixed(w) if rest.len() != w => return Locate::Absent,
            _ => Want::Bytes(rest),
        };
        Locate::Probe(Probe {
            ids: self,
            type_: t,
            column: c,
            want,
            packed,
        })
    }

    /// Reads the first byte of the `i`-th id of type `t` (and, for ids of
    /// varying length, its offset), so that a later read finds it cached.
    #[inline]
    pub fn touch(&self, t: TypeId, i: usize) {
        let Some(c) = self.columns.get(t as usize) else {
            return;
        };
        // A run stores nothing to touch.
        let at = match (&c.rests, c.rests.stride()) {
            (_, Some(w)) => Some(c.start + i * w),
            (Rests::Varying(o), None) => o.get(i).map(|&o| c.start + o as usize),
            _ => None,
        };
        if let Some(b) = at.and_then(|a| self.bytes.get(a)) {
            touch(b);
        }
    }

    /// Bytes held on the heap: the rests, then the offsets and prefixes.
    pub fn heap_sizes(&self) -> (usize, usize) {
        let extra = self
            .columns
            .iter()
            .map(|c| {
                let offsets = match &c.rests {
                    Rests::Varying(o) => std::mem::size_of_val(&**o),
                    _ => 0,
                };
                offsets + c.prefix.len()
            })
            .sum::<usize>()
            + self.columns.capacity() * std::mem::size_of::<IdColumn>();
        (self.bytes.capacity(), extra)
    }
}

/// Where an id is among the ids of its type: see [`IdColumns::locate`].
pub enum Locate<'a> {
    /// It is the `i`-th (its type's ids are a run).
    At(usize),
    /// No id of the type is this one (another prefix, length or
    /// alphabet, or a number outside the run).
    Absent,
    /// Look it up in the hash index, confirming candidates with this.
    Probe(Probe<'a>),
}

/// A lookup's comparison, made once per id looked up: see
/// [`IdColumns::locate`].
pub struct Probe<'a> {
    ids: &'a IdColumns,
    type_: TypeId,
    column: &'a IdColumn,
    want: Want<'a>,
    packed: [u8; MAX_PACKED],
}

#[derive(Clone, Copy)]
enum Want<'a> {
    /// The first this many bytes of `Probe::packed`.
    Packed(usize),
    Bytes(&'a [u8]),
}

impl Probe<'_> {
    /// The hash of the id looked up, as [`IdColumns::hash_of`] gives it
    /// for a stored one. Packed digits hash as two words, without going
    /// over the id's bytes again.
    #[inline]
    pub fn hash(&self) -> u64 {
        match self.want {
            Want::Packed(_) => hash_packed(self.type_, &self.packed),
            Want::Bytes(b) => IdTable::hash(&(self.type_, b)),
        }
    }

    /// Whether the `i`-th id of the probed type is the id looked up.
    #[inline]
    pub fn matches(&self, i: usize) -> bool {
        let want = match self.want {
            Want::Packed(w) => &self.packed[..w],
            Want::Bytes(b) => b,
        };
        let c = self.column;
        let at = match &c.rests {
            Rests::Varying(o) => match (o.get(i), o.get(i + 1)) {
                (Some(&a), Some(&b)) if (b - a) as usize == want.len() => c.start + a as usize,
                _ => return false,
            },
            _ => c.start + i * want.len(),
        };
        self.ids
            .bytes
            .get(at..at + want.len())
            .is_some_and(|have| names::eq(have, want))
    }
}

/// A stored id, as [`IdColumns::get`] gives it: its type's prefix and its
/// own rest, borrowed. It compares, prints and converts like the string it
/// stands for.
#[derive(Clone, Copy)]
pub struct ResourceId<'a> {
    prefix: &'a str,
    rest: Rest<'a>,
}

#[derive(Clone, Copy)]
enum Rest<'a> {
    Str(&'a str),
    Digits {
        packed: &'a [u8],
        count: u8,
    },
    /// A run's: the number, written with this many digits.
    Number {
        value: u64,
        digits: u8,
    },
}

impl<'a> ResourceId<'a> {
    /// An id held whole (not in a column).
    pub fn whole(id: &'a str) -> ResourceId<'a> {
        ResourceId {
            prefix: "",
            rest: Rest::Str(id),
        }
    }

    /// Calls `f` with the prefix and the rest, the rest unpacked on the
    /// stack if need be.
    #[inline]
    fn with_parts<R>(&self, f: impl FnOnce(&str, &str) -> R) -> R {
        match self.rest {
            Rest::Str(s) => f(self.prefix, s),
            Rest::Digits { packed, count } => {
                let mut buf = [0u8; MAX_DIGITS];
                let n = count as usize;
                for (k, b) in buf[..n].iter_mut().enumerate() {
                    let byte = packed[k / 2];
                    *b = b'0' + if k % 2 == 0 { byte >> 4 } else { byte & 0xf };
                }
                f(self.prefix, as_str(&buf[..n]))
            }
            Rest::Number { mut value, digits } => {
                let mut buf = [b'0'; MAX_RUN_DIGITS];
                let n = digits as usize;
                for b in buf[..n].iter_mut().rev() {
                    *b = b'0' + (value % 10) as u8;
                    value /= 10;
                }
                f(self.prefix, as_str(&buf[..n]))
            }
        }
    }

    /// Its length in bytes.
    pub fn len(&self) -> usize {
        self.prefix.len()
            + match self.rest {
                Rest::Str(s) => s.len(),
                Rest::Digits { count, .. } => count as usize,
                Rest::Number { digits, .. } => digits as usize,
            }
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// Compares it with `other` as strings compare.
    pub fn cmp_str(&self, other: &str) -> Ordering {
        self.with_parts(|p, r| cmp_concat([p, r], [other, ""]))
    }

    /// Appends it to `out`.
    pub fn push_to(&self, out: &mut String) {
        self.with_parts(|p, r| {
            out.push_str(p);
            out.push_str(r);
        });
    }
}

/// Compares `a[0] + a[1]` with `b[0] + b[1]` without joining them.
fn cmp_concat(a: [&str; 2], b: [&str; 2]) -> Ordering {
    if a[0] == b[0] {
        return a[1].cmp(b[1]);
    }
    let [a0, a1] = a.map(str::as_bytes);
    let [b0, b1] = b.map(str::as_bytes);
    a0.iter().chain(a1).cmp(b0.iter().chain(b1))
}

impl fmt::Display for ResourceId<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if f.width().is_some() || f.precision().is_some() {
            // Padding and truncation apply to the whole id.
            return f.pad(&String::from(*self));
        }
        self.with_parts(|p, r| {
            f.write_str(p)?;
            f.write_str(r)
        })
    }
}

impl fmt::Debug for ResourceId<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Debug::fmt(&self.to_string(), f)
    }
}

impl Ord for ResourceId<'_> {
    fn cmp(&self, other: &Self) -> Ordering {
        self.with_parts(|p, r| other.with_parts(|q, s| cmp_concat([p, r], [q, s])))
    }
}

impl PartialOrd for ResourceId<'_> {
    fn partial_cmp(&self, other: &Self) -> Option<Ordering> {
        Some(self.cmp(other))
    }
}

impl PartialEq for ResourceId<'_> {
    fn eq(&self, other: &Self) -> bool {
        self.len() == other.len() && self.cmp(other) == Ordering::Equal
    }
}

impl Eq for ResourceId<'_> {}

impl PartialEq<str> for ResourceId<'_> {
    fn eq(&self, other: &str) -> bool {
        self.len() == other.len() && self.cmp_str(other) == Ordering::Equal
    }
}

impl PartialEq<&str> for ResourceId<'_> {
    fn eq(&self, other: &&str) -> bool {
        *self == **other
    }
}

impl PartialEq<String> for ResourceId<'_> {
    fn eq(&self, other: &String) -> bool {
        *self == **other
    }
}

impl From<ResourceId<'_>> for String {
    fn from(id: ResourceId<'_>) -> String {
        let mut s = String::with_capacity(id.len());
        id.push_to(&mut s);
        s
    }
}

/// The longest prefix of every id, cut to a character boundary (of the
/// first id, hence of all).
fn common_prefix<'a>(mut ids: impl Iterator<Item = &'a str>) -> &'a str {
    let Some(first) = ids.next() else {
        return "";
    };
    let mut len = first.len();
    for id in ids {
        len = first.as_bytes()[..len]
            .iter()
            .zip(id.as_bytes())
            .take_while(|(a, b)| a == b)
            .count();
        if len == 0 {
            break;
        }
    }
    while !first.is_char_boundary(len) {
        len -= 1;
    }
    &first[..len]
}

fn is_digits(s: &str) -> bool {
    s.bytes().all(|b| b.is_ascii_digit())
}

/// The run that `rests` (`len` of them, ascending, each `digits` ASCII
/// digits) make, if they count up by one from the first but for at most
/// one hole per [`IDS_PER_HOLE`] ids: ids handed out in sequence, a few
/// since removed. A repeat, or too many holes, and they are not a run.
fn run_of<'a>(mut rests: impl Iterator<Item = &'a str>, len: usize, digits: usize) -> Option<Run> {
    if !(1..=MAX_RUN_DIGITS).contains(&digits) {
        return None;
    }
    let most_holes = len / IDS_PER_HOLE;
    let first = parse_number(rests.next()?.as_bytes(), digits)?;
    let (mut last, mut holes) = (first, Vec::new());
    for r in rests {
        let n = parse_number(r.as_bytes(), digits)?;
        if n <= last || n - last - 1 > (most_holes - holes.len()) as u64 {
            return None;
        }
        holes.extend(last + 1..n);
        last = n;
    }
    Some(Run::new(digits, first, len, holes))
}

/// `s` read as a decimal number, if it is exactly `digits` ASCII digits
/// (at most [`MAX_RUN_DIGITS`], so it fits).
#[inline]
fn parse_number(s: &[u8], digits: usize) -> Option<u64> {
    if s.len() != digits || digits > MAX_RUN_DIGITS {
        return None;
    }
    let mut n = 0u64;
    for &b in s {
        let d = b.wrapping_sub(b'0');
        if d > 9 {
            return None;
        }
        n = n * 10 + u64::from(d);
    }
    Some(n)
}

/// Packs up to [`MAX_DIGITS`] ASCII digits two to a byte, the first in
/// the high half (an odd last digit leaves a low half of 0); `None` if
/// there are more or one is not a digit. Eight digits at a time, in a
/// word: a lookup packs every id it is asked for.
#[inline(always)]
fn pack_digits(digits: &[u8]) -> Option<[u8; MAX_PACKED]> {
    if digits.len() > MAX_DIGITS {
        return None;
    }
    let mut out = [0u8; MAX_PACKED];
    for (o, at) in out.chunks_exact_mut(4).zip((0..digits.len()).step_by(8)) {
        o.copy_from_slice(&pack8(digits_word(digits, at))?.to_le_bytes());
    }
    Some(out)
}

/// Up to eight bytes of `s` from `at` (below its length) as a
/// little-endian word, padded with '0' past the end: padding packs to the
/// zero half an odd count leaves. Whole-word loads, overlapping where the
/// string is short, instead of a copy.
#[inline]
fn digits_word(s: &[u8], at: usize) -> u64 {
    let n = s.len();
    let left = n - at;
    if left >= 8 {
        return u64::from_le(names::word8(s, at));
    }
    let pad = 0x3030_3030_3030_3030u64 << (8 * left);
    let x = if n >= 8 {
        // The last eight bytes, moved down to the first of the `left`.
        u64::from_le(names::word8(s, n - 8)) >> (8 * (8 - left))
    } else if n >= 4 {
        // `at` is 0 and `left` is `n`: two overlapping halves.
        u64::from(u32::from_le(names::word4(s, 0)))
            | u64::from(u32::from_le(names::word4(s, n - 4))) << (8 * (n - 4))
    } else {
        // One to three bytes: the first, middle and last cover them.
        u64::from(s[0])
            | u64::from(s[n / 2]) << (8 * (n / 2))
            | u64::from(s[n - 1]) << (8 * (n - 1))
    };
    x | pad
}

/// The hash of packed digits (zero past their bytes) of type `t`. Ids of
/// up to 16 digits differ in the first word, which the multiplication
/// keeps distinct; [`mix`] spreads them over every bit.
#[inline]
fn hash_packed(t: TypeId, packed: &[u8; MAX_PACKED]) -> u64 {
    let lo = u64::from_le(names::word8(packed, 0));
    let hi = u64::from_le(names::word8(packed, 8));
    mix(lo.wrapping_mul(0x9E37_79B9_7F4A_7C15) ^ hi.rotate_left(31) ^ u64::from(t) << 48)
}

/// Eight ASCII digits (the first in the lowest byte) packed into four
/// bytes, or `None` if a byte is not a digit.
#[inline]
fn pack8(x: u64) -> Option<u32> {
    const HIGH: u64 = 0xF0F0_F0F0_F0F0_F0F0;
    // A byte is a digit when its high half is 3, and still is after
    // adding 6 (which carries 0x3A..=0x3F into 0x40..).
    let digits = (x & HIGH) | ((x.wrapping_add(0x0606_0606_0606_0606) & HIGH) >> 4);
    if digits != 0x3333_3333_3333_3333 {
        return None;
    }
    let v = x - 0x3030_3030_3030_3030;
    // Byte 2k of `t` is digit 2k in the high half and 2k+1 in the low.
    let t = (v << 4) | (v >> 8);
    let u = t & 0x00FF_00FF_00FF_00FF;
    let u = (u | (u >> 8)) & 0x0000_FFFF_0000_FFFF;
    Some((u | (u >> 16)) as u32)
}

/// Stored rests came from `&str`s whole (digits are ASCII, and a prefix
/// is cut at a character boundary), so they are valid UTF-8; should that
/// ever be broken, an empty id is given instead of a panic.
fn as_str(b: &[u8]) -> &str {
    std::str::from_utf8(b).unwrap_or_default()
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    /// Columns of the given types' ids (each sorted here, as the table
    /// sorts them).
    fn build(types: &[&[&str]]) -> (IdColumns, Vec<Vec<String>>) {
        let mut sorted: Vec<Vec<String>> = types
            .iter()
            .map(|ids| ids.iter().map(|s| s.to_string()).collect())
            .collect();
        sorted.iter_mut().for_each(|ids| ids.sort());
        let all: Vec<&str> = sorted.iter().flatten().map(String::as_str).collect();
        let mut type_start = vec![0u32];
        for ids in &sorted {
            type_start.push(type_start[type_start.len() - 1] + ids.len() as u32);
        }
        match IdColumns::build(&type_start, |i| all[i], u32::MAX as usize) {
            Ok(c) => (c, sorted),
            Err(e) => panic!("{e:?}"),
        }
    }

    fn probe<'a>(c: &'a IdColumns, t: TypeId, id: &'a str) -> Option<Probe<'a>> {
        match c.locate(t, id) {
            Locate::Probe(p) => Some(p),
            _ => None,
        }
    }

    /// The places among the `n` ids of type `t` where `id` is found: the
    /// one a run computes, or every candidate a probe confirms (the hash
    /// index is the table's, so every place is a candidate here).
    fn found(c: &IdColumns, t: TypeId, id: &str, n: usize) -> Vec<usize> {
        match c.locate(t, id) {
            Locate::At(i) => vec![i],
            Locate::Absent => vec![],
            Locate::Probe(p) => (0..n).filter(|&j| p.matches(j)).collect(),
        }
    }

    /// Every id comes back, and each is found at its place only.
    fn assert_round_trip(c: &IdColumns, sorted: &[Vec<String>]) {
        for (t, ids) in sorted.iter().enumerate() {
            let t = t as TypeId;
            for (i, id) in ids.iter().enumerate() {
                let got = c.get(t, i);
                assert_eq!(got.to_string(), *id, "type {t}, #{i}");
                assert_eq!(String::from(got), *id);
                assert_eq!(got.len(), id.len());
                assert!(got == *id);
                let want: Vec<usize> = (0..ids.len()).filter(|&j| ids[j] == *id).collect();
                assert_eq!(found(c, t, id, ids.len()), want, "{id}");
            }
        }
    }

    #[test]
    fn each_kind_of_column_is_chosen_and_reads_back() {
        let (c, sorted) = build(&[
            &["r-0000003", "r-0000001", "r-1000000"],
            &["m-1", "m-10", "m-2", "x"],
            &[],
            &["only"],
            &["doc-ab", "doc-cd"],
            &["n-7", "n-8"],
        ]);
        let kinds: Vec<&Rests> = c.columns.iter().map(|c| &c.rests).collect();
        assert_eq!(
            kinds,
            [
                &Rests::Digits(7),
                &Rests::Varying(vec![0, 3, 7, 10, 11].into()),
                &Rests::Fixed(0),
                &Rests::Fixed(0),
                &Rests::Fixed(2),
                &Rests::Run(Run::new(1, 7, 2, vec![])),
            ]
        );
        let prefixes: Vec<&str> = c.columns.iter().map(|c| &*c.prefix).collect();
        assert_eq!(prefixes, ["r-", "", "", "only", "doc-", "n-"]);
        // 3 ids of 4 bytes, then 11, 0, 0, 2 of 2, and none for a run.
        assert_eq!(c.bytes.len(), 12 + 11 + 4);
        assert_round_trip(&c, &sorted);
    }

    #[test]
    fn ids_in_sequence_are_a_run_and_store_nothing() {
        let (c, sorted) = build(&[
            &["t-0998", "t-0999", "t-1000", "t-1001"],
            &["t-1", "t-2", "t-4"],
            &["t-1", "t-2", "t-2"],
        ]);
        let kinds: Vec<&Rests> = c.columns.iter().map(|c| &c.rests).collect();
        let run = Rests::Run(Run::new(4, 998, 4, vec![]));
        assert_eq!(
            kinds,
            [&run, &Rests::Digits(1), &Rests::Digits(1)],
            "a gap, a repeat"
        );
        assert_eq!(c.bytes.len(), 3 + 3, "the run stores no bytes");
        assert!(!c.is_hashed(0) && c.is_hashed(1) && c.is_hashed(2));
        assert_round_trip(&c, &sorted);
        for id in [
            "t-0997", "t-1002", "t-10000", "t-099", "t-09a9", "t-1", "u-0999", "",
        ] {
            assert_eq!(found(&c, 0, id, 4), Vec::<usize>::new(), "{id}");
        }
        assert_eq!(found(&c, 0, "t-1000", 4), [2]);
    }

    #[test]
    fn a_run_may_have_a_hole_per_64_ids() {
        let ids = |holes: &[u64]| -> Vec<String> {
            (100..356)
                .filter(|n| !holes.contains(n))
                .map(|n| format!("d{n}"))
                .collect()
        };
        // 253 and 252 ids: room for 3 holes, not 4.
        let three = ids(&[101, 200, 354]);
        let four = ids(&[101, 200, 201, 354]);
        let (c, sorted) = build(&[
            &three.iter().map(String::as_str).collect::<Vec<_>>(),
            &four.iter().map(String::as_str).collect::<Vec<_>>(),
        ]);
        let Rests::Run(run) = &c.columns[0].rests else {
            panic!("{:?}", c.columns[0].rests)
        };
        assert_eq!(
            (run.first, run.len, &*run.holes),
            (100, 253, &[101, 200, 354][..])
        );
        assert_eq!(c.columns[1].rests, Rests::Digits(3));
        assert_round_trip(&c, &sorted);
        for (id, place) in [
            ("d100", Some(0)),
            ("d101", None),
            ("d102", Some(1)),
            ("d202", Some(100)),
        ] {
            assert_eq!(found(&c, 0, id, three.len()), Vec::from_iter(place), "{id}");
        }
        for id in ["d099", "d101", "d200", "d354", "d356", "d1000"] {
            assert_eq!(found(&c, 0, id, three.len()), Vec::<usize>::new(), "{id}");
        }
        assert_eq!(c.get(0, 252).to_string(), "d355");
    }

    #[test]
    fn a_run_takes_numbers_up_to_19_digits() {
        let ids = |digits: usize| {
            let below = format!("k0{}", "9".repeat(digits - 1));
            let above = format!("k1{}", "0".repeat(digits - 1));
            [below, above]
        };
        let [a, b] = ids(MAX_RUN_DIGITS);
        let (c, sorted) = build(&[&[&a, &b]]);
        assert!(matches!(&c.columns[0].rests, Rests::Run(r) if r.digits == 19));
        assert_round_trip(&c, &sorted);
        let [a, b] = ids(MAX_RUN_DIGITS + 1);
        let (c, sorted) = build(&[&[&a, &b]]);
        assert_eq!(c.columns[0].rests, Rests::Digits(20));
        assert_round_trip(&c, &sorted);
    }

    #[test]
    fn ids_a_column_cannot_hold_are_not_probed() {
        let (c, _) = build(&[&["r-0000003", "r-1000001"], &["a1", "b22"]]);
        for id in ["r-000001", "r-00000001", "r-000000x", "q-0000001", "r", ""] {
            assert!(probe(&c, 0, id).is_none(), "{id}");
        }
        assert!(probe(&c, 0, "r-0000002").is_some(), "of the column's shape");
        assert!(probe(&c, 1, "zzzz").is_some(), "varying: any length");
        assert!(probe(&c, 2, "a1").is_none(), "a type beyond the columns");
        // A probe of the right shape but another id matches nothing, and an
        // index beyond the column is no match.
        let p = probe(&c, 0, "r-0000002");
        assert!(p.is_some_and(|p| !p.matches(0) && !p.matches(1) && !p.matches(9)));
        assert!(probe(&c, 1, "a1").is_some_and(|p| p.matches(0) && !p.matches(5)));
    }

    #[test]
    fn digits_pack_up_to_their_limit_only() {
        // Digits that differ first, so the common prefix is `k` only.
        let long = |n: usize, first: char| format!("k{first}{}", "0".repeat(n - 1));
        let (at, ids_at) = build(&[&[&long(MAX_DIGITS, '1'), &long(MAX_DIGITS, '2')]]);
        assert_eq!(at.columns[0].rests, Rests::Digits(MAX_DIGITS));
        assert_round_trip(&at, &ids_at);
        let (over, ids_over) = build(&[&[&long(MAX_DIGITS + 1, '1'), &long(MAX_DIGITS + 1, '2')]]);
        assert_eq!(over.columns[0].rests, Rests::Fixed(MAX_DIGITS + 1));
        assert_round_trip(&over, &ids_over);
    }

    #[test]
    fn a_prefix_is_cut_at_a_character_boundary() {
        // "é" and "è" share their first byte.
        let (c, sorted) = build(&[&["éa", "èb"], &["ü1", "ü2"]]);
        assert_eq!(&*c.columns[0].prefix, "");
        assert_eq!(&*c.columns[1].prefix, "ü");
        assert_round_trip(&c, &sorted);
    }

    #[test]
    fn ids_compare_as_their_strings() {
        let (c, _) = build(&[&["r-09", "r-10"], &["r-1", "r-10a", "s"]]);
        let ids = [
            c.get(0, 0),
            c.get(0, 1),
            c.get(1, 0),
            c.get(1, 1),
            c.get(1, 2),
        ];
        for a in ids {
            for b in ids {
                let (x, y) = (a.to_string(), b.to_string());
                assert_eq!(a.cmp(&b), x.cmp(&y), "{x} {y}");
                assert_eq!(a == b, x == y, "{x} {y}");
                assert_eq!(a.cmp_str(&y), x.cmp(&y), "{x} {y}");
            }
        }
        assert_eq!(ResourceId::whole("r-1"), c.get(1, 0));
        assert_eq!(format!("{:?}", c.get(0, 0)), "\"r-09\"");
        assert_eq!(
            format!("[{:>6}|{:.3}]", c.get(0, 0), c.get(0, 1)),
            "[  r-09|r-1]"
        );
    }

    /// Ids from a small alphabet, so that prefixes, digit runs and equal
    /// lengths are common.
    fn an_id() -> impl Strategy<Value = String> {
        prop_oneof!["[a-c]-[0-9]{1,4}", "x-[0-9]{3}", "[ab]{0,3}", "ü[0-9]{2}",]
    }

    /// Two digits to a byte, one at a time: what [`pack_digits`] must agree with.
    fn pack_one_by_one(s: &str) -> Option<[u8; MAX_PACKED]> {
        let mut out = [0u8; MAX_PACKED];
        if s.len() > MAX_DIGITS {
            return None;
        }
        for (k, b) in s.bytes().enumerate() {
            if !b.is_ascii_digit() {
                return None;
            }
            out[k / 2] |= (b - b'0') << if k % 2 == 0 { 4 } else { 0 };
        }
        Some(out)
    }

    proptest! {
        #[test]
        fn digits_pack_as_one_at_a_time(
            // Mostly digits, with the bytes on either side of them and a
            // character whose bytes are above 0xF9 (carries in the test).
            s in "[0-9]{0,34}|[0-9/:]{0,20}|[0-9]{0,9}[ú\u{FFFF}][0-9]{0,9}",
        ) {
            prop_assert_eq!(pack_digits(s.as_bytes()), pack_one_by_one(&s));
        }

        #[test]
        fn ids_in_sequence_with_holes_find_every_id(
            width in 1usize..=MAX_RUN_DIGITS,
            start in any::<u64>(),
            len in 1usize..300,
            holes in prop::collection::btree_set(0usize..300, 0..8),
            near in prop::collection::vec(0u64..310, 0..24),
        ) {
            let top = 10u64.saturating_pow(width as u32).min(u64::MAX / 2);
            let first = start % top.saturating_sub(len as u64).max(1);
            let write = |n: u64| format!("r-{n:0width$}");
            let numbers: Vec<u64> = (0..len as u64)
                .filter(|&k| !holes.contains(&(k as usize)))
                .map(|k| first + k)
                .filter(|&n| n < top)
                .collect();
            let ids: Vec<String> = numbers.iter().map(|&n| write(n)).collect();
            let refs: Vec<&str> = ids.iter().map(String::as_str).collect();
            let (c, sorted) = build(&[&refs]);
            if let [lo, .., hi] = numbers[..] {
                let inner_holes = (hi - lo + 1) as usize - numbers.len();
                let is_run = matches!(c.columns[0].rests, Rests::Run(_));
                prop_assert_eq!(is_run, inner_holes <= numbers.len() / IDS_PER_HOLE);
            }
            assert_round_trip(&c, &sorted);
            for q in near.iter().map(|&k| write((first + k).saturating_sub(4))) {
                let want: Vec<usize> = (0..ids.len()).filter(|&j| sorted[0][j] == q).collect();
                prop_assert_eq!(found(&c, 0, &q, ids.len()), want);
            }
        }

        #[test]
        fn runs_with_holes_over_many_blocks_find_every_id(
            len in 2usize..6000,
            cuts in prop::collection::vec((0usize..6000, 1usize..40), 0..6),
        ) {
            // Holes in a few stretches, as removals come.
            let mut gone = std::collections::BTreeSet::new();
            for (at, n) in cuts {
                gone.extend((at..at + n).filter(|&k| k > 0 && k + 1 < len));
            }
            let numbers: Vec<u64> =
                (0..len).filter(|k| !gone.contains(k)).map(|k| 10_000 + k as u64).collect();
            let ids: Vec<String> = numbers.iter().map(|n| format!("q{n}")).collect();
            let refs: Vec<&str> = ids.iter().map(String::as_str).collect();
            let (c, _) = build(&[&refs]);
            let is_run = matches!(c.columns[0].rests, Rests::Run(_));
            prop_assert_eq!(is_run, gone.len() <= ids.len() / IDS_PER_HOLE);
            for (i, id) in ids.iter().enumerate() {
                prop_assert_eq!(c.get(0, i).to_string(), id.as_str());
                prop_assert_eq!(found(&c, 0, id, ids.len()), vec![i]);
            }
            for k in gone.iter().chain([&len, &(len + 1)]) {
                let id = format!("q{}", 10_000 + k);
                prop_assert_eq!(found(&c, 0, &id, ids.len()), Vec::<usize>::new(), "{}", id);
            }
        }

        #[test]
        fn columns_give_back_and_find_every_id(
            types in prop::collection::vec(prop::collection::btree_set(an_id(), 0..24), 1..5),
            queries in prop::collection::vec(an_id(), 0..16),
        ) {
            let owned: Vec<Vec<&str>> =
                types.iter().map(|s| s.iter().map(String::as_str).collect()).collect();
            let refs: Vec<&[&str]> = owned.iter().map(Vec::as_slice).collect();
            let (c, sorted) = build(&refs);
            assert_round_trip(&c, &sorted);
            for (t, ids) in sorted.iter().enumerate() {
                for q in &queries {
                    let want: Vec<usize> = (0..ids.len()).filter(|&j| ids[j] == *q).collect();
                    prop_assert_eq!(found(&c, t as TypeId, q, ids.len()), want);
                    for (i, id) in ids.iter().enumerate() {
                        prop_assert_eq!(c.get(t as TypeId, i).cmp_str(q), id.as_str().cmp(q));
                    }
                }
            }
        }
    }
}
