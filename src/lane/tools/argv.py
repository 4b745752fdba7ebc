"""What an argv list would really run, seen through wrappers, so rules like `shell(rm *)` cannot be dodged.

`commands(argv)` unwraps, recursively (at most `MAX_DEPTH` levels):

- option wrappers, down to the command they run: `env [-i] [-u NAME] [NAME=VALUE]...`, `nohup`, `nice [-n N]`,
  `ionice`, `timeout [opts] DURATION`, `stdbuf -oL`, `setsid`, `exec`, `command`, `builtin`, `time`, `busybox`,
  `xargs [opts]` (its command, `echo` when none), and the privilege wrappers `sudo [opts]`, `doas`,
  `chroot DIR`, which are also kept themselves so that `shell(sudo *)` can deny them;
- `find ... -exec CMD ... ;` (and `-execdir`, `-ok`, `-okdir`): the find itself and CMD;
- shells given a string: `sh`, `bash`, `dash`, `zsh`, `ksh`, `ash`, `mksh` with `-c` (alone or combined, as in
  `-lc`, `-ec`). The string is split into its simple commands at `;`, `&&`, `||`, `|`, `&` and newlines, and
  each is unwrapped again. Leading `NAME=VALUE` assignments, redirections and keywords (`if`, `then`, `do`,
  `{`, `!`...) are dropped; later redirections stay as words. Comments and here-documents are read as commands.

A program given by path (`/bin/rm`, `./rm`) becomes its basename. What cannot be analysed raises
`Unanalysable`, so the caller can fail closed: command substitution (`$(...)`, backticks) outside single quotes,
parentheses (subshells, `<(...)`), unbalanced quotes, builtins that run strings (`eval`, `source`, `.`, `alias`,
`trap`, `fc`), a program word the shell computes (`$X`, `r*`, `{r,}m`), an option of a wrapper it does not
know, `-c` given to another shell (fish, csh, pwsh...), and nesting deeper than `MAX_DEPTH`.

Scripts run from files and interpreters (`python -c`, `perl -e`) are not looked into: a rule that must hold
there has to name the interpreter.

The shell string is tokenised here rather than with `shlex`: shlex cannot tell a quoted `';'` from the operator,
and `rm ';' -rf /` must stay one rm command.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from pathlib import PurePosixPath

MAX_DEPTH = 8


class Unanalysable(ValueError):
    """The commands an argv would run cannot be told safely; the caller should refuse the call."""

    def __init__(self, reason: str) -> None:
        self.reason = reason
        super().__init__(reason)


@dataclass(frozen=True)
class _Wrapper:
    """How a wrapper program takes its options before the command it runs."""

    flags: str = ""  # short options without a value
    valued: str = ""  # short options with a value, attached (-oL) or the next word
    long_flags: frozenset[str] = frozenset()  # may carry an attached =value
    long_valued: frozenset[str] = frozenset()
    operands: int = 0  # words between the options and the command (timeout's DURATION, chroot's DIR)
    assignments: bool = False  # NAME=VALUE words may precede the command
    numeric: bool = False  # `-N` is an option (nice -5)
    default: tuple[str, ...] = ()  # what runs when no command is given
    kept: bool = False  # the wrapper itself is a command rules should see (it changes privileges)


def _words(*names: str) -> frozenset[str]:
    return frozenset(names)


_WRAPPERS: dict[str, _Wrapper] = {
    "env": _Wrapper(flags="i0v", valued="uC", assignments=True,
                    long_flags=_words("-", "--ignore-environment", "--null", "--debug", "--block-signal",
                                      "--default-signal", "--ignore-signal"),
                    long_valued=_words("--unset", "--chdir")),
    "nohup": _Wrapper(),
    "nice": _Wrapper(valued="n", long_valued=_words("--adjustment"), numeric=True),
    "ionice": _Wrapper(flags="t", valued="cnp", long_flags=_words("--ignore"),
                       long_valued=_words("--class", "--classdata", "--pid")),
    "timeout": _Wrapper(flags="v", valued="ks", operands=1, long_flags=_words("--foreground", "--preserve-status",
                        "--verbose"), long_valued=_words("--kill-after", "--signal")),
    "stdbuf": _Wrapper(valued="ioe", long_valued=_words("--input", "--output", "--error")),
    "setsid": _Wrapper(flags="cfw", long_flags=_words("--ctty", "--fork", "--wait")),
    "exec": _Wrapper(flags="cl", valued="a"),
    "command": _Wrapper(flags="pvV"),
    "builtin": _Wrapper(),
    "busybox": _Wrapper(),
    "time": _Wrapper(flags="pvaq", valued="fo", long_flags=_words("--portability", "--verbose", "--append",
                     "--quiet"), long_valued=_words("--format", "--output")),
    "xargs": _Wrapper(flags="0rtpxoeil", valued="InLPsdaE", default=("echo",),
                      long_flags=_words("--null", "--no-run-if-empty", "--verbose", "--interactive", "--exit",
                                        "--open-tty", "--show-limits", "--replace", "--eof", "--max-lines"),
                      long_valued=_words("--arg-file", "--delimiter", "--max-args", "--max-procs", "--max-chars",
                                         "--process-slot-var")),
    "sudo": _Wrapper(flags="AbBEeHiKklNnPSsVv", valued="CDghpRrTtUu", assignments=True, kept=True,
                     long_flags=_words("--askpass", "--bell", "--background", "--preserve-env", "--edit",
                                       "--set-home", "--login", "--remove-timestamp", "--reset-timestamp", "--list",
                                       "--no-update", "--non-interactive", "--preserve-groups", "--stdin", "--shell",
                                       "--validate"),
                     long_valued=_words("--close-from", "--chdir", "--group", "--host", "--prompt", "--chroot",
                                        "--role", "--command-timeout", "--type", "--other-user", "--user")),
    "doas": _Wrapper(flags="Lns", valued="aCu", kept=True),
    "chroot": _Wrapper(operands=1, kept=True, long_flags=_words("--skip-chdir"),
                       long_valued=_words("--userspec", "--groups")),
}
_SHELLS = _words("sh", "bash", "dash", "zsh", "ksh", "ash", "mksh")
_OTHER_SHELLS = _words("fish", "csh", "tcsh", "pwsh", "powershell", "nu")
_FIND_EXEC = _words("-exec", "-execdir", "-ok", "-okdir")
_EVALUATORS = _words("eval", "source", ".", "alias", "trap", "fc")
_DEFINERS = _words("function", "case", "esac", "select", "for", "in", "[[", "]]")  # code run later, or by pattern
_KEYWORDS = _words("!", "{", "}", "if", "then", "elif", "else", "fi", "while", "until", "do", "done", "coproc")
_OPERATORS = ("&>>", "<<<", "<<-", "&&", "||", ";;", ";&", "|&", "<<", ">>", "&>", ">&", "<&", "<>", ">|",
              ";", "&", "|", "(", ")", "<", ">", "\n")
_SEPARATORS = _words(";", "&&", "||", "|", "&", "|&", "\n", ";;", ";&")
_REDIRECTS = _words("<", ">", ">>", "<<", "<<<", "<<-", ">&", "<&", "<>", ">|", "&>", "&>>")
_ASSIGNMENT = re.compile(r"[A-Za-z_][A-Za-z0-9_]*\+?=.*", re.S)
_COMPUTED = re.compile(r"[$*?{]|\[.*\]")  # expansions and globs: the shell decides the program


def commands(argv: list[str], *, strict: bool = False) -> list[list[str]]:
    """The commands `argv` would run, each an argv with its program reduced to a basename; raises Unanalysable.

    `strict` (for command prefixes, which allow rather than deny) also refuses what changes a command
    without changing its words: environment assignments (`env GIT_CONFIG_...=x git status`) and
    redirections in shell strings (`echo x > lane.yaml`)."""
    return _unwrap(list(argv), 0, strict)


def line(command: list[str]) -> str:
    """The text rule patterns are matched against."""
    return " ".join(command)


def has_prefix(command: list[str], prefixes: list[list[str]]) -> bool:
    """Whether `command` starts with one of `prefixes`, word for word; program words compare by basename."""
    words = _basenamed(command)
    return any(prefix and words[: len(prefix)] == _basenamed(prefix) for prefix in prefixes)


def _basenamed(words: list[str]) -> list[str]:
    return [PurePosixPath(words[0]).name or words[0], *words[1:]] if words else []


def _unwrap(argv: list[str], depth: int, strict: bool) -> list[list[str]]:
    if depth > MAX_DEPTH:
        raise Unanalysable(f"commands are nested more than {MAX_DEPTH} deep")
    words = _strip_front(argv, strict)
    if not words:
        return []
    command = [_program(words[0]), *words[1:]]
    name = command[0]
    text = _shell_string(command) if name in _SHELLS else None
    if text is not None:
        return [found for part in _split(text, strict) for found in _unwrap(part, depth + 1, strict)]
    if name in _OTHER_SHELLS and any(w.startswith("-") and "c" in w.lower() for w in command[1:]):
        raise Unanalysable(f"{name} is given a command string, and only sh-like shells can be analysed")
    if name in _DEFINERS:
        raise Unanalysable(f"{name!r} defines shell code that runs later, so what runs cannot be told")
    if name in _WRAPPERS:
        inner = _inner(name, command, strict)
        if inner is None:
            return [command]
        if name == "xargs" and _program(inner[0]) in _SHELLS | _WRAPPERS.keys():
            raise Unanalysable(f"xargs feeds {_program(inner[0])} words from its input, which the command line does not show")
        return ([command] if _WRAPPERS[name].kept else []) + _unwrap(inner, depth + 1, strict)
    if name == "find":
        return [command, *(found for inner in _find_exec(command) for found in _unwrap(inner, depth + 1, strict))]
    return [command]


def _strip_front(words: list[str], strict: bool) -> list[str]:
    """Drop what may precede a program: assignments, keywords, redirections (`X=1 >log rm x` runs rm)."""
    i = 0
    while i < len(words):
        if strict and _ASSIGNMENT.fullmatch(words[i]):
            raise Unanalysable(f"the assignment {words[i].partition('=')[0]}=... changes what the command does")
        if _ASSIGNMENT.fullmatch(words[i]) or words[i] in _KEYWORDS:
            i += 1
        elif words[i].lstrip("0123456789") in _REDIRECTS:
            i += 2
        else:
            break
    return words[i:]


def _program(word: str) -> str:
    if _COMPUTED.search(word):
        raise Unanalysable(f"the program {word!r} is computed by the shell, so it cannot be known")
    name = PurePosixPath(word).name or word
    if not name:
        raise Unanalysable("a command has an empty program name")
    if name in _EVALUATORS:
        raise Unanalysable(f"{name!r} runs shell code that the command line does not show")
    return name


def _inner(name: str, command: list[str], strict: bool) -> list[str] | None:
    """The command a wrapper runs, or None when it runs none."""
    spec, words, i = _WRAPPERS[name], command[1:], 0
    while i < len(words) and words[i].startswith("-") and (len(words[i]) > 1 or words[i] in spec.long_flags):
        if words[i] == "--":
            i += 1
            break
        i += _width(name, spec, words[i])
    i += spec.operands
    while spec.assignments and i < len(words) and _ASSIGNMENT.fullmatch(words[i]):
        if strict:
            raise Unanalysable(f"{name} sets {words[i].partition('=')[0]}, which changes what the command does")
        i += 1
    inner = words[i:] or list(spec.default)
    return inner or None


def _width(name: str, spec: _Wrapper, word: str) -> int:
    """How many words the option `word` takes up: 1, or 2 when its value is the next word."""
    if word.startswith("--") or word in spec.long_flags:
        option, eq, _ = word.partition("=")
        if option in spec.long_flags or (eq and option in spec.long_valued):
            return 1
        if option in spec.long_valued:
            return 2
    elif spec.numeric and word[1:].isdigit():
        return 1
    else:
        for end, letter in enumerate(word[1:], start=2):
            if letter in spec.valued:
                return 1 if end < len(word) else 2
            if letter not in spec.flags:
                break
        else:
            return 1
    raise Unanalysable(f"{name}: option {word!r} is not understood, so the command it runs cannot be found")


def _shell_string(command: list[str]) -> str | None:
    """The string a shell runs with -c, or None when it runs a script file or its input."""
    i, has_c = 1, False
    while i < len(command) and command[i][:1] in ("-", "+") and command[i] not in ("-", "--"):
        word = command[i]
        if word.startswith("--"):
            i += 2 if word in ("--rcfile", "--init-file") else 1
            continue
        has_c = has_c or (word[0] == "-" and "c" in word)
        i += 1 + word.count("o") + word.count("O")  # -o NAME: the option name is the next word
    if i < len(command) and command[i] in ("-", "--"):
        i += 1
    if not has_c:
        return None
    if i >= len(command):
        raise Unanalysable(f"{command[0]} -c is given no command string")
    return command[i]


def _find_exec(command: list[str]) -> list[list[str]]:
    """The commands of find's -exec actions, each ending at `;` or `+`."""
    found: list[list[str]] = []
    current: list[str] | None = None
    for word in command[1:]:
        if current is None:
            current = [] if word in _FIND_EXEC else None
        elif word in (";", "+"):
            found.append(current)
            current = None
        else:
            current.append(word)
    return found if current is None else [*found, current]


def _split(text: str, strict: bool) -> list[list[str]]:
    """The simple commands of a shell string, split at `;`, `&&`, `||`, `|`, `&` and newlines."""
    parts: list[list[str]] = [[]]
    for token, operator in _tokens(text):
        if operator and token in ("(", ")"):
            raise Unanalysable("a subshell, group or process substitution `( )` cannot be analysed")
        if strict and operator and token.lstrip("0123456789") in _REDIRECTS:
            raise Unanalysable(f"the redirection {token!r} reads or writes a file the command's words do not show")
        if operator and token in _SEPARATORS:
            parts.append([])
        else:
            parts[-1].append(token)
    return [part for part in parts if part]


def _tokens(text: str) -> list[tuple[str, bool]]:
    """Words and operators (`(word, False)`, `(op, True)`) of a shell string, quotes resolved as sh does."""
    tokens: list[tuple[str, bool]] = []
    word: list[str] | None = None
    i = 0
    while i < len(text):
        char = text[i]
        if text.startswith("\\\n", i):  # a line continuation
            i += 2
        elif char in " \t\r" or char in ";&|()<>\n":
            op = "" if char in " \t\r" else next(o for o in _OPERATORS if text.startswith(o, i))
            held = "".join(word) if word is not None else None
            fd = held if held and held.isdigit() and op[:1] in ("<", ">") else ""  # 2>file: one redirection
            if held is not None and not fd:
                tokens.append((held, False))
            if op:
                tokens.append((fd + op, True))
            word, i = None, i + max(len(op), 1)
        elif char == "#" and word is None:
            end = text.find("\n", i)
            i = len(text) if end < 0 else end
        else:
            word = [] if word is None else word
            i = _word_part(text, i, word)
    if word is not None:
        tokens.append(("".join(word), False))
    return tokens


def _word_part(text: str, i: int, word: list[str]) -> int:
    """Append the part of a word at text[i] (a character, an escape, a quoted string); return where it ends."""
    char = text[i]
    if char == "\\":
        if i + 1 == len(text):
            raise Unanalysable("the shell string ends with a lone backslash")
        word.append(text[i + 1])
        return i + 2
    if char == "'":
        end = text.find("'", i + 1)
        if end < 0:
            raise Unanalysable("a single quote in the shell string is never closed")
        word.append(text[i + 1 : end])
        return end + 1
    if char == '"':
        return _double_quoted(text, i + 1, word)
    _refuse_substitution(text, i)
    word.append(char)
    return i + 1


def _double_quoted(text: str, i: int, word: list[str]) -> int:
    while i < len(text):
        char = text[i]
        if char == '"':
            return i + 1
        if char == "\\" and i + 1 < len(text) and text[i + 1] in '$`"\\\n':
            word.append("" if text[i + 1] == "\n" else text[i + 1])
            i += 2
            continue
        _refuse_substitution(text, i)
        word.append(char)
        i += 1
    raise Unanalysable("a double quote in the shell string is never closed")


def _refuse_substitution(text: str, i: int) -> None:
    if text[i] == "`" or text.startswith("$(", i):
        raise Unanalysable("command substitution ($(...) or backticks) cannot be analysed")
