"""Go RE2 regular expressions, as container-structure-test writes them, run with Python's ``re``.

The tool compiles every regex with Go's ``regexp`` package and matches it unanchored
(``MatchString``). Python's ``re`` reads most of that syntax the same way but not all of it, and
where both accept a pattern some meanings differ. ``compile_re2`` rewrites a pattern so Python
matches what Go would, and refuses (with a reason) what Go would refuse or Python cannot express:

- ``$`` without ``(?m)`` is end of text in RE2; Python's ``$`` also matches before a final
  newline, so it becomes ``\\Z``. ``\\z`` becomes ``\\Z``.
- ``\\d \\s \\w \\b`` and POSIX classes (``[[:alpha:]]``) are ASCII-only in RE2: spelled out.
- ``(?i)`` in mid-pattern applies to the rest of the enclosing group: rewritten as scoped flags.
- ``(?<name>re)`` becomes ``(?P<name>re)``; ``\\Q...\\E``, ``\\x{10FFFF}`` and octal escapes become
  plain escapes; ``{`` that is not a repetition (``a{,3}``) stays a literal brace.
- Refused as Go refuses them: backreferences, lookaround, possessive and nested repetition,
  repeat counts above 1000, unknown escapes. Refused because Python has no equivalent:
  ``\\p{...}`` Unicode classes, ``\\C``, the ``U`` (ungreedy) flag.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from typing import Literal

from pytest_multiarch.core.errors import MultiarchError

_MAX_REPEAT = 1000
_MAX_RUNE = 0x10FFFF
_REPEAT_BRACES = re.compile(r"\{(\d+)(,(\d*))?\}")
_NAMED_GROUP = re.compile(r"\(\?P?<([A-Za-z0-9_]*)>")
_FLAG_GROUP = re.compile(r"\(\?([A-Za-z]*)(?:(-)([A-Za-z]*))?([:)])")

Ranges = tuple[tuple[int, int], ...]

_DIGIT: Ranges = ((0x30, 0x39),)
_SPACE: Ranges = ((0x09, 0x0A), (0x0C, 0x0D), (0x20, 0x20))
_WORD: Ranges = ((0x30, 0x39), (0x41, 0x5A), (0x5F, 0x5F), (0x61, 0x7A))
_PERL_CLASSES: dict[str, Ranges] = {"d": _DIGIT, "s": _SPACE, "w": _WORD}
_POSIX_CLASSES: dict[str, Ranges] = {
    "alnum": ((0x30, 0x39), (0x41, 0x5A), (0x61, 0x7A)),
    "alpha": ((0x41, 0x5A), (0x61, 0x7A)),
    "ascii": ((0x00, 0x7F),),
    "blank": ((0x09, 0x09), (0x20, 0x20)),
    "cntrl": ((0x00, 0x1F), (0x7F, 0x7F)),
    "digit": _DIGIT,
    "graph": ((0x21, 0x7E),),
    "lower": ((0x61, 0x7A),),
    "print": ((0x20, 0x7E),),
    "punct": ((0x21, 0x2F), (0x3A, 0x40), (0x5B, 0x60), (0x7B, 0x7E)),
    "space": ((0x09, 0x0D), (0x20, 0x20)),
    "upper": ((0x41, 0x5A),),
    "word": _WORD,
    "xdigit": ((0x30, 0x39), (0x41, 0x46), (0x61, 0x66)),
}
_SIMPLE_ESCAPES = {"a": "\a", "f": "\f", "n": "\n", "r": "\r", "t": "\t", "v": "\v"}
_GO_SYNTAX = "container-structure-test uses Go's RE2 syntax"


class RegexSyntaxError(MultiarchError):
    """A pattern Go's RE2 would reject, or one Python's ``re`` cannot match the same way."""


@dataclass(frozen=True)
class Regex:
    """A regex as written in the file (``source``) and its Python translation, compiled."""

    source: str
    pattern: re.Pattern[str] = field(compare=False)

    def search(self, text: str) -> re.Match[str] | None:
        """Go's ``MatchString``: a match anywhere in ``text``."""
        return self.pattern.search(text)

    def __str__(self) -> str:
        return self.source


def compile_re2(source: str) -> Regex:
    """Compile a Go RE2 pattern for Python; ``RegexSyntaxError`` says why one cannot be."""
    translated = translate_re2(source)
    try:
        compiled = re.compile(translated)
    except re.error as exc:
        raise RegexSyntaxError(exc.msg) from None
    return Regex(source, compiled)


def translate_re2(source: str) -> str:
    """The Python ``re`` pattern that matches what the RE2 pattern ``source`` matches."""
    return _Translator(source).run()


@dataclass
class _Group:
    multiline: bool
    # Openers of the scoped-flag groups that stand for ``(?flags)`` seen in this group: closed
    # before each ``|`` and reopened after it, since RE2's flags outlive the alternation.
    flag_scopes: list[str] = field(default_factory=list)


_Last = Literal["nothing", "atom", "repeat"]


class _Translator:
    def __init__(self, source: str) -> None:
        self.src = source
        self.pos = 0
        self.out: list[str] = []
        self.groups: list[_Group] = [_Group(multiline=False)]
        self.last: _Last = "nothing"
        self.last_repeat = ""

    def fail(self, reason: str) -> RegexSyntaxError:
        return RegexSyntaxError(reason)

    def run(self) -> str:
        while self.pos < len(self.src):
            self.step()
        if len(self.groups) > 1:
            raise self.fail(f"missing closing ): `{self.src}`")
        self.out.append(")" * len(self.groups[0].flag_scopes))
        return "".join(self.out)

    def emit(self, text: str, last: _Last) -> None:
        self.out.append(text)
        self.last = last

    def step(self) -> None:
        char = self.src[self.pos]
        group = self.groups[-1]
        if char == "\\":
            self.escape()
        elif char == "[":
            self.emit(self.char_class(), "atom")
        elif char == "(":
            self.open_group()
        elif char == ")":
            if len(self.groups) == 1:
                raise self.fail(f"unexpected ): `{self.src}`")
            self.groups.pop()
            self.pos += 1
            self.emit(")" * len(group.flag_scopes) + ")", "atom")
        elif char == "|":
            self.pos += 1
            closers = ")" * len(group.flag_scopes)
            self.emit(closers + "|" + "".join(group.flag_scopes), "nothing")
        elif char in "*+?":
            self.pos += 1
            self.repeat(char)
        elif char == "{":
            braces = _REPEAT_BRACES.match(self.src, self.pos)
            if braces is None:
                self.pos += 1
                self.emit("\\{", "atom")
                return
            low = int(braces.group(1))
            high = braces.group(3)
            if low > _MAX_REPEAT or (high and int(high) > _MAX_REPEAT):
                raise self.fail(f"invalid repeat count: `{braces.group()}` (RE2 allows up to 1000)")
            if high and int(high) < low:
                raise self.fail(f"invalid repeat count: `{braces.group()}`")
            self.pos = braces.end()
            self.repeat(braces.group())
        elif char == "$":
            self.pos += 1
            self.emit("$" if group.multiline else "\\Z", "atom")
        else:
            self.pos += 1
            self.emit(char, "atom")

    def repeat(self, operator: str) -> None:
        if self.src.startswith("?", self.pos):
            operator += "?"
            self.pos += 1
        if self.last == "nothing":
            raise self.fail(f"missing argument to repetition operator: `{operator}`")
        if self.last == "repeat":
            possessive = " (RE2 has no possessive quantifiers)" if operator == "+" else ""
            raise self.fail(
                f"invalid nested repetition operator: `{self.last_repeat}{operator}`{possessive}"
            )
        self.last_repeat = operator
        self.emit(operator, "repeat")

    def open_group(self) -> None:
        rest = self.src[self.pos :]
        group = self.groups[-1]
        if not rest.startswith("(?"):
            self.pos += 1
            self.groups.append(_Group(group.multiline))
            self.emit("(", "nothing")
            return
        lookaround = next((p for p in ("(?=", "(?!", "(?<=", "(?<!") if rest.startswith(p)), "")
        if lookaround:
            raise self.fail(
                f"lookahead and lookbehind (`{lookaround}`) are not supported: " + _GO_SYNTAX
            )
        if rest.startswith(("(?P<", "(?<")):
            named = _NAMED_GROUP.match(rest)
            if named is None or not named.group(1):
                raise self.fail(f"invalid named capture: `{rest[: rest.find('>') + 1] or rest}`")
            if named.group(1)[0].isdigit():
                raise self.fail(
                    f"group name {named.group(1)!r} starts with a digit, which Python's re "
                    "does not allow"
                )
            self.pos += named.end()
            self.groups.append(_Group(group.multiline))
            self.emit(f"(?P<{named.group(1)}>", "nothing")
            return
        if rest.startswith("(?P="):
            raise self.fail("backreferences ((?P=name)) are not supported: " + _GO_SYNTAX)
        if rest.startswith("(?:"):
            self.pos += 3
            self.groups.append(_Group(group.multiline))
            self.emit("(?:", "nothing")
            return
        flags = _FLAG_GROUP.match(rest)
        if flags is None:
            raise self.fail(f"invalid or unsupported Perl syntax: `{rest[:3]}`")
        on, dash, off, end = flags.groups()
        off = off or ""
        if (not on and not off) or (dash and not off):
            raise self.fail(f"invalid or unsupported Perl syntax: `{flags.group()}`")
        for letter in on + off:
            if letter == "U":
                raise self.fail("the U (ungreedy) flag has no equivalent in Python's re")
            if letter not in "ims":
                raise self.fail(f"invalid or unsupported Perl syntax: `{flags.group()}`")
        multiline = group.multiline
        if "m" in on:
            multiline = True
        if "m" in off:
            multiline = False
        scope = "(?" + "".join(sorted(set(on))) + ("-" + "".join(sorted(set(off))) if off else "")
        scope += ":"
        self.pos += flags.end()
        if end == ":":
            self.groups.append(_Group(multiline))
        else:
            group.flag_scopes.append(scope)
            group.multiline = multiline
        self.emit(scope, "nothing")

    def escape(self) -> None:
        if self.pos + 1 >= len(self.src):
            raise self.fail("trailing backslash at end of expression")
        letter = self.src[self.pos + 1]
        if letter == "Q":
            end = self.src.find("\\E", self.pos + 2)
            stop = len(self.src) if end < 0 else end
            literal = self.src[self.pos + 2 : stop]
            self.pos = len(self.src) if end < 0 else end + 2
            if literal:
                self.emit("".join(_literal(ord(c)) for c in literal), "atom")
            return
        replacements = {
            "A": "\\A",
            "z": "\\Z",
            "b": "(?a:\\b)",
            "B": "(?a:\\B)",
            "d": _render_set(_DIGIT, negated=False),
            "D": _render_set(_DIGIT, negated=True),
            "s": _render_set(_SPACE, negated=False),
            "S": _render_set(_SPACE, negated=True),
            "w": _render_set(_WORD, negated=False),
            "W": _render_set(_WORD, negated=True),
        }
        if letter in replacements:
            self.pos += 2
            self.emit(replacements[letter], "atom")
            return
        self.refuse_unsupported_escape(letter)
        self.emit(_literal(self.escaped_char()), "atom")

    def refuse_unsupported_escape(self, letter: str) -> None:
        if letter in "pP":
            raise self.fail(
                f"Unicode character classes (`\\{letter}...`) are not supported: "
                "Python's re has no equivalent"
            )
        if letter == "C":
            raise self.fail("`\\C` (any byte) is not supported: Python's re has no equivalent")

    def escaped_char(self) -> int:
        """The code point of the escape at ``self.pos`` (a backslash), consuming it."""
        src = self.src
        letter = src[self.pos + 1]
        after = src[self.pos + 2 : self.pos + 3]
        if letter in "1234567" and not (after and after in "01234567"):
            raise self.fail(f"backreferences (`\\{letter}`) are not supported: " + _GO_SYNTAX)
        if letter in "01234567":
            digits = letter
            index = self.pos + 2
            while len(digits) < 3 and index < len(src) and src[index] in "01234567":
                digits += src[index]
                index += 1
            self.pos = index
            return int(digits, 8)
        if letter == "x":
            if src.startswith("{", self.pos + 2):
                close = src.find("}", self.pos + 3)
                digits = src[self.pos + 3 : close] if close >= 0 else ""
                if not digits or not all(c in "0123456789abcdefABCDEF" for c in digits):
                    raise self.fail(f"invalid escape sequence: `{src[self.pos : close + 1]}`")
                value = int(digits, 16)
                if value > _MAX_RUNE:
                    raise self.fail(f"invalid escape sequence: `{src[self.pos : close + 1]}`")
                self.pos = close + 1
                return value
            digits = src[self.pos + 2 : self.pos + 4]
            if len(digits) != 2 or not all(c in "0123456789abcdefABCDEF" for c in digits):
                raise self.fail(f"invalid escape sequence: `{src[self.pos : self.pos + 4]}`")
            self.pos += 4
            return int(digits, 16)
        if letter in _SIMPLE_ESCAPES:
            self.pos += 2
            return ord(_SIMPLE_ESCAPES[letter])
        if ord(letter) < 0x80 and not letter.isalnum():
            self.pos += 2
            return ord(letter)
        raise self.fail(f"invalid escape sequence: `\\{letter}`")

    def char_class(self) -> str:
        """Translate the bracket expression at ``self.pos``; returns a Python pattern."""
        src = self.src
        start = self.pos
        self.pos += 1
        negated = src.startswith("^", self.pos)
        if negated:
            self.pos += 1
        ranges: list[tuple[int, int]] = []
        excluded: list[Ranges] = []
        first = True
        while True:
            if self.pos >= len(src):
                raise self.fail(f"missing closing ]: `{src[start:]}`")
            char = src[self.pos]
            if char == "]" and not first:
                self.pos += 1
                break
            first = False
            if src.startswith("[:", self.pos):
                close = src.find(":]", self.pos + 2)
                if close >= 0:
                    name = src[self.pos + 2 : close]
                    table = _POSIX_CLASSES.get(name.removeprefix("^"))
                    if table is None:
                        raise self.fail(f"invalid character class range: `[:{name}:]`")
                    if name.startswith("^"):
                        excluded.append(table)
                    else:
                        ranges.extend(table)
                    self.pos = close + 2
                    continue
            if char == "\\" and self.pos + 1 < len(src):
                letter = src[self.pos + 1]
                if letter.lower() in _PERL_CLASSES:
                    table = _PERL_CLASSES[letter.lower()]
                    if letter.islower():
                        ranges.extend(table)
                    else:
                        excluded.append(table)
                    self.pos += 2
                    continue
                self.refuse_unsupported_escape(letter)
            range_start = self.pos
            low = self.class_char()
            high = low
            if src.startswith("-", self.pos) and src[self.pos + 1 : self.pos + 2] not in ("", "]"):
                self.pos += 1
                high = self.class_char()
                if high < low:
                    raise self.fail(
                        f"invalid character class range: `{src[range_start : self.pos]}`"
                    )
            ranges.append((low, high))
        return _render_class(tuple(ranges), tuple(excluded), negated=negated)

    def class_char(self) -> int:
        if self.src[self.pos] == "\\":
            if self.pos + 1 >= len(self.src):
                raise self.fail(f"missing closing ]: `{self.src}`")
            return self.escaped_char()
        self.pos += 1
        return ord(self.src[self.pos - 1])


def _literal(code: int) -> str:
    char = chr(code)
    if char.isascii() and (char.isalnum() or char == "_"):
        return char
    if code < 0x100:
        return f"\\x{code:02x}"
    if code < 0x10000:
        return f"\\u{code:04x}"
    return f"\\U{code:08x}"


def _render_ranges(ranges: Ranges) -> str:
    return "".join(
        _literal(low) + (f"-{_literal(high)}" if high > low else "") for low, high in ranges
    )


def _render_set(ranges: Ranges, *, negated: bool) -> str:
    return ("[^" if negated else "[") + _render_ranges(ranges) + "]"


def _render_class(ranges: Ranges, excluded: tuple[Ranges, ...], *, negated: bool) -> str:
    """A Python pattern for one character in ``ranges`` or outside any of ``excluded``.

    Python's sets cannot hold a negated class (``[a[:^digit:]]``, ``[x\\D]``), so those become
    an alternation (or, when the whole class is negated, lookaheads) over simple sets.
    """
    if not excluded:
        return _render_set(ranges, negated=negated)
    if not negated:
        alternatives = [_render_set(ranges, negated=False)] if ranges else []
        alternatives += [_render_set(table, negated=True) for table in excluded]
        if len(alternatives) == 1:
            return alternatives[0]
        return "(?:" + "|".join(alternatives) + ")"
    # Not in ranges and inside every excluded table.
    guards = "".join(f"(?={_render_set(table, negated=False)})" for table in excluded[1:])
    if ranges:
        guards += f"(?!{_render_set(ranges, negated=False)})"
    return f"(?:{guards}{_render_set(excluded[0], negated=False)})"
