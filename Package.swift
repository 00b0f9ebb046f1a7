// swift-tools-version:6.0
//
// Descent: a deep-learning training library with a Swift core, shipped as libdescent.so
// with a generated C header (include/descent.h) and a plugin ABI (include/descent_plugin.h).
//
//   CDescentKernels  C11 + OpenMP: optimizer update kernels and the parallel step runner
//   Descent          the Swift core (optimizer registry, optimizers, plugins); a Swift API too
//   DescentC         the C API surface only (@c functions): argument checks, handles, errors
//   DescentStandalone  no code: carries -static-stdlib for the descent-standalone product
//   descent          the shared library C programs and Python load (the toolchain's Swift runtime)
//   descent-standalone  the same library with the Swift runtime linked in: what is installed and shipped
import PackageDescription
import Foundation

/// Debian's libomp-dev puts omp.h beside clang 14's builtin headers, which Swift's own clang
/// does not search. It is added with -idirafter so clang 14's other builtins never shadow
/// the toolchain's own.
func openMPIncludeDirectory() -> String? {
    let root = "/usr/lib"
    let fm = FileManager.default
    let llvms = ((try? fm.contentsOfDirectory(atPath: root)) ?? []).filter { $0.hasPrefix("llvm-") }.sorted().reversed()
    for llvm in llvms {
        let clangDir = "\(root)/\(llvm)/lib/clang"
        for version in ((try? fm.contentsOfDirectory(atPath: clangDir)) ?? []).sorted().reversed() {
            let include = "\(clangDir)/\(version)/include"
            if fm.fileExists(atPath: "\(include)/omp.h") { return include }
        }
    }
    return nil
}

/// The library's version, read from its single source, Sources/Descent/Version.swift (which
/// descent_version() returns; CMake and the Python package read the same line).
func descentVersion() -> String {
    let file = URL(fileURLWithPath: #filePath).deletingLastPathComponent()
        .appendingPathComponent("Sources/Descent/Version.swift")
    let prefix = "public let descentVersion = \""
    let text = (try? String(contentsOf: file, encoding: .utf8)) ?? ""
    for line in text.split(separator: "\n") where line.hasPrefix(prefix) {
        return String(line.dropFirst(prefix.count).prefix { $0 != "\"" })
    }
    fatalError("Package.swift: no line starting with '\(prefix)' in \(file.path)")
}
let version = descentVersion()
/// SONAME libdescent.so.<major>: programs linked to it keep running across compatible releases.
let soname = "libdescent.so.\(version.prefix { $0 != "." })"

// -fvisibility=hidden: the kernels' dk_* functions are internal to libdescent.so. Hidden, their
// calls to each other skip the PLT, and another libdescent loaded into the same process (a
// benchmark's baseline, a plugin linked against an older copy) cannot bind to them.
var kernelFlags = ["-fopenmp", "-O3", "-fno-math-errno", "-std=c11", "-fvisibility=hidden"]
if let omp = openMPIncludeDirectory() { kernelFlags += ["-idirafter", omp] }
#if arch(x86_64)
// AVX2 + FMA: every x86_64 server of the last decade; the updates are memory-bound anyway.
kernelFlags += ["-march=x86-64-v3"]
#endif

let package = Package(
    name: "Descent",
    products: [
        // libdescent.so: the Swift runtime is the toolchain's shared one (the build tree's C tests
        // use it). descent-standalone: the same objects linked with the runtime inside
        // (-static-stdlib), no RUNPATH into the toolchain: what CMake installs and the wheel ships.
        .library(name: "descent", type: .dynamic, targets: ["DescentC"]),
        .library(name: "descent-standalone", type: .dynamic, targets: ["DescentStandalone"]),
        .library(name: "Descent", targets: ["Descent"]),
    ],
    targets: [
        .target(
            name: "CDescentKernels",
            cSettings: [.define("DESCENT_VERSION", to: "\"\(version)\""), .unsafeFlags(kernelFlags)],
            linkerSettings: [.linkedLibrary("omp5"), .linkedLibrary("dl"), .linkedLibrary("m"), .linkedLibrary("z")]
        ),
        .target(name: "Descent", dependencies: ["CDescentKernels"]),
        .target(
            name: "DescentC",
            dependencies: ["Descent", "CDescentKernels"],
            linkerSettings: [.unsafeFlags(["-Xlinker", "-soname=\(soname)"])]
        ),
        .target(
            name: "DescentStandalone",
            dependencies: ["DescentC"],
            linkerSettings: [.unsafeFlags(["-static-stdlib"])]
        ),
        // Writes the gzip files the IDX reader's tests read; only the tests link it.
        .target(name: "CGzipWriter", path: "Tests/CGzipWriter", linkerSettings: [.linkedLibrary("z")]),
        .testTarget(name: "DescentTests", dependencies: ["Descent", "CDescentKernels", "CGzipWriter"]),
    ]
)
