// The target behind the `descent-standalone` product: libdescent.so with the Swift runtime linked
// in (-static-stdlib), so that it loads on a machine without the Swift toolchain. It adds no code:
// its only job is to carry that link flag (SwiftPM's linker settings belong to targets), so the
// product is linked from the very objects of `descent`, and nothing is compiled twice.
import DescentC
