#!/usr/bin/env python3
"""Generates include/descent.h from the Swift @c declarations in Sources/DescentC.

    scripts/generate_header.py            rewrite include/descent.h
    scripts/generate_header.py --check    exit 1 (with a diff) when the committed header is stale

The Swift compiler prints the @c functions and the @c enum into a clang header full of Swift
macros (TOOLCHAIN.md). This keeps only the C declarations and their doc comments, turns the
status enum into a plain C enum, declares the opaque handle types, and frames it all with an
overview, include guards and extern "C", so the result is clean C99 and C++.
"""
import argparse
import difflib
import os
import re
import subprocess
import sys
import tempfile

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
HEADER = os.path.join(ROOT, "include", "descent.h")
API_DIR = os.path.join(ROOT, "Sources", "DescentC")
KERNELS_INCLUDE = os.path.join(ROOT, "Sources", "CDescentKernels", "include")

PROLOGUE = """\
/*
 * descent.h -- the C API of Descent, a deep-learning training library.
 *
 * GENERATED from the @c declarations in Sources/DescentC by scripts/generate_header.py.
 * Do not edit: change the Swift doc comments and regenerate (a test fails when this is stale).
 *
 * Conventions
 *  - Every function that can fail returns an int32_t status: DESCENT_OK (0) or a
 *    DESCENT_ERR_* code. On failure descent_last_error() returns a message naming the function,
 *    the argument and the problem, and the call has changed nothing: parameters, optimizer
 *    state and files are as they were.
 *  - Handles (descent_optimizer, descent_net) are opaque. Functions that create one write it
 *    through an out-parameter; the caller frees it with the matching *_free function.
 *  - Strings passed in are NUL-terminated UTF-8 and are copied when kept. Strings returned as
 *    `const char *` are owned by the library (see each function for how long they live).
 *  - Threads: separate handles may be used from different threads at the same time; one handle
 *    is used by one thread at a time. Functions without a handle are safe from any thread.
 *    A descent_net call made while another thread is inside one on the same network fails with
 *    DESCENT_ERR_INVALID_ARGUMENT ("net 0x... is in use by another thread") instead of racing.
 *
 * Link with -ldescent (pkg-config descent, or CMake find_package(Descent)).
 * Optimizer plugins are written against descent_plugin.h alone.
 */
#ifndef DESCENT_H
#define DESCENT_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#ifdef __cplusplus
extern "C" {
#endif

/* Opaque handles. */
"""

EPILOGUE = """
#ifdef __cplusplus
} /* extern "C" */
#endif

#endif /* DESCENT_H */
"""

MACROS = re.compile(r"\s*\b(_Nullable|_Nonnull|_Null_unspecified|SWIFT_NOEXCEPT|SWIFT_WARN_UNUSED_RESULT)\b")


def swift_modules_dir(scratch):
    """Builds the Descent module (the API's dependency) and returns where its .swiftmodule is."""
    cmd = ["swift", "build", "--package-path", ROOT, "--target", "Descent"]
    if scratch:
        cmd += ["--scratch-path", scratch]
    subprocess.run(cmd, check=True, stdout=sys.stderr)
    out = subprocess.run(cmd + ["--show-bin-path"], check=True, capture_output=True, text=True)
    return os.path.join(out.stdout.strip(), "Modules")


def raw_header(modules):
    sources = sorted(os.path.join(API_DIR, f) for f in os.listdir(API_DIR) if f.endswith(".swift"))
    with tempfile.TemporaryDirectory() as tmp:
        path = os.path.join(tmp, "raw.h")
        subprocess.run(
            ["swiftc", "-typecheck", "-parse-as-library", "-module-name", "DescentC",
             "-I", KERNELS_INCLUDE, "-I", modules, "-emit-clang-header-path", path] + sources,
            check=True)
        with open(path) as f:
            return f.read()


def c_section(raw):
    """The declarations Swift prints for C: between the first extern "C" { and its close."""
    start = raw.index('extern "C" {\n#endif\n') + len('extern "C" {\n#endif\n')
    end = raw.index('#if defined(__cplusplus)\n} // extern "C"', start)
    return raw[start:end]


def plain_comment(line):
    """Swift renders doc comments as markup: undo `<code>` and typographic quotes."""
    line = re.sub(r"</?code>", "`", line)
    for fancy, plain in (("\u201c", '"'), ("\u201d", '"'), ("\u2018", "'"), ("\u2019", "'"), ("\u2026", "...")):
        line = line.replace(fancy, plain)
    return line


def convert(section):
    lines, enums, handles = [], set(), set()
    for line in section.splitlines():
        m = re.match(r"typedef SWIFT_ENUM\(int32_t, (\w+), closed\) \{", line)
        if m:
            enums.add(m.group(1))
            lines.append(f"typedef enum {m.group(1)} {{")
            current_enum = m.group(1)
            continue
        if enums and re.match(r"\s+\w+ = -?\d+,$", line):
            name = line.strip()
            for e in enums:
                if name.startswith(e):
                    name = name[len(e):]
            lines.append("    " + name)
            continue
        if line == "};" and enums:
            lines.append("} %s;" % current_enum)
            continue
        if line.startswith("SWIFT_EXTERN "):
            line = MACROS.sub("", line[len("SWIFT_EXTERN "):]).replace("SWIFT_ENUM_TAG ", "enum ")
            line = re.sub(r"\b(\w+)_([,)])", r"\1\2", line)      # Swift renames `out` to `out_`
            line = re.sub(r"\bstruct (descent_\w+)", r"\1", line)
            handles.update(h for h in re.findall(r"\b(descent_\w+) (?:const )?\*", line) if h not in enums)
            lines.append(line)
            continue
        if line.strip():
            lines.append(plain_comment(line) if line.lstrip().startswith("///") else line)
    body = "\n".join(lines).strip() + "\n"
    body = re.sub(r"^((?!\s*///).*;)\n(///)", r"\1\n\n\2", body, flags=re.M)  # blank line between declarations
    typedefs = "".join(f"typedef struct {h} {h};\n" for h in sorted(handles)) + "\n"
    return typedefs + body


def generate(scratch):
    return PROLOGUE + convert(c_section(raw_header(swift_modules_dir(scratch)))) + EPILOGUE


def main():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--check", action="store_true", help="compare with the committed header instead of writing")
    parser.add_argument("--scratch-path", help="SwiftPM build folder to use (default .build)")
    parser.add_argument("--output", default=HEADER, help="where to write (default include/descent.h)")
    args = parser.parse_args()
    fresh = generate(args.scratch_path)
    if args.check:
        with open(HEADER) as f:
            committed = f.read()
        if committed != fresh:
            sys.stdout.writelines(difflib.unified_diff(
                committed.splitlines(True), fresh.splitlines(True), "include/descent.h (committed)", "fresh"))
            print("include/descent.h is stale: run scripts/generate_header.py", file=sys.stderr)
            return 1
        print("include/descent.h is up to date")
        return 0
    with open(args.output, "w") as f:
        f.write(fresh)
    print(f"wrote {args.output}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
