//! `TaskMap<T>`: the ordered per-task container modules pass to each other, and `TaskSet`, a set of
//! task ids (positions in a model's task list) as a bit mask, which is what layouts are made of.
use super::TaskKind;
use std::fmt;

/// An ordered map from task to value; the order is the model's task order (task id = position).
/// Serialised as a JSON object keyed by task name, in task order.
#[derive(Debug, Clone, PartialEq)]
pub struct TaskMap<T> {
    entries: Vec<(TaskKind, T)>,
}

impl<T: serde::Serialize> serde::Serialize for TaskMap<T> {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        use serde::ser::SerializeMap;
        let mut map = s.serialize_map(Some(self.entries.len()))?;
        for (k, v) in &self.entries {
            map.serialize_entry(k, v)?;
        }
        map.end()
    }
}

impl<'de, T: serde::Deserialize<'de>> serde::Deserialize<'de> for TaskMap<T> {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct Visitor<T>(std::marker::PhantomData<T>);
        impl<'de, T: serde::Deserialize<'de>> serde::de::Visitor<'de> for Visitor<T> {
            type Value = TaskMap<T>;
            fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str("an object keyed by task name")
            }
            fn visit_map<A: serde::de::MapAccess<'de>>(self, mut access: A) -> Result<TaskMap<T>, A::Error> {
                let mut m = TaskMap::new();
                while let Some((k, v)) = access.next_entry::<TaskKind, T>()? {
                    if m.get(k).is_some() {
                        return Err(serde::de::Error::custom(format!("task `{k}` appears twice")));
                    }
                    m.insert(k, v);
                }
                Ok(m)
            }
        }
        d.deserialize_map(Visitor(std::marker::PhantomData))
    }
}

impl<T> Default for TaskMap<T> {
    fn default() -> Self {
        TaskMap { entries: Vec::new() }
    }
}

impl<T> TaskMap<T> {
    /// An empty map.
    pub fn new() -> Self {
        Self::default()
    }

    /// Inserts or replaces the value of `kind`, keeping first-insertion order.
    pub fn insert(&mut self, kind: TaskKind, value: T) {
        match self.entries.iter_mut().find(|(k, _)| *k == kind) {
            Some(slot) => slot.1 = value,
            None => self.entries.push((kind, value)),
        }
    }

    /// The value of `kind`, if present.
    pub fn get(&self, kind: TaskKind) -> Option<&T> {
        self.entries.iter().find(|(k, _)| *k == kind).map(|(_, v)| v)
    }

    /// Mutable access to the value of `kind`, if present.
    pub fn get_mut(&mut self, kind: TaskKind) -> Option<&mut T> {
        self.entries.iter_mut().find(|(k, _)| *k == kind).map(|(_, v)| v)
    }

    /// Number of tasks.
    pub fn len(&self) -> usize {
        self.entries.len()
    }

    /// True when no task is present.
    pub fn is_empty(&self) -> bool {
        self.entries.is_empty()
    }

    /// The tasks in order.
    pub fn keys(&self) -> impl Iterator<Item = TaskKind> + '_ {
        self.entries.iter().map(|(k, _)| *k)
    }

    /// The values in task order.
    pub fn values(&self) -> impl Iterator<Item = &T> {
        self.entries.iter().map(|(_, v)| v)
    }

    /// `(task, value)` pairs in order.
    pub fn iter(&self) -> impl Iterator<Item = (TaskKind, &T)> {
        self.entries.iter().map(|(k, v)| (*k, v))
    }

    /// A map with `f` applied to every value.
    pub fn map<U>(&self, mut f: impl FnMut(TaskKind, &T) -> U) -> TaskMap<U> {
        TaskMap { entries: self.entries.iter().map(|(k, v)| (*k, f(*k, v))).collect() }
    }

    /// Like [`TaskMap::map`] for a fallible `f`.
    pub fn try_map<U, E>(&self, mut f: impl FnMut(TaskKind, &T) -> Result<U, E>) -> Result<TaskMap<U>, E> {
        let mut entries = Vec::with_capacity(self.entries.len());
        for (k, v) in &self.entries {
            entries.push((*k, f(*k, v)?));
        }
        Ok(TaskMap { entries })
    }
}

impl<T> FromIterator<(TaskKind, T)> for TaskMap<T> {
    fn from_iter<I: IntoIterator<Item = (TaskKind, T)>>(iter: I) -> Self {
        let mut m = TaskMap::new();
        for (k, v) in iter {
            m.insert(k, v);
        }
        m
    }
}

impl<T> IntoIterator for TaskMap<T> {
    type Item = (TaskKind, T);
    type IntoIter = std::vec::IntoIter<(TaskKind, T)>;
    fn into_iter(self) -> Self::IntoIter {
        self.entries.into_iter()
    }
}

/// A set of task ids (0..32) stored as a bit mask.
#[derive(Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Default)]
pub struct TaskSet(pub u32);

impl TaskSet {
    /// The set `{0, .., n-1}`.
    pub fn all(n: usize) -> Self {
        TaskSet(if n >= 32 { u32::MAX } else { (1u32 << n) - 1 })
    }

    /// The set `{id}`.
    pub fn single(id: usize) -> Self {
        TaskSet(1 << id)
    }

    /// The set of the given ids.
    pub fn from_ids(ids: impl IntoIterator<Item = usize>) -> Self {
        TaskSet(ids.into_iter().fold(0, |m, i| m | (1 << i)))
    }

    /// True when `id` is in the set.
    pub fn contains(self, id: usize) -> bool {
        id < 32 && self.0 & (1 << id) != 0
    }

    /// True when every element of `other` is in `self`.
    pub fn is_superset(self, other: TaskSet) -> bool {
        self.0 & other.0 == other.0
    }

    /// True when the two sets share an element.
    pub fn intersects(self, other: TaskSet) -> bool {
        self.0 & other.0 != 0
    }

    /// Number of elements.
    pub fn len(self) -> usize {
        self.0.count_ones() as usize
    }

    /// True for the empty set.
    pub fn is_empty(self) -> bool {
        self.0 == 0
    }

    /// The elements in ascending order.
    pub fn ids(self) -> impl Iterator<Item = usize> {
        (0..32).filter(move |&i| self.0 & (1 << i) != 0)
    }
}

impl fmt::Debug for TaskSet {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Display::fmt(self, f)
    }
}

/// Python's set repr for small ints: `{0, 1, 2}` (ascending).
impl fmt::Display for TaskSet {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("{")?;
        for (n, id) in self.ids().enumerate() {
            if n > 0 {
                f.write_str(", ")?;
            }
            write!(f, "{id}")?;
        }
        f.write_str("}")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn task_map_keeps_insertion_order_and_replaces() {
        let mut m = TaskMap::new();
        m.insert(TaskKind::DepthZbuffer, 1);
        m.insert(TaskKind::SegmentSemantic, 2);
        m.insert(TaskKind::DepthZbuffer, 3);
        assert_eq!(m.keys().collect::<Vec<_>>(), vec![TaskKind::DepthZbuffer, TaskKind::SegmentSemantic]);
        assert_eq!(m.get(TaskKind::DepthZbuffer), Some(&3));
        assert_eq!(m.get(TaskKind::Normal), None);
    }

    #[test]
    fn task_maps_serialise_as_ordered_objects() {
        let m: TaskMap<f64> = [(TaskKind::Normal, 1.5), (TaskKind::SegmentSemantic, 2.0)].into_iter().collect();
        let text = serde_json::to_string(&m).unwrap();
        assert_eq!(text, r#"{"normal":1.5,"segment_semantic":2.0}"#);
        assert_eq!(serde_json::from_str::<TaskMap<f64>>(&text).unwrap(), m);
        assert!(serde_json::from_str::<TaskMap<f64>>(r#"{"normal":1,"normal":2}"#).is_err());
    }

    #[test]
    fn task_set_operations() {
        let s = TaskSet::from_ids([0, 2]);
        assert_eq!(s.to_string(), "{0, 2}");
        assert!(TaskSet::all(3).is_superset(s));
        assert!(!s.is_superset(TaskSet::all(3)));
        assert_eq!(s.len(), 2);
        assert!(s.intersects(TaskSet::single(2)) && !s.intersects(TaskSet::single(1)));
    }
}
