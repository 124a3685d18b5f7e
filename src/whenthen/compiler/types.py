"""The checker's types: primitives, lists, string enumerations, objects and optionals."""

from __future__ import annotations

from dataclasses import dataclass, replace

PRIMITIVES = ("str", "int", "float", "bool", "datetime", "date", "duration", "json")


@dataclass(frozen=True, slots=True)
class Type:
    """A whenthen type.

    kind is one of the PRIMITIVES, or 'list' (with `item`), 'enum' (with `values`, a subtype of
    str), 'object' (with `fields`), 'null' (the type of the `null` literal), 'any' (unknown after
    an error: compatible with everything, so one mistake gives one diagnostic).
    """

    kind: str
    item: Type | None = None
    values: tuple[str, ...] = ()
    fields: tuple[tuple[str, Type], ...] = ()
    optional: bool = False

    # -- constructors and views
    def as_optional(self, optional: bool = True) -> Type:
        return self if self.optional == optional else replace(self, optional=optional)

    @property
    def base(self) -> Type:
        """The same type, not optional."""
        return self.as_optional(False)

    def field(self, name: str) -> Type | None:
        for fname, ftype in self.fields:
            if fname == name:
                return ftype
        return None

    @property
    def field_names(self) -> list[str]:
        return [name for name, _ in self.fields]

    @property
    def is_numeric(self) -> bool:
        return self.kind in ("int", "float")

    @property
    def is_stringy(self) -> bool:
        return self.kind in ("str", "enum")

    def __str__(self) -> str:
        if self.kind == "list":
            text = f"list[{self.item}]"
        elif self.kind == "enum":
            text = " | ".join(f"'{v}'" for v in self.values)
            if self.optional:
                return text + "?"
        elif self.kind == "object":
            text = "{ " + ", ".join(f"{n}: {t}" for n, t in self.fields) + " }"
        else:
            text = self.kind
        return text + ("?" if self.optional and self.kind not in ("null", "any") else "")


STR = Type("str")
INT = Type("int")
FLOAT = Type("float")
BOOL = Type("bool")
DATETIME = Type("datetime")
DATE = Type("date")
DURATION = Type("duration")
JSON = Type("json")
NULL = Type("null", optional=True)
ANY = Type("any", optional=True)


def list_of(item: Type, optional: bool = False) -> Type:
    return Type("list", item=item, optional=optional)


def enum_of(values: tuple[str, ...], optional: bool = False) -> Type:
    return Type("enum", values=tuple(values), optional=optional)


def object_of(fields: dict[str, Type] | tuple[tuple[str, Type], ...], optional: bool = False) -> Type:
    items = tuple(fields.items()) if isinstance(fields, dict) else tuple(fields)
    return Type("object", fields=items, optional=optional)


def assignable(value: Type, target: Type) -> bool:
    """Can a value of type `value` be passed where `target` is declared?"""
    if "any" in (value.kind, target.kind) or "json" in (value.kind, target.kind):
        return True  # json is checked at run time; any follows an earlier error
    if value.kind == "null":
        return target.optional
    # An optional value into a required slot is accepted when the base types agree (SPEC 2.4:
    # optional types check like their base type); a null at run time fails the run clearly.
    v, t = value.base, target.base
    if t.kind == "float" and v.is_numeric:
        return True
    if t.kind == "str" and v.is_stringy:
        return True
    if t.kind == "enum":
        return v.kind == "enum" and set(v.values) <= set(t.values)
    if t.kind == "list":
        return v.kind == "list" and (v.item is None or t.item is None or assignable(v.item, t.item))
    if t.kind == "object":
        if v.kind != "object":
            return False
        for name, ftype in t.fields:
            vt = v.field(name)
            if vt is None:
                if not ftype.optional:
                    return False
            elif not assignable(vt, ftype):
                return False
        return True
    return v.kind == t.kind


def comparable(a: Type, b: Type) -> bool:
    """May `a` and `b` be compared with `=`/`!=`?"""
    if "any" in (a.kind, b.kind) or "null" in (a.kind, b.kind) or "json" in (a.kind, b.kind):
        return True
    a, b = a.base, b.base
    if a.is_numeric and b.is_numeric:
        return True
    if a.is_stringy and b.is_stringy:
        return True
    if a.kind == "list" and b.kind == "list":
        return a.item is None or b.item is None or comparable(a.item, b.item)
    return a.kind == b.kind


def orderable(a: Type, b: Type) -> bool:
    """May `a` and `b` be compared with `< <= > >=`?"""
    if "any" in (a.kind, b.kind) or "json" in (a.kind, b.kind):
        return True
    if "null" in (a.kind, b.kind):
        return True  # always false at run time, but not a type error
    a, b = a.base, b.base
    if a.is_numeric and b.is_numeric:
        return True
    if a.is_stringy and b.is_stringy:
        return True
    return a.kind == b.kind and a.kind in ("datetime", "date", "duration")


def unify(a: Type, b: Type) -> Type | None:
    """The one type that holds values of both `a` and `b` (list items, coalesce), or None.

    int and float give float, str and enums give str, and the result is optional when either is.
    """
    optional = a.optional or b.optional
    if a.kind == "any":
        return b.as_optional(optional)
    if b.kind == "any":
        return a.as_optional(optional)
    if a.kind == "null":
        return b.as_optional(True)
    if b.kind == "null":
        return a.as_optional(True)
    if a.kind == "json" or b.kind == "json":
        return JSON.as_optional(optional)
    x, y = a.base, b.base
    if x == y:
        return x.as_optional(optional)
    if x.is_numeric and y.is_numeric:
        return FLOAT.as_optional(optional)
    if x.kind == "enum" and y.kind == "enum":
        return enum_of(tuple(dict.fromkeys(x.values + y.values)), optional)
    if x.is_stringy and y.is_stringy:
        return STR.as_optional(optional)
    if x.kind == "list" and y.kind == "list":
        item = unify(x.item or ANY, y.item or ANY)
        return None if item is None else list_of(item, optional)
    if assignable(x, y):
        return y.as_optional(optional)
    if assignable(y, x):
        return x.as_optional(optional)
    return None
