"""A small TeX subset to MathML Core, which browsers render with no script and no font download.

Supported: letters, numbers, operators, `^` and `_`, `{...}` groups, `\\frac`, `\\sqrt`,
`\\text`, `\\operatorname`, `\\mathrm`, `\\mathbf`, `\\mathbb`, accents (`\\hat`, `\\tilde`,
`\\bar`), `\\left( ... \\right)`, `\\sum`/`\\prod` with limits, Greek letters and the usual
symbols (`\\cdot`, `\\to`, `\\ge`, `\\odot`, `\\partial`, `\\nabla`...). Unknown commands raise
ValueError naming them, so a typo in a formula fails loudly instead of rendering as text.
"""

from __future__ import annotations

import re
from html import escape

_GREEK = {name: chr(code) for name, code in (
    ("alpha", 0x3B1), ("beta", 0x3B2), ("gamma", 0x3B3), ("delta", 0x3B4), ("epsilon", 0x3F5),
    ("varepsilon", 0x3B5), ("zeta", 0x3B6), ("eta", 0x3B7), ("theta", 0x3B8), ("iota", 0x3B9),
    ("kappa", 0x3BA), ("lambda", 0x3BB), ("mu", 0x3BC), ("nu", 0x3BD), ("xi", 0x3BE),
    ("pi", 0x3C0), ("rho", 0x3C1), ("sigma", 0x3C3), ("tau", 0x3C4), ("phi", 0x3D5),
    ("varphi", 0x3C6), ("chi", 0x3C7), ("psi", 0x3C8), ("omega", 0x3C9), ("Gamma", 0x393),
    ("Delta", 0x394), ("Theta", 0x398), ("Lambda", 0x39B), ("Pi", 0x3A0), ("Sigma", 0x3A3),
    ("Phi", 0x3A6), ("Psi", 0x3A8), ("Omega", 0x3A9), ("ell", 0x2113))}
_SYMBOLS = {  # command -> operator character
    "cdot": "\u22c5", "times": "\u00d7", "to": "\u2192", "rightarrow": "\u2192",
    "leftarrow": "\u2190", "Rightarrow": "\u21d2", "Leftrightarrow": "\u21d4", "ge": "\u2265",
    "geq": "\u2265", "le": "\u2264", "leq": "\u2264", "ne": "\u2260", "neq": "\u2260",
    "approx": "\u2248", "sim": "\u223c", "in": "\u2208", "circ": "\u2218", "odot": "\u2299",
    "pm": "\u00b1", "propto": "\u221d", "mid": "|", "lvert": "|", "rvert": "|", "|": "\u2016",
    "{": "{", "}": "}", "ldots": "\u2026", "cdots": "\u22ef", "gg": "\u226b", "ll": "\u226a",
    "equiv": "\u2261", "prime": "\u2032", "top": "\u22a4", "ast": "\u2217", "setminus": "\u2216",
}
_IDENTIFIERS = {"partial": "\u2202", "nabla": "\u2207", "infty": "\u221e"}
_LARGE = {"sum": "\u2211", "prod": "\u220f"}
_FUNCTIONS = ("log", "exp", "max", "min", "arg", "argmax", "argmin", "softmax", "sign", "tanh",
              "relu", "diag", "mean", "var", "std", "det", "tr")
_SPACES = {",": "0.1667em", ":": "0.2222em", ";": "0.2778em", " ": "0.25em", "quad": "1em",
           "qquad": "2em"}
_ACCENTS = {"hat": "^", "tilde": "~", "bar": "\u00af", "vec": "\u2192", "dot": "\u02d9"}
_DOUBLE_STRUCK = {"E": "\U0001d53c", "R": "\u211d", "N": "\u2115", "Z": "\u2124", "P": "\u2119"}
_OPERATOR_CHARS = set("+-=<>,;:()[]|/!.?*\u2212\u00b7\u00d7\u2192\u2190\u2264\u2265\u2260\u2248"
                      "\u223c\u2208\u2299\u2218\u00b1\u221d\u2026\u21d2\u2211\u220f")
_TOKEN = re.compile(r"\\([A-Za-z]+|.)|(\d+(?:\.\d+)?)|(\s+)|(.)", re.S)


def mathml(tex: str, display: bool = False) -> str:
    """The MathML Core element for a TeX-subset formula (block when `display`)."""
    # a space token is (None, None, " "): skipped in math, kept inside \text{...}
    tokens = [(None, None, " ") if space else (cmd, num, ch)
              for cmd, num, space, ch in _TOKEN.findall(tex)]
    parser = _Parser(tokens, display, tex)
    body = parser.expression(stop=None)
    if parser._peek() is not None:
        raise ValueError(f"mathml: unbalanced '}}' in {tex!r}")
    kind = "block" if display else "inline"
    return (f'<math display="{kind}" alttext="{escape(tex)}">'
            f"<mrow>{''.join(body)}</mrow></math>")


def inline_math(text: str) -> str:
    """HTML-escaped `text` in which every `$...$` span is rendered as inline MathML."""
    parts = text.split("$")
    if len(parts) % 2 == 0:
        raise ValueError(f"mathml: unmatched '$' in {text!r}")
    return "".join(mathml(p) if i % 2 else escape(p) for i, p in enumerate(parts))


class _Parser:
    def __init__(self, tokens, display: bool, source: str):
        self.tokens, self.pos, self.display, self.source = tokens, 0, display, source

    def _peek(self):
        while self.pos < len(self.tokens) and self.tokens[self.pos][0] is None:
            self.pos += 1
        return self.tokens[self.pos] if self.pos < len(self.tokens) else None

    def _next(self):
        token = self._peek()
        if token is None:
            raise ValueError(f"mathml: formula ends too early: {self.source!r}")
        self.pos += 1
        return token

    def expression(self, stop) -> list[str]:
        """Items until the closing token `stop` (consumed): '}' or ('right',) or None (end)."""
        out = []
        while True:
            token = self._peek()
            if token is None:
                if stop is not None:
                    raise ValueError(f"mathml: missing closing {stop!r} in {self.source!r}")
                return out
            if stop == "}" and token == ("", "", "}"):
                self.pos += 1
                return out
            if stop == "right" and token == ("right", "", ""):
                return out
            if stop is None and token == ("", "", "}"):
                return out
            out.append(self.item())

    def item(self) -> str:
        base, large = self.atom()
        sub = sup = None
        while (token := self._peek()) is not None and token[2] in ("^", "_"):
            self.pos += 1
            arg = self.argument()
            if token[2] == "^":
                sup = arg
            else:
                sub = arg
        if sub is None and sup is None:
            return base
        if large and self.display:
            tags = ("munder", "mover", "munderover")
        else:
            tags = ("msub", "msup", "msubsup")
        if sup is None:
            return f"<{tags[0]}>{base}{sub}</{tags[0]}>"
        if sub is None:
            return f"<{tags[1]}>{base}{sup}</{tags[1]}>"
        return f"<{tags[2]}>{base}{sub}{sup}</{tags[2]}>"

    def argument(self) -> str:
        """One argument of ^, _ or a command: a {group} or a single atom, as one element."""
        token = self._peek()
        if token == ("", "", "{"):
            self.pos += 1
            return f"<mrow>{''.join(self.expression('}'))}</mrow>"
        return self.atom()[0]

    def _raw_group(self) -> str:
        """The text of a {group}, unparsed (for \\text and friends)."""
        if self._next() != ("", "", "{"):
            raise ValueError(f"mathml: expected '{{' in {self.source!r}")
        depth, text = 1, []
        while True:
            if self.pos >= len(self.tokens):
                raise ValueError(f"mathml: missing closing '}}' in {self.source!r}")
            cmd, num, ch = self.tokens[self.pos]
            self.pos += 1
            if cmd is None:
                text.append(" ")
                continue
            if ch == "{":
                depth += 1
            elif ch == "}":
                depth -= 1
                if depth == 0:
                    return "".join(text)
            text.append(f"\\{cmd}" if cmd else num or ch)

    def atom(self) -> tuple[str, bool]:
        """(element, is a large operator) for the next token."""
        cmd, num, ch = self._next()
        if num:
            return f"<mn>{num}</mn>", False
        if cmd:
            return self._command(cmd)
        if ch == "{":
            return f"<mrow>{''.join(self.expression('}'))}</mrow>", False
        if ch == "}":
            raise ValueError(f"mathml: unbalanced '}}' in {self.source!r}")
        if ch in ("^", "_"):
            raise ValueError(f"mathml: {ch!r} without a base in {self.source!r}")
        if ch == "-":
            return "<mo>\u2212</mo>", False
        if ch == "'":
            return "<mo>\u2032</mo>", False
        if ch in ("\u2211", "\u220f"):
            return (f'<mo largeop="true">{ch}</mo>' if self.display else f"<mo>{ch}</mo>"), True
        if ch in _OPERATOR_CHARS:
            return f"<mo>{escape(ch)}</mo>", False
        return f"<mi>{escape(ch)}</mi>", False

    def _command(self, cmd: str) -> tuple[str, bool]:
        if cmd in _GREEK:
            return f"<mi>{_GREEK[cmd]}</mi>", False
        if cmd in _IDENTIFIERS:
            return f"<mi>{_IDENTIFIERS[cmd]}</mi>", False
        if cmd in _SYMBOLS:
            return f"<mo>{escape(_SYMBOLS[cmd])}</mo>", False
        if cmd in _LARGE:
            if not self.display:
                return f"<mo>{_LARGE[cmd]}</mo>", True
            return f'<mo largeop="true" movablelimits="false">{_LARGE[cmd]}</mo>', True
        if cmd in _FUNCTIONS:
            return f"<mi>{cmd}</mi>", False
        if cmd in _SPACES:
            return f'<mspace width="{_SPACES[cmd]}"></mspace>', False
        if cmd == "!":
            return "", False
        if cmd == "frac":
            num = self.argument()
            return f"<mfrac>{num}{self.argument()}</mfrac>", False
        if cmd == "sqrt":
            return f"<msqrt>{self.argument()}</msqrt>", False
        if cmd == "text":
            return f"<mtext>{escape(self._raw_group())}</mtext>", False
        if cmd in ("operatorname", "mathrm"):
            text = self._raw_group()
            variant = ' mathvariant="normal"' if len(text) == 1 else ""
            return f"<mi{variant}>{escape(text)}</mi>", False
        if cmd == "mathbf":
            return f'<mi mathvariant="bold">{escape(self._raw_group())}</mi>', False
        if cmd == "mathbb":
            text = self._raw_group()
            return f"<mi>{''.join(_DOUBLE_STRUCK.get(c, c) for c in text)}</mi>", False
        if cmd in _ACCENTS:
            return (f'<mover accent="true">{self.argument()}'
                    f"<mo>{escape(_ACCENTS[cmd])}</mo></mover>"), False
        if cmd == "left":
            opening = self._delimiter()
            body = self.expression("right")
            self.pos += 1  # \right
            closing = self._delimiter()
            return (f'<mrow><mo stretchy="true">{opening}</mo>{"".join(body)}'
                    f'<mo stretchy="true">{closing}</mo></mrow>'), False
        raise ValueError(f"mathml: unknown command \\{cmd} in {self.source!r}")

    def _delimiter(self) -> str:
        cmd, _, ch = self._next()
        if cmd:
            if cmd in ("{", "}", "|", "lvert", "rvert"):
                return escape(_SYMBOLS[cmd])
            raise ValueError(f"mathml: unknown delimiter \\{cmd} in {self.source!r}")
        return "" if ch == "." else escape(ch)
