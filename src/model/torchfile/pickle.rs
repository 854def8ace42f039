//! A Python pickle reader for the subset of protocols 0–5 that `torch.save` and ordinary
//! checkpoints use. It only builds data: a call such as `torch._utils._rebuild_tensor_v2(…)` or
//! `main.layout.Layout(…)` becomes a [`Value::Call`] for the caller to interpret, and nothing is
//! ever executed, so an untrusted file cannot run code. Lists, dicts and objects are shared
//! (`Rc<RefCell>`) so a memoised container filled after it was stored reads back complete; strings,
//! bytes and tuples are shared too, so a value fetched from the memo a million times is stored once.
//!
//! Hostile input is an error, never a panic, an abort or an allocation the data cannot back: every
//! length is checked against the bytes that remain before anything is read, the finished value
//! must be a tree or DAG at most [`MAX_DEPTH`] containers deep (what Python's own pickler can write
//! is shallower still) so that walking it cannot exhaust the stack, and values are dropped without
//! recursion, so that freeing a deeper one after its error cannot either.
use std::cell::RefCell;
use std::collections::HashMap;
use std::rc::Rc;

/// Defines the opcode constants and [`opcode_name`] from one list.
macro_rules! opcodes {
    ($($name:ident = $byte:expr;)*) => {
        $(pub const $name: u8 = $byte;)*

        /// The name of an opcode, for error messages.
        fn opcode_name(op: u8) -> Option<&'static str> {
            match op {
                $($name => Some(stringify!($name)),)*
                _ => None,
            }
        }
    };
}

// The opcodes, named as in Python's `pickletools`, by the protocol that introduced them.
opcodes! {
    // Protocols 0 and 1.
    MARK = b'(';
    STOP = b'.';
    POP = b'0';
    POP_MARK = b'1';
    DUP = b'2';
    FLOAT = b'F';
    INT = b'I';
    BININT = b'J';
    BININT1 = b'K';
    LONG = b'L';
    BININT2 = b'M';
    NONE = b'N';
    PERSID = b'P';
    BINPERSID = b'Q';
    REDUCE = b'R';
    STRING = b'S';
    BINSTRING = b'T';
    SHORT_BINSTRING = b'U';
    UNICODE = b'V';
    BINUNICODE = b'X';
    APPEND = b'a';
    BUILD = b'b';
    GLOBAL = b'c';
    DICT = b'd';
    EMPTY_DICT = b'}';
    APPENDS = b'e';
    GET = b'g';
    BINGET = b'h';
    INST = b'i';
    LONG_BINGET = b'j';
    LIST = b'l';
    EMPTY_LIST = b']';
    OBJ = b'o';
    PUT = b'p';
    BINPUT = b'q';
    LONG_BINPUT = b'r';
    SETITEM = b's';
    TUPLE = b't';
    EMPTY_TUPLE = b')';
    SETITEMS = b'u';
    BINFLOAT = b'G';
    // Protocol 2.
    PROTO = 0x80;
    NEWOBJ = 0x81;
    EXT1 = 0x82;
    EXT2 = 0x83;
    EXT4 = 0x84;
    TUPLE1 = 0x85;
    TUPLE2 = 0x86;
    TUPLE3 = 0x87;
    NEWTRUE = 0x88;
    NEWFALSE = 0x89;
    LONG1 = 0x8a;
    LONG4 = 0x8b;
    // Protocol 3.
    BINBYTES = b'B';
    SHORT_BINBYTES = b'C';
    // Protocol 4.
    SHORT_BINUNICODE = 0x8c;
    BINUNICODE8 = 0x8d;
    BINBYTES8 = 0x8e;
    EMPTY_SET = 0x8f;
    ADDITEMS = 0x90;
    FROZENSET = 0x91;
    NEWOBJ_EX = 0x92;
    STACK_GLOBAL = 0x93;
    MEMOIZE = 0x94;
    FRAME = 0x95;
    // Protocol 5.
    BYTEARRAY8 = 0x96;
    NEXT_BUFFER = 0x97;
    READONLY_BUFFER = 0x98;
}

/// How deeply containers may nest. Checkpoints nest a handful of levels and Python's pickler gives
/// up near 1000 (its recursion limit); 256 keeps any recursive walk of a value (its `Debug`, a
/// caller's own) well inside a thread's stack.
pub const MAX_DEPTH: usize = 256;

/// A shared, growable list (Python list, set, or the items of a dict).
pub type Shared<T> = Rc<RefCell<T>>;

/// An unpickled value. Cloning one is cheap: everything larger than a number is shared.
#[derive(Debug, Clone)]
pub enum Value {
    None,
    Bool(bool),
    Int(i64),
    Float(f64),
    Str(Rc<str>),
    Bytes(Rc<[u8]>),
    Tuple(Rc<[Value]>),
    List(Shared<Vec<Value>>),
    /// Dict or `collections.OrderedDict`, in insertion order.
    Dict(Shared<Vec<(Value, Value)>>),
    /// `set` / `frozenset`.
    Set(Shared<Vec<Value>>),
    /// A global name (`module.name`), e.g. a class or a function.
    Global {
        module: Rc<str>,
        name: Rc<str>,
    },
    /// A call `callable(*args)` (REDUCE, NEWOBJ) with the state given to it by BUILD, if any.
    Call(Shared<Call>),
    /// A persistent id: the pickle's reference to data stored outside it (torch storages).
    PersistentId(Rc<Value>),
}

/// A call recorded by the reader.
#[derive(Debug, Clone)]
pub struct Call {
    pub callable: Value,
    pub args: Rc<[Value]>,
    pub state: Option<Value>,
}

impl Value {
    /// The `module.name` of a global, or of the callable of a call (through calls of calls).
    pub fn global_name(&self) -> Option<String> {
        let mut v = self.clone();
        // A loop, not recursion; unpickled values are at most MAX_DEPTH deep.
        for _ in 0..=MAX_DEPTH {
            let callable = match &v {
                Value::Global { module, name } => return Some(format!("{module}.{name}")),
                Value::Call(c) => c.borrow().callable.clone(),
                _ => return None,
            };
            v = callable;
        }
        None
    }

    /// A short description for error messages.
    pub fn describe(&self) -> String {
        match self {
            Value::None => "None".into(),
            Value::Bool(b) => format!("the bool {b}"),
            Value::Int(i) => format!("the int {i}"),
            Value::Float(f) => format!("the float {f}"),
            Value::Str(s) => format!("the string {:?}", truncate(s, 60)),
            Value::Bytes(b) => format!("{} bytes", b.len()),
            Value::Tuple(t) => format!("a tuple of {}", t.len()),
            Value::List(l) => format!("a list of {}", l.borrow().len()),
            Value::Dict(d) => format!("a dict of {} entries", d.borrow().len()),
            Value::Set(s) => format!("a set of {}", s.borrow().len()),
            Value::Global { module, name } => format!("the global {module}.{name}"),
            Value::Call(_) => format!("a {} object", self.global_name().unwrap_or_else(|| "Python".into())),
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
            Value::Tuple(t) => Some(t.to_vec()),
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

    /// The address of a shared container, its identity in the depth check; `None` for leaves.
    fn node(&self) -> Option<*const ()> {
        Some(match self {
            Value::Tuple(t) => Rc::as_ptr(t) as *const (),
            Value::List(l) | Value::Set(l) => Rc::as_ptr(l) as *const (),
            Value::Dict(d) => Rc::as_ptr(d) as *const (),
            Value::Call(c) => Rc::as_ptr(c) as *const (),
            Value::PersistentId(p) => Rc::as_ptr(p) as *const (),
            _ => return None,
        })
    }

    /// The values a container holds directly.
    fn children(&self) -> Vec<Value> {
        match self {
            Value::Tuple(t) => t.to_vec(),
            Value::List(l) | Value::Set(l) => l.borrow().clone(),
            Value::Dict(d) => d.borrow().iter().flat_map(|(k, v)| [k.clone(), v.clone()]).collect(),
            Value::Call(c) => {
                let c = c.borrow();
                std::iter::once(c.callable.clone()).chain(c.args.iter().cloned()).chain(c.state.clone()).collect()
            }
            Value::PersistentId(p) => vec![(**p).clone()],
            _ => Vec::new(),
        }
    }
}

/// Values are dropped without recursion: a list nested a million deep (a crafted pickle, freed
/// after its error) would otherwise overflow the stack. A container whose last reference goes
/// hands its items to a work list instead of dropping them inside its own drop.
impl Drop for Value {
    fn drop(&mut self) {
        fn take_items(v: &mut Value, work: &mut Vec<Value>) {
            match v {
                Value::Tuple(t) => {
                    if let Some(items) = Rc::get_mut(t) {
                        work.extend(items.iter_mut().map(|x| std::mem::replace(x, Value::None)));
                    }
                }
                Value::List(l) | Value::Set(l) => {
                    if let Some(items) = Rc::get_mut(l) {
                        work.append(items.get_mut());
                    }
                }
                Value::Dict(d) => {
                    if let Some(items) = Rc::get_mut(d) {
                        work.extend(items.get_mut().drain(..).flat_map(|(k, v)| [k, v]));
                    }
                }
                Value::Call(c) => {
                    if let Some(c) = Rc::get_mut(c) {
                        let c = c.get_mut();
                        work.push(std::mem::replace(&mut c.callable, Value::None));
                        work.push(Value::Tuple(std::mem::replace(&mut c.args, Rc::from(Vec::new()))));
                        work.extend(c.state.take());
                    }
                }
                Value::PersistentId(p) => {
                    if let Some(inner) = Rc::get_mut(p) {
                        work.push(std::mem::replace(inner, Value::None));
                    }
                }
                _ => {}
            }
        }
        let mut work = Vec::new();
        take_items(self, &mut work);
        while let Some(mut v) = work.pop() {
            take_items(&mut v, &mut work);
        }
    }
}

/// The first `n` characters of `s`, marked when cut.
fn truncate(s: &str, n: usize) -> String {
    match s.char_indices().nth(n) {
        Some((i, _)) => format!("{}…", &s[..i]),
        None => s.to_string(),
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
    memo: HashMap<u64, Value>,
    /// Items copied from one container into a new one (`set(list)`), bounded by the data's size
    /// so that a list fetched from the memo over and over cannot multiply into gigabytes.
    copied: usize,
}

/// Reads one pickle from `data` and returns the value and the number of bytes it took.
///
/// # Errors
/// Truncated or malformed data, an opcode outside the supported subset, lengths beyond the data,
/// values nested deeper than [`MAX_DEPTH`] or containing themselves; the message names the opcode
/// and its offset.
pub fn unpickle(data: &[u8]) -> Result<(Value, usize), PickleError> {
    let mut m = Machine { data, pos: 0, stack: Vec::new(), memo: HashMap::new(), copied: 0 };
    let value = match m.run() {
        Ok(v) => v,
        Err(e) => {
            m.dismantle(Vec::new());
            return Err(e);
        }
    };
    if let Err(e) = m.check_depth(&value) {
        m.dismantle(vec![value]);
        return Err(e);
    }
    Ok((value, m.pos))
}

impl<'a> Machine<'a> {
    /// The next `n` bytes; `n` comes from the file, so it is compared with what remains first.
    fn take(&mut self, n: u64) -> Res<&'a [u8]> {
        let left = self.data.len() - self.pos;
        if n > left as u64 {
            return err(format!("needs {n} bytes but only {left} remain (the pickle is truncated or corrupt)"));
        }
        let s = &self.data[self.pos..self.pos + n as usize];
        self.pos += n as usize;
        Ok(s)
    }

    fn u8(&mut self) -> Res<u8> {
        Ok(self.take(1)?[0])
    }

    /// A little-endian unsigned integer of `n` ≤ 8 bytes.
    fn le(&mut self, n: u64) -> Res<u64> {
        Ok(self.take(n)?.iter().rev().fold(0u64, |acc, &b| (acc << 8) | u64::from(b)))
    }

    fn line(&mut self) -> Res<String> {
        let rest = &self.data[self.pos..];
        let Some(end) = rest.iter().position(|&b| b == b'\n') else {
            return err("its text argument has no end of line (truncated pickle)");
        };
        let s = String::from_utf8_lossy(&rest[..end]).into_owned();
        self.pos += end + 1;
        Ok(s)
    }

    fn utf8(&mut self, n: u64) -> Res<Rc<str>> {
        let bytes = self.take(n)?;
        std::str::from_utf8(bytes).map(Rc::from).map_err(|_| PickleError("the string is not valid UTF-8".into()))
    }

    fn push(&mut self, v: Value) {
        self.stack.push(Item::Value(v));
    }

    fn pop(&mut self) -> Res<Value> {
        match self.stack.pop() {
            Some(Item::Value(v)) => Ok(v),
            Some(Item::Mark) => err("a MARK is on top of the stack where a value should be"),
            None => err("the stack is empty"),
        }
    }

    fn top(&mut self) -> Res<&mut Value> {
        match self.stack.last_mut() {
            Some(Item::Value(v)) => Ok(v),
            Some(Item::Mark) => err("a MARK is on top of the stack where a value should be"),
            None => err("the stack is empty"),
        }
    }

    /// Pops everything down to the last MARK.
    fn pop_mark(&mut self) -> Res<Vec<Value>> {
        let Some(mark) = self.stack.iter().rposition(|i| matches!(i, Item::Mark)) else { return err("no MARK on the stack") };
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
        let v = self.memo.get(&key).cloned().ok_or_else(|| PickleError(format!("memo slot {key} was never set")))?;
        self.push(v);
        Ok(())
    }

    /// A memo index written as a text line (PUT, GET).
    fn line_index(&mut self) -> Res<u64> {
        let line = self.line()?;
        line.parse().map_err(|_| PickleError(format!("the memo index {:?} is not a number", truncate(&line, 40))))
    }

    fn set_items(&mut self, target: &Value, items: Vec<Value>) -> Res<()> {
        let Value::Dict(d) = target else { return err(format!("cannot set items of {}", target.describe())) };
        let mut d = d.borrow_mut();
        let mut it = items.into_iter();
        while let (Some(k), Some(v)) = (it.next(), it.next()) {
            d.push((k, v));
        }
        Ok(())
    }

    /// The argument tuple of REDUCE, NEWOBJ and NEWOBJ_EX (Python refuses anything else too).
    fn args(&mut self) -> Res<Rc<[Value]>> {
        match &self.pop()? {
            Value::Tuple(t) => Ok(t.clone()),
            other => err(format!("the arguments are {}, not a tuple", other.describe())),
        }
    }

    /// REDUCE / NEWOBJ: containers the pickle fills later become real containers; every other
    /// call is recorded.
    fn call(&mut self, callable: Value, args: Rc<[Value]>) -> Res<Value> {
        // Only a global's own name: following a chain of calls here would be quadratic.
        let name = match &callable {
            Value::Global { module, name } => format!("{module}.{name}"),
            _ => String::new(),
        };
        Ok(match name.as_str() {
            "collections.OrderedDict" | "builtins.dict" | "__builtin__.dict" if args.is_empty() => Value::Dict(shared(Vec::new())),
            "builtins.set" | "__builtin__.set" | "builtins.frozenset" | "__builtin__.frozenset" => {
                let n = match args.first() {
                    Some(Value::Tuple(t)) => t.len(),
                    Some(Value::List(l)) => l.borrow().len(),
                    _ => 0,
                };
                self.copied = self.copied.saturating_add(n);
                if self.copied > self.data.len() {
                    return err(format!(
                        "`{name}(…)` copies more items than the pickle has bytes ({} so far); a checkpoint never does",
                        self.copied
                    ));
                }
                Value::Set(shared(args.first().and_then(Value::items).unwrap_or_default()))
            }
            "builtins.list" | "__builtin__.list" if args.is_empty() => Value::List(shared(Vec::new())),
            _ => Value::Call(shared(Call { callable, args, state: None })),
        })
    }

    fn run(&mut self) -> Res<Value> {
        loop {
            let at = self.pos;
            let Some(&op) = self.data.get(at) else {
                return err(format!("the pickle ends at offset {at} without a STOP opcode (the file is truncated)"));
            };
            self.pos += 1;
            match self.step(op) {
                Ok(Some(v)) => return Ok(v),
                Ok(None) => {}
                Err(PickleError(e)) => {
                    return Err(PickleError(match opcode_name(op) {
                        Some(name) => format!("{name} (0x{op:02x}) at offset {at}: {e}"),
                        None => format!("opcode 0x{op:02x} at offset {at}: {e}"),
                    }));
                }
            }
        }
    }

    /// Executes one opcode; the value at STOP.
    fn step(&mut self, op: u8) -> Res<Option<Value>> {
        match op {
            PROTO => {
                let proto = self.u8()?;
                if proto > 5 {
                    return err(format!("protocol {proto} is not supported (0 to 5 are)"));
                }
            }
            FRAME => {
                self.le(8)?; // a length hint only: frames need no buffering here
            }
            STOP => return Ok(Some(self.pop()?)),
            MARK => self.stack.push(Item::Mark),
            POP => {
                self.pop()?;
            }
            DUP => {
                let v = self.top()?.clone();
                self.push(v);
            }
            POP_MARK => {
                self.pop_mark()?;
            }
            NONE => self.push(Value::None),
            NEWTRUE => self.push(Value::Bool(true)),
            NEWFALSE => self.push(Value::Bool(false)),
            BININT => {
                let v = self.le(4)? as u32 as i32 as i64;
                self.push(Value::Int(v));
            }
            BININT1 => {
                let v = self.u8()? as i64;
                self.push(Value::Int(v));
            }
            BININT2 => {
                let v = self.le(2)? as i64;
                self.push(Value::Int(v));
            }
            LONG1 | LONG4 => {
                let n = if op == LONG1 { u64::from(self.u8()?) } else { self.le(4)? };
                if n > 8 {
                    return err(format!("an integer of {n} bytes does not fit 64 bits"));
                }
                let bytes = self.take(n)?;
                let n = bytes.len();
                let mut v: i64 = bytes.iter().rev().fold(0i64, |acc, &b| (acc << 8) | b as i64);
                if n > 0 && n < 8 && bytes[n - 1] & 0x80 != 0 {
                    v -= 1i64 << (8 * n);
                }
                self.push(Value::Int(v));
            }
            INT | LONG => {
                let line = self.line()?;
                let t = line.trim_end_matches('L');
                let v = match t {
                    "00" => Value::Bool(false),
                    "01" => Value::Bool(true),
                    _ => Value::Int(t.parse().map_err(|_| PickleError(format!("bad integer {:?}", truncate(&line, 40))))?),
                };
                self.push(v);
            }
            BINFLOAT => {
                let bits = self.le(8)?.swap_bytes(); // big-endian on the wire
                self.push(Value::Float(f64::from_bits(bits)));
            }
            FLOAT => {
                let line = self.line()?;
                let v = line.parse().map_err(|_| PickleError(format!("bad float {:?}", truncate(&line, 40))))?;
                self.push(Value::Float(v));
            }
            BINUNICODE | SHORT_BINUNICODE | BINUNICODE8 => {
                let n = match op {
                    BINUNICODE => self.le(4)?,
                    SHORT_BINUNICODE => u64::from(self.u8()?),
                    _ => self.le(8)?,
                };
                let s = self.utf8(n)?;
                self.push(Value::Str(s));
            }
            UNICODE => {
                let s = self.line()?;
                self.push(Value::Str(s.into()));
            }
            STRING => {
                let s = self.line()?;
                self.push(Value::Str(s.trim_matches(|c| c == '\'' || c == '"').into()));
            }
            BINSTRING | SHORT_BINSTRING => {
                // Python 2 byte strings; checkpoints use them for ASCII names.
                let n = if op == BINSTRING { self.le(4)? } else { u64::from(self.u8()?) };
                let s = String::from_utf8_lossy(self.take(n)?);
                self.push(Value::Str(s.into()));
            }
            BINBYTES | SHORT_BINBYTES | BINBYTES8 | BYTEARRAY8 => {
                let n = match op {
                    BINBYTES => self.le(4)?,
                    SHORT_BINBYTES => u64::from(self.u8()?),
                    _ => self.le(8)?,
                };
                let b = self.take(n)?;
                self.push(Value::Bytes(b.into()));
            }
            EMPTY_TUPLE => self.push(Value::Tuple(Rc::from(Vec::new()))),
            TUPLE => {
                let items = self.pop_mark()?;
                self.push(Value::Tuple(items.into()));
            }
            TUPLE1 | TUPLE2 | TUPLE3 => {
                let n = usize::from(op - TUPLE1 + 1);
                let mut items = Vec::with_capacity(n);
                for _ in 0..n {
                    items.push(self.pop()?);
                }
                items.reverse();
                self.push(Value::Tuple(items.into()));
            }
            EMPTY_LIST => self.push(Value::List(shared(Vec::new()))),
            LIST => {
                let items = self.pop_mark()?;
                self.push(Value::List(shared(items)));
            }
            APPEND => {
                let v = self.pop()?;
                match self.top()? {
                    Value::List(l) => l.borrow_mut().push(v),
                    other => return err(format!("cannot append to {}", other.describe())),
                }
            }
            APPENDS => {
                let items = self.pop_mark()?;
                match self.top()? {
                    Value::List(l) => l.borrow_mut().extend(items),
                    other => return err(format!("cannot append to {}", other.describe())),
                }
            }
            EMPTY_DICT => self.push(Value::Dict(shared(Vec::new()))),
            DICT => {
                let items = self.pop_mark()?;
                let d = Value::Dict(shared(Vec::new()));
                self.set_items(&d, items)?;
                self.push(d);
            }
            SETITEM => {
                let v = self.pop()?;
                let k = self.pop()?;
                let target = self.top()?.clone();
                self.set_items(&target, vec![k, v])?;
            }
            SETITEMS => {
                let items = self.pop_mark()?;
                let target = self.top()?.clone();
                self.set_items(&target, items)?;
            }
            EMPTY_SET => self.push(Value::Set(shared(Vec::new()))),
            ADDITEMS => {
                let items = self.pop_mark()?;
                match self.top()? {
                    Value::Set(s) => s.borrow_mut().extend(items),
                    other => return err(format!("cannot add items to {}", other.describe())),
                }
            }
            FROZENSET => {
                let items = self.pop_mark()?;
                self.push(Value::Set(shared(items)));
            }
            GLOBAL => {
                let module = self.line()?;
                let name = self.line()?;
                self.push(Value::Global { module: module.into(), name: name.into() });
            }
            STACK_GLOBAL => {
                let name = self.pop()?;
                let module = self.pop()?;
                match (&module, &name) {
                    (Value::Str(module), Value::Str(name)) => self.push(Value::Global { module: module.clone(), name: name.clone() }),
                    (m, n) => return err(format!("needs two strings, got {} and {}", m.describe(), n.describe())),
                }
            }
            REDUCE => {
                let args = self.args()?;
                let callable = self.pop()?;
                let v = self.call(callable, args)?;
                self.push(v);
            }
            NEWOBJ => {
                let args = self.args()?;
                let cls = self.pop()?;
                let v = self.call(cls, args)?;
                self.push(v);
            }
            NEWOBJ_EX => {
                let _kwargs = self.pop()?;
                let args = self.args()?;
                let cls = self.pop()?;
                let v = self.call(cls, args)?;
                self.push(v);
            }
            BUILD => {
                let state = self.pop()?;
                match self.top()? {
                    Value::Call(c) => c.borrow_mut().state = Some(state),
                    // An OrderedDict's instance attributes (a state dict's `_metadata`) do not matter here.
                    Value::Dict(_) | Value::List(_) | Value::Set(_) => {}
                    other => return err(format!("cannot set the state of {}", other.describe())),
                }
            }
            BINPERSID => {
                let pid = self.pop()?;
                self.push(Value::PersistentId(Rc::new(pid)));
            }
            PERSID => {
                let pid = self.line()?;
                self.push(Value::PersistentId(Rc::new(Value::Str(pid.into()))));
            }
            BINPUT => {
                let k = u64::from(self.u8()?);
                self.memo_put(k)?;
            }
            LONG_BINPUT => {
                let k = self.le(4)?;
                self.memo_put(k)?;
            }
            PUT => {
                let k = self.line_index()?;
                self.memo_put(k)?;
            }
            MEMOIZE => {
                let k = self.memo.len() as u64;
                self.memo_put(k)?;
            }
            BINGET => {
                let k = u64::from(self.u8()?);
                self.memo_get(k)?;
            }
            LONG_BINGET => {
                let k = self.le(4)?;
                self.memo_get(k)?;
            }
            GET => {
                let k = self.line_index()?;
                self.memo_get(k)?;
            }
            INST | OBJ | EXT1 | EXT2 | EXT4 | NEXT_BUFFER | READONLY_BUFFER => {
                return err("not supported: checkpoints do not use it (this reader builds plain data from protocols 0 to 5)");
            }
            _ => return err("not a pickle opcode (the data is corrupt, or not a pickle)"),
        }
        Ok(None)
    }

    /// Measures the value and everything still held (stack, memo) without recursion: each must be
    /// at most MAX_DEPTH containers deep and contain no cycle. Shared containers are measured once.
    fn check_depth(&self, root: &Value) -> Res<()> {
        enum Seen {
            Open,
            Depth(usize),
        }
        let deep = || {
            err(format!("containers are nested deeper than {MAX_DEPTH} levels; checkpoints nest a few (the file is corrupt or crafted)"))
        };
        let held = self.stack.iter().filter_map(|i| match i {
            Item::Value(v) => Some(v),
            Item::Mark => None,
        });
        let mut seen: HashMap<*const (), Seen> = HashMap::new();
        for start in std::iter::once(root).chain(held).chain(self.memo.values()) {
            let Some(id) = start.node() else { continue };
            if seen.contains_key(&id) {
                continue;
            }
            seen.insert(id, Seen::Open);
            // The path from `start`: (container, its children, next child, deepest child so far).
            let mut path = vec![(id, start.children(), 0usize, 0usize)];
            while let Some((_, children, next, deepest)) = path.last_mut() {
                if let Some(child) = children.get(*next).cloned() {
                    *next += 1;
                    let Some(cid) = child.node() else { continue };
                    match seen.get(&cid) {
                        Some(Seen::Open) => {
                            return err(format!("{} contains itself (a reference cycle); checkpoints never do", child.describe()));
                        }
                        Some(Seen::Depth(d)) => *deepest = (*deepest).max(*d),
                        None => {
                            if path.len() >= MAX_DEPTH {
                                return deep();
                            }
                            seen.insert(cid, Seen::Open);
                            path.push((cid, child.children(), 0, 0));
                        }
                    }
                } else {
                    let (id, _, _, deepest) = path.pop().expect("the loop runs on a non-empty path");
                    let depth = deepest + 1;
                    if depth > MAX_DEPTH {
                        return deep();
                    }
                    seen.insert(id, Seen::Depth(depth));
                    if let Some(parent) = path.last_mut() {
                        parent.3 = parent.3.max(depth);
                    }
                }
            }
        }
        Ok(())
    }

    /// Breaks the reference cycles a failed read may have built (a list appended to itself), which
    /// reference counting alone would never free: every container reachable from what the machine
    /// holds is emptied once.
    fn dismantle(&mut self, mut work: Vec<Value>) {
        work.extend(self.stack.drain(..).filter_map(|i| match i {
            Item::Value(v) => Some(v),
            Item::Mark => None,
        }));
        work.extend(self.memo.drain().map(|(_, v)| v));
        let mut seen = std::collections::HashSet::new();
        while let Some(v) = work.pop() {
            if !v.node().is_some_and(|id| seen.insert(id)) {
                continue;
            }
            match &v {
                Value::List(l) | Value::Set(l) => work.append(&mut l.borrow_mut()),
                Value::Dict(d) => work.extend(d.borrow_mut().drain(..).flat_map(|(k, v)| [k, v])),
                Value::Call(c) => {
                    let mut c = c.borrow_mut();
                    work.push(std::mem::replace(&mut c.callable, Value::None));
                    work.extend(c.args.iter().cloned());
                    work.extend(c.state.take());
                }
                _ => work.extend(v.children()),
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
        let (v, _) = unpickle(&[PROTO, 2, LONG1, 2, 0x00, 0x80, STOP]).unwrap();
        assert_eq!(v.as_int(), Some(-32768));
        let (v, _) = unpickle(&[PROTO, 2, LONG1, 5, 0, 0, 0, 0, 1, STOP]).unwrap();
        assert_eq!(v.as_int(), Some(1 << 32));
    }

    #[test]
    fn unknown_opcodes_and_truncation_are_reported() {
        assert!(unpickle(&[PROTO, 2, 0xff]).unwrap_err().0.contains("0xff"));
        assert!(unpickle(&[PROTO, 2, BINUNICODE, 9, 0, 0, 0, b'a']).unwrap_err().0.contains("truncated"));
    }

    /// `PROTO 2` followed by `body`.
    fn p2(body: &[u8]) -> Vec<u8> {
        let mut p = vec![PROTO, 2];
        p.extend_from_slice(body);
        p
    }

    /// The error a hostile pickle must give.
    fn error_of(p: &[u8]) -> String {
        match unpickle(p) {
            Ok((v, _)) => panic!("read {} from a hostile pickle", v.describe()),
            Err(e) => e.0,
        }
    }

    #[test]
    fn deep_nesting_is_refused_by_name_not_a_stack_overflow() {
        const N: usize = 100_000;
        let mut lists = p2(&[EMPTY_LIST].repeat(N));
        lists.extend([APPEND].repeat(N - 1));
        lists.push(STOP);
        let mut marks = p2(&[MARK].repeat(N));
        marks.extend([LIST].repeat(N));
        marks.push(STOP);
        let mut dicts = p2(&[EMPTY_DICT, BININT1, 0].repeat(N));
        dicts.extend([EMPTY_DICT, SETITEM]);
        dicts.extend([SETITEM].repeat(N - 1));
        dicts.push(STOP);
        let mut tuples = p2(&[NONE]);
        tuples.extend([TUPLE1].repeat(N));
        tuples.push(STOP);
        let mut calls = p2(&[NONE]);
        calls.extend([EMPTY_TUPLE, REDUCE].repeat(N));
        calls.push(STOP);
        let mut pids = p2(&[NONE]);
        pids.extend([BINPERSID].repeat(N));
        pids.push(STOP);
        for (what, p) in [("lists", &lists), ("marks", &marks), ("dicts", &dicts), ("tuples", &tuples), ("calls", &calls), ("ids", &pids)] {
            let e = error_of(p);
            assert!(e.contains("nested deeper than 256 levels"), "{what}: {e}");
        }
        // Cut short, the deep value is still freed without recursion.
        let e = error_of(&lists[..lists.len() - 1]);
        assert!(e.contains("ends at offset") && e.contains("without a STOP"), "{e}");
        // One APPEND too many: the opcode fails holding the whole value it popped.
        let mut extra = lists[..lists.len() - 1].to_vec();
        extra.extend([APPEND, STOP]);
        let e = error_of(&extra);
        assert!(e.contains(&format!("APPEND (0x61) at offset {}: the stack is empty", 2 * N + 1)), "{e}");
        // Within the limit it reads.
        let mut ok = p2(&[EMPTY_LIST].repeat(256));
        ok.extend([APPEND].repeat(255));
        ok.push(STOP);
        assert!(matches!(unpickle(&ok).unwrap().0, Value::List(_)));
    }

    #[test]
    fn nesting_built_through_the_memo_and_cycles_are_refused() {
        // 1000 empty lists in the memo, then list i+1 appended to list i: every append sees an
        // empty list; only the whole is 1000 deep.
        let mut p = vec![PROTO, 2];
        for i in 0..1000u32 {
            p.push(EMPTY_LIST);
            p.push(LONG_BINPUT);
            p.extend(i.to_le_bytes());
            p.push(POP);
        }
        for i in 0..999u32 {
            p.push(LONG_BINGET);
            p.extend(i.to_le_bytes());
            p.push(LONG_BINGET);
            p.extend((i + 1).to_le_bytes());
            p.extend([APPEND, POP]);
        }
        p.extend([NONE, STOP]);
        let e = error_of(&p);
        assert!(e.contains("nested deeper than 256 levels"), "{e}");
        // A list appended to itself.
        let e = error_of(&p2(&[EMPTY_LIST, BINPUT, 0, BINGET, 0, APPEND, STOP]));
        assert!(e.contains("contains itself"), "{e}");
    }

    #[test]
    fn lengths_beyond_the_data_are_errors_not_panics() {
        let max8 = u64::MAX.to_le_bytes();
        let max4 = u32::MAX.to_le_bytes();
        for (op, name, len) in [
            (BINUNICODE8, "BINUNICODE8", &max8[..]),
            (BINBYTES8, "BINBYTES8", &max8[..]),
            (BYTEARRAY8, "BYTEARRAY8", &max8[..]),
            (BINUNICODE8, "BINUNICODE8", &(u64::MAX - 1).to_le_bytes()[..]),
            (BINUNICODE, "BINUNICODE", &max4[..]),
            (BINBYTES, "BINBYTES", &max4[..]),
            (BINSTRING, "BINSTRING", &max4[..]),
            (SHORT_BINUNICODE, "SHORT_BINUNICODE", &[200][..]),
        ] {
            let mut p = p2(&[op]);
            p.extend_from_slice(len);
            p.extend(b"abc");
            let e = error_of(&p);
            let claimed = len.iter().rev().fold(0u64, |acc, &b| (acc << 8) | u64::from(b));
            assert!(e.starts_with(&format!("{name} (0x{op:02x}) at offset 2:")), "{e}");
            assert!(e.contains(&format!("{claimed} bytes")) && e.contains("only 3 remain"), "{e}");
        }
        let mut long4 = p2(&[LONG4]);
        long4.extend(max4);
        long4.push(STOP);
        let e = error_of(&long4);
        assert!(e.contains("LONG4") && e.contains("4294967295 bytes does not fit 64 bits"), "{e}");
        let e = error_of(&p2(&[BININT, 1, 2]));
        assert!(e.contains("BININT (0x4a) at offset 2") && e.contains("4 bytes") && e.contains("only 2 remain"), "{e}");
    }

    #[test]
    fn memo_and_stack_misuse_is_named() {
        for (p, want) in [
            (p2(&[BINGET, 7, STOP]), "BINGET (0x68) at offset 2: memo slot 7 was never set"),
            (p2(&[LONG_BINGET, 0xff, 0xff, 0xff, 0xff, STOP]), "memo slot 4294967295 was never set"),
            (p2(b"g9\n."), "GET (0x67) at offset 2: memo slot 9 was never set"),
            (p2(b"gx\n."), "GET (0x67) at offset 2: the memo index \"x\" is not a number"),
            (p2(&[POP]), "POP (0x30) at offset 2: the stack is empty"),
            (p2(&[NONE, APPEND]), "APPEND (0x61) at offset 3: the stack is empty"),
            (p2(&[NONE, NONE, TUPLE3]), "TUPLE3 (0x87) at offset 4: the stack is empty"),
            (p2(&[STOP]), "STOP (0x2e) at offset 2: the stack is empty"),
            (p2(&[BINPUT, 0]), "BINPUT (0x71) at offset 2: the stack is empty"),
            (p2(&[MARK, STOP]), "STOP (0x2e) at offset 3: a MARK is on top of the stack"),
            (p2(&[NONE, TUPLE]), "TUPLE (0x74) at offset 3: no MARK on the stack"),
            (p2(&[NONE, NONE, APPEND]), "APPEND (0x61) at offset 4: cannot append to None"),
            (p2(&[NONE]), "ends at offset 3 without a STOP opcode"),
            (p2(&[INST]), "INST (0x69) at offset 2: not supported"),
            (p2(&[0xff]), "opcode 0xff at offset 2: not a pickle opcode"),
            (p2(&[NONE, NONE, REDUCE]), "REDUCE (0x52) at offset 4: the arguments are None, not a tuple"),
            (vec![PROTO, 6], "PROTO (0x80) at offset 0: protocol 6 is not supported"),
        ] {
            let e = error_of(&p);
            assert!(e.contains(want), "{e}\n  wanted: {want}");
        }
    }

    #[test]
    fn memo_references_are_shared_not_copied() {
        // T0 = (1, 1, 1), T(i) = (T(i-1), T(i-1), T(i-1)) through the memo: 3^60 leaves written
        // in 600 bytes. Copying on every BINGET never ends.
        let mut p = p2(&[BININT1, 1, DUP, DUP, TUPLE3, BINPUT, 0]);
        for i in 1..60u8 {
            p.extend([BINGET, i - 1, BINGET, i - 1, BINGET, i - 1, TUPLE3, BINPUT, i]);
        }
        p.push(STOP);
        assert_eq!(unpickle(&p).unwrap().0.items().unwrap().len(), 3);
        // A megabyte string fetched 100 000 times: one string, not 100 GB of copies.
        let mut p = p2(&[BINUNICODE]);
        p.extend((1u32 << 20).to_le_bytes());
        p.extend(vec![b'a'; 1 << 20]);
        p.extend([BINPUT, 0, MARK]);
        p.extend([BINGET, 0].repeat(100_000));
        p.extend([LIST, STOP]);
        assert_eq!(unpickle(&p).unwrap().0.items().unwrap().len(), 100_000);
        // `set(list)` copies the list: 100 000 sets of one 100 000-item list are refused.
        let mut p = p2(&[MARK]);
        p.extend([NONE].repeat(100_000));
        p.extend([LIST, BINPUT, 0, POP, MARK]);
        for _ in 0..100_000 {
            p.extend(b"cbuiltins\nset\n");
            p.extend([BINGET, 0, TUPLE1, REDUCE]);
        }
        p.extend([LIST, STOP]);
        let e = error_of(&p);
        assert!(e.contains("REDUCE") && e.contains("copies more items than the pickle has bytes"), "{e}");
    }
}
