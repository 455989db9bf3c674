#!/usr/bin/env python3
"""Rewrites F# printf-family calls with arguments into interpolated strings, for the Native AOT binary.

Why: FSharp.Core's sprintf/printfn/failwithf build their curried printer with MethodInfo.MakeGenericMethod over the
argument types; Native AOT has no code for value-type instantiations (`sprintf "%d" 3` throws NotSupportedException
in the native statphys). Interpolated strings with typed holes ($"%d{n}") format through boxed values: same text,
same compile-time type check, no runtime generic instantiation.

    python3 .ci/printf-to-interpolated.py FILE.fs...      rewrite in place; list the calls it could not rewrite
    python3 .ci/printf-to-interpolated.py --check FILE...  rewrite nothing; exit 1 if a call with arguments is left

Rewrites `sprintf "FMT" a b` -> `$"..."`, `failwithf "FMT" a` -> `failwith $"..."`, `printfn`/`eprintfn`/
`printf`/`eprintf "FMT" a` -> `printfn $"..."` (same writer), and `fail "FMT" a` -> `fail $"..."` where `fail` is a
kprintf wrapper (its definition is rewritten by hand to take a string). An argument must be an atomic F# expression
(identifier path, indexer, method call, literal, parenthesised); anything else is listed and left alone.
"""
import re
import sys

FUNCS = {"sprintf": "", "failwithf": "failwith ", "printfn": "printfn ", "eprintfn": "eprintfn ",
         "printf": "printf ", "eprintf": "eprintf ", "fail": "fail "}
SPEC = re.compile(r"%([-+0 ]*)(\*|\d+)?(\.\d+)?([a-zA-Z%])")
CALL = re.compile(r"(?<![\w.$'])(" + "|".join(FUNCS) + r")(\s+)\"")


def string_end(s, i):
    """Index just past the closing quote of the plain string literal whose opening quote is at i."""
    j = i + 1
    while j < len(s):
        if s[j] == "\\":
            j += 2
            continue
        if s[j] == '"':
            return j + 1
        if s[j] == "\n":
            return -1
        j += 1
    return -1


def balanced(s, i):
    """s[i] is an opening bracket; index just past its match (strings skipped), or -1."""
    pairs = {"(": ")", "[": "]", "{": "}"}
    stack = [pairs[s[i]]]
    j = i + 1
    while j < len(s) and stack:
        c = s[j]
        if c == '"':
            if s.startswith('"""', j):
                k = s.find('"""', j + 3)
                if k < 0:
                    return -1
                j = k + 3
                continue
            k = string_end(s, j)
            if k < 0:
                return -1
            j = k
            continue
        if c == "'" and j + 2 < len(s) and (s[j + 2] == "'" or (s[j + 1] == "\\" and s[j + 3] == "'")):
            j += 3 if s[j + 2] == "'" else 4
            continue
        if c in pairs:
            stack.append(pairs[c])
        elif c in ")]}":
            if c != stack.pop():
                return -1
        j += 1
    return j if not stack else -1


IDENT = re.compile(r"[A-Za-z_][\w']*")
NUMBER = re.compile(r"-?\d[\d_]*(\.\d+)?([eE][-+]?\d+)?[a-zA-Z]*")


def atom(s, i):
    """(expression text, index after it) for an atomic expression starting at s[i], or None."""
    j = i
    if s[j] == "(" or s[j] == "[":
        k = balanced(s, j)
        if k < 0:
            return None
        j = k
    elif s[j] == '"':
        k = string_end(s, j)
        if k < 0:
            return None
        j = k
    elif NUMBER.match(s, j) and s[j] != "-":
        j = NUMBER.match(s, j).end()
    elif IDENT.match(s, j):
        j = IDENT.match(s, j).end()
        if s[i:j] in ("fun", "if", "match", "let", "then", "else", "with", "in", "not"):
            return None
    else:
        return None
    # Postfix: .Name, .[i], [i] (no space), (args) (no space: a method call).
    while j < len(s):
        if s[j] == "." and j + 1 < len(s) and IDENT.match(s, j + 1):
            j = IDENT.match(s, j + 1).end()
        elif s[j] == "." and j + 1 < len(s) and s[j + 1] == "[":
            k = balanced(s, j + 1)
            if k < 0:
                return None
            j = k
        elif s[j] in "[(":
            k = balanced(s, j)
            if k < 0:
                return None
            j = k
        else:
            break
    return s[i:j], j


def convert(text, path, report):
    out = []
    pos = 0
    for m in CALL.finditer(text):
        start = m.start()
        if start < pos:
            continue
        func = m.group(1)
        q = m.end() - 1
        end = string_end(text, q)
        if end < 0:
            continue
        fmt = text[q + 1:end - 1]
        specs = [sm for sm in SPEC.finditer(fmt) if sm.group(4) != "%"]
        line = text.count("\n", 0, start) + 1
        if not specs:
            if func == "failwithf":
                out.append(text[pos:start])
                out.append('failwith "' + fmt.replace("%%", "%") + '"')
                pos = end
            continue
        if any(sm.group(2) == "*" for sm in specs):
            report.append(f"{path}:{line}: {func}: a '*' width; rewrite by hand")
            continue
        args = []
        j = end
        ok = True
        for _ in specs:
            k = j
            while k < len(text) and text[k] in " \t\r\n":
                k += 1
            if k == j or k >= len(text):
                ok = False
                break
            a = atom(text, k)
            if a is None:
                ok = False
                break
            args.append(a[0])
            j = a[1]
        if not ok:
            # `sprintf "%s"` and friends over strings only need no value-type instantiation: they work natively.
            if func not in ("failwithf", "fail") and all(sm.group(4) == "s" for sm in specs):
                continue
            report.append(f"{path}:{line}: {func} \"{fmt[:50]}\": arguments not atomic (or partial application)")
            continue
        # Build the interpolated literal.
        needs_triple = any('"' in a for a in args)
        if needs_triple and "\\" in fmt:
            report.append(f"{path}:{line}: {func}: escapes in the format and quotes in an argument; by hand")
            continue
        pieces = []
        last = 0
        for sm, a in zip(specs, args):
            pieces.append(fmt[last:sm.start()].replace("{", "{{").replace("}", "}}"))
            a = " ".join(a.split()) if "\n" in a else a
            hole = a if not a.startswith("{") else " " + a
            pieces.append("%" + (sm.group(1) or "") + (sm.group(2) or "") + (sm.group(3) or "") + sm.group(4) + "{" + hole + "}")
            last = sm.end()
        pieces.append(fmt[last:].replace("{", "{{").replace("}", "}}"))
        body = "".join(pieces)
        lit = ('$"""' + body + '"""') if needs_triple else ('$"' + body + '"')
        out.append(text[pos:start])
        out.append(FUNCS[func] + lit)
        pos = j
    out.append(text[pos:])
    return "".join(out)


def main(argv):
    check = "--check" in argv
    files = [a for a in argv if a != "--check"]
    report = []
    changed = 0
    for f in files:
        text = open(f, encoding="utf-8").read()
        new = convert(text, f, report)
        if new != text:
            changed += 1
            if check:
                report.append(f"{f}: printf-family calls with arguments left")
            else:
                open(f, "w", encoding="utf-8").write(new)
    for r in report:
        print(r)
    if not check:
        print(f"{changed} file(s) rewritten, {len(report)} call(s) left", file=sys.stderr)
    return 1 if (check and report) else 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
