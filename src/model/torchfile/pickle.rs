//! A Python pickle reader for the subset of protocols 0–5 that `torch.save` and ordinary
//! checkpoints use. It only builds data: a call such as `torch._utils._rebuild_tensor_v2(…)` or
//! `main.layout.Layout(…)` becomes a [`Value::Call`] for the caller to interpret, and nothing is
//! ever executed, so an untrusted file cannot run code. Lists, dicts and objects are shared
//! (`Rc<RefCell>`) so a memoised container filled after it was stored reads back complete.
use std::cell::RefCell;
use std::rc::Rc;

/// A shared, growable list (Python list, set, or the items of a dict).
pub type Shared<T> = Rc<RefCell<T>>;

/// An unpickled value.
#[derive(Debug, Clone)]
pub enum Value {
    None,
    Bool(bool),
    Int(i64),
    Float(f64),
    Str(String),
    Bytes(Vec<u8>),
    Tuple(Vec<Value>),
    List(Shared<Vec<Value>>),
    /// Dict or `collections.OrderedDict`, in insertion order.
    Dict(Shared<Vec<(Value, Value)>>),
    /// `set` / `frozenset`.
    Set(Shared<Vec<Value>>),
    /// A global name (`module.name`), e.g. a class or a function.
    Global {
        module: String,
        name: String,
    },
    /// A call `callable(*args)` (REDUCE, NEWOBJ) with the state given to it by BUILD, if any.
    Call(Shared<Call>),
    /// A persistent id: the pickle's reference to data stored outside it (torch storages).
    PersistentId(Box<Value>),
}

/// A call recorded by the reader.
#[derive(Debug, Clone)]
pub struct Call {
    pub callable: Value,
    pub args: Vec<Value>,
    pub state: Option<Value>,
}

impl Value {
    /// The `module.name` of a global, or of the callable of a call.
    pub fn global_name(&self) -> Option<String> {
        match self {
            Value::Global { module, name } => Some(format!("{module}.{name}")),
            Value::Call(c) => c.borrow().callable.global_name(),
            _ => None,
        }
    }

    /// A short description for error messages.
    pub fn describe(&self) -> String {
        match self {
            Value::None => "None".into(),
            Value::Bool(b) => format!("the bool {b}"),
            Value::Int(i) => format!("the int {i}"),
            Value::Float(f) => format!("the float {f}"),
            Value::Str(s) => format!("the string {s:?}"),
            Value::Bytes(b) => format!("{} bytes", b.len()),
            Value::Tuple(t) => format!("a tuple of {}", t.len()),
            Value::List(l) => format!("a list of {}", l.borrow().len()),
            Value::Dict(d) => format!("a dict of {} entries", d.borrow().len()),
            Value::Set(s) => format!("a set of {}", s.borrow().len()),
            Value::Global { module, name } => format!("the global {module}.{name}"),
            Value::Call(c) => format!("a {} object", c.borrow().callable.global_name().unwrap_or_else(|| "Python".into())),
            Value::PersistentId(_) => "a persistent id".into(),
        }
    }

    /// The string inside a `Str`.
    pub fn as_str(&self) -> Option<&str> {
        match self {
            Value::Str(s) => Some(s),
            _ => None,
        }
    }

    /// The integer inside an `Int` (or a `Bool`).
    pub fn as_int(&self) -> Option<i64> {
        match self {
            Value::Int(i) => Some(*i),
            Value::Bool(b) => Some(*b as i64),
            _ => None,
        }
    }

    /// The items of a tuple or a list.
    pub fn items(&self) -> Option<Vec<Value>> {
        match self {
            Value::Tuple(t) => Some(t.clone()),
            Value::List(l) => Some(l.borrow().clone()),
            _ => None,
        }
    }

    /// The value under the string key `key` of a dict.
    pub fn get(&self, key: &str) -> Option<Value> {
        match self {
            Value::Dict(d) => d.borrow().iter().find(|(k, _)| k.as_str() == Some(key)).map(|(_, v)| v.clone()),
            _ => None,
        }
    }
}

fn shared<T>(t: T) -> Shared<T> {
    Rc::new(RefCell::new(t))
}

/// Why a pickle could not be read.
#[derive(Debug, Clone, PartialEq)]
pub struct PickleError(pub String);

impl std::fmt::Display for PickleError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.0)
    }
}

type Res<T> = Result<T, PickleError>;

fn err<T>(msg: impl Into<String>) -> Res<T> {
    Err(PickleError(msg.into()))
}

/// One stack entry: a value or a MARK.
enum Item {
    Mark,
    Value(Value),
}

struct Machine<'a> {
    data: &'a [u8],
    pos: usize,
    stack: Vec<Item>,
    memo: std::collections::HashMap<u64, Value>,
}

/// Reads one pickle from `data` and returns the value and the number of bytes it took.
///
/// # Errors
/// Truncated or malformed data, or an opcode outside the supported subset (named).
pub fn unpickle(data: &[u8]) -> Result<(Value, usize), PickleError> {
    let mut m = Machine { data, pos: 0, stack: Vec::new(), memo: Default::default() };
    let value = m.run()?;
    Ok((value, m.pos))
}

impl Machine<'_> {
    fn take(&mut self, n: usize) -> Res<&[u8]> {
        if self.pos + n > self.data.len() {
            return err(format!("truncated pickle (needed {n} bytes at offset {})", self.pos));
        }
        let s = &self.data[self.pos..self.pos + n];
        self.pos += n;
        Ok(s)
    }

    fn u8(&mut self) -> Res<u8> {
        Ok(self.take(1)?[0])
    }

    fn le(&mut self, n: usize) -> Res<u64> {
        Ok(self.take(n)?.iter().rev().fold(0u64, |acc, &b| (acc << 8) | b as u64))
    }

    fn line(&mut self) -> Res<String> {
        let rest = &self.data[self.pos..];
        let Some(end) = rest.iter().position(|&b| b == b'\n') else { return err("truncated pickle (unterminated line)") };
        let s = String::from_utf8_lossy(&rest[..end]).into_owned();
        self.pos += end + 1;
        Ok(s)
    }

    fn utf8(&mut self, n: usize) -> Res<String> {
        let bytes = self.take(n)?;
        String::from_utf8(bytes.to_vec()).map_err(|_| PickleError("a pickled string is not valid UTF-8".into()))
    }

    fn push(&mut self, v: Value) {
        self.stack.push(Item::Value(v));
    }

    fn pop(&mut self) -> Res<Value> {
        match self.stack.pop() {
            Some(Item::Value(v)) => Ok(v),
            Some(Item::Mark) => err("malformed pickle (unexpected MARK)"),
            None => err("malformed pickle (stack underflow)"),
        }
    }

    fn top(&mut self) -> Res<&mut Value> {
        match self.stack.last_mut() {
            Some(Item::Value(v)) => Ok(v),
            _ => err("malformed pickle (no value on the stack)"),
        }
    }

    /// Pops everything down to the last MARK.
    fn pop_mark(&mut self) -> Res<Vec<Value>> {
        let Some(mark) = self.stack.iter().rposition(|i| matches!(i, Item::Mark)) else { return err("malformed pickle (missing MARK)") };
        let items = self.stack.split_off(mark + 1);
        self.stack.pop();
        Ok(items
            .into_iter()
            .map(|i| match i {
                Item::Value(v) => v,
                Item::Mark => unreachable!("split after the last mark"),
            })
            .collect())
    }

    fn memo_put(&mut self, key: u64) -> Res<()> {
        let v = self.top()?.clone();
        self.memo.insert(key, v);
        Ok(())
    }

    fn memo_get(&mut self, key: u64) -> Res<()> {
        let v = self.memo.get(&key).cloned().ok_or_else(|| PickleError(format!("malformed pickle (memo {key} unset)")))?;
        self.push(v);
        Ok(())
    }

    fn set_items(&mut self, target: &Value, items: Vec<Value>) -> Res<()> {
        let Value::Dict(d) = target else { return err(format!("malformed pickle (SETITEM on {})", target.describe())) };
        let mut d = d.borrow_mut();
        let mut it = items.into_iter();
        while let (Some(k), Some(v)) = (it.next(), it.next()) {
            d.push((k, v));
        }
        Ok(())
    }

    /// REDUCE / NEWOBJ: containers the pickle fills later become real containers; every other
    /// call is recorded.
    fn call(&mut self, callable: Value, args: Vec<Value>) -> Res<Value> {
        let name = callable.global_name().unwrap_or_default();
        Ok(match name.as_str() {
            "collections.OrderedDict" | "builtins.dict" | "__builtin__.dict" if args.is_empty() => Value::Dict(shared(Vec::new())),
            "builtins.set" | "__builtin__.set" | "builtins.frozenset" | "__builtin__.frozenset" => {
                let items = args.first().and_then(Value::items).unwrap_or_default();
                Value::Set(shared(items))
            }
            "builtins.list" | "__builtin__.list" if args.is_empty() => Value::List(shared(Vec::new())),
            _ => Value::Call(shared(Call { callable, args, state: None })),
        })
    }

    fn run(&mut self) -> Res<Value> {
        loop {
            let op = self.u8()?;
            match op {
                0x80 => {
                    let proto = self.u8()?;
                    if proto > 5 {
                        return err(format!("pickle protocol {proto} is not supported"));
                    }
                }
                0x95 => {
                    self.le(8)?; // FRAME: a length hint only
                }
                b'.' => return self.pop(),
                b'(' => self.stack.push(Item::Mark),
                b'0' => {
                    self.pop()?;
                }
                b'2' => {
                    let v = self.top()?.clone();
                    self.push(v);
                }
                b'1' => {
                    self.pop_mark()?;
                }
                b'N' => self.push(Value::None),
                0x88 => self.push(Value::Bool(true)),
                0x89 => self.push(Value::Bool(false)),
                b'J' => {
                    let v = self.le(4)? as u32 as i32 as i64;
                    self.push(Value::Int(v));
                }
                b'K' => {
                    let v = self.u8()? as i64;
                    self.push(Value::Int(v));
                }
                b'M' => {
                    let v = self.le(2)? as i64;
                    self.push(Value::Int(v));
                }
                0x8a | 0x8b => {
                    let n = if op == 0x8a { self.u8()? as usize } else { self.le(4)? as usize };
                    let bytes = self.take(n)?.to_vec();
                    if n > 8 {
                        return err(format!("an integer of {n} bytes does not fit 64 bits"));
                    }
                    let mut v: i64 = bytes.iter().rev().fold(0i64, |acc, &b| (acc << 8) | b as i64);
                    if n > 0 && n < 8 && bytes[n - 1] & 0x80 != 0 {
                        v -= 1i64 << (8 * n);
                    }
                    self.push(Value::Int(v));
                }
                b'I' | b'L' => {
                    let line = self.line()?;
                    let t = line.trim_end_matches('L');
                    let v = match t {
                        "00" => Value::Bool(false),
                        "01" => Value::Bool(true),
                        _ => Value::Int(t.parse().map_err(|_| PickleError(format!("bad integer {line:?} in pickle")))?),
                    };
                    self.push(v);
                }
                b'G' => {
                    let bits = u64::from_be_bytes(self.take(8)?.try_into().expect("8 bytes"));
                    self.push(Value::Float(f64::from_bits(bits)));
                }
                b'F' => {
                    let line = self.line()?;
                    self.push(Value::Float(line.parse().map_err(|_| PickleError(format!("bad float {line:?} in pickle")))?));
                }
                b'X' => {
                    let n = self.le(4)? as usize;
                    let s = self.utf8(n)?;
                    self.push(Value::Str(s));
                }
                0x8c => {
                    let n = self.u8()? as usize;
                    let s = self.utf8(n)?;
                    self.push(Value::Str(s));
                }
                0x8d => {
                    let n = self.le(8)? as usize;
                    let s = self.utf8(n)?;
                    self.push(Value::Str(s));
                }
                b'V' => {
                    let s = self.line()?;
                    self.push(Value::Str(s));
                }
                b'S' => {
                    let s = self.line()?;
                    self.push(Value::Str(s.trim_matches(|c| c == '\'' || c == '"').to_string()));
                }
                b'T' | b'U' => {
                    // Python 2 byte strings; checkpoints use them for ASCII names.
                    let n = if op == b'T' { self.le(4)? as usize } else { self.u8()? as usize };
                    let s = String::from_utf8_lossy(self.take(n)?).into_owned();
                    self.push(Value::Str(s));
                }
                b'B' | b'C' | 0x8e | 0x96 => {
                    let n = match op {
                        b'B' => self.le(4)? as usize,
                        b'C' => self.u8()? as usize,
                        _ => self.le(8)? as usize,
                    };
                    let b = self.take(n)?.to_vec();
                    self.push(Value::Bytes(b));
                }
                b')' => self.push(Value::Tuple(Vec::new())),
                b't' => {
                    let items = self.pop_mark()?;
                    self.push(Value::Tuple(items));
                }
                0x85..=0x87 => {
                    let n = (op - 0x84) as usize;
                    let mut items = Vec::with_capacity(n);
                    for _ in 0..n {
                        items.push(self.pop()?);
                    }
                    items.reverse();
                    self.push(Value::Tuple(items));
                }
                b']' => self.push(Value::List(shared(Vec::new()))),
                b'l' => {
                    let items = self.pop_mark()?;
                    self.push(Value::List(shared(items)));
                }
                b'a' => {
                    let v = self.pop()?;
                    match self.top()? {
                        Value::List(l) => l.borrow_mut().push(v),
                        other => return err(format!("malformed pickle (APPEND to {})", other.describe())),
                    }
                }
                b'e' => {
                    let items = self.pop_mark()?;
                    match self.top()? {
                        Value::List(l) => l.borrow_mut().extend(items),
                        other => return err(format!("malformed pickle (APPENDS to {})", other.describe())),
                    }
                }
                b'}' => self.push(Value::Dict(shared(Vec::new()))),
                b'd' => {
                    let items = self.pop_mark()?;
                    let d = Value::Dict(shared(Vec::new()));
                    self.set_items(&d, items)?;
                    self.push(d);
                }
                b's' => {
                    let v = self.pop()?;
                    let k = self.pop()?;
                    let target = self.top()?.clone();
                    self.set_items(&target, vec![k, v])?;
                }
                b'u' => {
                    let items = self.pop_mark()?;
                    let target = self.top()?.clone();
                    self.set_items(&target, items)?;
                }
                0x8f => self.push(Value::Set(shared(Vec::new()))),
                0x90 => {
                    let items = self.pop_mark()?;
                    match self.top()? {
                        Value::Set(s) => s.borrow_mut().extend(items),
                        other => return err(format!("malformed pickle (ADDITEMS to {})", other.describe())),
                    }
                }
                0x91 => {
                    let items = self.pop_mark()?;
                    self.push(Value::Set(shared(items)));
                }
                b'c' => {
                    let module = self.line()?;
                    let name = self.line()?;
                    self.push(Value::Global { module, name });
                }
                0x93 => {
                    let name = self.pop()?;
                    let module = self.pop()?;
                    match (module, name) {
                        (Value::Str(module), Value::Str(name)) => self.push(Value::Global { module, name }),
                        _ => return err("malformed pickle (STACK_GLOBAL needs two strings)"),
                    }
                }
                b'R' => {
                    let args = self.pop()?;
                    let callable = self.pop()?;
                    let args = args.items().ok_or_else(|| PickleError("malformed pickle (REDUCE arguments are not a tuple)".into()))?;
                    let v = self.call(callable, args)?;
                    self.push(v);
                }
                0x81 => {
                    let args = self.pop()?;
                    let cls = self.pop()?;
                    let v = self.call(cls, args.items().unwrap_or_default())?;
                    self.push(v);
                }
                0x92 => {
                    let _kwargs = self.pop()?;
                    let args = self.pop()?;
                    let cls = self.pop()?;
                    let v = self.call(cls, args.items().unwrap_or_default())?;
                    self.push(v);
                }
                b'b' => {
                    let state = self.pop()?;
                    match self.top()? {
                        Value::Call(c) => c.borrow_mut().state = Some(state),
                        // An OrderedDict's instance attributes (a state dict's `_metadata`) do not matter here.
                        Value::Dict(_) | Value::List(_) | Value::Set(_) => {}
                        other => return err(format!("malformed pickle (BUILD on {})", other.describe())),
                    }
                }
                b'Q' => {
                    let pid = self.pop()?;
                    self.push(Value::PersistentId(Box::new(pid)));
                }
                b'P' => {
                    let pid = self.line()?;
                    self.push(Value::PersistentId(Box::new(Value::Str(pid))));
                }
                b'q' => {
                    let k = self.u8()? as u64;
                    self.memo_put(k)?;
                }
                b'r' => {
                    let k = self.le(4)?;
                    self.memo_put(k)?;
                }
                b'p' => {
                    let k = self.line()?.parse().map_err(|_| PickleError("malformed pickle (PUT index)".into()))?;
                    self.memo_put(k)?;
                }
                0x94 => {
                    let k = self.memo.len() as u64;
                    self.memo_put(k)?;
                }
                b'h' => {
                    let k = self.u8()? as u64;
                    self.memo_get(k)?;
                }
                b'j' => {
                    let k = self.le(4)?;
                    self.memo_get(k)?;
                }
                b'g' => {
                    let k = self.line()?.parse().map_err(|_| PickleError("malformed pickle (GET index)".into()))?;
                    self.memo_get(k)?;
                }
                other => return err(format!("pickle opcode 0x{other:02x} at offset {} is not supported", self.pos - 1)),
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_a_protocol_2_ordered_dict_with_shared_memo() {
        // pickle.dumps(OrderedDict([('a', [1, -2, 300]), ('b', (1.5, None, True))]), protocol=2) plus a
        // BINGET of the list, written by hand: the memoised list must read back filled.
        let mut p: Vec<u8> = vec![0x80, 2];
        p.extend(b"ccollections\nOrderedDict\nq\x00)R");
        p.extend(b"q\x01(X\x01\x00\x00\x00a]q\x02(K\x01J\xfe\xff\xff\xffM\x2c\x01e");
        p.extend(b"X\x01\x00\x00\x00bG\x3f\xf8\x00\x00\x00\x00\x00\x00N\x88\x87");
        p.extend(b"X\x01\x00\x00\x00ch\x02u.");
        let (v, used) = unpickle(&p).unwrap();
        assert_eq!(used, p.len());
        let a = v.get("a").unwrap().items().unwrap();
        assert_eq!(a.iter().map(|x| x.as_int().unwrap()).collect::<Vec<_>>(), vec![1, -2, 300]);
        let b = v.get("b").unwrap().items().unwrap();
        assert!(matches!(b[0], Value::Float(f) if f == 1.5) && matches!(b[1], Value::None) && matches!(b[2], Value::Bool(true)));
        assert_eq!(v.get("c").unwrap().items().unwrap().len(), 3, "memo shares the filled list");
    }

    #[test]
    fn long1_is_little_endian_twos_complement() {
        let (v, _) = unpickle(&[0x80, 2, 0x8a, 2, 0x00, 0x80, b'.']).unwrap();
        assert_eq!(v.as_int(), Some(-32768));
        let (v, _) = unpickle(&[0x80, 2, 0x8a, 5, 0, 0, 0, 0, 1, b'.']).unwrap();
        assert_eq!(v.as_int(), Some(1 << 32));
    }

    #[test]
    fn unknown_opcodes_and_truncation_are_reported() {
        assert!(unpickle(&[0x80, 2, 0xff]).unwrap_err().0.contains("0xff"));
        assert!(unpickle(&[0x80, 2, b'X', 9, 0, 0, 0, b'a']).unwrap_err().0.contains("truncated"));
    }
}
