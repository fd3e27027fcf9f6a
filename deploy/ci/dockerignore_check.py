#!/usr/bin/env python3
"""Is a path sent in the Docker build context, given the repository's .dockerignore?

Usage: dockerignore_check.py REPO_ROOT PATH...   (exit 1 naming each excluded PATH)

Follows Docker's rules (moby/patternmatcher): patterns are cleaned and relative to the
context root; `*` and `?` stay within one path segment, `**` spans any number; a pattern
that matches a parent directory matches everything below it; `!` re-includes; the last
matching pattern wins.
"""

import os
import re
import sys


def compile_pattern(pattern):
    regex = ""
    i = 0
    while i < len(pattern):
        if pattern.startswith("**/", i):
            regex += "(?:.*/)?"
            i += 3
        elif pattern.startswith("**", i):
            regex += ".*"
            i += 2
        elif pattern[i] == "*":
            regex += "[^/]*"
            i += 1
        elif pattern[i] == "?":
            regex += "[^/]"
            i += 1
        elif pattern[i] == "[":
            end = pattern.find("]", i)
            regex += pattern[i:end + 1] if end > 0 else re.escape(pattern[i])
            i = end + 1 if end > 0 else i + 1
        else:
            regex += re.escape(pattern[i])
            i += 1
    return re.compile(regex + r"\Z")


def load(root):
    rules = []
    try:
        with open(os.path.join(root, ".dockerignore")) as f:
            lines = f.read().splitlines()
    except FileNotFoundError:
        return rules
    for line in lines:
        line = line.strip()
        if not line or line.startswith("#"):
            continue
        negated = line.startswith("!")
        cleaned = os.path.normpath(line.lstrip("!").strip()).lstrip("/")
        rules.append((negated, compile_pattern(cleaned)))
    return rules


def excluded(rules, path):
    parts = os.path.normpath(path).lstrip("/").split("/")
    candidates = ["/".join(parts[:n]) for n in range(1, len(parts) + 1)]
    result = False
    for negated, regex in rules:
        if any(regex.match(c) for c in candidates):
            result = not negated
    return result


def main():
    root, paths = sys.argv[1], sys.argv[2:]
    rules = load(root)
    bad = [p for p in paths if excluded(rules, p)]
    for p in bad:
        print(f"{p} is excluded from the build context by .dockerignore")
    return 1 if bad else 0


if __name__ == "__main__":
    sys.exit(main())
