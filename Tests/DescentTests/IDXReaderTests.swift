import CGzipWriter
import Foundation
import Testing
@testable import Descent

// The IDX reader on small synthetic files (raw and gzip) written into a fresh temporary folder
// per test; one optional test reads the real Fashion-MNIST when Debian's package is installed.

/// A temporary folder, removed with everything in it when the value goes away.
private final class Folder {
    let path: String

    init() throws {
        var template = Array("\(NSTemporaryDirectory())/descent-idx-XXXXXX".utf8CString)
        guard let made = template.withUnsafeMutableBufferPointer({ mkdtemp($0.baseAddress!) }) else {
            throw DescentError(.io, "mkdtemp failed")
        }
        path = String(cString: made)
    }

    deinit { try? FileManager.default.removeItem(atPath: path) }

    /// Writes `bytes` raw as `name`; returns the path.
    @discardableResult
    func raw(_ name: String, _ bytes: [UInt8]) throws -> String {
        let file = "\(path)/\(name)"
        try Data(bytes).write(to: URL(fileURLWithPath: file))
        return file
    }

    /// Writes `bytes` gzip-compressed (zlib, through the tests' CGzipWriter) as `name`.
    @discardableResult
    func gzip(_ name: String, _ bytes: [UInt8]) throws -> String {
        let file = "\(path)/\(name)"
        let status = bytes.withUnsafeBytes { test_gzip_write_file(file, $0.baseAddress, Int64(bytes.count)) }
        guard status == 0 else { throw DescentError(.io, "cannot write \(file)") }
        return file
    }
}

/// An IDX file: magic 00 00 type rank, big-endian dimensions, then `data` (by default as many
/// bytes as the dimensions describe, counting 0, 1, 2, ...).
private func idx(_ dims: [UInt32], type: UInt8 = 0x08, rank: UInt8? = nil, data: [UInt8]? = nil) -> [UInt8] {
    var bytes: [UInt8] = [0, 0, type, rank ?? UInt8(dims.count)]
    for d in dims { bytes += [UInt8(d >> 24), UInt8(d >> 16 & 0xFF), UInt8(d >> 8 & 0xFF), UInt8(d & 0xFF)] }
    if let data { return bytes + data }
    return bytes + (0..<dims.reduce(1) { $0 * Int($1) }).map { UInt8($0 % 256) }
}

private func formatError(_ message: String) -> DescentError { DescentError(.format, message) }

private let imagesMagic = "0x00000803 (unsigned bytes, 3 dimensions: count x rows x columns)"
private let labelsMagic = "0x00000801 (unsigned bytes, 1 dimension: count)"

/// Three 2x3 images whose pixels include 0 and 255, and their labels.
private let pixels: [UInt8] = [0, 1, 2, 3, 4, 5, 100, 101, 102, 103, 104, 105, 250, 251, 252, 253, 254, 255]
private let imageFile = idx([3, 2, 3], data: pixels)
private let labelFile = idx([3], data: [7, 0, 255])

@Suite struct IDXReaderTests {
    // MARK: round trips

    private func checkSmallDataset(_ d: Dataset) {
        #expect(d.count == 3)
        #expect(d.features == 6)
        #expect(d.sampleShape == [2, 3])
        #expect(d.images == pixels.map { Float($0) / 255.0 })
        #expect(d.images.first == 0 && d.images.last == 1)
        #expect(d.labels == [7, 0, 255])
    }

    @Test func rawRoundTrip() throws {
        let folder = try Folder()
        let d = try Dataset.loadIDX(images: try folder.raw("images", imageFile), labels: try folder.raw("labels", labelFile))
        checkSmallDataset(d)
    }

    @Test func gzipRoundTrip() throws {
        let folder = try Folder()
        let d = try Dataset.loadIDX(images: try folder.gzip("images.gz", imageFile), labels: try folder.gzip("labels.gz", labelFile))
        checkSmallDataset(d)
    }

    /// gzip is recognised by content: a gzip file without .gz and a raw file named .gz both load.
    @Test func gzipDetectedByMagicNotName() throws {
        let folder = try Folder()
        let d = try Dataset.loadIDX(images: try folder.gzip("images.idx3", imageFile), labels: try folder.raw("labels.gz", labelFile))
        checkSmallDataset(d)
    }

    /// Several gzip members in one file (as `cat a.gz b.gz` makes) are one stream.
    @Test func concatenatedGzipMembers() throws {
        let folder = try Folder()
        let a = try [UInt8](Data(contentsOf: URL(fileURLWithPath: try folder.gzip("a", Array(imageFile[..<10])))))
        let b = try [UInt8](Data(contentsOf: URL(fileURLWithPath: try folder.gzip("b", Array(imageFile[10...])))))
        let d = try Dataset.loadIDX(images: try folder.raw("images", a + b), labels: try folder.raw("labels", labelFile))
        checkSmallDataset(d)
    }

    @Test func anyRankOfAtLeastTwoForImages() throws {
        let folder = try Folder()
        let labels = try folder.raw("labels", idx([2], data: [1, 2]))
        let flat = try Dataset.loadIDX(images: try folder.raw("flat", idx([2, 5])), labels: labels)
        #expect(flat.features == 5 && flat.sampleShape == [5] && flat.images.count == 10)
        let cube = try Dataset.loadIDX(images: try folder.raw("cube", idx([2, 3, 4, 5])), labels: labels)
        #expect(cube.features == 60 && cube.sampleShape == [3, 4, 5] && cube.images.count == 120)
        #expect(cube.images[119] == Float(119) / 255)
    }

    /// Big enough to cross several read and growth steps (300 KiB of pixels, gzip-compressed).
    @Test func largerGzipFile() throws {
        let folder = try Folder()
        let n = 400
        var data = [UInt8](repeating: 0, count: n * 28 * 28)
        for i in data.indices { data[i] = UInt8(truncatingIfNeeded: i &* 2654435761 >> 13) }
        let labels = (0..<n).map { UInt8($0 % 10) }
        let d = try Dataset.loadIDX(images: try folder.gzip("i.gz", idx([UInt32(n), 28, 28], data: data)),
                                    labels: try folder.gzip("l.gz", idx([UInt32(n)], data: labels)))
        #expect(d.count == n && d.features == 784)
        #expect(d.images == data.map { Float($0) / 255 })
        #expect(d.labels == labels.map(Int32.init))
    }

    /// The C API's allocation: 64-byte aligned arrays the caller frees.
    @Test func unmanagedArrays() throws {
        let folder = try Folder()
        let d = try Dataset.loadIDXUnmanaged(images: try folder.gzip("images", imageFile), labels: try folder.raw("labels", labelFile))
        defer { free(d.images); free(d.labels) }
        #expect(d.count == 3 && d.features == 6)
        #expect(Int(bitPattern: d.images) % 64 == 0 && Int(bitPattern: d.labels) % 64 == 0)
        #expect(Array(UnsafeBufferPointer(start: d.images, count: 18)) == pixels.map { Float($0) / 255 })
        #expect(Array(UnsafeBufferPointer(start: d.labels, count: 3)) == [7, 0, 255])
    }

    // MARK: the magic

    @Test func badMagic() throws {
        let folder = try Folder()
        let labels = try folder.raw("labels", labelFile)
        let png = try folder.raw("png", [0x89, 0x50, 0x4E, 0x47, 0x0D, 0x0A])
        #expect(throws: formatError("images file '\(png)': magic is 0x89504E47, expected \(imagesMagic): not an IDX file (its first two bytes must be zero)")) {
            try Dataset.loadIDX(images: png, labels: labels)
        }
        // The magic of an image file where a label file belongs.
        let images = try folder.raw("images", imageFile)
        #expect(throws: formatError("labels file '\(images)': magic is 0x00000803: 3 dimensions, but labels need exactly 1 (count); expected \(labelsMagic)")) {
            try Dataset.loadIDX(images: images, labels: images)
        }
    }

    @Test func unsupportedTypes() throws {
        let folder = try Folder()
        let labels = try folder.raw("labels", labelFile)
        let signed = try folder.raw("signed", idx([3, 2, 3], type: 0x09))
        #expect(throws: formatError("images file '\(signed)': magic is 0x00000903: data type 0x09 (signed byte) is not supported, only 0x08 (unsigned byte); expected \(imagesMagic)")) {
            try Dataset.loadIDX(images: signed, labels: labels)
        }
        let floats = try folder.raw("floats", idx([3, 2, 3], type: 0x0D, data: [UInt8](repeating: 0, count: 72)))
        #expect(throws: formatError("images file '\(floats)': magic is 0x00000D03: data type 0x0D (32-bit float) is not supported, only 0x08 (unsigned byte); expected \(imagesMagic)")) {
            try Dataset.loadIDX(images: floats, labels: labels)
        }
        let unknown = try folder.raw("unknown", idx([3], type: 0x42))
        #expect(throws: formatError("labels file '\(unknown)': magic is 0x00004201: data type 0x42 (not an IDX type) is not supported, only 0x08 (unsigned byte); expected \(labelsMagic)")) {
            try Dataset.loadIDX(images: try folder.raw("images", imageFile), labels: unknown)
        }
    }

    @Test func wrongDimensionCounts() throws {
        let folder = try Folder()
        let images = try folder.raw("images", imageFile)
        let labels = try folder.raw("labels", labelFile)
        let oneDim = try folder.raw("oneDim", idx([3]))
        #expect(throws: formatError("images file '\(oneDim)': magic is 0x00000801: 1 dimension, but images need at least 2 (count and the image's shape); expected \(imagesMagic)")) {
            try Dataset.loadIDX(images: oneDim, labels: labels)
        }
        let noDims = try folder.raw("noDims", [0, 0, 8, 0])
        #expect(throws: formatError("images file '\(noDims)': magic is 0x00000800: 0 dimensions, but images need at least 2 (count and the image's shape); expected \(imagesMagic)")) {
            try Dataset.loadIDX(images: noDims, labels: labels)
        }
        let twoDimLabels = try folder.raw("twoDimLabels", idx([3, 1]))
        #expect(throws: formatError("labels file '\(twoDimLabels)': magic is 0x00000802: 2 dimensions, but labels need exactly 1 (count); expected \(labelsMagic)")) {
            try Dataset.loadIDX(images: images, labels: twoDimLabels)
        }
        let noDimLabels = try folder.raw("noDimLabels", [0, 0, 8, 0, 7])
        #expect(throws: formatError("labels file '\(noDimLabels)': magic is 0x00000800: 0 dimensions, but labels need exactly 1 (count); expected \(labelsMagic)")) {
            try Dataset.loadIDX(images: images, labels: noDimLabels)
        }
    }

    // MARK: dimensions

    @Test func zeroDimensions() throws {
        let folder = try Folder()
        let images = try folder.raw("images", imageFile)
        let labels = try folder.raw("labels", labelFile)
        let noImages = try folder.raw("noImages", idx([0, 28, 28]))
        #expect(throws: formatError("images file '\(noImages)': dimension 1 of 3 (the image count) is 0; every dimension must be at least 1 (dimensions 0 x 28 x 28)")) {
            try Dataset.loadIDX(images: noImages, labels: labels)
        }
        let noColumns = try folder.raw("noColumns", idx([3, 28, 0]))
        #expect(throws: formatError("images file '\(noColumns)': dimension 3 of 3 (columns) is 0; every dimension must be at least 1 (dimensions 3 x 28 x 0)")) {
            try Dataset.loadIDX(images: noColumns, labels: labels)
        }
        let flat = try folder.raw("flat", idx([3, 0]))
        #expect(throws: formatError("images file '\(flat)': dimension 2 of 2 (sample dimension 1) is 0; every dimension must be at least 1 (dimensions 3 x 0)")) {
            try Dataset.loadIDX(images: flat, labels: labels)
        }
        let noLabels = try folder.raw("noLabels", idx([0]))
        #expect(throws: formatError("labels file '\(noLabels)': dimension 1 of 1 (the label count) is 0; every dimension must be at least 1 (dimensions 0)")) {
            try Dataset.loadIDX(images: images, labels: noLabels)
        }
    }

    @Test func tooManyElements() throws {
        let folder = try Folder()
        let labels = try folder.raw("labels", labelFile)
        // 2^31 + 2^16 elements: just past the limit; the data are not there (or needed).
        let big = try folder.raw("big", idx([32769, 256, 256], data: []))
        #expect(throws: formatError("images file '\(big)': dimensions 32769 x 256 x 256 describe more than 2147483648 (2^31) elements, the most supported")) {
            try Dataset.loadIDX(images: big, labels: labels)
        }
        // A product that overflows 64 bits.
        let huge = try folder.gzip("huge", idx([UInt32.max, UInt32.max, UInt32.max], data: []))
        #expect(throws: formatError("images file '\(huge)': dimensions 4294967295 x 4294967295 x 4294967295 describe more than 2147483648 (2^31) elements, the most supported")) {
            try Dataset.loadIDX(images: huge, labels: labels)
        }
    }

    @Test func countMismatch() throws {
        let folder = try Folder()
        let images = try folder.raw("images", imageFile)
        let labels = try folder.gzip("labels", idx([4]))
        #expect(throws: formatError("images file '\(images)' holds 3 images but labels file '\(labels)' holds 4 labels; the counts must be equal")) {
            try Dataset.loadIDX(images: images, labels: labels)
        }
    }

    // MARK: lengths

    @Test func truncatedFiles() throws {
        let folder = try Folder()
        let labels = try folder.raw("labels", labelFile)
        let short = try folder.raw("short", Array(imageFile.dropLast()))
        #expect(throws: formatError("images file '\(short)' is truncated: 33 bytes, expected 34 (16-byte header + 18 data bytes for 3 x 2 x 3)")) {
            try Dataset.loadIDX(images: short, labels: labels)
        }
        let shortGzip = try folder.gzip("short.gz", Array(imageFile.dropLast(5)))
        #expect(throws: formatError("images file '\(shortGzip)' is truncated: 29 bytes after decompression, expected 34 (16-byte header + 18 data bytes for 3 x 2 x 3)")) {
            try Dataset.loadIDX(images: shortGzip, labels: labels)
        }
        let empty = try folder.raw("empty", [])
        #expect(throws: formatError("images file '\(empty)' is truncated: 0 bytes, too short for the 4-byte IDX magic (expected \(imagesMagic))")) {
            try Dataset.loadIDX(images: empty, labels: labels)
        }
        let emptyGzip = try folder.gzip("empty.gz", [])
        #expect(throws: formatError("labels file '\(emptyGzip)' is truncated: 0 bytes after decompression, too short for the 4-byte IDX magic (expected \(labelsMagic))")) {
            try Dataset.loadIDX(images: try folder.raw("images", imageFile), labels: emptyGzip)
        }
        let twoBytes = try folder.raw("twoBytes", [0, 0])
        #expect(throws: formatError("images file '\(twoBytes)' is truncated: 2 bytes, too short for the 4-byte IDX magic (expected \(imagesMagic))")) {
            try Dataset.loadIDX(images: twoBytes, labels: labels)
        }
        let inHeader = try folder.raw("inHeader", Array(imageFile[..<10]))
        #expect(throws: formatError("images file '\(inHeader)' is truncated: 10 bytes, but its 3 dimensions need a 16-byte header")) {
            try Dataset.loadIDX(images: inHeader, labels: labels)
        }
        let headerOnly = try folder.gzip("headerOnly", Array(labelFile[..<8]))
        #expect(throws: formatError("labels file '\(headerOnly)' is truncated: 8 bytes after decompression, expected 11 (8-byte header + 3 data bytes for 3)")) {
            try Dataset.loadIDX(images: try folder.raw("images", imageFile), labels: headerOnly)
        }
    }

    @Test func trailingBytes() throws {
        let folder = try Folder()
        let labels = try folder.raw("labels", labelFile)
        let long = try folder.raw("long", imageFile + [0])
        #expect(throws: formatError("images file '\(long)' has 35 bytes, more than the 34 expected (16-byte header + 18 data bytes for 3 x 2 x 3): extra bytes after the data")) {
            try Dataset.loadIDX(images: long, labels: labels)
        }
        let longGzip = try folder.gzip("long.gz", imageFile + [UInt8](repeating: 9, count: 100_000))
        #expect(throws: formatError("images file '\(longGzip)' has 100034 bytes after decompression, more than the 34 expected (16-byte header + 18 data bytes for 3 x 2 x 3): extra bytes after the data")) {
            try Dataset.loadIDX(images: longGzip, labels: labels)
        }
        let longLabels = try folder.gzip("longLabels", labelFile + [1])
        #expect(throws: formatError("labels file '\(longLabels)' has 12 bytes after decompression, more than the 11 expected (8-byte header + 3 data bytes for 3): extra bytes after the data")) {
            try Dataset.loadIDX(images: try folder.raw("images", imageFile), labels: longLabels)
        }
    }

    /// A decompression bomb: a few KiB of gzip that expand far past what the header describes.
    /// Reading stops at a bounded look-ahead instead of inflating it all.
    @Test func decompressionBomb() throws {
        let folder = try Folder()
        let bomb = try folder.gzip("bomb", labelFile + [UInt8](repeating: 0, count: IDXReader.trailingCountLimit + 5_000_000))
        let size = try FileManager.default.attributesOfItem(atPath: bomb)[.size] as! Int
        #expect(size < 100_000)
        #expect(throws: formatError("labels file '\(bomb)' has more than \(11 + IDXReader.trailingCountLimit) bytes after decompression, more than the 11 expected (8-byte header + 3 data bytes for 3): extra bytes after the data")) {
            try Dataset.loadIDX(images: try folder.raw("images", imageFile), labels: bomb)
        }
    }

    /// Headers that claim far more data than the file holds fail on the length without
    /// allocating the claimed size (2 GB here): a raw file's size is checked against the header
    /// before any data buffer exists, and a gzip file's buffer grows only with the bytes
    /// actually decompressed.
    @Test func lyingHeaders() throws {
        let folder = try Folder()
        let claim: UInt32 = 2_000_000_000
        let images = try folder.raw("images", idx([claim, 1], data: [1, 2, 3]))
        let labels = try folder.raw("labels", idx([claim], data: [1, 2, 3]))
        #expect(throws: formatError("images file '\(images)' is truncated: 15 bytes, expected 2000000012 (12-byte header + 2000000000 data bytes for 2000000000 x 1)")) {
            try Dataset.loadIDX(images: images, labels: labels)
        }
        let imagesGzip = try folder.gzip("images.gz", idx([claim, 1], data: [UInt8](repeating: 3, count: 1000)))
        let labelsGzip = try folder.gzip("labels.gz", idx([claim], data: [UInt8](repeating: 3, count: 1000)))
        #expect(throws: formatError("images file '\(imagesGzip)' is truncated: 1012 bytes after decompression, expected 2000000012 (12-byte header + 2000000000 data bytes for 2000000000 x 1)")) {
            try Dataset.loadIDX(images: imagesGzip, labels: labelsGzip)
        }
        let file = try IDXReader.IDXFile(path: labelsGzip, role: .labels)
        #expect(throws: formatError("labels file '\(labelsGzip)' is truncated: 1008 bytes after decompression, expected 2000000008 (8-byte header + 2000000000 data bytes for 2000000000)")) {
            try file.readData()
        }
        // That the claim was never allocated is checked under a memory limit by
        // tests/c/test_idx_memory.c. An honest gzip file reserves its size plus the one byte
        // that proves it ends there.
        let honest = try IDXReader.IDXFile(path: try folder.gzip("honest", labelFile), role: .labels)
        let data = try honest.readData()
        #expect(data.count == 3)
        #expect(data.capacity == 4)
    }

    // MARK: gzip damage

    @Test func corruptGzip() throws {
        let folder = try Folder()
        let labels = try folder.raw("labels", labelFile)
        let good = try [UInt8](Data(contentsOf: URL(fileURLWithPath: try folder.gzip("good", imageFile))))

        // The gzip magic followed by a header and garbage.
        let garbage = try folder.raw("garbage", [0x1f, 0x8b, 0x08, 0, 0, 0, 0, 0, 0, 0x03] + [UInt8](repeating: 0xFF, count: 40))
        #expect(throws: formatError("images file '\(garbage)': corrupt gzip data: invalid block type")) {
            try Dataset.loadIDX(images: garbage, labels: labels)
        }
        // A wrong CRC-32 in the trailer: zlib checks it.
        var badCRC = good
        badCRC[good.count - 8] ^= 0xFF
        let crc = try folder.raw("crc", badCRC)
        #expect(throws: formatError("images file '\(crc)': corrupt gzip data: incorrect data check")) {
            try Dataset.loadIDX(images: crc, labels: labels)
        }
        // Compression method 9 does not exist.
        var badMethod = good
        badMethod[2] = 9
        let method = try folder.raw("method", badMethod)
        #expect(throws: formatError("images file '\(method)': corrupt gzip data: unknown compression method")) {
            try Dataset.loadIDX(images: method, labels: labels)
        }
        // The compressed stream cut short (no trailer): not a clean end of the data.
        let cut = try folder.raw("cut", Array(good.dropLast(8)))
        #expect(throws: formatError("images file '\(cut)': corrupt gzip data: the gzip stream ends early (unexpected end of file)")) {
            try Dataset.loadIDX(images: cut, labels: labels)
        }
        let justMagic = try folder.raw("justMagic", [0x1f, 0x8b])
        #expect(throws: formatError("images file '\(justMagic)': corrupt gzip data: the gzip stream ends early (unexpected end of file)")) {
            try Dataset.loadIDX(images: justMagic, labels: labels)
        }
    }

    // MARK: files

    @Test func missingAndUnreadableFiles() throws {
        let folder = try Folder()
        let images = try folder.raw("images", imageFile)
        let labels = try folder.raw("labels", labelFile)
        let missing = "\(folder.path)/no-such-file"
        #expect(throws: DescentError(.notFound, "images file '\(missing)': cannot open: No such file or directory")) {
            try Dataset.loadIDX(images: missing, labels: labels)
        }
        #expect(throws: DescentError(.notFound, "labels file '\(missing)': cannot open: No such file or directory")) {
            try Dataset.loadIDX(images: images, labels: missing)
        }
        let notAFolder = "\(images)/labels"
        #expect(throws: DescentError(.notFound, "labels file '\(notAFolder)': cannot open: Not a directory")) {
            try Dataset.loadIDX(images: images, labels: notAFolder)
        }
        #expect(throws: DescentError(.io, "images file '\(folder.path)': is a directory, not a file")) {
            try Dataset.loadIDX(images: folder.path, labels: labels)
        }
        #expect(throws: DescentError(.notFound, "images file '': cannot open: No such file or directory")) {
            try Dataset.loadIDX(images: "", labels: labels)
        }
    }

    // MARK: the real data set

    @Test(.enabled(if: FileManager.default.fileExists(atPath: "\(Dataset.fashionMNISTDirectory)/train-images-idx3-ubyte.gz"),
                   "Debian's dataset-fashion-mnist is installed"))
    func fashionMNIST() throws {
        let start = ContinuousClock.now
        let train = try Dataset.fashionMNIST(train: true)
        let elapsed = ContinuousClock.now - start
        print("Fashion-MNIST train loaded in \(elapsed)")
        #expect(train.count == 60000 && train.features == 784 && train.sampleShape == [28, 28])
        #expect(train.images.count == 60000 * 784 && train.labels.count == 60000)
        var perClass = [Int](repeating: 0, count: 10)
        for label in train.labels where (0..<10).contains(label) { perClass[Int(label)] += 1 }
        #expect(perClass == [Int](repeating: 6000, count: 10))
        let (low, high) = train.images.withUnsafeBufferPointer { b in
            var low: Float = .infinity, high: Float = -.infinity
            for x in b { low = min(low, x); high = max(high, x) }
            return (low, high)
        }
        #expect(low == 0 && high == 1)

        let test = try Dataset.fashionMNIST(train: false)
        #expect(test.count == 10000 && test.features == 784 && test.labels.allSatisfy { (0..<10).contains($0) })
    }
}
